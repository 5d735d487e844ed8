//! Reading what the service published: every message of a topic between offsets taken at the
//! start of a test and the end of the topic now, filtered by key (reminderId, notificationId).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::{AnyEvent, EventCodec, Topic};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use service_kit::testing;

/// Where each partition of `topic` ends now.
pub async fn offsets_now(topic: Topic) -> Vec<i64> {
    tokio::task::spawn_blocking(move || testing::end_offsets(topic.name(), topic.spec().partitions))
        .await
        .unwrap()
}

/// A decoded message and its `producer` header.
#[derive(Debug, Clone)]
pub struct Published {
    pub event: AnyEvent,
    pub producer: Option<String>,
    pub key: String,
    /// The message's timestamp (producer create time), epoch ms.
    pub timestamp: Option<i64>,
}

/// Every message of `topic` from `from` to the current end whose key is in `keys`.
pub async fn keyed(
    codec: &Arc<EventCodec>,
    topic: Topic,
    from: &[i64],
    keys: &HashSet<String>,
) -> Vec<Published> {
    let from = from.to_vec();
    let keys = keys.clone();
    let raw = tokio::task::spawn_blocking(move || {
        let end = testing::end_offsets(topic.name(), topic.spec().partitions);
        let consumer: BaseConsumer = service_kit::testing::kafka_config()
            .set("group.id", testing::unique_group("notification-reader"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        let mut remaining = 0;
        for (p, offset) in from.iter().enumerate() {
            if end[p] > *offset {
                tpl.add_partition_offset(topic.name(), p as i32, rdkafka::Offset::Offset(*offset))
                    .unwrap();
                remaining += 1;
            }
        }
        let mut found = Vec::new();
        if remaining == 0 {
            return found;
        }
        consumer.assign(&tpl).unwrap();
        let mut done = vec![false; end.len()];
        let deadline = Instant::now() + Duration::from_secs(120);
        while remaining > 0 {
            assert!(Instant::now() < deadline, "reading {topic} timed out");
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let p = m.partition() as usize;
            if m.offset() >= end[p] {
                continue;
            }
            let key = m
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .unwrap_or_default()
                .to_owned();
            if keys.contains(&key) {
                let producer =
                    events::publish::header_str(&m, events::headers::PRODUCER).map(str::to_owned);
                let timestamp = m.timestamp().to_millis();
                found.push((key, m.payload().map(<[u8]>::to_vec), producer, timestamp));
            }
            if m.offset() + 1 >= end[p] && !done[p] {
                done[p] = true;
                remaining -= 1;
            }
        }
        found
    })
    .await
    .unwrap();
    let mut published = Vec::with_capacity(raw.len());
    for (key, payload, producer, timestamp) in raw {
        let event = codec
            .decode(topic.name(), payload.as_deref())
            .await
            .expect("decodable event");
        published.push(Published {
            event,
            producer,
            key,
            timestamp,
        });
    }
    published
}
