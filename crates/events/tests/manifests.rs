//! Every file outside Rust that repeats the topic catalogue agrees with it (the compose topic
//! init, the Strimzi KafkaTopics of every Kubernetes overlay), and every compose file is valid to
//! `docker-compose config`.

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use events::admin::DesiredTopic;
use serde_json::Value;

mod deploy;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

type TopicSettings = BTreeMap<String, (i32, i32, BTreeMap<String, String>)>;

/// (partitions, replication factor, configs) of each topic named in `kafka-topics.sh --create`
/// lines.
fn topics_in_command_lines(text: &str) -> TopicSettings {
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

fn catalogue() -> TopicSettings {
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

/// (partitions, replicas, config) of each Strimzi KafkaTopic, config values as strings.
fn topics_in_kafka_topics(docs: &[Value]) -> TopicSettings {
    let mut topics = BTreeMap::new();
    for topic in deploy::of_kind(docs, "KafkaTopic") {
        let spec = &topic["spec"];
        let name = spec["topicName"]
            .as_str()
            .or(topic["metadata"]["name"].as_str())
            .unwrap()
            .to_owned();
        let configs = spec["config"]
            .as_object()
            .map(|c| {
                c.iter()
                    .map(|(k, v)| {
                        let v = v
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string());
                        (k.clone(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let partitions = spec["partitions"].as_i64().expect("partitions") as i32;
        let replicas = spec["replicas"].as_i64().expect("replicas") as i32;
        assert!(
            topics
                .insert(name.clone(), (partitions, replicas, configs))
                .is_none(),
            "KafkaTopic {name} twice"
        );
    }
    topics
}

/// One test reads all three: the catalogue (crates/events), the compose topic init and the
/// KafkaTopics that every Kubernetes overlay renders.
#[test]
fn topic_settings_agree_in_catalogue_compose_and_strimzi() {
    let catalogue = catalogue();
    let compose = std::fs::read_to_string(repo().join("docker-compose.kafka.yml")).unwrap();
    assert_eq!(
        topics_in_command_lines(&compose),
        catalogue,
        "docker-compose.kafka.yml"
    );
    for (overlay, (_, docs)) in deploy::rendered_overlays() {
        assert_eq!(
            topics_in_kafka_topics(docs),
            catalogue,
            "KafkaTopics of deploy/k8s/overlays/{overlay} (regenerate deploy/k8s/base/kafka/topics.yaml \
             with deploy/k8s/base/kafka/generate-topics.sh)"
        );
        let kafka = deploy::named(docs, "Kafka", "todo-kafka");
        assert_eq!(
            kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"],
            Value::Bool(false),
            "{overlay}: topics come only from the catalogue"
        );
        let pool = deploy::named(docs, "KafkaNodePool", "dual-role");
        assert_eq!(pool["spec"]["replicas"], 3, "{overlay}: three brokers");
    }
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
    assert!(
        files.len() >= 2,
        "docker-compose.yml and docker-compose.kafka.yml"
    );
    for file in files {
        // Docker Compose v2+ (what `docker compose` is today) validates every file...
        deploy::run_ok(
            Command::new(deploy::venv_bin("docker-compose"))
                .current_dir(repo())
                .arg("-f")
                .arg(&file)
                .args(["config", "-q"]),
            &format!("docker compose config of {}", file.display()),
        );
        // ...and Debian's docker-compose v1 those that do not use `include:`, which it predates.
        let text = std::fs::read_to_string(&file).unwrap();
        if text.lines().any(|l| l.starts_with("include:")) {
            continue;
        }
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

/// The rows of the topic table under `## 2. Topics` in docs/contract.md:
/// name → (partitions, replication factor, retention in days, key field).
fn topics_in_contract_document() -> BTreeMap<String, (i32, i32, u64, String)> {
    let text = std::fs::read_to_string(repo().join("docs/contract.md")).unwrap();
    let section = text
        .split("\n## 2. Topics")
        .nth(1)
        .expect("docs/contract.md has a section 2. Topics");
    let section = section.split("\n## ").next().unwrap();
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells[0] == "topic" || cells[0].starts_with("---") {
            continue;
        }
        let [name, partitions, rf, retention, key] = cells[..] else {
            panic!("a topic row has five cells: {line}");
        };
        let days = retention
            .strip_suffix('d')
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("retention in days like 7d: {line}"));
        let row = (
            partitions.parse().unwrap(),
            rf.parse().unwrap(),
            days,
            key.to_owned(),
        );
        assert!(rows.insert(name.to_owned(), row).is_none(), "{name} twice");
    }
    rows
}

#[test]
fn the_contract_documents_topic_table_is_the_catalogue() {
    let catalogue: BTreeMap<String, (i32, i32, u64, String)> = events::Topic::ALL
        .iter()
        .map(|t| {
            let s = t.spec();
            (
                s.name.to_owned(),
                (
                    s.partitions,
                    events::catalogue::REPLICATION_FACTOR,
                    s.retention.as_secs() / 86_400,
                    s.key_field.to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(topics_in_contract_document(), catalogue, "docs/contract.md");
}
