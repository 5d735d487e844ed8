#!/usr/bin/env bash
# `make bench`: every benchmark against the real cluster, one report (bench/report.md and
# bench/report.json). Release builds; each benchmark is bounded in time and cleans up after
# itself (fresh databases dropped, the records it wrote to Kafka deleted).
#
# It writes to the real topics, so it refuses to run while `make dev` services are up (they
# would process the benchmark's events).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
EVENTS="${BENCH_EVENTS:-200000}"

if "$SCRIPTS_DIR/services.sh" status 2>/dev/null | grep -q ': ready\|running'; then
    die "services of make dev are running; stop them first (make stop) so they do not consume the benchmark's events"
fi
"$SCRIPTS_DIR/cluster.sh" up
"$SCRIPTS_DIR/postgres.sh" start

export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-$KAFKA_BOOTSTRAP}"
export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7}"
export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-$("$SCRIPTS_DIR/postgres.sh" url)}"

cd "$REPO_ROOT"
log "building release binaries"
cargo build --release --quiet --package loadgen --package audit-service
rm -rf bench/out
mkdir -p bench/out

"$TARGET_DIR/release/loadgen" audit-ingest --events "$EVENTS" --audit-bin "$TARGET_DIR/release/audit-service"

"$TARGET_DIR/release/loadgen" report \
    --version "rustc=$(rustc --version | cut -d' ' -f2)" \
    --version "kafka=$KAFKA_VERSION" \
    --version "apicurio=$APICURIO_VERSION" \
    --version "postgresql=$(postgres --version 2>/dev/null | awk '{print $3}' || echo unknown)" \
    --version "sqlite=$(sqlite3 --version 2>/dev/null | cut -d' ' -f1 || echo system)"
log "report written to bench/report.md"
cat bench/report.md
