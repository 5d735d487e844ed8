#!/usr/bin/env bash
# `make dev`: the whole system on this machine, in the foreground. Ctrl-C stops everything.
#
# Starts the Kafka cluster, the schema registry, topics and schemas, the SMTP sink
# (PostgreSQL too with DATABASE=postgres), then the five services, waits until every /readyz
# is green and prints where everything is. A second run starts in seconds from the caches.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export DATABASE="${DATABASE:-sqlite}"
started=$SECONDS

stop_all() {
    trap - INT TERM
    log "stopping everything"
    "$SCRIPTS_DIR/stop.sh"
    exit 0
}
trap stop_all INT TERM

"$SCRIPTS_DIR/cluster.sh" up
"$SCRIPTS_DIR/smtp-sink.sh" start
# A first start begins at the end of the topics rather than replaying what test runs left
# there; later starts resume from the groups' committed offsets, unless tests ran in between:
# then the groups move past what the tests wrote (events this environment published and had
# not yet consumed when it stopped are skipped with them; its own stop drains what it can).
positioning=()
[[ -e "$TEST_TRAFFIC_MARK" ]] && positioning=(--even-committed)
(cd "$REPO_ROOT" && cargo run --quiet --package todoctl -- start-groups-at-end "${positioning[@]}")
rm -f "$TEST_TRAFFIC_MARK"
if [[ "$DATABASE" == postgres ]]; then
    "$SCRIPTS_DIR/postgres.sh" start
fi
"$SCRIPTS_DIR/services.sh" start

cat <<EOT

  The task platform is running ($DATABASE), ready in $((SECONDS - started)) s.

  Web page            http://127.0.0.1:8000/
  API docs            http://127.0.0.1:8000/docs        (OpenAPI: /openapi.json)
  WebSocket stats     http://127.0.0.1:8001/ws/stats
  Mail (SMTP sink)    http://127.0.0.1:8025/            (SMTP 127.0.0.1:1025)
  Schema registry     http://127.0.0.1:8081/apis/ccompat/v7/subjects
  Kafka               127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094
  Metrics             http://127.0.0.1:{8000,8001,8002,8003,8004}/metrics
  Logs                $LOG_DIR/

  Ctrl-C (or \`make stop\` from another terminal) stops everything.

EOT
# Wait for Ctrl-C; notice if a service dies.
while true; do
    sleep 2
    if ! "$SCRIPTS_DIR/services.sh" status >/dev/null 2>&1; then
        log "a service stopped or is not ready: $("$SCRIPTS_DIR/services.sh" status | grep -v ': ready' | tr '\n' ' ')"
        sleep 10
    fi
done
