#!/usr/bin/env bash
# The secured cluster of the secured end-to-end test (crates/system-tests/tests/secured.rs),
# beside the plaintext one of `make test`: the same kafka.sh with KAFKA_SECURITY=sasl_ssl, in
# its own run dir (<run dir>/secured) on its own ports (brokers 9192-9194, controllers
# 19192-19194; SECURED_KAFKA_PORT_BASE / SECURED_KAFKA_CONTROLLER_PORT_BASE move them). The
# registry is the local one (Kafka security only).
#
#   scripts/secured-cluster.sh up     start the brokers (if not running), create the topics, grant
#                                     the ACLs, then print the test's settings (NAME=value lines)
#   scripts/secured-cluster.sh down   stop the brokers
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export KAFKA_SECURITY=sasl_ssl
export TODO_RUN_DIR="${TODO_RUN_DIR:-$here/../.run}/secured"
export KAFKA_PORT_BASE="${SECURED_KAFKA_PORT_BASE:-9191}"
export KAFKA_CONTROLLER_PORT_BASE="${SECURED_KAFKA_CONTROLLER_PORT_BASE:-19191}"
source "$here/common.sh"

case "${1:-}" in
up)
    started=$SECONDS
    "$SCRIPTS_DIR/kafka.sh" start >&2
    KAFKA_BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP" todoctl topics >&2
    KAFKA_BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP" "$SCRIPTS_DIR/kafka-security.sh" acls >&2
    log "secured cluster up on $KAFKA_BOOTSTRAP in $((SECONDS - started)) s"
    echo "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP"
    echo "KAFKA_SECURITY_DIR=$KAFKA_SECURITY_DIR"
    ;;
down)
    "$SCRIPTS_DIR/kafka.sh" stop
    ;;
*)
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
