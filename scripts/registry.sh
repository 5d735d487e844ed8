#!/usr/bin/env bash
# A real local Confluent-compatible schema registry without Docker: Apicurio Registry
# (the Quarkus "all" distribution from Maven Central), on http://127.0.0.1:8081.
#
#   scripts/registry.sh fetch    tar.gz from Maven Central, unpacked into $CACHE_DIR/apicurio-<version>/
#   scripts/registry.sh start    start it, wait until the ccompat API answers, set compatibility BACKWARD
#   scripts/registry.sh stop     SIGTERM, bounded wait, SIGKILL as last resort
#   scripts/registry.sh status   running or not, and the global compatibility
#   scripts/registry.sh reset    stop and wipe the stored schemas ($RUN_DIR/registry)
#
# Clients use the Confluent API under http://127.0.0.1:8081/apis/ccompat/v7
# (SCHEMA_REGISTRY_URL=http://127.0.0.1:8081/apis/ccompat/v7).
# Log: $RUN_DIR/logs/registry.log. Env: REGISTRY_PORT (8081), REGISTRY_START_TIMEOUT (120 s),
# REGISTRY_HEAP_OPTS, APICURIO_JAVA_HOME (a Java for Apicurio; 3.3.x needs Java 21+, e.g.
# APICURIO_VERSION=3.3.3 APICURIO_JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64),
# REGISTRY_ACCESS_LOG=true (log every HTTP request).
#
# The Apicurio settings that matter (passed as -D system properties, see registry_opts):
#  - apicurio.storage.kind=sql + apicurio.storage.sql.kind=h2 + apicurio.datasource.url=
#    jdbc:h2:file:$RUN_DIR/registry/registry;WRITE_DELAY=0
#      The default is an H2 *in-memory* database: every restart would forget all schemas and
#      hand out ids again from 1, so cached ids in running services and ids inside messages
#      already on the topics would point to nothing or to another schema. A file database
#      survives restarts (tests and chaos scenarios restart the registry); WRITE_DELAY=0
#      writes each commit to the file at once, so even a SIGKILL loses no registration.
#  - apicurio.ccompat.legacy-id-mode.enabled=false (the default, set explicitly): the ids the
#      Confluent API hands out are Apicurio *content* ids, as in Confluent: the same schema
#      under two subjects (or registered twice) gets the same id; a new schema gets a new id.
#      (true would hand out global ids: one per subject version.)
#  - apicurio.ccompat.use-canonical-hash=true: a schema that differs only in formatting
#      (whitespace, key order) from a registered one is recognised as the same schema, same id,
#      no new version, as Confluent does; with false every formatting difference made a new
#      version/id.
#  - apicurio.rules.global.compatibility=BACKWARD: the default global compatibility rule;
#      start also stores BACKWARD through the ccompat API (PUT /config) and checks it reads back.
#      An incompatible new version is then refused with HTTP 409.
#  - apicurio.rest.deletion.{artifact,artifact-version,group}.enabled=true: lets tests delete
#      subjects (DELETE /subjects/x, then ?permanent=true), as on Confluent.
#  - quarkus.http.host/port: 127.0.0.1:8081; the datasource pool is shrunk (2..20 connections)
#      and the heap kept small for a 2-core machine.
#  - quarkus.datasource.h2.jdbc.acquisition-timeout=60S (default 5 s): on a loaded machine
#      (a chaos scenario restarting the registry under load while cargo built beside it) opening
#      the H2 file took longer than 5 s and Quarkus gave up starting ("Acquisition timeout
#      while waiting for new connection").
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REGISTRY_PORT="${REGISTRY_PORT:-8081}"
REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT"
CCOMPAT="$REGISTRY_URL/apis/ccompat/v7"
START_TIMEOUT="${REGISTRY_START_TIMEOUT:-120}"
HEAP_OPTS="${REGISTRY_HEAP_OPTS:--Xms128m -Xmx384m}"
APICURIO_HOME="$CACHE_DIR/apicurio-$APICURIO_VERSION"
APICURIO_MARKER="$APICURIO_HOME/.fetched"
REG_DATA="$RUN_DIR/registry"
REG_LOG="$LOG_DIR/registry.log"
CT='Content-Type: application/vnd.schemaregistry.v1+json'

