#!/usr/bin/env bash
# Runs push.test.mjs in Debian's headless Chromium, driven by Node with playwright-core,
# against a running task-api whose page offers web push.
#
#   TASK_API_URL  where task-api serves the page and /api (e.g. http://127.0.0.1:8000)
#   GCM_URL       the push registration stand-in (tests/push_browser.rs starts it): Chromium
#                 subscribes through Google's GCM, not reachable here, so its checkin and
#                 registration endpoints are pointed there (--gcm-checkin-url,
#                 --gcm-registration-url)
#   ARTIFACT_DIR  where screenshots go
#
# Installs what is missing: Debian's chromium (apt-get, needs root) and playwright-core into
# $HOME/.cache/todo-platform/task-api-browser (npm; playwright never downloads a browser).
# `cargo test -p task-api --test push_browser` starts the services and runs this script.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${TODO_PLATFORM_CACHE:-$HOME/.cache/todo-platform}/task-api-browser"
chromium="${CHROMIUM:-/usr/bin/chromium}"

: "${TASK_API_URL:?TASK_API_URL is not set}"
: "${GCM_URL:?GCM_URL is not set}"
: "${ARTIFACT_DIR:=$cache/artifacts}"

if [[ ! -x "$chromium" ]]; then
  echo "installing Debian's chromium" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "run.sh: $chromium is missing; install it: apt-get install -y chromium" >&2
    exit 1
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2
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
exec node --test --test-reporter=spec --test-timeout=120000 "$here/push.test.mjs"
