#!/usr/bin/env bash
# `make dev`: the whole system on this machine, in the foreground. Ctrl-C stops everything.
#
# Starts the Kafka cluster, the schema registry, topics and schemas, the SMTP sink
# (PostgreSQL too with DATABASE=postgres), then the five services (SCALE=N: N instances of
# each behind haproxy, scripts/services.sh), waits until every /readyz is green and prints
# where everything is. A second run starts in seconds from the caches.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export DATABASE="${DATABASE:-sqlite}"
started=$SECONDS
# One line per step with the time since the start, so a first run (minutes of compiling) shows
# where it is.
step() { log "[$((SECONDS - started)) s] $*"; }

stop_all() {
    trap - INT TERM
    log "stopping everything"
    "$SCRIPTS_DIR/stop.sh"
    exit 0
}
trap stop_all INT TERM

# The infrastructure starts in the background while cargo compiles: JVM starts, the first
# downloads (Kafka, the registry) and the first Mailpit build overlap the Rust build instead
# of adding to it.
mkdir -p "$LOG_DIR"
INFRA_LOG="$LOG_DIR/dev-infrastructure.log"
step "starting Kafka (3 brokers), the schema registry and the SMTP sink in the background (log: $INFRA_LOG)"
{
    "$SCRIPTS_DIR/cluster.sh" start
    "$SCRIPTS_DIR/smtp-sink.sh" start
    if [[ "$DATABASE" == postgres ]]; then
        "$SCRIPTS_DIR/postgres.sh" start
    fi
} >"$INFRA_LOG" 2>&1 &
infra_pid=$!

step "building the services and todoctl"
build_binaries
step "waiting for the infrastructure"
if ! wait "$infra_pid"; then
    tail -n 20 "$INFRA_LOG" >&2
    die "the infrastructure did not start (last lines of $INFRA_LOG above)"
fi
step "infrastructure up; creating topics and registering schemas"
"$SCRIPTS_DIR/cluster.sh" up
if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
    # kaskade is not given the admin's SCRAM password: the UI would hand it to any local browser.
    log "Kafka UI not started on the secured cluster (KAFKA_SECURITY=sasl_ssl)"
else
    "$SCRIPTS_DIR/kafka-ui.sh" start
fi
# A first start begins at the end of the topics rather than replaying what test runs left
# there; later starts resume from the groups' committed offsets, unless tests ran in between:
# then the groups move past what the tests wrote (events this environment published and had
# not yet consumed when it stopped are skipped with them; its own stop drains what it can).
positioning=()
[[ -e "$TEST_TRAFFIC_MARK" ]] && positioning=(--even-committed)
todoctl start-groups-at-end "${positioning[@]}"
rm -f "$TEST_TRAFFIC_MARK"
export SCALE="${SCALE:-1}"
if ((SCALE > 1)); then
    step "starting $SCALE instances of each of the five services behind haproxy"
else
    step "starting the five services"
fi
"$SCRIPTS_DIR/services.sh" start
instances=""
if ((SCALE > 1)); then
    instances="
  Instances           $SCALE of each service: instance i on the port below + 100*i
                      (task-api :8100 :8200, ws-gateway :8101 :8201, ... :8104 :8204), haproxy
                      round-robin on the ports below; logs <service>-<i>.log"
fi

cat <<EOT

  The task platform is running ($DATABASE), ready in $((SECONDS - started)) s.$instances

  Web page            http://127.0.0.1:8000/
  API docs            http://127.0.0.1:8000/docs        (OpenAPI: /openapi.json)
  WebSocket stats     http://127.0.0.1:8001/ws/stats
  Mail (SMTP sink)    http://127.0.0.1:8025/            (SMTP 127.0.0.1:1025)
  Schema registry     http://127.0.0.1:8081/apis/ccompat/v7/subjects
  Kafka               $KAFKA_BOOTSTRAP ($KAFKA_SECURITY)
  Kafka UI            $("$SCRIPTS_DIR/kafka-ui.sh" url)/             (topics, consumer groups and lag; README "Kafka UI")
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