take_lock() {
    mkdir -p "$RUN_DIR"
    exec 8>"$RUN_DIR/.registry.lock"
    flock -w 300 8 || die "another registry.sh holds $RUN_DIR/.registry.lock"
}

cmd_fetch() {
    if [[ -f "$APICURIO_MARKER" ]]; then
        log "Apicurio Registry $APICURIO_VERSION already fetched ($APICURIO_HOME)"
        return 0
    fi
    mkdir -p "$CACHE_DIR"
    exec 7>"$CACHE_DIR/.apicurio-$APICURIO_VERSION.lock"
    flock -w 600 7 || die "could not lock the Apicurio cache"
    if [[ -f "$APICURIO_MARKER" ]]; then return 0; fi
    log "fetching Apicurio Registry $APICURIO_VERSION from Maven Central"
    local tmp="$APICURIO_HOME.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp/dl" "$tmp/app"
    # dependency:copy needs no project; run it where no pom.xml is in the way
    (cd "$tmp" && run_mvn dependency:copy \
        "-Dartifact=io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
        "-DoutputDirectory=$tmp/dl") ||
        die "Maven could not fetch io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all"
    tar -xzf "$tmp/dl/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$tmp/app"
    rm -rf "$tmp/dl"
    rm -rf "$APICURIO_HOME"
    mv "$tmp/app" "$APICURIO_HOME"
    rmdir "$tmp"
    launcher_jar >/dev/null || die "no quarkus-run.jar or *-runner.jar in $APICURIO_HOME"
    date -u +%FT%TZ >"$APICURIO_MARKER"
    log "Apicurio Registry $APICURIO_VERSION unpacked into $APICURIO_HOME"
}

# 3.1+ ship a Quarkus fast-jar (quarkus-run.jar), 3.0.x an uber-ish runner jar.
launcher_jar() {
    local j
    for j in "$APICURIO_HOME/quarkus-run.jar" "$APICURIO_HOME"/apicurio-registry-app-*-runner.jar; do
        [[ -f "$j" ]] && {
            printf '%s\n' "$j"
            return 0
        }
    done
    return 1
}

registry_java() {
    if [[ -n "${APICURIO_JAVA_HOME:-}" ]]; then
        [[ -x "$APICURIO_JAVA_HOME/bin/java" ]] || die "APICURIO_JAVA_HOME=$APICURIO_JAVA_HOME has no bin/java"
        printf '%s\n' "$APICURIO_JAVA_HOME/bin/java"
    else
        java_bin
    fi
}

registry_opts() {
    local access_log=false
    [[ "${REGISTRY_ACCESS_LOG:-false}" == true ]] && access_log=true
    local opts=(
        -Dquarkus.http.host=127.0.0.1
        "-Dquarkus.http.port=$REGISTRY_PORT"
        "-Dquarkus.http.access-log.enabled=$access_log"
        "-Dquarkus.log.console.format=%d{yyyy-MM-dd HH:mm:ss,SSS} %p [%c{3.}] (%t) %m%n"
        -Dapicurio.storage.kind=sql
        -Dapicurio.storage.sql.kind=h2
        "-Dapicurio.datasource.url=jdbc:h2:file:$REG_DATA/registry;WRITE_DELAY=0"
        -Dapicurio.datasource.username=sa
        -Dapicurio.datasource.password=sa
        -Dapicurio.datasource.jdbc.initial-size=2
        -Dapicurio.datasource.jdbc.min-size=2
        -Dapicurio.datasource.jdbc.max-size=20
        -Dquarkus.datasource.h2.jdbc.acquisition-timeout=60S
        -Dapicurio.sql.init=true
        -Dapicurio.ccompat.legacy-id-mode.enabled=false
        -Dapicurio.ccompat.use-canonical-hash=true
        -Dapicurio.rules.global.compatibility=BACKWARD
        -Dapicurio.rest.deletion.artifact.enabled=true
        -Dapicurio.rest.deletion.artifact-version.enabled=true
        -Dapicurio.rest.deletion.group.enabled=true
        "-Dapicurio.storage.snapshot.location=$REG_DATA/tmp"
        "-Dapicurio.import.work-dir=$REG_DATA/tmp"
    )
    # 3.1+ (fast-jar) have a separate management interface (health, metrics), default 0.0.0.0:9000
    if [[ -f "$APICURIO_HOME/quarkus-run.jar" ]]; then
        opts+=(-Dquarkus.management.host=127.0.0.1 "-Dquarkus.management.port=${REGISTRY_MANAGEMENT_PORT:-9081}")
    fi
    printf '%s\n' "${opts[@]}"
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }

