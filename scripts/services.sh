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
#
# SCALE=N (default 1) runs N instances of every service, as a deployment does: instance i of
# the service whose contract port is P listens on P+100*i (task-api 8100 and 8200, ws-gateway
# 8101 and 8201, ...), and haproxy (Debian's package) listens on P itself, round-robin over
# the instances it finds ready (/readyz). The instances of a service share its database and
# consumer group; each ws-gateway instance has a group of its own. `env name i` prints the
# environment of instance i.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# name:port, the contract's table.
SERVICE_TABLE=(task-api:8000 ws-gateway:8001 notification-service:8002 recurring-task-service:8003 audit-service:8004)
DATABASE="${DATABASE:-sqlite}"
# Without SCALE, `status` and `stop` see what the last start ran.
if [[ -z "${SCALE:-}" && -f "$RUN_DIR/dev/scale" ]] && is_running balancer; then
    SCALE="$(cat "$RUN_DIR/dev/scale")"
fi
SCALE="${SCALE:-1}"
[[ "$SCALE" =~ ^[1-9]$ ]] || die "SCALE must be a number of instances from 1 to 9, not $SCALE"
DEV_DIR="$RUN_DIR/dev"
DATA_DIR="$RUN_DIR/data"
BALANCER_CONFIG="$DEV_DIR/haproxy.cfg"

port_of() {
    local entry
    for entry in "${SERVICE_TABLE[@]}"; do
        [[ "${entry%%:*}" == "$1" ]] && { echo "${entry##*:}"; return 0; }
    done
    die "unknown service: $1"
}

# The instances of a service under SCALE, one "daemon-name port log" line each: the service
# itself on its contract port when SCALE=1, else name-i on port+100*i.
instances_of() {
    local name="$1" port i
    port="$(port_of "$name")"
    if ((SCALE == 1)); then
        echo "svc-$name $port $LOG_DIR/$name.log"
        return 0
    fi
    for ((i = 1; i <= SCALE; i++)); do
        echo "svc-$name-$i $((port + 100 * i)) $LOG_DIR/$name-$i.log"
    done
}

# Services whose crate exists in this checkout.
available() {
    local entry
    for entry in "${SERVICE_TABLE[@]}"; do
        [[ -f "$REPO_ROOT/crates/${entry%%:*}/src/main.rs" ]] && echo "${entry%%:*}"
    done
}

# base64url without padding, as browsers and VAPID tools write keys.
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

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
    # Web push (VAPID, RFC 8292): a P-256 key pair as base64url, the raw 32-byte private scalar
    # (notification-service) and the 65-byte uncompressed public point (task-api, for the page).
    if [[ ! -f "$DEV_DIR/vapid-private.key" ]]; then
        local pem
        pem="$(openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null)"
        # SEC1 DER: 30 77 02 01 01 04 20 <32-byte private key> …
        openssl ec -outform DER 2>/dev/null <<<"$pem" | tail -c +8 | head -c 32 | b64url >"$DEV_DIR/vapid-private.key"
        # SPKI DER ends with the 65-byte uncompressed point.
        openssl ec -pubout -outform DER 2>/dev/null <<<"$pem" | tail -c 65 | b64url >"$DEV_DIR/vapid-public.key"
        chmod 600 "$DEV_DIR/vapid-private.key"
        log "made a local VAPID key pair in $DEV_DIR"
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

# The environment of one service (instance $2 under SCALE), as NAME=value lines.
service_env() {
    local name="$1" instance="${2:-1}" port
    port="$(port_of "$name")"
    ((SCALE == 1)) || port=$((port + 100 * instance))
    echo "KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-$KAFKA_BOOTSTRAP}"
    echo "SCHEMA_REGISTRY_URL=${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7}"
    echo "DATABASE_URL=$(database_url "$name")"
    echo "BIND_ADDR=127.0.0.1:$port"
    echo "RUST_LOG=${RUST_LOG:-info}"
    echo "JWT_PUBLIC_KEY=$DEV_DIR/jwt-public.pem"
    echo "WEBHOOK_SIGNING_KEY=$(cat "$DEV_DIR/webhook.key")"
    echo "SMTP_URL=${SMTP_URL:-smtp://127.0.0.1:1025}"
    echo "APP_BASE_URL=http://127.0.0.1:8000"
    # SMS is optional: set SMS_GATEWAY_URL (and the key the adapter checks) to turn it on.
    if [[ -n "${SMS_GATEWAY_URL:-}" && ( "$name" == task-api || "$name" == notification-service ) ]]; then
        echo "SMS_GATEWAY_URL=$SMS_GATEWAY_URL"
        echo "SMS_GATEWAY_SIGNING_KEY=${SMS_GATEWAY_SIGNING_KEY:-}"
    fi
    echo "WS_PUBLIC_URL=ws://127.0.0.1:8001"
    if [[ "$name" == task-api ]]; then
        echo "JWT_PRIVATE_KEY=$DEV_DIR/jwt-private.pem"
        echo "VAPID_PUBLIC_KEY=$(cat "$DEV_DIR/vapid-public.key")"
    fi
    if [[ "$name" == notification-service ]]; then
        echo "VAPID_PRIVATE_KEY=$(cat "$DEV_DIR/vapid-private.key")"
        echo "VAPID_SUBJECT=${VAPID_SUBJECT:-mailto:dev@todo.localhost}"
    fi
    # On the secured cluster each service connects as its own user, with its own ACLs.
    if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
        "$SCRIPTS_DIR/kafka-security.sh" env "$name"
    fi
}

