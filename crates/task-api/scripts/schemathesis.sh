#!/usr/bin/env bash
# Property-based API test: schemathesis (PyPI) against /openapi.json of a running task-api.
# Checks every response for 5xx and for conformance to the document (status codes, content
# types, headers, bodies). Request-acceptance checks are left out: the API's validation is
# deliberately stricter than a JSON schema can say (IANA time zones, RRULE syntax, 412 for a
# stale If-Match), so "schema-valid request rejected" findings are expected there.
#
# Usage: crates/task-api/scripts/schemathesis.sh [path/to/task-api binary]
# Needs the local cluster and registry (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL defaults).
# `make test` runs it through crates/task-api/tests/schemathesis.rs. Schemathesis lives in a venv
# of its own under the cache folder (its dependencies stay apart from the test venv's).
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-target}/debug/task-api}
WORK=$(mktemp -d)
PORT=${ST_PORT:-18000}
VENV=${ST_VENV:-${TODO_CACHE_DIR:-$HOME/.cache/todo-platform}/venv-schemathesis}
ST_VERSION=4.32.5
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT

if ! "$VENV/bin/st" --version 2>/dev/null | grep -qF "$ST_VERSION"; then
    # Debian's interpreter when there is one (python3-venv belongs to it; install-deps.sh)
    PY=/usr/bin/python3
    [ -x "$PY" ] || PY=$(command -v python3)
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q "schemathesis==$ST_VERSION"
fi
openssl genpkey -algorithm ed25519 -out "$WORK/private.pem" 2>/dev/null
openssl pkey -in "$WORK/private.pem" -pubout -out "$WORK/public.pem"

KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094} \
SCHEMA_REGISTRY_URL=${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7} \
DATABASE_URL="sqlite://$WORK/st.db" BIND_ADDR="127.0.0.1:$PORT" \
JWT_PRIVATE_KEY="$WORK/private.pem" JWT_PUBLIC_KEY="$WORK/public.pem" \
WEBHOOK_SIGNING_KEY=schemathesis-signing-key-of-32-chars!! \
CONSUMER_GROUP="task-api-schemathesis-$$" \
LOGIN_MAX_ATTEMPTS_PER_IP=100000 LOGIN_MAX_ATTEMPTS_PER_EMAIL=100000 \
    "$BIN" > "$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break
    sleep 0.5
done
BASE="http://127.0.0.1:$PORT"
curl -sf -X POST "$BASE/api/auth/register" -H 'content-type: application/json' \
    -d '{"email":"st@example.com","password":"correct horse battery"}' > /dev/null
TOKEN=$(curl -sf -X POST "$BASE/api/auth/login" -H 'content-type: application/json' \
    -d '{"email":"st@example.com","password":"correct horse battery"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
"$VENV/bin/st" run "$BASE/openapi.json" -H "Authorization: Bearer $TOKEN" \
    --checks all --exclude-checks positive_data_acceptance,negative_data_rejection \
    --max-examples "${ST_MAX_EXAMPLES:-100}" --workers 2
