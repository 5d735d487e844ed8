#!/usr/bin/env bash
# `make bench`: every benchmark against the real cluster, one report (bench/report.md and
# bench/report.json). Release builds; each benchmark is bounded in time (an outer `timeout` on
# top of its own bounds) and cleans up after itself (fresh databases dropped, services stopped,
# the records it wrote to Kafka and the mails it sent to Mailpit deleted). A failed benchmark
# does not stop the others; the script then exits 1 after writing the report of the rest.
#
# Sizes (defaults are the full run; small values make a quick check):
#   BENCH_WS_CREATES (600) BENCH_WS_RATE (20)            loadgen ws-latency
#   BENCH_SECONDS (10) BENCH_CONCURRENCY (16)            loadgen create-tasks (task-api alone, then
#                                                        all five services beside the baseline's)
#   BENCH_WIDE_CONCURRENCY (32; 0 to skip)               loadgen create-tasks of all five services
#                  once more with this many clients, as in issue 18's wrk measurement (32
#                  connections): at 16 a closed loop of clients leaves the machine part idle
#                  (1.75 of 2 cores busy), so throughput is bound by round trips, not capacity
#   BENCH_BASELINE (bfcef9f: main when issue 18 was filed; "none" to skip) the commit whose release
#                  binaries create-tasks measures beside this one's, built once into
#                  $CACHE_DIR/baseline-<commit> from `git archive` of this clone
#   BENCH_REMINDERS (10000) BENCH_SPREAD_MS (60000)      loadgen reminders (lateness phase)
#   BENCH_BURST (10000) BENCH_LEAD_MS (45000)            loadgen reminders (throughput phase)
#   BENCH_CONNECTIONS (10000)                            loadgen ws-connections
#   BENCH_EVENTS (200000)                                loadgen audit-ingest
#
# It writes to the real topics, so it refuses to run while `make dev` services are up (they
# would process the benchmark's events).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
WS_CREATES="${BENCH_WS_CREATES:-600}"
WS_RATE="${BENCH_WS_RATE:-20}"
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
CONCURRENCY="${BENCH_CONCURRENCY:-16}"
WIDE_CONCURRENCY="${BENCH_WIDE_CONCURRENCY:-32}"
REMINDERS="${BENCH_REMINDERS:-10000}"
SPREAD_MS="${BENCH_SPREAD_MS:-60000}"
BURST="${BENCH_BURST:-10000}"
LEAD_MS="${BENCH_LEAD_MS:-45000}"
CONNECTIONS="${BENCH_CONNECTIONS:-10000}"
EVENTS="${BENCH_EVENTS:-200000}"
BASELINE="${BENCH_BASELINE:-bfcef9f}"

if "$SCRIPTS_DIR/services.sh" status 2>/dev/null | grep -q ': ready\|running'; then
    die "services of make dev are running; stop them first (make stop) so they do not consume the benchmark's events"
fi
# What already answers on the contract's ports is used as it is, whoever started it (another
# clone's `make test`, a CI run): starting ours would fail on the taken ports.
if port_open 127.0.0.1 9092 && port_open 127.0.0.1 8081; then
    log "Kafka and the registry already answer on 9092 and 8081: using them"
    (cd "$REPO_ROOT" && cargo run --quiet --package todoctl -- setup)
else
    "$SCRIPTS_DIR/cluster.sh" up
fi
if port_open 127.0.0.1 "${PGPORT:-5432}"; then
    log "PostgreSQL already answers on ${PGPORT:-5432}: using it"
else
    "$SCRIPTS_DIR/postgres.sh" start
fi
if port_open 127.0.0.1 "${SMTP_SINK_SMTP_PORT:-1025}" && port_open 127.0.0.1 "${SMTP_SINK_HTTP_PORT:-8025}"; then
    log "Mailpit already answers on ${SMTP_SINK_SMTP_PORT:-1025}/${SMTP_SINK_HTTP_PORT:-8025}: using it"
else
    "$SCRIPTS_DIR/smtp-sink.sh" start
fi

export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-$KAFKA_BOOTSTRAP}"
export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7}"
export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-$("$SCRIPTS_DIR/postgres.sh" url)}"
export TEST_SMTP_URL="${TEST_SMTP_URL:-smtp://127.0.0.1:${SMTP_SINK_SMTP_PORT:-1025}}"
export TEST_MAILPIT_API="${TEST_MAILPIT_API:-http://127.0.0.1:${SMTP_SINK_HTTP_PORT:-8025}/api/v1}"
export RUST_LOG="${RUST_LOG:-warn}"
# ws-connections holds 10,000 sockets in loadgen (and as many in the gateway process).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cd "$REPO_ROOT"
log "building release binaries"
# create-tasks runs the whole system from these binaries (--whole-system).
cargo build --release --quiet --package loadgen --package task-api --package audit-service \
    --package ws-gateway --package notification-service --package recurring-task-service

