//! Kafka around the benchmarks: Kafka's own end-to-end latency (the floor of every "until it is
//! on Kafka" figure), and deleting what a benchmark wrote to the real topics.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use events::Topic;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::{Deserialize, Serialize};
use service_kit::testing;

use crate::report;

/// The topic Kafka's EndToEndLatency tool writes to; created for the measurement, deleted after.
const END_TO_END_TOPIC: &str = "loadgen.end-to-end";
/// Size of each of the tool's messages: about one of our Avro task events.
const END_TO_END_MESSAGE_BYTES: usize = 700;
const END_TO_END_FILE: &str = "kafka-end-to-end.json";

/// `org.apache.kafka.tools.EndToEndLatency` on this cluster: one message at a time is produced
/// with acks=all to a three-replica topic (min.insync.replicas=2) and consumed, the round trip
/// timed. No application of ours can deliver an event faster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndToEnd {
    pub messages: usize,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

impl EndToEnd {
    pub const REFERENCE: &str = "Kafka EndToEndLatency (acks=all, 3 replicas)";

    /// Run the tool from the cached jars and keep the result in `bench/out` for the other
    /// benchmarks of this run.
    pub fn measure(repo: &Path, messages: usize) -> anyhow::Result<Self> {
        let tool = repo.join("scripts/kafka-tool.sh");
        let bootstrap = testing::bootstrap_servers();
        let created = Command::new(&tool)
            .args(["topics", "--bootstrap-server", &bootstrap])
            .args(["--create", "--if-not-exists", "--topic", END_TO_END_TOPIC])
            .args(["--partitions", "1", "--replication-factor", "3"])
            .args(["--config", "min.insync.replicas=2"])
            .output()
            .context("creating the EndToEndLatency topic with scripts/kafka-tool.sh")?;
        if !created.status.success() {
            bail!(
                "creating {END_TO_END_TOPIC}: {}",
                String::from_utf8_lossy(&created.stderr)
            );
        }
        let output = Command::new(&tool)
            .arg("org.apache.kafka.tools.EndToEndLatency")
            .args([
                bootstrap.as_str(),
                END_TO_END_TOPIC,
                &messages.to_string(),
                "all",
                &END_TO_END_MESSAGE_BYTES.to_string(),
            ])
            .output()
            .context("running EndToEndLatency from the cached jars");
        let deleted = Command::new(&tool)
            .args(["topics", "--bootstrap-server", &bootstrap])
            .args(["--delete", "--if-exists", "--topic", END_TO_END_TOPIC])
            .output();
        if !deleted.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("warning: could not delete the topic {END_TO_END_TOPIC}");
        }
        let output = output?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "EndToEndLatency failed: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let measured = Self::parse(&stdout, messages)?;
        println!(
            "Kafka EndToEndLatency, {messages} messages of {END_TO_END_MESSAGE_BYTES} B: avg {:.2} ms, p50 {} ms, p99 {} ms, p99.9 {} ms",
            measured.avg_ms, measured.p50_ms, measured.p99_ms, measured.p999_ms
        );
        let dir = report::out_dir(repo);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(END_TO_END_FILE), serde_json::to_string(&measured)?)?;
        Ok(measured)
    }

    /// This run's measurement (`loadgen ws-latency` takes it), or a new one of `messages`
    /// messages when there is none (a benchmark run on its own).
    pub async fn of_this_run(repo: &Path, messages: usize) -> anyhow::Result<Self> {
        let repo = repo.to_owned();
        tokio::task::spawn_blocking(move || {
            match std::fs::read_to_string(report::out_dir(&repo).join(END_TO_END_FILE)) {
                Ok(text) => Ok(serde_json::from_str(&text)?),
                Err(_) => Self::measure(&repo, messages),
            }
        })
        .await?
    }

    /// The tool prints `Avg latency: 1.2345 ms` and
    /// `Percentiles: 50th = 1, 99th = 3, 99.9th = 7` (whole milliseconds).
    fn parse(stdout: &str, messages: usize) -> anyhow::Result<Self> {
        let avg_ms = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Avg latency: "))
            .and_then(|v| v.trim().trim_end_matches("ms").trim().parse().ok())
            .context("no `Avg latency` line in EndToEndLatency's output")?;
        let percentiles = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Percentiles: "))
            .context("no `Percentiles` line in EndToEndLatency's output")?;
        let pick = |name: &str| -> anyhow::Result<f64> {
            percentiles
                .split(", ")
                .find_map(|p| p.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .with_context(|| format!("no {name} in `{percentiles}`"))
        };
        Ok(Self {
            messages,
            avg_ms,
            p50_ms: pick("50th = ")?,
            p99_ms: pick("99th = ")?,
            p999_ms: pick("99.9th = ")?,
        })
    }
}

