# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables here are used by the scripts that source this file
# Shared settings and helpers for the local-infrastructure scripts.
# Sourced (never executed) by kafka.sh, registry.sh, postgres.sh, smtp-sink.sh, ...
#
#   REPO_ROOT  the repository (derived from this file's location)
#   CACHE_DIR  downloaded jars/tarballs/binaries; outside the repo so every clone reuses it
#              (override with TODO_CACHE_DIR)
#   RUN_DIR    data dirs, pid files, logs (override with TODO_RUN_DIR; .run is git-ignored)

set -euo pipefail

# ---- versions (one place) ---------------------------------------------------------------
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_SCALA_VERSION="2.13"
# Newest Apicurio Registry 3.x that runs on Java 17: 3.3.2 and 3.3.3 are built for Java 21
# (class files 65); to use them set APICURIO_JAVA_HOME to a Java 21+ (see registry.sh).
APICURIO_VERSION="${APICURIO_VERSION:-3.0.9}"
MAILPIT_VERSION="${MAILPIT_VERSION:-v1.33.1}"

# ---- locations ---------------------------------------------------------------------------
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS_DIR="$REPO_ROOT/scripts"
CACHE_DIR="${TODO_CACHE_DIR:-$HOME/.cache/todo-platform}"
RUN_DIR="${TODO_RUN_DIR:-$REPO_ROOT/.run}"
# Written by test runs, which publish to the shared topics: the next `make dev` starts its
# consumer groups after what they wrote instead of acting on it (scripts/dev.sh).
TEST_TRAFFIC_MARK="$RUN_DIR/topics-hold-test-traffic"
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"

SCRIPT_NAME="$(basename "${BASH_SOURCE[1]:-${0}}" .sh)"

# ---- messages ----------------------------------------------------------------------------
# log/die write to a copy of the script's stderr, so they are seen even from inside a check
# whose output wait_until discards.
exec {LOG_FD}>&2
log() { printf '[%s] %s\n' "$SCRIPT_NAME" "$*" >&"$LOG_FD"; }
die() {
    printf '[%s] ERROR: %s\n' "$SCRIPT_NAME" "$*" >&"$LOG_FD"
    exit 1
}

# ---- waiting -----------------------------------------------------------------------------
# wait_until <timeout-seconds> <description> <command...>
# Polls <command> every ~0.5 s until it exits 0 (its output discarded); dies naming
# <description> when the bound passes. Set WAIT_LOG to a log file to have it named in the
# failure message. A check may itself `die` to give up early (e.g. the daemon exited).
wait_until() {
    local timeout="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + timeout))
    while true; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            if [[ -n "${WAIT_LOG:-}" ]]; then
                die "timed out after ${timeout}s waiting for: $what (read $WAIT_LOG)"
            fi
            die "timed out after ${timeout}s waiting for: $what"
        fi
        sleep 0.5
    done
}

# ---- daemons -----------------------------------------------------------------------------
pid_file() { printf '%s/%s.pid\n' "$PID_DIR" "$1"; }

# Prints the pid of <name> if its pid file names a live process.
daemon_pid() {
    local f pid
    f="$(pid_file "$1")"
    [[ -f "$f" ]] || return 1
    pid="$(cat "$f" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # a zombie or a recycled pid is not our daemon
    local state
    state="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
    [[ -n "$state" && "$state" != Z* ]] || return 1
    printf '%s\n' "$pid"
}

is_running() { daemon_pid "$1" >/dev/null; }

# start_daemon <name> <logfile> <command...>
# Starts <command> in its own session, detached, stdout+stderr appended to <logfile>,
# and records its pid. Does nothing when <name> already runs.
start_daemon() {
    local name="$1" logfile="$2"
    shift 2
    mkdir -p "$PID_DIR" "$(dirname "$logfile")"
    if is_running "$name"; then
        log "$name already running (pid $(daemon_pid "$name"))"
        return 0
    fi
    local pid
    # setsid: own process group, so a Ctrl-C in the calling terminal does not reach it.
    # fds 7-9 are the scripts' flock locks and LOG_FD the caller's stderr: the daemon must not
    # inherit (and hold) them, or a lock stays taken / a caller's pipe never closes.
    setsid "$@" </dev/null >>"$logfile" 2>&1 7>&- 8>&- 9>&- {LOG_FD}>&- &
    pid=$!
    printf '%s\n' "$pid" >"$(pid_file "$name")"
    log "started $name (pid $pid, log $logfile)"
}

# stop_daemon <name> [timeout-seconds=60]
# SIGTERM, bounded wait, then SIGKILL. Removes the pid file.
stop_daemon() {
    local name="$1" timeout="${2:-60}" pid
    if pid="$(daemon_pid "$name")"; then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
    fi
    await_stop "$name" "$timeout"
}

# await_stop <name> [timeout-seconds=60]
# Waits (bounded) for a daemon already told to stop, SIGKILLs it when the bound passes, and
# removes its pid file.
await_stop() {
    local name="$1" timeout="${2:-60}" pid
    if ! pid="$(daemon_pid "$name")"; then
        rm -f "$(pid_file "$name")"
        return 0
    fi
    local deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "$name did not stop within ${timeout}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.5
    done
    # after SIGKILL: wait (bounded) until the process is really gone
    local _
    for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    rm -f "$(pid_file "$name")"
}

# kill_daemon <name>: SIGKILL at once (crash simulation).
kill_daemon() {
    local name="$1" pid
    if ! pid="$(daemon_pid "$name")"; then
        rm -f "$(pid_file "$name")"
        return 0
    fi
    log "killing $name (pid $pid) with SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    local _
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    rm -f "$(pid_file "$name")"
}

