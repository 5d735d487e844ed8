#!/usr/bin/env bash
# The local event backbone in one command: three Kafka brokers, the schema registry, every
# topic of the catalogue (and the dead-letter topics) and every schema, then a status.
#
#   scripts/cluster.sh up       start what is not running, create topics, register schemas
#   scripts/cluster.sh start    only start the brokers and the registry (no topics, no build)
#   scripts/cluster.sh status   brokers, topics with their configs, subjects (fails on drift)
#   scripts/cluster.sh down     stop the registry and the brokers
#
# Topics and schemas come from the events crate's catalogue through `todoctl`, never from a
# list in this script. With KAFKA_SECURITY=sasl_ssl the brokers are secured (kafka.sh), todoctl
# runs as the admin user and `up` grants each service's user its ACLs (kafka-security.sh).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-$KAFKA_BOOTSTRAP}"
export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7}"

start_backbone() {
    # The brokers and the registry start in parallel: both are JVMs that take seconds.
    "$SCRIPTS_DIR/kafka.sh" start &
    local kafka_pid=$!
    "$SCRIPTS_DIR/registry.sh" start
    wait "$kafka_pid"
}

case "${1:-}" in
start)
    start_backbone
    ;;
up)
    started=$SECONDS
    start_backbone
    todoctl setup
    if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
        "$SCRIPTS_DIR/kafka-security.sh" acls
    fi
    todoctl status
    log "cluster up in $((SECONDS - started)) s"
    ;;
status)
    "$SCRIPTS_DIR/kafka.sh" status >/dev/null
    "$SCRIPTS_DIR/registry.sh" status >/dev/null
    todoctl status
    ;;
down)
    "$SCRIPTS_DIR/registry.sh" stop
    "$SCRIPTS_DIR/kafka.sh" stop
    ;;
*)
    echo "usage: $0 up|status|down" >&2
    exit 2
    ;;
esac