/// Where every topic of the catalogue ended when a benchmark began, so that what it wrote can
/// be deleted at the end.
pub struct TopicMarks {
    start: Vec<(Topic, Vec<i64>)>,
}

impl TopicMarks {
    pub async fn take() -> anyhow::Result<Self> {
        let start = tokio::task::spawn_blocking(|| {
            Topic::ALL
                .into_iter()
                .map(|t| (t, testing::end_offsets(t.name(), t.spec().partitions)))
                .collect()
        })
        .await?;
        Ok(Self { start })
    }

    /// Where `topic` ended when the marks were taken.
    pub fn start_of(&self, topic: Topic) -> Vec<i64> {
        self.start
            .iter()
            .find(|(t, _)| *t == topic)
            .map(|(_, offsets)| offsets.clone())
            .unwrap_or_default()
    }

    /// Delete the records of every topic that grew since [`TopicMarks::take`], up to its end
    /// now (Kafka DeleteRecords), so later runs and services do not read the benchmark's events.
    /// `make bench` runs alone (it refuses to start beside `make dev`'s services), so what the
    /// topics gained is what the benchmark wrote.
    pub async fn delete_written(&self) -> anyhow::Result<()> {
        let start = self.start.clone();
        let grown = tokio::task::spawn_blocking(move || {
            start
                .into_iter()
                .filter_map(|(t, before)| {
                    let end = testing::end_offsets(t.name(), t.spec().partitions);
                    (end != before).then_some((t, end))
                })
                .collect::<Vec<_>>()
        })
        .await?;
        for (topic, end) in &grown {
            delete_up_to(topic.name(), end).await?;
        }
        let names: Vec<&str> = grown.iter().map(|(t, _)| t.name()).collect();
        println!("deleted the records written to {names:?}");
        Ok(())
    }
}

/// The key and timestamp (producer create time, epoch ms) of every message of `topic` from
/// `from` to its end now whose key is in `keys`.
pub async fn keyed_timestamps(
    topic: Topic,
    from: Vec<i64>,
    keys: Arc<HashSet<String>>,
) -> anyhow::Result<Vec<(String, i64)>> {
    tokio::task::spawn_blocking(move || {
        let end = testing::end_offsets(topic.name(), topic.spec().partitions);
        let consumer: BaseConsumer = service_kit::testing::kafka_config()
            .set("group.id", testing::unique_group("loadgen-reader"))
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        let mut remaining = 0;
        for (p, offset) in from.iter().enumerate() {
            if end[p] > *offset {
                tpl.add_partition_offset(topic.name(), p as i32, rdkafka::Offset::Offset(*offset))?;
                remaining += 1;
            }
        }
        let mut found = Vec::new();
        if remaining == 0 {
            return Ok(found);
        }
        consumer.assign(&tpl)?;
        let mut done = vec![false; end.len()];
        let deadline = Instant::now() + Duration::from_secs(120);
        while remaining > 0 {
            if Instant::now() > deadline {
                bail!("reading {topic} to its end took more than 120 s");
            }
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let p = m.partition() as usize;
            if m.offset() >= end[p] {
                continue;
            }
            if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok())
                && keys.contains(key)
                && let Some(ts) = m.timestamp().to_millis()
            {
                found.push((key.to_owned(), ts));
            }
            if m.offset() + 1 >= end[p] && !done[p] {
                done[p] = true;
                remaining -= 1;
            }
        }
        Ok(found)
    })
    .await?
}

/// Kafka DeleteRecords: every partition of `topic` starts at `end[p]` from now on.
pub async fn delete_up_to(topic: &str, end: &[i64]) -> anyhow::Result<()> {
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (p, offset) in end.iter().enumerate() {
        tpl.add_partition_offset(topic, p as i32, rdkafka::Offset::Offset(*offset))?;
    }
    let admin: AdminClient<DefaultClientContext> = service_kit::testing::kafka_config().create()?;
    admin
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .with_context(|| format!("deleting the records of {topic}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tools_summary() {
        let out = "0\t2.5\nAvg latency: 1.8731 ms\nPercentiles: 50th = 2, 99th = 4, 99.9th = 9\n";
        let e = EndToEnd::parse(out, 600).expect("parses");
        assert_eq!(
            (e.avg_ms, e.p50_ms, e.p99_ms, e.p999_ms),
            (1.8731, 2.0, 4.0, 9.0)
        );
    }
}