registry_answers() {
    [[ "$(http_code "$CCOMPAT/subjects")" == 200 ]]
}

# Dies at once (naming the log) if the registry process is gone; true once the API answers.
alive_and_answering() {
    is_running registry || die "the registry exited during start (read $REG_LOG)"
    registry_answers
}

global_compatibility() {
    curl -sf --max-time 5 "$CCOMPAT/config" | jq -r '.compatibilityLevel // .compatibility // empty'
}

ensure_backward() {
    local level
    level="$(global_compatibility || true)"
    if [[ "$level" != BACKWARD ]]; then
        curl -sf --max-time 10 -X PUT -H "$CT" -d '{"compatibility":"BACKWARD"}' "$CCOMPAT/config" >/dev/null ||
            die "could not set the global compatibility to BACKWARD (read $REG_LOG)"
    fi
    level="$(global_compatibility || true)"
    [[ "$level" == BACKWARD ]] || die "global compatibility reads back '$level', not BACKWARD (read $REG_LOG)"
}

cmd_start() {
    take_lock
    need_cmd curl
    need_cmd jq
    cmd_fetch
    if is_running registry; then
        log "registry already running (pid $(daemon_pid registry))"
    else
        ensure_port_free "$REGISTRY_PORT" "the schema registry"
        mkdir -p "$REG_DATA/tmp" "$LOG_DIR"
        local opts jar
        mapfile -t opts < <(registry_opts)
        jar="$(launcher_jar)"
        # shellcheck disable=SC2086 # HEAP_OPTS is a list of JVM flags
        start_daemon registry "$REG_LOG" \
            "$(registry_java)" $HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
            "-Djava.io.tmpdir=$REG_DATA/tmp" "${opts[@]}" -jar "$jar"
    fi
    local started=$SECONDS
    WAIT_LOG="$REG_LOG" wait_until "$START_TIMEOUT" "the schema registry to answer on $CCOMPAT/subjects" \
        alive_and_answering
    ensure_backward
    log "registry ready after $((SECONDS - started))s: $CCOMPAT (Apicurio $APICURIO_VERSION, compatibility BACKWARD)"
}

cmd_stop() {
    take_lock
    stop_daemon registry 60
    log "registry stopped"
}

cmd_reset() {
    cmd_stop
    rm -rf "$REG_DATA"
    log "registry data wiped ($REG_DATA)"
}

cmd_status() {
    local pid
    if pid="$(daemon_pid registry)"; then
        if registry_answers; then
            echo "registry: running (pid $pid) $CCOMPAT, Apicurio $APICURIO_VERSION, global compatibility $(global_compatibility || echo '?')"
            return 0
        fi
        echo "registry: process running (pid $pid) but $CCOMPAT/subjects does not answer yet"
        return 1
    fi
    echo "registry: stopped"
    return 1
}

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

case "${1:-}" in
fetch) cmd_fetch ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
reset) cmd_reset ;;
*) usage ;;
esac
