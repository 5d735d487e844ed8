"""Makes kubeconform-ready Kubernetes JSON schemas from the ones the PyPI package
kubernetes-validate bundles (so validation needs no network: kubeconform would download them).

    python standalone-k8s-schemas.py OUT_DIR [VERSION]      (VERSION default 1.33.0)

kubernetes-validate's schemas carry `$id`s on kubernetes.io and `$ref`s to
"/api/_definitions.json#/$defs/...", which its own loader maps to the bundled file; kubeconform
resolves references relative to the schema file instead. This rewrites the references to the
sibling file `_definitions.json` and drops the `$id`s; nothing else changes (strict variants:
unknown fields stay rejected). Run by scripts/deploy-tools.sh.
"""

import json
import pathlib
import sys

import kubernetes_validate


def fix(node):
    if isinstance(node, dict):
        return {
            key: (value.replace("/api/_definitions.json", "_definitions.json")
                  if key == "$ref" and isinstance(value, str) else fix(value))
            for key, value in node.items()
            if key != "$id"
        }
    if isinstance(node, list):
        return [fix(item) for item in node]
    return node


def main():
    out = pathlib.Path(sys.argv[1])
    version = sys.argv[2] if len(sys.argv) > 2 else "1.33.0"
    bundled = pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    source = bundled / f"v{version}-local-strict"
    if not source.is_dir():
        sys.exit(f"kubernetes-validate has no schemas for Kubernetes {version} (has: "
                 + ", ".join(sorted(p.name for p in bundled.iterdir())) + ")")
    target = out / f"v{version}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    for schema in source.glob("*.json"):
        (target / schema.name).write_text(json.dumps(fix(json.loads(schema.read_text()))))
    print(f"{target}: {len(list(target.glob('*.json')))} schemas")


if __name__ == "__main__":
    main()
