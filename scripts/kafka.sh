#!/usr/bin/env bash
# A real local Apache Kafka cluster without Docker: three KRaft nodes on 127.0.0.1, each
# broker+controller, with a static controller quorum.
#
#   scripts/kafka.sh fetch            jars from Maven Central into $CACHE_DIR/kafka-<version>/libs
#   scripts/kafka.sh start            format (once) and start nodes 1-3, wait until all 3 brokers serve
#   scripts/kafka.sh stop             SIGTERM all nodes (controlled shutdown), SIGKILL as last resort
#   scripts/kafka.sh status           which nodes run, and the brokers the cluster reports
#   scripts/kafka.sh kill-broker N    SIGKILL node N (broker-loss tests)
#   scripts/kafka.sh start-broker N   start node N again and wait until it is back in the cluster
#   scripts/kafka.sh reset            stop and wipe all Kafka data ($RUN_DIR/kafka)
#
# node N (1..3): broker  PLAINTEXT://127.0.0.1:909(N+1)   (9092, 9093, 9094)
#                controller        127.0.0.1:1909(N+1)    (19092, 19093, 19094)
#                data $RUN_DIR/kafka/node-N, log $RUN_DIR/logs/kafka-N.log
# Topics are never auto-created: the project's own tooling creates them.
# Env: KAFKA_START_TIMEOUT (s, default 120), KAFKA_HEAP_OPTS (default -Xms256m -Xmx512m),
# KAFKA_PORT_BASE / KAFKA_CONTROLLER_PORT_BASE (other ports: common.sh).
# KAFKA_SECURITY=sasl_ssl: the broker listener is SASL_SSL (SCRAM-SHA-512, the users of
# scripts/kafka-security.sh, created when the storage is formatted) with ACLs enforced
# (StandardAuthorizer, nothing allowed without an ACL, the admin a super user); the controller
# listener is TLS with client certificates (the brokers' own); data in $RUN_DIR/kafka-sasl_ssl.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NODES=(1 2 3)
if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
    KAFKA_DIR="$RUN_DIR/kafka-sasl_ssl"
else
    KAFKA_DIR="$RUN_DIR/kafka"
fi
CLUSTER_ID_FILE="$KAFKA_DIR/cluster.id"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
broker_port() { echo $((KAFKA_PORT_BASE + $1)); }
controller_port() { echo $((KAFKA_CONTROLLER_PORT_BASE + $1)); }
QUORUM_VOTERS="1@127.0.0.1:$(controller_port 1),2@127.0.0.1:$(controller_port 2),3@127.0.0.1:$(controller_port 3)"
node_dir() { echo "$KAFKA_DIR/node-$1"; }
node_conf() { echo "$KAFKA_DIR/node-$1.properties"; }
node_log() { echo "$LOG_DIR/kafka-$1.log"; }

check_node_arg() {
    [[ "${1:-}" =~ ^[123]$ ]] || die "node number must be 1, 2 or 3 (got '${1:-}')"
}

# Serialises start/stop/... of concurrent invocations.
take_lock() {
    mkdir -p "$RUN_DIR"
    exec 8>"$RUN_DIR/.kafka.lock"
    flock -w 300 8 || die "another kafka.sh holds $RUN_DIR/.kafka.lock"
}