# ---- Kafka (shared by kafka.sh and kafka-tool.sh) ------------------------------------------
KAFKA_HOME="$CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_FETCHED_MARKER="$KAFKA_HOME/.fetched"
# KAFKA_SECURITY: plaintext (the default) or sasl_ssl (`make dev KAFKA_SECURITY=sasl_ssl`: a
# SASL_SSL listener, SCRAM users per service, ACLs; scripts/kafka-security.sh).
KAFKA_SECURITY="${KAFKA_SECURITY:-plaintext}"
case "$KAFKA_SECURITY" in
plaintext | sasl_ssl) ;;
*) die "KAFKA_SECURITY must be plaintext or sasl_ssl, not '$KAFKA_SECURITY'" ;;
esac
# Where the secured cluster's CA, certificates and passwords are kept (made once).
KAFKA_SECURITY_DIR="${KAFKA_SECURITY_DIR:-$CACHE_DIR/kafka-security}"
# Node N (1..3) listens on KAFKA_PORT_BASE+N (brokers) and KAFKA_CONTROLLER_PORT_BASE+N
# (controllers): 9092-9094 and 19092-19094 by default; a second cluster beside the first (the
# secured test's) moves both.
KAFKA_PORT_BASE="${KAFKA_PORT_BASE:-9091}"
KAFKA_CONTROLLER_PORT_BASE="${KAFKA_CONTROLLER_PORT_BASE:-19091}"
KAFKA_BOOTSTRAP="127.0.0.1:$((KAFKA_PORT_BASE + 1)),127.0.0.1:$((KAFKA_PORT_BASE + 2)),127.0.0.1:$((KAFKA_PORT_BASE + 3))"

# kafka_admin_config: client properties for Kafka's Java tools (empty on the plaintext cluster).
kafka_admin_config() {
    if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
        cat "$KAFKA_SECURITY_DIR/admin.properties"
    fi
}

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        printf '%s\n' "$JAVA_HOME/bin/java"
    else
        need_cmd java
        command -v java
    fi
}

# kafka_tool <main-class> <args...>: runs a Kafka CLI tool from the cached jars
# (warnings on stderr only; C1-only JIT: these runs are short).
kafka_tool() {
    local cls="$1"
    shift
    [[ -f "$KAFKA_FETCHED_MARKER" ]] || die "Kafka $KAFKA_VERSION is not fetched (run scripts/kafka.sh fetch)"
    "$(java_bin)" -Xms32m -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto \
        -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=$SCRIPTS_DIR/config/kafka-tools-log4j2.properties" \
        -cp "$KAFKA_LIBS/*" "$cls" "$@"
}

# ---- misc --------------------------------------------------------------------------------
need_cmd() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed (run scripts/install-deps.sh)"
}

# port_open <host> <port>: true when something accepts TCP connections there.
port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# ensure_port_free <port> <what-should-use-it> [timeout=10]
# Something may still hold the port for a moment (a process just killed, sockets closing):
# waits (bounded) for it to be released, then dies naming the port and how to find its owner.
ensure_port_free() {
    local port="$1" what="$2" timeout="${3:-10}"
    local deadline=$((SECONDS + timeout))
    while port_open 127.0.0.1 "$port"; do
        if ((SECONDS >= deadline)); then
            die "port $port (for $what) is taken by another process (see: ss -ltnp 'sport = :$port')"
        fi
        sleep 0.5
    done
}

# Runs Maven quietly in batch mode (its own cache stays in ~/.m2); output to stderr, without
# the colour escapes Debian's Maven prints even when told not to.
run_mvn() {
    need_cmd mvn
    mvn -B -q -ntp -Dstyle.color=never "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2
}

# ---- the binaries ------------------------------------------------------------------------
# One target dir outside the clone (the Makefile's default too), so every clone shares it.
TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE_DIR/target}"
export CARGO_TARGET_DIR="$TARGET_DIR"
# What `make dev` runs. They are built by ONE cargo invocation, always with this same list:
# cargo unifies dependency features per invocation, so building todoctl alone first and the
# services later compiled tokio, reqwest and everything above them twice, with other features.
# `make test` sets BUILD_PACKAGES=todoctl: its own `cargo test` build is the big one there.
read -r -a BUILD_PACKAGES <<<"${BUILD_PACKAGES:-todoctl task-api ws-gateway notification-service recurring-task-service audit-service}"

# build_binaries: builds BUILD_PACKAGES once per run (BINARIES_BUILT is passed to child
# scripts), showing cargo's progress: a line per compiled crate, the elapsed time at the end.
build_binaries() {
    [[ -n "${BINARIES_BUILT:-}" ]] && return 0
    need_cmd cargo
    local t0=$SECONDS args=() p
    for p in "${BUILD_PACKAGES[@]}"; do args+=(--package "$p"); done
    log "cargo build ${BUILD_PACKAGES[*]} (a first build takes minutes on 2 cores; cargo names each crate)"
    (cd "$REPO_ROOT" && cargo build "${args[@]}") || die "cargo build failed (output above)"
    log "built in $((SECONDS - t0)) s: $TARGET_DIR/debug/{$(IFS=,; echo "${BUILD_PACKAGES[*]}")}"
    export BINARIES_BUILT=1
}

# todoctl <args...>: the operator tool, from the shared build (never a `cargo run` of its own);
# on the secured cluster as its admin user.
todoctl() {
    build_binaries
    local security=()
    if [[ "$KAFKA_SECURITY" == sasl_ssl ]]; then
        mapfile -t security < <("$SCRIPTS_DIR/kafka-security.sh" env admin)
    fi
    (cd "$REPO_ROOT" && env "${security[@]}" "$TARGET_DIR/debug/todoctl" "$@")
}
