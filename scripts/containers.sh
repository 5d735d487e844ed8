#!/usr/bin/env bash
# A container engine for the compose stack: a real Docker engine when one answers, otherwise
# podman (Debian's) serving the Docker API on a socket of the project's, so Docker Compose and
# image builds run unchanged against it.
#
#   scripts/containers.sh start           Docker if `docker info` answers; else podman's API service
#                                         ($RUN_DIR/podman/podman.sock) + the health-check ticker
#   scripts/containers.sh stop            stop the podman service and the ticker (not Docker)
#   scripts/containers.sh status          which engine answers, where
#   scripts/containers.sh env             `export DOCKER_HOST=...` lines for a shell (eval them)
#   scripts/containers.sh compose ARGS    Docker Compose v5 (built once from the Go module proxy,
#                                         $CACHE_DIR/bin/docker-compose-<version>) on that engine
#   scripts/containers.sh fetch-compose   only build Compose
#
# Why the pieces (../shared NOTES "Containers without Docker"):
#  - podman reads deploy/containers/containers.conf (CONTAINERS_CONF): runc instead of crun and
#    no default ulimits, the settings that work on a cgroups-v1/hybrid machine.
#  - docker-compose.yml uses `include:`, which Debian's docker-compose 1.29 does not know, and
#    `condition: service_healthy`: Compose v5 knows both.
#  - podman schedules health checks with systemd timers; where PID 1 is not systemd they never
#    run and every `service_healthy` waits forever. The ticker (`health-ticker`, a daemon) runs
#    `podman healthcheck run` for every running container that has a check, once per the
#    check's own interval (running them faster would shrink `retries` x `interval`, the time a
#    slow starter gets: the registry was marked unhealthy at 2 s per check).
# Env: DOCKER_HOST (an engine of your own; used as is when it answers), COMPOSE_VERSION (v5.6.0).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

COMPOSE_VERSION="${COMPOSE_VERSION:-v5.6.0}"
COMPOSE_BIN="$CACHE_DIR/bin/docker-compose-$COMPOSE_VERSION"
export CONTAINERS_CONF="$REPO_ROOT/deploy/containers/containers.conf"
PODMAN_DIR="$RUN_DIR/podman"
PODMAN_SOCK="$PODMAN_DIR/podman.sock"
PODMAN_LOG="$LOG_DIR/podman-service.log"
TICKER_LOG="$LOG_DIR/podman-health.log"
NO_ENGINE="no container engine: Docker does not answer (docker info) and podman is not installed; install podman with scripts/install-deps.sh --containers (Debian), or start Docker"

# A Docker engine that is not our own podman service.
docker_answers() {
    [[ "${DOCKER_HOST:-}" == "unix://$PODMAN_SOCK" ]] && return 1
    command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1
}

podman_answers() {
    [[ -S "$PODMAN_SOCK" ]] && curl -fsS --max-time 5 --unix-socket "$PODMAN_SOCK" http://d/_ping >/dev/null 2>&1
}

cmd_start() {
    if docker_answers; then
        log "Docker answers (${DOCKER_HOST:-default socket}): using it"
        return 0
    fi
    command -v podman >/dev/null 2>&1 || die "$NO_ENGINE"
    mkdir -p "$PODMAN_DIR"
    if ! podman_answers; then
        rm -f "$PODMAN_SOCK"
        WAIT_LOG="$PODMAN_LOG"
        start_daemon podman-service "$PODMAN_LOG" podman system service --time=0 "unix://$PODMAN_SOCK"
        wait_until 30 "podman's API on $PODMAN_SOCK" podman_answers
    fi
    start_daemon podman-health "$TICKER_LOG" "$SCRIPTS_DIR/containers.sh" health-ticker
}

cmd_stop() {
    stop_daemon podman-health 10
    stop_daemon podman-service 30
    rm -f "$PODMAN_SOCK"
}

# The DOCKER_HOST for Compose and docker CLI calls; empty when Docker's own default applies.
engine_host() {
    if docker_answers; then
        printf '%s\n' "${DOCKER_HOST:-}"
    elif podman_answers; then
        printf 'unix://%s\n' "$PODMAN_SOCK"
    else
        return 1
    fi
}

cmd_env() {
    local host
    host="$(engine_host)" || die "no engine answers: run scripts/containers.sh start"
    if [[ -n "$host" ]]; then
        printf 'export DOCKER_HOST=%q\n' "$host"
    fi
    printf 'export CONTAINERS_CONF=%q\n' "$CONTAINERS_CONF"
}

