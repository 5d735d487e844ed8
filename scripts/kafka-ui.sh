#!/usr/bin/env bash
# The Kafka UI of `make dev`: kaskade (PyPI) in admin mode, served to the browser by
# textual-serve (deploy/containers/kafka-ui/serve.py, the same program as the compose image),
# from the project's cached venv ($CACHE_DIR/venv), bound to 127.0.0.1 only (it has no login).
#
#   scripts/kafka-ui.sh start          start it (installs kaskade + textual-serve when missing),
#                                      wait until the page answers; prints its URL
#   scripts/kafka-ui.sh stop           stop it
#   scripts/kafka-ui.sh status         running or not
#   scripts/kafka-ui.sh url            its URL
#   scripts/kafka-ui.sh install        only install kaskade + textual-serve into the venv
#   scripts/kafka-ui.sh consume TOPIC  messages of TOPIC in this terminal, Avro decoded through
#                                      the registry (kaskade consumer mode, from the beginning)
#   scripts/kafka-ui.sh check [URL]    headless Chromium opens the UI (this one, or URL) and
#                                      must find the catalogue's topics on the page
#
# Env: KAFKA_UI_PORT (8080), KAFKA_BOOTSTRAP_SERVERS (the local cluster), SCHEMA_REGISTRY_URL
# (the registry's Confluent-compatible URL). Log: $RUN_DIR/logs/kafka-ui.log.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KASKADE_VERSION="5.1.0"
TEXTUAL_SERVE_VERSION="1.1.3"
PORT="${KAFKA_UI_PORT:-8080}"
URL="http://127.0.0.1:$PORT"
VENV="$CACHE_DIR/venv"
UI_LOG="$LOG_DIR/kafka-ui.log"
BROKERS="${KAFKA_BOOTSTRAP_SERVERS:-$KAFKA_BOOTSTRAP}"
REGISTRY="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7}"
BROWSER_DIR="$SCRIPTS_DIR/kafka-ui"
BROWSER_CACHE="$CACHE_DIR/kafka-ui-browser"
# Topics the check looks for: a few of the catalogue's, from the first to the last of the list.
CHECK_TOPICS="task.created,task.completed,reminder.triggered,notification.sent,user.registered"

ensure_installed() {
    [[ -x "$VENV/bin/python" ]] || "$SCRIPTS_DIR/install-deps.sh" --python
    if ! "$VENV/bin/python" -m pip show -q kaskade textual-serve >/dev/null 2>&1; then
        log "installing kaskade $KASKADE_VERSION and textual-serve $TEXTUAL_SERVE_VERSION into $VENV"
        "$VENV/bin/python" -m pip install -q "kaskade==$KASKADE_VERSION" \
            "textual-serve==$TEXTUAL_SERVE_VERSION" >&2
    fi
}

page_answers() { curl -fsS --max-time 2 -o /dev/null "$1/"; }

cmd_start() {
    ensure_installed
    if ! is_running kafka-ui; then
        ensure_port_free "$PORT" "the Kafka UI (set KAFKA_UI_PORT)"
    fi
    KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS="$BROKERS" KAFKA_CLUSTERS_0_SCHEMAREGISTRY="$REGISTRY" \
        KAFKA_UI_HOST=127.0.0.1 SERVER_PORT="$PORT" KAFKA_UI_PUBLIC_URL="$URL" \
        start_daemon kafka-ui "$UI_LOG" "$VENV/bin/python" "$REPO_ROOT/deploy/containers/kafka-ui/serve.py"
    WAIT_LOG="$UI_LOG" wait_until 60 "the Kafka UI on $URL" page_answers "$URL"
    log "Kafka UI on $URL"
}

cmd_check() {
    local url="${1:-$URL}"
    need_cmd node
    [[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || die "Debian's chromium is missing (scripts/install-deps.sh --apt)"
    mkdir -p "$BROWSER_CACHE/artifacts"
    if ! cmp -s "$BROWSER_DIR/package-lock.json" "$BROWSER_CACHE/package-lock.json" ||
        [[ ! -d "$BROWSER_CACHE/node_modules/playwright-core" ]]; then
        cp "$BROWSER_DIR/package.json" "$BROWSER_DIR/package-lock.json" "$BROWSER_CACHE/"
        (cd "$BROWSER_CACHE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) >&2
    fi
    WAIT_LOG="$UI_LOG" wait_until 60 "the Kafka UI on $url" page_answers "$url"
    log "headless Chromium: the Kafka UI on $url lists the topics"
    KAFKA_UI_URL="$url" TOPICS="${KAFKA_UI_TOPICS:-$CHECK_TOPICS}" \
        PLAYWRIGHT_CORE="$BROWSER_CACHE/node_modules/playwright-core" \
        CHROMIUM="${CHROMIUM:-/usr/bin/chromium}" ARTIFACT_DIR="$BROWSER_CACHE/artifacts" \
        node --test --test-reporter=spec --test-timeout=120000 "$BROWSER_DIR/kafka-ui.test.mjs" >&2 ||
        die "the Kafka UI on $url did not list the topics (screenshot: $BROWSER_CACHE/artifacts/kafka-ui.png)"
}

case "${1:-}" in
start) cmd_start ;;
stop) stop_daemon kafka-ui 10 ;;
status)
    if is_running kafka-ui && page_answers "$URL"; then
        echo "kafka-ui: running on $URL"
    else
        echo "kafka-ui: not running"
        exit 1
    fi
    ;;
url) echo "$URL" ;;
install) ensure_installed ;;
consume)
    [[ -n "${2:-}" ]] || die "usage: scripts/kafka-ui.sh consume TOPIC"
    ensure_installed
    exec "$VENV/bin/kaskade" consumer -b "$BROKERS" -t "$2" --earliest -k string -v registry \
        --registry "url=$REGISTRY"
    ;;
check) cmd_check "${2:-}" ;;
*)
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
