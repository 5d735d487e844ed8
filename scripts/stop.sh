#!/usr/bin/env bash
# `make stop`: stop the services (gracefully), the SMTP sink, PostgreSQL, the registry and the
# brokers. Safe when nothing runs.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$SCRIPTS_DIR/services.sh" stop
"$SCRIPTS_DIR/kafka-ui.sh" stop
"$SCRIPTS_DIR/smtp-sink.sh" stop
"$SCRIPTS_DIR/postgres.sh" stop
"$SCRIPTS_DIR/cluster.sh" down
"$SCRIPTS_DIR/secured-cluster.sh" down