# ---- fetch -------------------------------------------------------------------------------
cmd_fetch() {
    if [[ -f "$KAFKA_FETCHED_MARKER" ]]; then
        log "Kafka $KAFKA_VERSION already fetched ($KAFKA_LIBS)"
        return 0
    fi
    mkdir -p "$CACHE_DIR"
    exec 7>"$CACHE_DIR/.kafka-$KAFKA_VERSION.lock"
    flock -w 600 7 || die "could not lock the Kafka cache"
    if [[ -f "$KAFKA_FETCHED_MARKER" ]]; then return 0; fi
    log "fetching Apache Kafka $KAFKA_VERSION (Scala $KAFKA_SCALA_VERSION) from Maven Central"
    local tmp="$KAFKA_HOME.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp/libs"
    # all runtime jars (kafka_2.13, kafka-tools and their dependencies, log4j2 binding)
    if ! run_mvn -f "$SCRIPTS_DIR/maven/kafka/pom.xml" \
        "-Dkafka.version=$KAFKA_VERSION" "-Dscala.binary.version=$KAFKA_SCALA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime "-DoutputDirectory=$tmp/libs"; then
        rm -rf "$tmp"
        die "Maven could not resolve Kafka $KAFKA_VERSION; set KAFKA_VERSION to another 4.x (4.0.0 4.0.1 4.1.0 4.2.0 4.3.1)"
    fi
    [[ -f "$tmp/libs/kafka_$KAFKA_SCALA_VERSION-$KAFKA_VERSION.jar" ]] ||
        die "kafka_$KAFKA_SCALA_VERSION-$KAFKA_VERSION.jar missing after the fetch"
    rm -rf "$KAFKA_HOME"
    mv "$tmp" "$KAFKA_HOME"
    date -u +%FT%TZ >"$KAFKA_FETCHED_MARKER"
    log "Kafka $KAFKA_VERSION: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS"
}

# ---- cluster checks ----------------------------------------------------------------------
# Prints the ids of the brokers that serve requests (one per line).
# BrokerApiVersionsCommand takes the broker list from the cluster metadata, then sends an
# ApiVersions request to each broker: "-> (" starts a broker's answer, "-> ERROR" marks one that
# did not answer. A restarted broker processes requests only once it caught up with the metadata
# and was unfenced, so an answer means it is really back (a SIGKILLed broker stays listed as
# unfenced for broker.session.timeout.ms, but then it does not answer).
broker_ids() {
    kafka_tool org.apache.kafka.tools.BrokerApiVersionsCommand \
        --bootstrap-server "$KAFKA_BOOTSTRAP" \
        --command-config <(printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=8000\n' && kafka_admin_config) \
        2>/dev/null |
        sed -n 's/^[0-9.:]* (id: \([0-9]*\) .*-> ($/\1/p' | sort -u
}

# all_brokers_up <id...>: true when each listed id is reported by the cluster.
brokers_up() {
    local ids id
    ids="$(broker_ids)" || return 1
    for id in "$@"; do
        grep -qx "$id" <<<"$ids" || return 1
    done
}

# true when no partition is under-replicated (trivially true without topics).
fully_replicated() {
    local out
    out="$(kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
        --command-config <(kafka_admin_config) \
        --describe --under-replicated-partitions 2>/dev/null)" || return 1
    [[ -z "$out" ]]
}

# Moves each partition's leadership back to its preferred (first) replica. A node that stops
# hands its partitions to the others, and one that starts again leads none of them: after
# `stop` and `start` every partition was led by the node stopped last, which then did all the
# cluster's work (the controller rebalances on its own only after 5 minutes). Benchmarks and
# tests that begin right after a start would measure that one broker. Leadership that is
# already preferred is left alone; a failed election is only logged (the controller's own
# rebalance catches up).
elect_preferred_leaders() {
    if ! kafka_tool org.apache.kafka.tools.LeaderElectionCommand \
        --bootstrap-server "$KAFKA_BOOTSTRAP" --admin.config <(kafka_admin_config) \
        --election-type PREFERRED --all-topic-partitions >>"$LOG_DIR/kafka-admin.log" 2>&1; then
        log "preferred leader election failed (read $LOG_DIR/kafka-admin.log); leaders rebalance within 5 minutes"
    fi
}

all_nodes_running() {
    local n
    for n in "${NODES[@]}"; do
        is_running "kafka-$n" || return 1
    done
}

