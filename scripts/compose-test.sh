#!/usr/bin/env bash
# `make compose-test`: the whole system in containers, tested for real.
#
#  1. a container engine (scripts/containers.sh: Docker where it answers, else podman + the
#     health-check ticker) and Docker Compose v5;
#  2. every image built on this machine (scripts/images.sh: Debian base, Kafka, the registry,
#     PostgreSQL, Mailpit, the Kafka UI, the five services and todoctl from host binaries);
#  3. docker-compose.yml + docker-compose.kafka.yml up (project todo-compose-test, its own
#     ports on 127.0.0.1, so `make dev` and `make test` keep theirs), then a bounded wait for
#     every health check; a container that fails its check fails the run with its last log lines;
#  4. the end-to-end story against the containers (crates/system-tests/tests/compose.rs);
#  5. the Kafka UI answers and a headless Chromium finds the topic names on its page;
#  6. `down -v` on every exit path (trap): no container, network or volume outlives the run.
#
# Env: COMPOSE_TEST_PORT_BASE (18000: services base..base+4, Kafka UI base+80, registry base+81,
# Mailpit base+25 / SMTP base+26, PostgreSQL base+32, brokers base+92..base+94),
# COMPOSE_TEST_TIMEOUT (600 s for the stack to become healthy), COMPOSE_TEST_KEEP=1 (leave
# the stack up for a look; `scripts/containers.sh compose -p todo-compose-test down -v` later).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The shared target dir of make test (Makefile), not a second workspace build in the clone.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE_DIR/target}"
PROJECT="todo-compose-test"
BASE="${COMPOSE_TEST_PORT_BASE:-18000}"
HEALTH_TIMEOUT="${COMPOSE_TEST_TIMEOUT:-600}"
# Prometheus and Grafana have no local image (no registry reachable): everything else runs.
SERVICES=(kafka-1 kafka-2 kafka-3 schema-registry kafka-ui topic-init postgres mailpit jwt-keygen
    task-api ws-gateway notification-service recurring-task-service audit-service)
# One-shot jobs: done when they exited 0.
ONE_SHOT=(topic-init jwt-keygen)
started=$SECONDS

export TASK_API_PORT=$((BASE)) WS_GATEWAY_PORT=$((BASE + 1)) NOTIFICATION_PORT=$((BASE + 2))
export RECURRING_PORT=$((BASE + 3)) AUDIT_PORT=$((BASE + 4))
export KAFKA_UI_PORT=$((BASE + 80)) SCHEMA_REGISTRY_PORT=$((BASE + 81))
export MAILPIT_PORT=$((BASE + 25)) MAILPIT_SMTP_PORT=$((BASE + 26)) POSTGRES_PORT=$((BASE + 32))
export KAFKA_1_PORT=$((BASE + 92)) KAFKA_2_PORT=$((BASE + 93)) KAFKA_3_PORT=$((BASE + 94))
PORT_VARS=(TASK_API_PORT WS_GATEWAY_PORT NOTIFICATION_PORT RECURRING_PORT AUDIT_PORT KAFKA_UI_PORT
    SCHEMA_REGISTRY_PORT MAILPIT_PORT MAILPIT_SMTP_PORT POSTGRES_PORT KAFKA_1_PORT KAFKA_2_PORT KAFKA_3_PORT)

# ---- the engine ----------------------------------------------------------------------------
# Started by this run (then stopped by it) or found running (then left running).
engine_was_up=0
if "$SCRIPTS_DIR/containers.sh" status >/dev/null 2>&1; then
    engine_was_up=1
fi
"$SCRIPTS_DIR/containers.sh" start
eval "$("$SCRIPTS_DIR/containers.sh" env)"

compose() {
    "$SCRIPTS_DIR/containers.sh" compose --project-name "$PROJECT" --project-directory "$REPO_ROOT" \
        -f "$REPO_ROOT/docker-compose.yml" "$@"
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ "${COMPOSE_TEST_KEEP:-0}" == 1 ]]; then
        log "COMPOSE_TEST_KEEP=1: the stack stays up (project $PROJECT)"
    else
        log "docker compose down -v"
        compose down -v --remove-orphans --timeout 20 >"$LOG_DIR/compose-test-down.log" 2>&1 ||
            log "compose down failed (read $LOG_DIR/compose-test-down.log)"
        if ((engine_was_up == 0)); then
            "$SCRIPTS_DIR/containers.sh" stop
        fi
    fi
    if ((status == 0)); then
        log "compose test passed in $((SECONDS - started)) s"
    else
        log "compose test FAILED after $((SECONDS - started)) s"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Compose itself first (built once, minutes), so its build is not hidden in the quiet clean-up.
"$SCRIPTS_DIR/containers.sh" fetch-compose
# A stack left by a run that was killed before its trap ran.
compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
for var in "${PORT_VARS[@]}"; do
    ensure_port_free "${!var}" "the compose test's $var (set COMPOSE_TEST_PORT_BASE to move them all)" 5
