//! `todoctl dlq-replay`: send dead-lettered messages back to their source topic.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use events::{DeadLetterTopic, Service, Topic};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use service_kit::kafka::KafkaAccess;

/// Header prefix of the dead-letter metadata (see service-kit's dead-letter publisher).
const DLQ_HEADER_PREFIX: &str = "dlq.";

fn parse_dlq(name: &str) -> Result<DeadLetterTopic> {
    let (source, service) = name
        .split_once(".dlq.")
        .context("not a dead-letter topic name (<topic>.dlq.<service>)")?;
    let source: Topic = source.parse()?;
    let service = Service::ALL
        .into_iter()
        .find(|s| s.name() == service)
        .with_context(|| format!("unknown service {service}"))?;
    Ok(DeadLetterTopic::new(source, service))
}

pub async fn replay(kafka: &KafkaAccess, name: &str, dry_run: bool) -> Result<()> {
    let dlq = parse_dlq(name)?;
    let group = format!("todoctl-replay.{name}");
    let consumer: BaseConsumer = kafka
        .client_config_for("todoctl")
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let timeout = Duration::from_secs(10);
    // Replay up to what the topic holds now; later arrivals wait for the next run.
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    let committed = {
        let mut tpl = TopicPartitionList::new();
        for p in 0..dlq.partitions() {
            tpl.add_partition(name, p);
        }
        consumer.committed_offsets(tpl, timeout)?
    };
    for p in 0..dlq.partitions() {
        let (low, high) = consumer.fetch_watermarks(name, p, timeout)?;
        let start = committed
            .find_partition(name, p)
            .and_then(|e| e.offset().to_raw())
            .filter(|o| *o >= 0)
            .unwrap_or(low)
            .max(low);
        assignment.add_partition_offset(name, p, Offset::Offset(start))?;
        ends.push((start, high));
    }
    let pending: i64 = ends.iter().map(|(s, h)| h - s).sum();
    println!("{name}: {pending} message(s) to replay to {}", dlq.source);
    if pending == 0 {
        return Ok(());
    }
    consumer.assign(&assignment)?;
    let producer: FutureProducer =
        events::producer_config(kafka.client_config_for("todoctl")).create()?;
    let mut replayed = 0i64;
    let mut positions: Vec<i64> = ends.iter().map(|(s, _)| *s).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while positions
        .iter()
        .zip(&ends)
        .any(|(pos, (_, high))| pos < high)
    {
        if std::time::Instant::now() > deadline {
            bail!("gave up after 120 s with {replayed} of {pending} replayed");
        }
        let Some(result) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = result?;
        let p = message.partition() as usize;
        if message.offset() >= ends[p].1 {
            continue;
        }
        let source =
            events::publish::header_str(&message, "dlq.source.topic").unwrap_or(dlq.source.name());
        let error = events::publish::header_str(&message, "dlq.error").unwrap_or("?");
        if dry_run {
            println!(
                "  {}@{} -> {source}: {error}",
                message.partition(),
                message.offset()
            );
        } else {
            let mut headers = OwnedHeaders::new();
            if let Some(original) = message.headers() {
                for h in original
                    .iter()
                    .filter(|h| !h.key.starts_with(DLQ_HEADER_PREFIX))
                {
                    headers = headers.insert(Header {
                        key: h.key,
                        value: h.value,
                    });
                }
            }
            let from = format!("{name}@{}/{}", message.partition(), message.offset());
            headers = headers.insert(Header {
                key: "dlq.replayed-from",
                value: Some(from.as_str()),
            });
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(source).headers(headers);
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            producer
                .send(record, Duration::from_secs(10))
                .await
                .map_err(|(e, _)| e)?;
            let mut done = TopicPartitionList::new();
            done.add_partition_offset(
                name,
                message.partition(),
                Offset::Offset(message.offset() + 1),
            )?;
            consumer.commit(&done, CommitMode::Sync)?;
        }
        positions[p] = message.offset() + 1;
        replayed += 1;
    }
    println!(
        "{name}: {} {replayed} message(s)",
        if dry_run { "listed" } else { "replayed" }
    );
    Ok(())
}
