#!/usr/bin/env bash
# A real SMTP server for tests and `make dev` that keeps what it receives: Mailpit.
#
#   scripts/smtp-sink.sh fetch    build Mailpit from the Go module proxy into $CACHE_DIR/mailpit-<version>/
#   scripts/smtp-sink.sh start    start it (empty mailbox), wait until SMTP and the API answer
#   scripts/smtp-sink.sh stop     stop it
#   scripts/smtp-sink.sh status   running or not, and how many messages it holds
#
# SMTP  127.0.0.1:$SMTP_SINK_SMTP_PORT (default 1025)  -> SMTP_URL=smtp://127.0.0.1:1025
#       no TLS; any username/password is accepted, and so is no authentication.
# HTTP  127.0.0.1:$SMTP_SINK_HTTP_PORT (default 8025): web UI, and the API tests read mail with:
#       GET    /api/v1/messages            list (newest first; .messages_count, .messages[].ID/.To/.Subject)
#       GET    /api/v1/message/<ID>        one message (Text, HTML, headers ...)
#       GET    /api/v1/message/<ID>/raw    the raw RFC 5322 source
#       GET    /api/v1/search?query=to:x@y search
#       DELETE /api/v1/messages            delete all
# Messages live in $RUN_DIR/smtp-sink/mailpit.db, emptied at every start. Log: $RUN_DIR/logs/smtp-sink.log.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SMTP_PORT="${SMTP_SINK_SMTP_PORT:-1025}"
HTTP_PORT="${SMTP_SINK_HTTP_PORT:-8025}"
API="http://127.0.0.1:$HTTP_PORT/api/v1"
MAILPIT_HOME="$CACHE_DIR/mailpit-$MAILPIT_VERSION"
MAILPIT_BIN="$MAILPIT_HOME/bin/mailpit"
SINK_DATA="$RUN_DIR/smtp-sink"
SINK_LOG="$LOG_DIR/smtp-sink.log"

take_lock() {
    mkdir -p "$RUN_DIR"
    exec 8>"$RUN_DIR/.smtp-sink.lock"
    flock -w 120 8 || die "another smtp-sink.sh holds $RUN_DIR/.smtp-sink.lock"
}

cmd_fetch() {
    if [[ -x "$MAILPIT_BIN" ]]; then
        log "Mailpit $MAILPIT_VERSION already built ($MAILPIT_BIN)"
        return 0
    fi
    command -v go >/dev/null 2>&1 || die "Go is needed to build Mailpit (go install github.com/axllent/mailpit@$MAILPIT_VERSION)"
    mkdir -p "$CACHE_DIR"
    exec 7>"$CACHE_DIR/.mailpit-$MAILPIT_VERSION.lock"
    flock -w 900 7 || die "could not lock the Mailpit cache"
    if [[ -x "$MAILPIT_BIN" ]]; then return 0; fi
    log "building Mailpit $MAILPIT_VERSION with $(go version | cut -d' ' -f3) (about a minute on 2 cores)"
    local tmp="$MAILPIT_HOME.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp/bin"
    # run outside any Go module; the version string is normally set by Mailpit's release build
    (cd "$tmp" && GOBIN="$tmp/bin" GOFLAGS=-mod=mod go install \
        -ldflags "-s -w -X github.com/axllent/mailpit/config.Version=$MAILPIT_VERSION" \
        "github.com/axllent/mailpit@$MAILPIT_VERSION") >&2 ||
        {
            rm -rf "$tmp"
            die "building Mailpit $MAILPIT_VERSION failed"
        }
    rm -rf "$MAILPIT_HOME"
    mv "$tmp" "$MAILPIT_HOME"
    log "Mailpit $MAILPIT_VERSION built: $MAILPIT_BIN"
}

sink_ready() {
    is_running smtp-sink || die "Mailpit exited during start (read $SINK_LOG)"
    port_open 127.0.0.1 "$SMTP_PORT" &&
        [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$HTTP_PORT/readyz")" == 200 ]]
}

cmd_start() {
    take_lock
    need_cmd curl
    cmd_fetch
    if is_running smtp-sink; then
        log "SMTP sink already running (pid $(daemon_pid smtp-sink))"
    else
        local p
        for p in "$SMTP_PORT" "$HTTP_PORT"; do
            ensure_port_free "$p" "the SMTP sink; or set SMTP_SINK_SMTP_PORT / SMTP_SINK_HTTP_PORT"
        done
        rm -rf "$SINK_DATA"
        mkdir -p "$SINK_DATA" "$LOG_DIR"
        start_daemon smtp-sink "$SINK_LOG" "$MAILPIT_BIN" \
            --smtp "127.0.0.1:$SMTP_PORT" --listen "127.0.0.1:$HTTP_PORT" \
            --database "$SINK_DATA/mailpit.db" --max 200000 \
            --smtp-auth-accept-any --smtp-auth-allow-insecure \
            --disable-version-check
    fi
    local started=$SECONDS
    WAIT_LOG="$SINK_LOG" wait_until 30 "Mailpit to answer on SMTP 127.0.0.1:$SMTP_PORT and http://127.0.0.1:$HTTP_PORT" sink_ready
    log "SMTP sink ready after $((SECONDS - started))s: smtp://127.0.0.1:$SMTP_PORT, messages at $API/messages"
}

cmd_stop() {
    take_lock
    stop_daemon smtp-sink 20
    log "SMTP sink stopped"
}

cmd_status() {
    local pid count
    if pid="$(daemon_pid smtp-sink)"; then
        count="$(curl -sf --max-time 3 "$API/messages?limit=1" | jq -r '.messages_count' 2>/dev/null || echo '?')"
        echo "smtp-sink: running (pid $pid) smtp://127.0.0.1:$SMTP_PORT, API $API, $count message(s)"
        return 0
    fi
    echo "smtp-sink: stopped"
    return 1
}

usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

case "${1:-}" in
fetch) cmd_fetch ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) usage ;;
esac
