#!/usr/bin/env bash
# Installs what the project needs on a Debian 12 machine -- only what is missing -- and prints
# one line per thing it installed. Safe to rerun (then it prints nothing but a summary line).
#
#   scripts/install-deps.sh            Debian packages + the Python test venv
#   scripts/install-deps.sh --apt      Debian packages only
#   scripts/install-deps.sh --python   the Python test venv only
#   scripts/install-deps.sh --containers  podman, buildah, runc, debootstrap only (make compose-test)
#
# Debian packages: build tools for the Rust crates (librdkafka via rdkafka's cmake build, sqlx,
# ...), PostgreSQL 15 (scripts/postgres.sh), docker-compose (only to validate
# docker-compose.kafka.yml with `docker-compose config`; there is no Docker engine here),
# chromium + chromium-driver (browser tests), kcat (look at topics), haproxy (the balancer of
# `make dev SCALE=2`), shellcheck, curl, jq,
# python3-venv; Java 17 and Maven when missing (Kafka and the schema registry run from jars);
# podman, buildah, runc, debootstrap and CNI's dnsname plugin: the container engine, the Debian
# base image and name resolution between containers of `make compose-test` where no Docker runs
# (scripts/containers.sh, scripts/images.sh).
# Go (to build Mailpit, scripts/smtp-sink.sh) is checked, not installed: Debian's is too old.
#
# Python venv: $CACHE_DIR/venv (outside the repo, shared by every clone) with confluent-kafka
# (+ fastavro, requests, httpx, attrs, cachetools, authlib: what its schema-registry Avro
# serde imports), pytest, pyyaml, kubernetes-validate. Use it as $CACHE_DIR/venv/bin/python.
# Then scripts/deploy-tools.sh: what validates the deployment files (deploy/README.md).
# Runs apt-get through sudo when not root.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# golang-github-containernetworking-plugin-dnsname: podman 4.3 here networks through CNI, and
# without this plugin (only a Recommends, which apt_install leaves out) containers of one
# compose network cannot resolve each other by name: compose-test's brokers failed with
# "UnknownHostException: kafka-2" on a machine that lacked it.
CONTAINER_PACKAGES=(podman buildah runc debootstrap golang-github-containernetworking-plugin-dnsname)
APT_PACKAGES=(
    build-essential cmake pkg-config libssl-dev libsasl2-dev zlib1g-dev libsqlite3-dev
    libpq-dev libzstd-dev libcurl4-openssl-dev
    postgresql postgresql-client
    docker-compose
    chromium chromium-driver
    shellcheck curl jq python3-venv ca-certificates openssl
    haproxy
    "${CONTAINER_PACKAGES[@]}"
)
# name in Debian 12 first, older name second
KCAT_CANDIDATES=(kcat kafkacat)

VENV="$CACHE_DIR/venv"
PY_PACKAGES=(
    "confluent-kafka[avro,schemaregistry]"
    fastavro requests httpx attrs cachetools authlib
    pytest pyyaml kubernetes-validate
    "mcp==2.3.0"
)

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
    need_cmd sudo
    SUDO=(sudo)
fi

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

APT_UPDATED=0
apt_update_once() {
    if ((APT_UPDATED == 0)); then
        log "apt-get update"
        "${SUDO[@]}" apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
}

apt_install() {
    apt_update_once
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" \
        >/dev/null
}

install_apt() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        installed "$p" || missing+=("$p")
    done
    command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    if ((${#missing[@]} > 0)); then
        apt_install "${missing[@]}"
        for p in "${missing[@]}"; do
            echo "installed (apt): $p"
        done
    fi
    local kcat_ok=0
    for p in "${KCAT_CANDIDATES[@]}"; do
        if installed "$p"; then
            kcat_ok=1
            break
        fi
    done
    if ((kcat_ok == 0)); then
        apt_update_once
        for p in "${KCAT_CANDIDATES[@]}"; do
            if apt-cache show "$p" >/dev/null 2>&1; then
                apt_install "$p"
                echo "installed (apt): $p"
                kcat_ok=1
                break
            fi
        done
        ((kcat_ok == 1)) || log "kcat/kafkacat is not available from apt; use scripts/kafka-tool.sh instead"
    fi
    if ! command -v go >/dev/null 2>&1; then
        log "note: Go is not installed; scripts/smtp-sink.sh needs it once to build Mailpit"
    fi
}

venv_python() {
    # Debian's interpreter (python3-venv belongs to it), else whatever python3 is first in PATH
    if [[ -x /usr/bin/python3 ]]; then
        echo /usr/bin/python3
    else
        command -v python3
    fi
}

install_python() {
    local py
    py="$(venv_python)"
    if [[ ! -x "$VENV/bin/python" ]]; then
        mkdir -p "$CACHE_DIR"
        "$py" -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        echo "installed (venv): $VENV ($("$VENV/bin/python" --version))"
    fi
    local missing=() spec name
    for spec in "${PY_PACKAGES[@]}"; do
        name="${spec%%[[=]*}"
        "$VENV/bin/python" -m pip show -q "$name" >/dev/null 2>&1 || missing+=("$spec")
    done
    if ((${#missing[@]} > 0)); then
        "$VENV/bin/python" -m pip install -q "${missing[@]}" >&2
        for spec in "${missing[@]}"; do
            echo "installed (pip): $spec"
        done
    fi
    # the import the tests rely on (Confluent wire format + Avro + schema registry client)
    "$VENV/bin/python" -c 'from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer' ||
        die "confluent_kafka's AvroDeserializer does not import in $VENV"
}

install_containers() {
    local missing=() p
    for p in "${CONTAINER_PACKAGES[@]}"; do
        installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} > 0)); then
        apt_install "${missing[@]}"
        for p in "${missing[@]}"; do
            echo "installed (apt): $p"
        done
    fi
}

case "${1:-all}" in
--apt) install_apt ;;
--containers) install_containers ;;
--python) install_python ;;
all | --all)
    install_apt
    install_python
    "$SCRIPTS_DIR/deploy-tools.sh"
    ;;
*)
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
log "dependencies in place"
