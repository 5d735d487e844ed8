#!/usr/bin/env bash
# Every image the compose stack needs, built on this machine (no image registry is reachable
# here): a Debian base from Debian's packages, then the infrastructure and the services.
#
#   scripts/images.sh all          everything below, each only when missing (or its inputs changed)
#   scripts/images.sh base         debootstrap minbase bookworm -> localhost/todo-platform/debian:bookworm
#   scripts/images.sh infra        jre, kafka, schema registry (Apicurio), postgres, mailpit, kafka-ui
#   scripts/images.sh services     cargo build (debug, one invocation) -> the five services, todoctl, jwt-keygen
#   scripts/images.sh env          the compose variables that point at these images (KAFKA_IMAGE=... lines)
#
# Runs against the engine of scripts/containers.sh (podman here, Docker where it answers); start
# it first. Cached outside the clone: the debootstrap tree as a tarball in $CACHE_DIR/images/,
# build contexts with the jars and binaries in $CACHE_DIR/images/ctx-*; the images themselves
# live in the engine's storage. The upstream images stay the defaults in the compose files;
# `env` prints the variables that swap them for these.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PREFIX="localhost/todo-platform"
IMAGES_DIR="$CACHE_DIR/images"
BASE_TAR="$IMAGES_DIR/debian-bookworm-minbase.tar"
BASE_IMAGE="$PREFIX/debian:bookworm"
JRE_IMAGE="$PREFIX/jre:17"
KAFKA_IMAGE="$PREFIX/kafka:$KAFKA_VERSION"
REGISTRY_IMAGE="$PREFIX/apicurio-registry:$APICURIO_VERSION"
POSTGRES_IMAGE="$PREFIX/postgres:15"
MAILPIT_IMAGE="$PREFIX/mailpit:$MAILPIT_VERSION"
KASKADE_VERSION="5.1.0"
TEXTUAL_SERVE_VERSION="1.1.3"
KAFKA_UI_IMAGE="$PREFIX/kafka-ui:kaskade-$KASKADE_VERSION"
BINARIES_IMAGE="$PREFIX/host-binaries:dev"
IMAGE_TAG="${IMAGE_TAG:-dev}"
BINARIES=(task-api ws-gateway notification-service recurring-task-service audit-service todoctl)
CONTAINERS_DIR="$REPO_ROOT/deploy/containers"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE_DIR/target}"