done

# ---- images --------------------------------------------------------------------------------
t=$SECONDS
"$SCRIPTS_DIR/images.sh" all
while IFS='=' read -r name value; do
    export "$name=$value"
done < <("$SCRIPTS_DIR/images.sh" env)
log "images ready in $((SECONDS - t)) s"

# ---- up, and wait for every health check ------------------------------------------------------
# ps lines: service|state|health|status|id. The exit code is read from the status text
# ("Exited (3) ..."): podman's Docker API reports ExitCode 0 for a container that exited 3.
states() {
    compose ps --all --format '{{.Service}}|{{.State}}|{{.Health}}|{{.Status}}|{{.ID}}'
}

# The engine's CLI for what Compose does not show (restart counts).
engine() {
    if [[ "${DOCKER_HOST:-}" == unix://*podman.sock ]]; then podman "$@"; else docker "$@"; fi
}

print_logs() {
    log "$1: last log lines"
    compose logs --no-color --tail 40 "$1" >&"$LOG_FD" 2>&1 || true
}

fail_with_logs() {
    print_logs "$1"
    die "the compose stack did not come up: $1 $2"
}

# Returns 0 when every service is healthy (or running, without a check) and every one-shot
# exited 0; dies with the container's last log lines when one failed. NOT_READY lists the
# others.
all_healthy() {
    local service state health status id code restarts ready=0 total=0
    NOT_READY=()
    while IFS='|' read -r service state health status id; do
        total=$((total + 1))
        code=""
        [[ "$status" =~ Exited\ \(([0-9]+)\) ]] && code="${BASH_REMATCH[1]}"
        if [[ " ${ONE_SHOT[*]} " == *" $service "* ]]; then
            if [[ -n "$code" ]]; then
                [[ "$code" == 0 ]] || fail_with_logs "$service" "exited with status $code"
                ready=$((ready + 1))
            else
                NOT_READY+=("$service")
            fi
            continue
        fi
        case "$state/${health:--}" in
        running/healthy | running/-) ready=$((ready + 1)) ;;
        */unhealthy) fail_with_logs "$service" "failed its health check" ;;
        restarting/*) fail_with_logs "$service" "keeps restarting" ;;
        exited/* | stopped/* | dead/*) fail_with_logs "$service" "exited (${status:-$state})" ;;
        *) NOT_READY+=("$service") ;;
        esac
        # A service that crashes and is restarted (restart: unless-stopped) looks "running"
        # most of the time: its restart count gives it away.
        restarts="$(engine inspect --format '{{.RestartCount}}' "$id" 2>/dev/null || echo 0)"
        if [[ "$restarts" =~ ^[0-9]+$ ]] && ((restarts > 0)); then
            fail_with_logs "$service" "crashed and was restarted $restarts time(s)"
        fi
    done < <(states)
    ((total == ${#SERVICES[@]} && ready == total))
}

t=$SECONDS
log "docker compose up -d (project $PROJECT, ports from $BASE)"
# up waits itself for the conditions in depends_on; when a dependency fails it stops early and
# the checks below name the container.
if ! compose up -d --no-build --pull never "${SERVICES[@]}" >"$LOG_DIR/compose-test-up.log" 2>&1; then
    log "docker compose up failed: $(tail -n 3 "$LOG_DIR/compose-test-up.log" | tr '\n' ' ')"
    all_healthy || true
    for service in "${NOT_READY[@]}"; do
        print_logs "$service"
    done
    die "docker compose up failed (read $LOG_DIR/compose-test-up.log)"
fi
deadline=$((SECONDS + HEALTH_TIMEOUT))
until all_healthy; do
    if ((SECONDS >= deadline)); then
        for service in "${NOT_READY[@]}"; do
            print_logs "$service"
        done
        die "not healthy within ${HEALTH_TIMEOUT}s: ${NOT_READY[*]}"
    fi
    sleep 1
done
log "stack healthy in $((SECONDS - t)) s"

# ---- the story -----------------------------------------------------------------------------
network="${PROJECT}_default"
if [[ "${DOCKER_HOST:-}" == unix://*podman.sock ]]; then
    gateway="$(podman network inspect "$network" --format '{{range .Subnets}}{{.Gateway}}{{end}}')"
else
    gateway="$(docker network inspect "$network" --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}')"
fi
[[ -n "$gateway" ]] || die "no gateway address for the network $network"
export COMPOSE_HOST_GATEWAY="$gateway"
export TEST_MAILPIT_API="http://127.0.0.1:$MAILPIT_PORT/api/v1"
t=$SECONDS
log "the end-to-end story against the containers (webhooks to $gateway)"
(cd "$REPO_ROOT" && cargo test --quiet -p system-tests --test compose -- --ignored --nocapture)
log "story passed in $((SECONDS - t)) s"

# ---- the Kafka UI --------------------------------------------------------------------------
"$SCRIPTS_DIR/kafka-ui.sh" check "http://127.0.0.1:$KAFKA_UI_PORT"
