//! Helpers of the deployment tests (manifests.rs, deployment.rs): where the repository and the
//! validators are, YAML through the test venv's PyYAML, and the rendered Kubernetes overlays.
//! The validators are installed by scripts/deploy-tools.sh (run by `make test` and CI).

#![allow(dead_code)] // each test binary uses a part of this module

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

pub const SERVICES: [&str; 5] = [
    "task-api",
    "ws-gateway",
    "notification-service",
    "recurring-task-service",
    "audit-service",
];

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn cache_dir() -> PathBuf {
    match std::env::var_os("TODO_CACHE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/todo-platform"),
    }
}

/// The test venv (scripts/install-deps.sh): PyYAML, kubernetes-validate, hadolint, Compose v2+.
pub fn venv_bin(name: &str) -> PathBuf {
    let bin = cache_dir().join("venv/bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run scripts/install-deps.sh (it runs scripts/deploy-tools.sh)",
        bin.display()
    );
    bin
}

/// Run a command; panic with its output unless it succeeded.
pub fn run_ok(command: &mut Command, what: &str) -> Output {
    let output = command.output().unwrap_or_else(|e| {
        panic!("{what}: cannot run {command:?}: {e} (run scripts/deploy-tools.sh)")
    });
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every YAML document of a file, as JSON values (empty documents dropped).
pub fn yaml_documents(path: &Path) -> Vec<Value> {
    let output = run_ok(
        Command::new(venv_bin("python")).args([
            "-c",
            "import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None], sys.stdout)",
        ]).arg(path),
        &format!("reading {} as YAML", path.display()),
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The resolved `docker compose config` of docker-compose.yml (its `include:` followed), by
/// Docker Compose v2+ from the venv.
pub fn compose_config() -> Value {
    let output = run_ok(
        Command::new(venv_bin("docker-compose"))
            .current_dir(repo())
            .args(["-f", "docker-compose.yml", "config", "--format", "json"]),
        "docker compose config of docker-compose.yml",
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every overlay of deploy/k8s rendered by `scripts/k8s.sh render` (kubectl kustomize), once per
/// test binary: overlay name -> (file, documents).
pub fn rendered_overlays() -> &'static BTreeMap<String, (PathBuf, Vec<Value>)> {
    static RENDERED: OnceLock<BTreeMap<String, (PathBuf, Vec<Value>)>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let out = std::env::temp_dir().join(format!(
            "todo-k8s-{}-{}",
            std::process::id(),
            unique_suffix()
        ));
        run_ok(
            Command::new(repo().join("scripts/k8s.sh"))
                .arg("render")
                .arg(&out),
            "scripts/k8s.sh render",
        );
        let mut overlays = BTreeMap::new();
        for entry in std::fs::read_dir(repo().join("deploy/k8s/overlays")).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let file = out.join(format!("{name}.yaml"));
            let docs = yaml_documents(&file);
            assert!(!docs.is_empty(), "{name} rendered nothing");
            overlays.insert(name, (file, docs));
        }
        assert!(overlays.contains_key("dev") && overlays.contains_key("prod"));
        overlays
    })
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub fn of_kind<'a>(docs: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    docs.iter().filter(move |d| d["kind"] == kind)
}

pub fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Every identifier-like string literal (`"KAFKA_BOOTSTRAP_SERVERS"`, `"ws_connections"`) in the
/// Rust files under `dir`: what the code names as environment variables or metrics.
pub fn quoted_identifiers(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for file in rust_files(dir) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices('"') {
            let word: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if !word.is_empty() && text[i + 1 + word.len()..].starts_with('"') {
                found.insert(word);
            }
        }
    }
    found
}

pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
