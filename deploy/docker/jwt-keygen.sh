#!/usr/bin/env bash
# One-shot job of docker-compose.yml: make the Ed25519 key pair task-api signs access tokens
# with (PKCS#8 PEM, private dir: mounted into task-api only) and every service verifies them
# with (SPKI PEM, public dir: mounted everywhere), once. Existing keys are kept, so tokens stay
# valid across `docker compose up` runs.
#
#   jwt-keygen [private-dir] [public-dir]      (defaults /keys/private, /keys/public)
set -euo pipefail
private_dir="${1:-/keys/private}"
public_dir="${2:-/keys/public}"
owner="${KEY_OWNER:-10001:10001}" # the services' non-root user (Dockerfile)
if [[ -s "$private_dir/private.pem" && -s "$public_dir/public.pem" ]]; then
    echo "jwt-keygen: keeping the key pair in $private_dir and $public_dir"
    exit 0
fi
mkdir -p "$private_dir" "$public_dir"
(
    umask 077
    openssl genpkey -algorithm ed25519 -out "$private_dir/private.pem"
)
openssl pkey -in "$private_dir/private.pem" -pubout -out "$public_dir/public.pem"
chown "$owner" "$private_dir/private.pem" "$public_dir/public.pem"
chmod 0400 "$private_dir/private.pem"
chmod 0444 "$public_dir/public.pem"
echo "jwt-keygen: made a new key pair in $private_dir and $public_dir"
