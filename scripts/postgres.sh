#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for tests and `make dev`, owned by this checkout:
#
#   scripts/postgres.sh start    initdb (once) into $RUN_DIR/postgres/data and start on 127.0.0.1:$PGPORT
#   scripts/postgres.sh stop     fast shutdown (bounded), immediate shutdown as last resort
#   scripts/postgres.sh status   running or not
#   scripts/postgres.sh url      prints postgres://postgres@127.0.0.1:5432/postgres (the DATABASE_URL)
#   scripts/postgres.sh reset    stop and wipe the data
#
# Port: $PGPORT (default 5432). Trust authentication, on 127.0.0.1 only; superuser "postgres".
# Binaries: /usr/lib/postgresql/15/bin (Debian's postgresql-15; scripts/install-deps.sh installs it).
# Log: $RUN_DIR/logs/postgres.log. Unix socket in $RUN_DIR/postgres/socket.
#
# Root: PostgreSQL refuses to run as root. When this script runs as root (CI does), the server
# runs as the "postgres" system user (created by Debian's package; via runuser), and the data
# and socket directories are owned by it. Otherwise it runs as the current user.
#
# Port already taken: if something else listens on $PGPORT -- typically Debian's own cluster
# ("15/main", started when the package was installed; see pg_lsclusters) -- start refuses
# with a message instead of silently using a database it does not own. Either stop that one
# (pg_ctlcluster 15 main stop) or pick another port: PGPORT=5433 scripts/postgres.sh start,
# and use `scripts/postgres.sh url` (it prints the running server's port) for DATABASE_URL.
#
# It is a test database: fsync, synchronous_commit and full_page_writes are off (fast; data
# survives a crash of PostgreSQL itself, not of the machine).
REQUESTED_PGPORT="${PGPORT:-}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_BASE="$RUN_DIR/postgres"
PG_DATA="$PG_BASE/data"
PG_SOCK="$PG_BASE/socket"
PG_LOG="$LOG_DIR/postgres.log"
PG_PORT_FILE="$PG_BASE/port"
# the port of the running server (recorded at start) wins over $PGPORT
if [[ -s "$PG_PORT_FILE" && -f "$PG_DATA/postmaster.pid" ]]; then
    RUNNING_PORT="$(cat "$PG_PORT_FILE")"
fi
PGPORT="${RUNNING_PORT:-${PGPORT:-5432}}"
PG_USER_OS=""
if [[ "$(id -u)" == 0 ]]; then
    PG_USER_OS=postgres
fi

# as_pg <cmd...>: runs a command as the user that owns the server.
as_pg() {
    if [[ -n "$PG_USER_OS" ]]; then
        runuser -u "$PG_USER_OS" -- "$@"
    else
        "$@"
    fi
}

check_bins() {
    [[ -x "$PG_BIN/pg_ctl" && -x "$PG_BIN/initdb" ]] ||
        die "PostgreSQL 15 binaries not found in $PG_BIN (run scripts/install-deps.sh)"
    if [[ -n "$PG_USER_OS" ]]; then
        id "$PG_USER_OS" >/dev/null 2>&1 ||
            die "running as root but there is no '$PG_USER_OS' system user to run PostgreSQL (run scripts/install-deps.sh)"
    fi
}

take_lock() {
    mkdir -p "$RUN_DIR"
    exec 8>"$RUN_DIR/.postgres.lock"
    flock -w 120 8 || die "another postgres.sh holds $RUN_DIR/.postgres.lock"
}

pg_running() {
    [[ -f "$PG_DATA/PG_VERSION" ]] || return 1
    as_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

cmd_url() {
    echo "postgres://postgres@127.0.0.1:$PGPORT/postgres"
}

init_cluster() {
    [[ -f "$PG_DATA/PG_VERSION" ]] && return 0
    log "initdb into $PG_DATA"
    mkdir -p "$PG_BASE" "$LOG_DIR"
    rm -rf "$PG_DATA"
    mkdir -p "$PG_DATA" "$PG_SOCK"
    touch "$PG_LOG"
    if [[ -n "$PG_USER_OS" ]]; then
        chown "$PG_USER_OS:" "$PG_BASE" "$PG_DATA" "$PG_SOCK" "$PG_LOG"
    fi
    chmod 700 "$PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
        >>"$PG_LOG" 2>&1 || die "initdb failed (read $PG_LOG)"
    cat >>"$PG_DATA/postgresql.conf" <<EOF

# ---- scripts/postgres.sh (throwaway test database) ----
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCK'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
}

cmd_start() {
    take_lock
    check_bins
    if pg_running; then
        log "PostgreSQL already running ($(cmd_url))"
        return 0
    fi
    PGPORT="${REQUESTED_PGPORT:-5432}"
    ensure_port_free "$PGPORT" "PostgreSQL; a system cluster? see pg_lsclusters; stop it, or use PGPORT=<free port>"
    init_cluster
    mkdir -p "$PG_SOCK" "$LOG_DIR"
    touch "$PG_LOG"
    if [[ -n "$PG_USER_OS" ]]; then
        chown "$PG_USER_OS:" "$PG_SOCK" "$PG_LOG"
    fi
    local started=$SECONDS
    echo "$PGPORT" >"$PG_PORT_FILE"
    # -w -t: pg_ctl itself waits (bounded) until the server accepts connections. The server
    # must not inherit the lock fds or the caller's stderr (LOG_FD).
    as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t 60 -s \
        -o "-p $PGPORT -k $PG_SOCK" </dev/null >/dev/null 2>&1 7>&- 8>&- 9>&- {LOG_FD}>&- ||
        die "PostgreSQL did not start within 60s (read $PG_LOG)"
    WAIT_LOG="$PG_LOG" wait_until 30 "PostgreSQL to accept connections on 127.0.0.1:$PGPORT" \
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" -U postgres
    log "PostgreSQL ready after $((SECONDS - started))s: $(cmd_url)"
}

cmd_stop() {
    take_lock
    if ! pg_running; then
        log "PostgreSQL not running"
        return 0
    fi
    check_bins
    if ! as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 -s >/dev/null 2>&1; then
        log "fast shutdown did not finish within 60s, shutting down immediately"
        as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m immediate -w -t 30 -s >/dev/null 2>&1 ||
            die "PostgreSQL did not stop (read $PG_LOG)"
    fi
    log "PostgreSQL stopped"
}

cmd_status() {
    if pg_running; then
        echo "postgres: running $(cmd_url) (data $PG_DATA)"
        return 0
    fi
    echo "postgres: stopped"
    return 1
}

cmd_reset() {
    cmd_stop
    rm -rf "$PG_BASE"
    log "PostgreSQL data wiped ($PG_BASE)"
}

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) cmd_url ;;
reset) cmd_reset ;;
*) usage ;;
esac