# The engine's CLI: podman where our podman service is the engine, else docker.
engine() {
    if [[ "${DOCKER_HOST:-}" == unix://*podman.sock ]]; then
        podman "$@"
    else
        docker "$@"
    fi
}

have_image() { engine image inspect "$1" >/dev/null 2>&1; }

# build <tag> <context> [build args...]: logs one line, the build output goes to a log file.
build() {
    local tag="$1" context="$2"
    shift 2
    local logfile
    logfile="$LOG_DIR/image-$(basename "${tag%%:*}").log"
    mkdir -p "$LOG_DIR"
    local t=$SECONDS format=()
    # podman writes OCI images by default, and OCI images drop HEALTHCHECK: with it gone no
    # service container has a health status, and compose's service_healthy means nothing.
    [[ "${DOCKER_HOST:-}" == unix://*podman.sock ]] && format=(--format docker)
    engine build "${format[@]}" -t "$tag" "$@" "$context" >"$logfile" 2>&1 ||
        die "building $tag failed; last lines of $logfile:
$(tail -n 25 "$logfile")"
    log "built $tag in $((SECONDS - t)) s"
}

cmd_base() {
    if [[ ! -f "$BASE_TAR" ]]; then
        need_cmd debootstrap
        mkdir -p "$IMAGES_DIR"
        local tree="$IMAGES_DIR/debian-bookworm.tmp" t=$SECONDS
        rm -rf "$tree"
        log "debootstrap --variant=minbase bookworm (about a minute, once)"
        debootstrap --variant=minbase --include=ca-certificates bookworm "$tree" \
            http://deb.debian.org/debian >"$LOG_DIR/debootstrap.log" 2>&1 ||
            die "debootstrap failed (read $LOG_DIR/debootstrap.log)"
        cat >"$tree/etc/apt/sources.list" <<'EOT'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOT
        rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/*
        tar -C "$tree" -cf "$BASE_TAR.tmp" .
        mv "$BASE_TAR.tmp" "$BASE_TAR"
        rm -rf "$tree"
        log "Debian base tree cached in $BASE_TAR ($((SECONDS - t)) s)"
    fi
    if ! have_image "$BASE_IMAGE"; then
        engine import "$BASE_TAR" "$BASE_IMAGE" >/dev/null 2>&1
        log "imported $BASE_IMAGE"
    fi
}

# A build context in the cache: the files of deploy/containers/<name> plus what the caller adds.
context_for() {
    local name="$1" ctx="$IMAGES_DIR/ctx-$1"
    mkdir -p "$ctx"
    cp -a "$CONTAINERS_DIR/$name/." "$ctx/"
    printf '%s\n' "$ctx"
}

# build_if_missing <tag> <name> [build args...]: builds when the image is missing or its
# files in deploy/containers/<name> (or the build args) changed since; FORCE=1 always builds.
build_if_missing() {
    local tag="$1" name="$2"
    shift 2
    local stamp="$IMAGES_DIR/ctx-$name.stamp" sum
    sum="$( (cd "$CONTAINERS_DIR/$name" && find . -type f -print0 | sort -z | xargs -0 sha256sum
        printf '%s\n' "$tag" "$@" image-format-docker) | sha256sum | cut -d' ' -f1)"
    if [[ "${FORCE:-0}" != 1 ]] && have_image "$tag" && [[ "$(cat "$stamp" 2>/dev/null)" == "$sum" ]]; then
        return 0
    fi
    local ctx
    ctx="$(context_for "$name")"
    case "$name" in
    kafka)
        "$SCRIPTS_DIR/kafka.sh" fetch >/dev/null
        rm -rf "$ctx/libs"
        cp -al "$KAFKA_LIBS" "$ctx/libs" 2>/dev/null || cp -a "$KAFKA_LIBS" "$ctx/libs"
        cp "$SCRIPTS_DIR/config/kafka-log4j2.properties" "$SCRIPTS_DIR/config/kafka-tools-log4j2.properties" "$ctx/"
        ;;
    apicurio-registry)
        "$SCRIPTS_DIR/registry.sh" fetch >/dev/null
        rm -rf "$ctx/app"
        cp -al "$CACHE_DIR/apicurio-$APICURIO_VERSION" "$ctx/app" 2>/dev/null ||
            cp -a "$CACHE_DIR/apicurio-$APICURIO_VERSION" "$ctx/app"
        ;;
    kafka-ui)
        # Wheels downloaded by the host's pip (the image's own pip may not trust this network's
        # TLS); the image installs them offline.
        local venv="$CACHE_DIR/venv"
        [[ -x "$venv/bin/python" ]] || "$SCRIPTS_DIR/install-deps.sh" --python
        mkdir -p "$ctx/wheels"
        "$venv/bin/python" -m pip download -q -d "$ctx/wheels" --only-binary=:all: \
            "kaskade==$KASKADE_VERSION" "textual-serve==$TEXTUAL_SERVE_VERSION" >&2 ||
            die "pip download of kaskade and textual-serve failed"
        ;;
    mailpit)
        "$SCRIPTS_DIR/smtp-sink.sh" fetch >/dev/null
        cp "$CACHE_DIR/mailpit-$MAILPIT_VERSION/bin/mailpit" "$ctx/mailpit"
        ;;
    esac
    build "$tag" "$ctx" --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "JRE_IMAGE=$JRE_IMAGE" "$@"
    printf '%s\n' "$sum" >"$stamp"
}

cmd_infra() {
    cmd_base
    build_if_missing "$JRE_IMAGE" jre
    build_if_missing "$KAFKA_IMAGE" kafka
    build_if_missing "$REGISTRY_IMAGE" apicurio-registry
    build_if_missing "$POSTGRES_IMAGE" postgres
    build_if_missing "$MAILPIT_IMAGE" mailpit
    build_if_missing "$KAFKA_UI_IMAGE" kafka-ui \
        --build-arg "KASKADE_VERSION=$KASKADE_VERSION" --build-arg "TEXTUAL_SERVE_VERSION=$TEXTUAL_SERVE_VERSION"
}

cmd_services() {
    cmd_base
    log "cargo build of the six binaries (debug; incremental when nothing changed)"
    (cd "$REPO_ROOT" && cargo build --quiet -p task-api -p ws-gateway -p notification-service \
        -p recurring-task-service -p audit-service -p todoctl) ||
        die "cargo build failed"
    # The binaries without their debug info (a tenth of the size), in an image of their own
    # that the Dockerfile's runtime targets copy from (BINARIES).
    local ctx="$IMAGES_DIR/ctx-host-binaries" bin
    mkdir -p "$ctx/out"
    for bin in "${BINARIES[@]}"; do
        if [[ ! -f "$ctx/out/$bin" || "$CARGO_TARGET_DIR/debug/$bin" -nt "$ctx/out/$bin" ]]; then
            strip --strip-debug -o "$ctx/out/$bin" "$CARGO_TARGET_DIR/debug/$bin"
        fi
    done
    printf 'FROM scratch\nCOPY out/ /out/\n' >"$ctx/Containerfile"
    build "$BINARIES_IMAGE" "$ctx" -f "$ctx/Containerfile"
    local target
    for target in "${BINARIES[@]}" jwt-keygen; do
        build "$PREFIX/$target:$IMAGE_TAG" "$REPO_ROOT" -f "$REPO_ROOT/Dockerfile" --target "$target" \
            --build-arg "BINARIES=$BINARIES_IMAGE" --build-arg "RUNTIME_BASE=$BASE_IMAGE"
    done
}

cmd_env() {
    cat <<EOT
KAFKA_IMAGE=$KAFKA_IMAGE
SCHEMA_REGISTRY_IMAGE=$REGISTRY_IMAGE
POSTGRES_IMAGE=$POSTGRES_IMAGE
MAILPIT_IMAGE=$MAILPIT_IMAGE
KAFKA_UI_IMAGE=$KAFKA_UI_IMAGE
IMAGE_PREFIX=$PREFIX
IMAGE_TAG=$IMAGE_TAG
EOT
}

case "${1:-}" in
base) cmd_base ;;
infra) cmd_infra ;;
services) cmd_services ;;
all)
    cmd_infra
    cmd_services
    ;;
env) cmd_env ;;
*)
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
