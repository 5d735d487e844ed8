//! Every file outside Rust that repeats the topic catalogue agrees with it, and every compose
//! file is valid to `docker-compose config`.

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use events::admin::DesiredTopic;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (partitions, replication factor, configs) of each topic named in `kafka-topics.sh --create`
/// lines.
fn topics_in_command_lines(text: &str) -> BTreeMap<String, (i32, i32, BTreeMap<String, String>)> {
    let mut topics = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.contains("kafka-topics.sh") && l.contains("--create"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        let arg = |flag: &str| words.iter().position(|w| *w == flag).map(|i| words[i + 1]);
        let name = arg("--topic").expect("--topic").to_owned();
        let partitions = arg("--partitions").expect("--partitions").parse().unwrap();
        let rf = arg("--replication-factor")
            .expect("--replication-factor")
            .parse()
            .unwrap();
        let configs = words
            .windows(2)
            .filter(|w| w[0] == "--config")
            .map(|w| {
                let (k, v) = w[1].split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect();
        assert!(
            topics
                .insert(name.clone(), (partitions, rf, configs))
                .is_none(),
            "{name} twice"
        );
    }
    topics
}

fn catalogue() -> BTreeMap<String, (i32, i32, BTreeMap<String, String>)> {
    DesiredTopic::everything()
        .into_iter()
        .map(|d| (d.name, (d.partitions, d.replication_factor, d.configs)))
        .collect()
}

#[test]
fn the_compose_topic_init_creates_exactly_the_catalogue() {
    let text = std::fs::read_to_string(repo().join("docker-compose.kafka.yml")).unwrap();
    assert_eq!(topics_in_command_lines(&text), catalogue());
    assert!(
        text.contains("KAFKA_AUTO_CREATE_TOPICS_ENABLE: \"false\"")
            || text.contains("KAFKA_AUTO_CREATE_TOPICS_ENABLE=false")
    );
}

#[test]
fn every_compose_file_is_valid() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("docker-compose")
                && (name.ends_with(".yml") || name.ends_with(".yaml"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let output = Command::new("docker-compose")
            .arg("-f")
            .arg(&file)
            .args(["config", "-q"])
            .output()
            .expect("docker-compose (Debian package, installed by scripts/install-deps.sh)");
        assert!(
            output.status.success(),
            "{} is not a valid compose file: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
