#!/usr/bin/env bash
# Supply-chain checks of the dependency graph with cargo-deny (deny.toml): licences, bans
# (duplicate versions as warnings) and sources. Run by `make lint` and CI.
#
# cargo-deny is built once from crates.io, at the pinned version, into the cache
# ($CACHE_DIR/cargo-deny-<version>; a few minutes the first time). Advisories are not checked:
# the RustSec database is a git clone from GitHub, which these machines cannot reach (deny.toml).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CARGO_DENY_VERSION="0.20.2"
DENY_ROOT="$CACHE_DIR/cargo-deny-$CARGO_DENY_VERSION"
DENY="$DENY_ROOT/bin/cargo-deny"

if [[ ! -x "$DENY" ]]; then
    need_cmd cargo
    log "building cargo-deny $CARGO_DENY_VERSION from crates.io into $DENY_ROOT (once)"
    # its own target dir: the workspace's stays as it is
    CARGO_TARGET_DIR="$CACHE_DIR/cargo-deny-build" \
        cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked --root "$DENY_ROOT" ||
        die "cargo install cargo-deny $CARGO_DENY_VERSION failed (output above)"
    rm -rf "$CACHE_DIR/cargo-deny-build"
fi
cd "$REPO_ROOT"
# duplicate versions are warnings: named, without the dependency trees (`cargo tree -d` shows them)
"$DENY" --log-level warn check --hide-inclusion-graph licenses bans sources
log "cargo-deny: licences, bans and sources pass (advisories not checked: no advisory database offline)"
