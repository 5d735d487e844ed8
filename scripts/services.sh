#!/usr/bin/env bash
# The five services as local processes, configured from the environment (SPEC section 5).
#
#   scripts/services.sh start [name...]   build, start (all by default), wait for /readyz
#   scripts/services.sh stop [name...]    SIGTERM (graceful), bounded wait, SIGKILL last
#   scripts/services.sh status            which run, and their /readyz
#   scripts/services.sh env name          print the environment a service gets
#
# DATABASE=sqlite (default: one file per service under .run/data) or DATABASE=postgres (one
# database per service on scripts/postgres.sh). Keys for local use are made once under
# .run/dev (never committed): an Ed25519 JWT key pair (task-api alone gets the private key)
# and a webhook signing key.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# name:port, the contract's table.
SERVICE_TABLE=(task-api:8000 ws-gateway:8001 notification-service:8002 recurring-task-service:8003 audit-service:8004)
DATABASE="${DATABASE:-sqlite}"
DEV_DIR="$RUN_DIR/dev"
DATA_DIR="$RUN_DIR/data"

port_of() {
    local entry
    for entry in "${SERVICE_TABLE[@]}"; do
        [[ "${entry%%:*}" == "$1" ]] && { echo "${entry##*:}"; return 0; }
    done
    die "unknown service: $1"
}

# Services whose crate exists in this checkout.
available() {
    local entry
    for entry in "${SERVICE_TABLE[@]}"; do
        [[ -f "$REPO_ROOT/crates/${entry%%:*}/src/main.rs" ]] && echo "${entry%%:*}"
    done
}

ensure_keys() {
    mkdir -p "$DEV_DIR"
    chmod 700 "$DEV_DIR"
    if [[ ! -f "$DEV_DIR/jwt-private.pem" ]]; then
        need_cmd openssl
        openssl genpkey -algorithm ed25519 -out "$DEV_DIR/jwt-private.pem" 2>/dev/null
        openssl pkey -in "$DEV_DIR/jwt-private.pem" -pubout -out "$DEV_DIR/jwt-public.pem" 2>/dev/null
        chmod 600 "$DEV_DIR/jwt-private.pem"
        log "made a local JWT key pair in $DEV_DIR"
    fi
    if [[ ! -f "$DEV_DIR/webhook.key" ]]; then
        openssl rand -hex 32 >"$DEV_DIR/webhook.key"
        chmod 600 "$DEV_DIR/webhook.key"
    fi
}

database_url() {
    local name="$1"
    case "$DATABASE" in
    sqlite)
        mkdir -p "$DATA_DIR"
        echo "sqlite://$DATA_DIR/$name.db"
        ;;
    postgres)
        local db="${name//-/_}" server
        server="$("$SCRIPTS_DIR/postgres.sh" url)"
        if ! psql "$server" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
            psql "$server" -qc "CREATE DATABASE $db" >/dev/null
        fi
        echo "${server%/*}/$db"
        ;;
    *) die "DATABASE must be sqlite or postgres, not $DATABASE" ;;
    esac
}

# The environment of one service, as NAME=value lines.
service_env() {
    local name="$1"
    echo "KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-$KAFKA_BOOTSTRAP}"
    echo "SCHEMA_REGISTRY_URL=${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7}"
    echo "DATABASE_URL=$(database_url "$name")"
    echo "BIND_ADDR=127.0.0.1:$(port_of "$name")"
    echo "RUST_LOG=${RUST_LOG:-info}"
    echo "JWT_PUBLIC_KEY=$DEV_DIR/jwt-public.pem"
    echo "WEBHOOK_SIGNING_KEY=$(cat "$DEV_DIR/webhook.key")"
    echo "SMTP_URL=${SMTP_URL:-smtp://127.0.0.1:1025}"
    echo "APP_BASE_URL=http://127.0.0.1:8000"
    echo "WS_PUBLIC_URL=ws://127.0.0.1:8001"
    if [[ "$name" == task-api ]]; then
        echo "JWT_PRIVATE_KEY=$DEV_DIR/jwt-private.pem"
    fi
    # On the secured cluster each service connects as its own user, with its own ACLs.
    if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
        "$SCRIPTS_DIR/kafka-security.sh" env "$name"
    fi
}

ready() { curl -fsS -m 2 "http://127.0.0.1:$(port_of "$1")/readyz" >/dev/null; }

start() {
    local names=("$@") name
    ((${#names[@]})) || mapfile -t names < <(available)
    ensure_keys
    build_binaries
    for name in "${names[@]}"; do
        is_running "svc-$name" && { log "$name already running"; continue; }
        ensure_port_free "$(port_of "$name")" "$name"
        local env_args=()
        mapfile -t env_args < <(service_env "$name")
        start_daemon "svc-$name" "$LOG_DIR/$name.log" env "${env_args[@]}" "$TARGET_DIR/debug/$name"
    done
    for name in "${names[@]}"; do
        WAIT_LOG="$LOG_DIR/$name.log" wait_until 90 "$name /readyz" ready "$name"
        log "$name ready on http://127.0.0.1:$(port_of "$name")"
    done
}

stop() {
    local names=("$@") entry
    if ((${#names[@]} == 0)); then
        for entry in "${SERVICE_TABLE[@]}"; do names+=("${entry%%:*}"); done
    fi
    local name
    for name in "${names[@]}"; do
        if is_running "svc-$name"; then kill -TERM "$(daemon_pid "svc-$name")" 2>/dev/null || true; fi
    done
    # SIGTERM to all first, then wait: they drain in parallel.
    for name in "${names[@]}"; do await_stop "svc-$name" 40; done
}

status() {
    local entry name ok=0
    for entry in "${SERVICE_TABLE[@]}"; do
        name="${entry%%:*}"
        if is_running "svc-$name"; then
            if ready "$name"; then echo "$name: ready (:${entry##*:})"; else echo "$name: running, not ready"; ok=1; fi
        else
            echo "$name: stopped"
            ok=1
        fi
    done
    return "$ok"
}

case "${1:-}" in
start) shift; start "$@" ;;
stop) shift; stop "$@" ;;
status) status ;;
env) ensure_keys; service_env "${2:?service name}" ;;
*) echo "usage: $0 start|stop|status|env [name...]" >&2; exit 2 ;;
esac