# ---- start -------------------------------------------------------------------------------
# The listeners of node N: PLAINTEXT, or SASL_SSL with TLS between controllers and brokers.
listener_config() {
    local n="$1"
    if [[ "$KAFKA_SECURITY" != sasl_ssl ]]; then
        cat <<EOF
listeners=PLAINTEXT://127.0.0.1:$(broker_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(broker_port "$n")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
EOF
        return 0
    fi
    local d="$KAFKA_SECURITY_DIR"
    cat <<EOF
listeners=SASL_SSL://127.0.0.1:$(broker_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=SASL_SSL://127.0.0.1:$(broker_port "$n")
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$d/admin.password")";
ssl.keystore.type=PEM
ssl.keystore.location=$d/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$d/ca.pem
# controllers accept only the brokers' certificate (CN=kafka-broker)
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:CN=kafka-broker
EOF
}

write_node_config() {
    local n="$1"
    mkdir -p "$KAFKA_DIR"
    # 0600: on the secured cluster it holds the admin's password
    (umask 077 && cat >"$(node_conf "$n")") <<EOF
# generated by scripts/kafka.sh; rewritten at every start
node.id=$n
process.roles=broker,controller
controller.quorum.voters=$QUORUM_VOTERS
$(listener_config "$n")
controller.listener.names=CONTROLLER
log.dirs=$(node_dir "$n")

auto.create.topics.enable=false
default.replication.factor=3
min.insync.replicas=2
num.partitions=3
offsets.topic.replication.factor=3
# fewer internal partitions than the default 50: faster start on a small machine
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=12
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0

num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.check.interval.ms=300000
EOF
}

cluster_id() {
    mkdir -p "$KAFKA_DIR"
    if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
        kafka_tool kafka.tools.StorageTool random-uuid >"$CLUSTER_ID_FILE.tmp"
        mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
        log "new cluster id $(cat "$CLUSTER_ID_FILE")"
    fi
    tr -d '[:space:]' <"$CLUSTER_ID_FILE"
}

# Formats node N's storage once (static voters: no --standalone / --initial-controllers).
format_node() {
    local n="$1" cid dir meta
    cid="$(cluster_id)"
    dir="$(node_dir "$n")"
    meta="$dir/meta.properties"
    if [[ -f "$meta" ]]; then
        grep -q "^cluster.id=$cid\$" "$meta" ||
            die "node $n data ($dir) belongs to another cluster than $CLUSTER_ID_FILE; run 'scripts/kafka.sh reset'"
        return 0
    fi
    mkdir -p "$dir"
    local scram=()
    if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
        mapfile -t scram < <("$SCRIPTS_DIR/kafka-security.sh" scram-args)
    fi
    kafka_tool kafka.tools.StorageTool format --cluster-id "$cid" --config "$(node_conf "$n")" \
        "${scram[@]}" >>"$(node_log "$n")" 2>&1 ||
        die "formatting node $n failed (read $(node_log "$n"))"
    log "formatted node $n"
}

# Writes the config and formats the storage of each given node that is not running;
# the (slow, JVM) formats run in parallel.
prepare_nodes() {
    local n p pids=() failed=0
    for n in "$@"; do
        is_running "kafka-$n" && continue
        for p in "$(broker_port "$n")" "$(controller_port "$n")"; do
            ensure_port_free "$p" "Kafka node $n"
        done
    done
    cluster_id >/dev/null
    if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
        "$SCRIPTS_DIR/kafka-security.sh" files
    fi
    for n in "$@"; do
        is_running "kafka-$n" && continue
        mkdir -p "$LOG_DIR"
        write_node_config "$n"
        format_node "$n" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || failed=1
    done
    ((failed == 0)) || die "preparing the Kafka nodes failed"
}

start_node() {
    local n="$1"
    if is_running "kafka-$n"; then
        log "node $n already running (pid $(daemon_pid "kafka-$n"))"
        return 0
    fi
    # shellcheck disable=SC2086 # HEAP_OPTS is a list of JVM flags
    start_daemon "kafka-$n" "$(node_log "$n")" \
        "$(java_bin)" $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        -Djava.awt.headless=true "-Dkafka.node.id=$n" \
        "-Dlog4j2.configurationFile=$SCRIPTS_DIR/config/kafka-log4j2.properties" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$(node_conf "$n")"
}

