#!/usr/bin/env bash
# Runs a browser test (default browser.test.mjs; or the script named as the first argument,
# e.g. sharing.test.mjs) in Debian's headless Chromium, driven by Node with playwright-core,
# against a running task-api and ws-gateway.
#
#   TASK_API_URL  where task-api serves the page and /api (e.g. http://127.0.0.1:8000)
#   GATEWAY_URL   the ws-gateway's HTTP base (e.g. http://127.0.0.1:8001), for its metrics
#   CONTROL_URL   the harness's control endpoint (tests/browser.rs starts it)
#   ARTIFACT_DIR  where screenshots go
#   TASK_API_URL_POSTGRES  (sharing.test.mjs, optional) a second task-api, on PostgreSQL
#   ASSIGNMENT_MAIL=1, MAILPIT_API  (sharing.test.mjs) check the assignee's mail in Mailpit
#
# Installs what is missing: Debian's chromium (apt-get, needs root) and playwright-core into
# $HOME/.cache/todo-platform/ws-gateway-browser (npm; playwright never downloads a browser).
# `cargo test -p ws-gateway --test browser` starts the services and runs this script.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
test_file="${1:-browser.test.mjs}"
if [[ "$test_file" == */* || ! -f "$here/$test_file" ]]; then
  echo "run.sh: no test script $test_file in $here" >&2
  exit 1
fi
cache="${TODO_PLATFORM_CACHE:-$HOME/.cache/todo-platform}/ws-gateway-browser"
chromium="${CHROMIUM:-/usr/bin/chromium}"

: "${TASK_API_URL:?TASK_API_URL is not set}"
: "${GATEWAY_URL:?GATEWAY_URL is not set}"
: "${CONTROL_URL:?CONTROL_URL is not set}"
: "${ARTIFACT_DIR:=$cache/artifacts}"

if [[ ! -x "$chromium" ]]; then
  echo "installing Debian's chromium" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "run.sh: $chromium is missing; install it: apt-get install -y chromium chromium-driver" >&2
    exit 1
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >&2
fi
if ! command -v node >/dev/null; then
  echo "run.sh: node is missing (Debian: apt-get install -y nodejs npm)" >&2
  exit 1
fi

mkdir -p "$cache" "$ARTIFACT_DIR"
if ! cmp -s "$here/package-lock.json" "$cache/package-lock.json" || [[ ! -d "$cache/node_modules/playwright-core" ]]; then
  cp "$here/package.json" "$here/package-lock.json" "$cache/"
  (cd "$cache" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) >&2
fi

export PLAYWRIGHT_CORE="$cache/node_modules/playwright-core"
export CHROMIUM="$chromium"
export ARTIFACT_DIR
exec node --test --test-reporter=spec --test-timeout=240000 "$here/$test_file"