cmd_status() {
    if docker_answers; then
        echo "engine: Docker (${DOCKER_HOST:-default socket})"
    elif podman_answers; then
        echo "engine: podman $(podman --version | awk '{print $3}') on unix://$PODMAN_SOCK"
        if is_running podman-health; then echo "health-check ticker: running"; else echo "health-check ticker: not running"; fi
    else
        echo "engine: none answers (scripts/containers.sh start)"
        return 1
    fi
}

cmd_fetch_compose() {
    [[ -x "$COMPOSE_BIN" ]] && return 0
    need_cmd go
    mkdir -p "$CACHE_DIR/bin"
    exec 7>"$CACHE_DIR/.compose-$COMPOSE_VERSION.lock"
    flock -w 900 7 || die "another build of Compose holds $CACHE_DIR/.compose-$COMPOSE_VERSION.lock"
    [[ -x "$COMPOSE_BIN" ]] && return 0
    # `go install ...@version` is refused (the module has exclude directives): build it from
    # a wrapper module instead.
    local src="$CACHE_DIR/compose-$COMPOSE_VERSION-src"
    log "building Docker Compose $COMPOSE_VERSION from the Go module proxy (a few minutes, once)"
    mkdir -p "$src"
    (
        cd "$src"
        export GOFLAGS=-mod=mod
        [[ -f go.mod ]] || go mod init local/compose >&2
        go get "github.com/docker/compose/v5/cmd@$COMPOSE_VERSION" >&2
        go build -o "$COMPOSE_BIN.tmp" github.com/docker/compose/v5/cmd
    ) || die "building Docker Compose $COMPOSE_VERSION failed"
    mv "$COMPOSE_BIN.tmp" "$COMPOSE_BIN"
    log "built $COMPOSE_BIN"
}

cmd_compose() {
    cmd_fetch_compose
    local host
    host="$(engine_host)" || die "no engine answers: run scripts/containers.sh start"
    if [[ -n "$host" ]]; then
        DOCKER_HOST="$host" exec "$COMPOSE_BIN" "$@"
    fi
    exec "$COMPOSE_BIN" "$@"
}

# Seconds of a Go duration as podman prints it (10s, 1m30s, 500ms -> 0), whole seconds.
duration_seconds() {
    local d="$1" total=0 n unit
    while [[ "$d" =~ ^([0-9]+)(\.[0-9]+)?(h|ms|m|s|us|µs|ns)(.*)$ ]]; do
        n="${BASH_REMATCH[1]}" unit="${BASH_REMATCH[3]}" d="${BASH_REMATCH[4]}"
        case "$unit" in
        h) total=$((total + n * 3600)) ;;
        m) total=$((total + n * 60)) ;;
        s) total=$((total + n)) ;;
        esac
    done
    printf '%s\n' "$total"
}

# Runs podman's health checks, which nothing else runs where PID 1 is not systemd: each
# container's check once per its own interval (30 s when it has none), as Docker does, so its
# `retries` and `start_period` keep their meaning.
cmd_health_ticker() {
    declare -A last=() inflight=() interval=()
    local id now
    while true; do
        now=$SECONDS
        while read -r id; do
            [[ -n "$id" ]] || continue
            if [[ -n "${inflight[$id]:-}" ]] && kill -0 "${inflight[$id]}" 2>/dev/null; then
                continue
            fi
            if [[ -z "${interval[$id]:-}" ]]; then
                interval[$id]="$(duration_seconds "$(podman inspect --format '{{.Config.Healthcheck.Interval}}' "$id" 2>/dev/null)")"
                ((interval[$id] > 0)) || interval[$id]=30
            fi
            if [[ -z "${last[$id]:-}" ]] || ((now - last[$id] >= interval[$id])); then
                last[$id]=$now
                podman healthcheck run "$id" >/dev/null 2>&1 &
                inflight[$id]=$!
            fi
        done < <(podman ps --format '{{.ID}} {{.Status}}' 2>/dev/null |
            sed -n 's/^\([0-9a-f]*\) .*(\(starting\|healthy\|unhealthy\))$/\1/p')
        sleep 1
    done
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
compose)
    shift
    cmd_compose "$@"
    ;;
fetch-compose) cmd_fetch_compose ;;
health-ticker) cmd_health_ticker ;;
*)
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
