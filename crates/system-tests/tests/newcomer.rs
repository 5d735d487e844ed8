//! What a newcomer meets first, checked on every run (CI runs it on a clean clone): `make help`
//! lists the two commands the README starts with, and every relative link of the README (and of
//! the contract document it points to) resolves to a file inside the repository.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

#[test]
fn make_help_lists_dev_and_test() {
    let out = Command::new("make")
        .arg("help")
        .current_dir(repo())
        .output()
        .expect("make runs");
    assert!(out.status.success(), "make help failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for target in ["dev", "test", "stop", "help"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("make {target} "))),
            "make help does not list `make {target}`:\n{text}"
        );
    }
    // A bare `make` shows the same list instead of starting anything.
    let bare = Command::new("make").current_dir(repo()).output().unwrap();
    assert_eq!(String::from_utf8(bare.stdout).unwrap(), text);
}

/// The targets of Markdown links `[text](target)` in `text`.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(rest[..end].trim().to_owned());
            rest = &rest[end..];
        }
    }
    targets
}

fn check_relative_links(file: &str) -> usize {
    let root = repo();
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let base = path.parent().unwrap();
    let mut checked = 0;
    for target in link_targets(&text) {
        if target.contains("://") || target.starts_with("mailto:") || target.starts_with('#') {
            continue;
        }
        let target_path = target.split('#').next().unwrap();
        let resolved = base
            .join(target_path)
            .canonicalize()
            .unwrap_or_else(|_| panic!("{file} links to {target}, which does not exist"));
        assert!(
            resolved.starts_with(&root),
            "{file} links to {target}, outside the repository (a clone does not have it)"
        );
        checked += 1;
    }
    checked
}

#[test]
fn readme_links_stay_inside_the_repository() {
    assert!(check_relative_links("README.md") > 0, "README has links");
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        link_targets(&readme)
            .iter()
            .any(|t| t == "docs/contract.md"),
        "README links the contract document"
    );
    check_relative_links("docs/contract.md");
}

#[test]
fn the_link_check_sees_a_link_that_leaves_the_repository() {
    assert_eq!(
        link_targets("see [the spec](../shared/SPEC.md) and [x](https://e.org)"),
        ["../shared/SPEC.md", "https://e.org"]
    );
    let outside = repo().join("..").canonicalize().unwrap();
    assert!(!outside.starts_with(repo()));
}