# The baseline's five services, built once per commit outside the clone (a second run reuses
# them). Its own target dir: its crates share names and paths with this commit's.
baseline_args=()
if [[ "$BASELINE" != none ]] && ! git rev-parse --quiet --verify "$BASELINE^{commit}" >/dev/null; then
    log "BENCH_BASELINE=$BASELINE is not a commit of this clone (a shallow clone?): create-tasks runs without a baseline"
    BASELINE=none
fi
if [[ "$BASELINE" != none ]]; then
    baseline_sha="$(git rev-parse --short=7 "$BASELINE^{commit}")"
    baseline_dir="$CACHE_DIR/baseline-$baseline_sha"
    if [[ ! -f "$baseline_dir/built" ]]; then
        log "building the baseline $baseline_sha's services (once, into $baseline_dir)"
        rm -rf "$baseline_dir"
        mkdir -p "$baseline_dir/src"
        git archive "$baseline_sha" | tar -x -C "$baseline_dir/src"
        (cd "$baseline_dir/src" && CARGO_TARGET_DIR="$baseline_dir/target" cargo build --release --quiet \
            --package task-api --package audit-service --package ws-gateway \
            --package notification-service --package recurring-task-service)
        touch "$baseline_dir/built"
    fi
    baseline_args=(--baseline "$baseline_dir/target/release" --baseline-name "main at $baseline_sha"
        --baseline-schemas "$baseline_dir/src/schemas")
fi

rm -rf bench/out
mkdir -p bench/out
LOADGEN="$TARGET_DIR/release/loadgen"

failed=()
# bench <name> <bound in seconds> <loadgen arguments...>
bench() {
    local name="$1" bound="$2"
    shift 2
    log "loadgen $name (bounded to ${bound}s)"
    if ! timeout --kill-after=30 "$bound" "$LOADGEN" "$name" "$@"; then
        log "loadgen $name FAILED (its figures are missing from the report)"
        failed+=("$name")
    fi
}

# ws-latency first: it measures Kafka's end-to-end latency, the floor the others compare with.
bench ws-latency $((WS_CREATES / WS_RATE + 300)) --creates "$WS_CREATES" --rate "$WS_RATE"
bench create-tasks $((6 * SECONDS_PER_RUN + 300)) --seconds "$SECONDS_PER_RUN" --concurrency "$CONCURRENCY"
bench create-tasks $((12 * SECONDS_PER_RUN + 900)) --seconds "$SECONDS_PER_RUN" --concurrency "$CONCURRENCY" \
    --whole-system "$TARGET_DIR/release" "${baseline_args[@]}"
if ((WIDE_CONCURRENCY > 0)); then
    bench create-tasks $((12 * SECONDS_PER_RUN + 900)) --seconds "$SECONDS_PER_RUN" \
        --concurrency "$WIDE_CONCURRENCY" --whole-system "$TARGET_DIR/release" "${baseline_args[@]}"
fi
bench reminders $(((2 * LEAD_MS + SPREAD_MS) / 1000 + 900)) --reminders "$REMINDERS" \
    --spread-ms "$SPREAD_MS" --burst "$BURST" --lead-ms "$LEAD_MS" --concurrency "$CONCURRENCY"
bench ws-connections 600 --connections "$CONNECTIONS" --gateway-bin "$TARGET_DIR/release/ws-gateway"
bench audit-ingest $((EVENTS / 250 + 900)) --events "$EVENTS" --audit-bin "$TARGET_DIR/release/audit-service"

"$LOADGEN" report \
    --version "rustc=$(rustc --version | cut -d' ' -f2)" \
    --version "kafka=$KAFKA_VERSION" \
    --version "apicurio=$APICURIO_VERSION" \
    --version "mailpit=$MAILPIT_VERSION" \
    --version "postgresql=$(postgres --version 2>/dev/null | awk '{print $3}' || echo unknown)" \
    --version "sqlite=$(sqlite3 --version 2>/dev/null | cut -d' ' -f1 || echo system)"
log "report written to bench/report.md"
cat bench/report.md
if ((${#failed[@]})); then
    die "failed: ${failed[*]}"
fi