# Dies at once (naming the log to read) if a node we expect has exited.
nodes_alive_and_brokers_up() {
    local n
    for n in "$@"; do
        is_running "kafka-$n" || die "Kafka node $n exited during start (read $(node_log "$n"))"
    done
    brokers_up "$@"
}

wait_for_brokers() {
    local started=$SECONDS logs
    logs="$(for n in "$@"; do node_log "$n"; done | paste -sd' ' -)"
    WAIT_LOG="$logs" wait_until "$START_TIMEOUT" "Kafka broker(s) $* to serve on $KAFKA_BOOTSTRAP" \
        nodes_alive_and_brokers_up "$@"
    # with every node up, also wait until replicas caught up (ISR full again), then give every
    # partition back to its preferred leader
    if all_nodes_running; then
        WAIT_LOG="$LOG_DIR/kafka-{1,2,3}.log" \
            wait_until "$START_TIMEOUT" "all partitions fully replicated" fully_replicated
        elect_preferred_leaders
    fi
    log "brokers $* serving after $((SECONDS - started))s"
}

# The nodes of one run dir run in one mode: a plaintext cluster left running is not "already
# running" for a secured start (or the other way round).
MODE_FILE="$RUN_DIR/kafka.security"
check_mode() {
    local running
    running="$(cat "$MODE_FILE" 2>/dev/null || echo plaintext)"
    if [[ "$running" != "$KAFKA_SECURITY" ]] && is_running kafka-1; then
        die "the Kafka nodes of $RUN_DIR run $running, not $KAFKA_SECURITY: stop them first (make stop)"
    fi
    echo "$KAFKA_SECURITY" >"$MODE_FILE"
}

cmd_start() {
    take_lock
    check_mode
    cmd_fetch
    prepare_nodes "${NODES[@]}"
    local n
    for n in "${NODES[@]}"; do
        start_node "$n"
    done
    wait_for_brokers "${NODES[@]}"
    log "Kafka cluster up: $KAFKA_BOOTSTRAP"
}

cmd_start_broker() {
    check_node_arg "${1:-}"
    take_lock
    check_mode
    cmd_fetch
    prepare_nodes "$1"
    start_node "$1"
    wait_for_brokers "$1"
}

# ---- stop --------------------------------------------------------------------------------
cmd_stop() {
    take_lock
    local n pid
    # SIGTERM to all at once: a node stopped alone last would wait for a quorum that is gone
    for n in "${NODES[@]}"; do
        if pid="$(daemon_pid "kafka-$n")"; then
            log "stopping node $n (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for n in "${NODES[@]}"; do
        await_stop "kafka-$n" 60
    done
    log "Kafka stopped"
}

cmd_kill_broker() {
    check_node_arg "${1:-}"
    take_lock
    kill_daemon "kafka-$1"
}

cmd_reset() {
    cmd_stop
    rm -rf "$KAFKA_DIR"
    rm -f "$LOG_DIR"/kafka-*.log
    log "Kafka data wiped ($KAFKA_DIR)"
}

cmd_status() {
    local n running=0 pid
    for n in "${NODES[@]}"; do
        if pid="$(daemon_pid "kafka-$n")"; then
            echo "node $n: running (pid $pid) broker 127.0.0.1:$(broker_port "$n") controller 127.0.0.1:$(controller_port "$n")"
            running=$((running + 1))
        else
            echo "node $n: stopped"
        fi
    done
    if ((running > 0)); then
        local ids
        ids="$(broker_ids || true)"
        echo "brokers serving: $(echo "$ids" | paste -sd' ' -) (of ${#NODES[@]})"
    fi
    ((running == ${#NODES[@]}))
}

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

case "${1:-}" in
fetch) cmd_fetch ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
kill-broker) cmd_kill_broker "${2:-}" ;;
start-broker) cmd_start_broker "${2:-}" ;;
reset) cmd_reset ;;
*) usage ;;
esac
