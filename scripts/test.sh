#!/usr/bin/env bash
# `make test`: bring up what the tests need (Kafka, the registry, topics and schemas,
# PostgreSQL, the SMTP sink), then run every test of the workspace against them.
# Extra arguments go to `cargo test` (e.g. `make test ARGS="-p audit-service"`).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

started=$SECONDS
# Services of `make dev` consume the same topics as the tests' own instances and would act on
# the tests' events too (a second reminder mail, say): stop them first.
if "$SCRIPTS_DIR/services.sh" status 2>/dev/null | grep -q 'ready\|running'; then
    log "stopping the services of make dev for the test run"
    "$SCRIPTS_DIR/services.sh" stop
fi
if [[ ! -x "$CACHE_DIR/venv/bin/python" ]]; then
    "$SCRIPTS_DIR/install-deps.sh" --python
fi
"$SCRIPTS_DIR/deploy-tools.sh" # validators of the deployment files (crates/events/tests/deployment.rs)
# The cluster's setup needs only todoctl; cargo test builds the rest with the tests.
BUILD_PACKAGES=todoctl "$SCRIPTS_DIR/cluster.sh" up
# The secured cluster of crates/system-tests/tests/secured.rs (SASL_SSL, a user and ACLs per
# service; its own ports and run dir) starts once, in the background while cargo builds the
# tests; the test waits for it (kafka.sh's lock) and it stops when this script ends.
# On a partial run (ARGS) the test starts it itself if it runs.
if [[ $# -eq 0 ]]; then
    mkdir -p "$LOG_DIR"
    BINARIES_BUILT=1 "$SCRIPTS_DIR/secured-cluster.sh" up >"$LOG_DIR/secured-cluster.log" 2>&1 &
    trap '"$SCRIPTS_DIR/secured-cluster.sh" down >>"$LOG_DIR/secured-cluster.log" 2>&1 || true' EXIT
fi
"$SCRIPTS_DIR/postgres.sh" start
"$SCRIPTS_DIR/smtp-sink.sh" start
log "infrastructure ready in $((SECONDS - started)) s"

export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-$KAFKA_BOOTSTRAP}"
export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7}"
export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-$("$SCRIPTS_DIR/postgres.sh" url)}"
export TEST_PYTHON="$CACHE_DIR/venv/bin/python"

cd "$REPO_ROOT"
tests_started=$SECONDS
mkdir -p "$RUN_DIR"
touch "$TEST_TRAFFIC_MARK"
# The root manifest is a virtual one: without `-p`, cargo tests every member.
cargo test --no-fail-fast "$@"
log "tests passed in $((SECONDS - tests_started)) s (whole run $((SECONDS - started)) s)"
# The whole system in containers, a separate step after every cargo test, on a full run only
# (no ARGS): scripts/compose-test.sh (its own ports and compose project; COMPOSE_TEST=0 skips).
if [[ $# -eq 0 && "${COMPOSE_TEST:-1}" != 0 ]]; then
    "$SCRIPTS_DIR/compose-test.sh"
fi