ready_on() { curl -fsS -m 2 "http://127.0.0.1:$1/readyz" >/dev/null; }
ready() { ready_on "$(port_of "$1")"; }

# haproxy in front of every service: the contract's port, round-robin over the instances whose
# /readyz answers; a connection an instance refuses goes to another (redispatch), one in
# progress when an instance dies ends, as behind any balancer. TCP mode carries WebSockets.
write_balancer_config() {
    local entry name port daemon iport _log
    {
        printf 'global\n    maxconn 4000\n\n'
        printf 'defaults\n    mode tcp\n    option redispatch\n    retries 2\n'
        printf '    timeout connect 2s\n    timeout client 1h\n    timeout server 1h\n    timeout check 2s\n'
        for entry in "${SERVICE_TABLE[@]}"; do
            name="${entry%%:*}" port="${entry##*:}"
            printf '\nlisten %s\n    bind 127.0.0.1:%s\n    balance roundrobin\n' "$name" "$port"
            printf '    option httpchk GET /readyz\n'
            while read -r daemon iport _log; do
                printf '    server %s 127.0.0.1:%s check inter 1s fall 2 rise 1\n' "${daemon#svc-}" "$iport"
            done < <(instances_of "$name")
        done
    } >"$BALANCER_CONFIG"
}

start_balancer() {
    is_running balancer && { log "balancer already running"; return 0; }
    command -v haproxy >/dev/null || die "SCALE=$SCALE needs haproxy in front of the instances: apt-get install haproxy (or make deps)"
    local entry
    for entry in "${SERVICE_TABLE[@]}"; do ensure_port_free "${entry##*:}" "the balancer of ${entry%%:*}"; done
    write_balancer_config
    haproxy -c -q -f "$BALANCER_CONFIG" || die "haproxy refused $BALANCER_CONFIG"
    start_daemon balancer "$LOG_DIR/balancer.log" haproxy -db -f "$BALANCER_CONFIG"
}

start() {
    local names=("$@") name daemon port logfile
    ((${#names[@]})) || mapfile -t names < <(available)
    ensure_keys
    echo "$SCALE" >"$DEV_DIR/scale"
    build_binaries
    for name in "${names[@]}"; do
        local i=0
        while read -r daemon port logfile; do
            i=$((i + 1))
            is_running "$daemon" && { log "${daemon#svc-} already running"; continue; }
            ensure_port_free "$port" "${daemon#svc-}"
            local env_args=()
            mapfile -t env_args < <(service_env "$name" "$i")
            start_daemon "$daemon" "$logfile" env "${env_args[@]}" "$TARGET_DIR/debug/$name"
        done < <(instances_of "$name")
    done
    for name in "${names[@]}"; do
        while read -r daemon port logfile; do
            WAIT_LOG="$logfile" wait_until 90 "${daemon#svc-} /readyz" ready_on "$port"
            log "${daemon#svc-} ready on http://127.0.0.1:$port"
        done < <(instances_of "$name")
    done
    if ((SCALE > 1)); then
        start_balancer
        for name in "${names[@]}"; do
            WAIT_LOG="$LOG_DIR/balancer.log" wait_until 30 "$name behind the balancer" ready "$name"
            log "$name: $SCALE instances behind http://127.0.0.1:$(port_of "$name")"
        done
    fi
}

# Every daemon of the services, whatever SCALE started them: the service, its instances.
all_daemons() {
    local entry name i
    for entry in "${SERVICE_TABLE[@]}"; do
        name="${entry%%:*}"
        echo "svc-$name"
        for ((i = 1; i <= 9; i++)); do echo "svc-$name-$i"; done
    done
}

stop() {
    local daemons=() name i
    if (($# == 0)); then
        mapfile -t daemons < <(all_daemons)
        daemons+=(balancer)
    else
        for name in "$@"; do
            daemons+=("svc-$name")
            for ((i = 1; i <= 9; i++)); do daemons+=("svc-$name-$i"); done
        done
    fi
    local daemon running=()
    for daemon in "${daemons[@]}"; do
        if is_running "$daemon"; then
            running+=("$daemon")
            kill -TERM "$(daemon_pid "$daemon")" 2>/dev/null || true
        fi
    done
    # SIGTERM to all first, then wait: they drain in parallel.
    for daemon in "${running[@]}"; do await_stop "$daemon" 40; done
}

status() {
    local entry name ok=0 daemon port _log
    for entry in "${SERVICE_TABLE[@]}"; do
        name="${entry%%:*}"
        while read -r daemon port _log; do
            if is_running "$daemon"; then
                if ready_on "$port"; then echo "${daemon#svc-}: ready (:$port)"; else echo "${daemon#svc-}: running, not ready"; ok=1; fi
            else
                echo "${daemon#svc-}: stopped"
                ok=1
            fi
        done < <(instances_of "$name")
    done
    if ((SCALE > 1)); then
        if is_running balancer; then echo "balancer: running (haproxy on the contract's ports)"; else echo "balancer: stopped"; ok=1; fi
    fi
    return "$ok"
}

case "${1:-}" in
start) shift; start "$@" ;;
stop) shift; stop "$@" ;;
status) status ;;
env) ensure_keys; service_env "${2:?service name}" "${3:-1}" ;;
*) echo "usage: $0 start|stop|status|env [name...]" >&2; exit 2 ;;
esac
