#!/usr/bin/env bash
# Renders and validates the Kubernetes manifests (deploy/k8s), offline.
#
#   scripts/k8s.sh render [OUT_DIR]     every overlay -> OUT_DIR/<overlay>.yaml (default build/k8s)
#   scripts/k8s.sh validate FILE...     kubeconform -strict against the Kubernetes schemas (from
#                                       kubernetes-validate) and the custom resources' schemas in
#                                       deploy/k8s/schemas; then kubernetes-validate --strict on
#                                       the built-in kinds
# Tools: scripts/deploy-tools.sh installs them.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

K8S_VERSION="1.33.0"
OVERLAYS_DIR="$REPO_ROOT/deploy/k8s/overlays"
CRD_SCHEMAS="$REPO_ROOT/deploy/k8s/schemas"
VENV="$CACHE_DIR/venv"

kustomize_build() { # <dir>
    if kubectl kustomize --help >/dev/null 2>&1; then
        kubectl kustomize "$1"
    elif [[ -x "$CACHE_DIR/bin/kustomize" ]]; then
        "$CACHE_DIR/bin/kustomize" build "$1"
    else
        die "neither \`kubectl kustomize\` nor $CACHE_DIR/bin/kustomize: run scripts/deploy-tools.sh"
    fi
}

render() {
    local out="${1:-$REPO_ROOT/build/k8s}" overlay name
    mkdir -p "$out"
    for overlay in "$OVERLAYS_DIR"/*/; do
        name="$(basename "$overlay")"
        kustomize_build "$overlay" >"$out/$name.yaml"
        log "rendered $name -> $out/$name.yaml ($(grep -c '^kind:' "$out/$name.yaml") resources)"
    done
}

validate() {
    (($# > 0)) || die "usage: scripts/k8s.sh validate FILE..."
    local kubeconform="$CACHE_DIR/bin/kubeconform"
    [[ -x "$kubeconform" ]] || kubeconform="$(command -v kubeconform)" ||
        die "kubeconform is missing: run scripts/deploy-tools.sh"
    [[ -d "$CACHE_DIR/k8s-schemas/v$K8S_VERSION-standalone-strict" ]] ||
        die "Kubernetes schemas are missing in $CACHE_DIR/k8s-schemas: run scripts/deploy-tools.sh"
    # No -ignore-missing-schemas: a kind without a schema is an error, not a skip.
    "$kubeconform" -strict -summary -kubernetes-version "$K8S_VERSION" \
        -schema-location "$CACHE_DIR/k8s-schemas/{{.NormalizedKubernetesVersion}}-standalone-strict/{{.ResourceKind}}{{.KindSuffix}}.json" \
        -schema-location "$CRD_SCHEMAS/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json" \
        "$@"
    # A second, independent validator for the built-in kinds (it knows no custom resources).
    local file builtin
    builtin="$(mktemp -d)"
    trap 'rm -rf "$builtin"' RETURN
    for file in "$@"; do
        "$VENV/bin/python" - "$file" "$builtin/$(basename "$file")" <<'PY'
import sys, yaml
def builtin(doc):
    group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
    return "." not in group or group.endswith(".k8s.io")
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and builtin(d)]
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))
PY
        "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$builtin/$(basename "$file")"
    done
    log "valid: $*"
}

case "${1:-}" in
render)
    shift
    render "$@"
    ;;
validate)
    shift
    validate "$@"
    ;;
*)
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
