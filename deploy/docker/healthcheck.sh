#!/usr/bin/env bash
# Docker HEALTHCHECK for the service images: GET http://127.0.0.1:<port>/healthz and succeed on
# a 200 status line. Plain bash (/dev/tcp) so the runtime image needs no curl.
#
#   healthcheck <port> [path]     (exit 0 healthy, 1 not)
set -euo pipefail
port="${1:?usage: healthcheck <port> [path]}"
path="${2:-/healthz}"
exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
IFS=' ' read -r -t 2 _version status _ <&3
[[ "$status" == 200 ]]
