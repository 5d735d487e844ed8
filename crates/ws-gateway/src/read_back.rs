//! Reading Kafka back for a reconnect whose cursor is older than what this instance holds: it
//! started after the client's last message (another instance served it), or the buffer let
//! those messages go. Kafka keeps every topic for days, so what the client missed is still
//! there: read each partition from the cursor's offset to where the buffer's coverage starts,
//! keep the user's messages, and send them before the buffer's.
//!
//! Bounded three ways, each answered with `resync` (the client reloads over REST): at most
//! `WS_REPLAY_READ_BACK` messages of all users to read, at most
//! `WS_REPLAY_READ_BACK_TIMEOUT_MS`, and offsets Kafka has already deleted (retention) are
//! refused rather than skipped (`auto.offset.reset=error`). A few read-backs run at once; the
//! rest wait their turn within the same time bound.

use std::sync::Arc;
use std::time::Duration;

use events::{EventCodec, Topic};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use service_kit::kafka::KafkaAccess;
use tokio::sync::Semaphore;

use crate::config::ReplayLimits;
use crate::cursor::{Layout, Position};
use crate::messages::{self, Outbound};
use crate::replay::Gap;

/// Read-backs running at once: each is a Kafka consumer of its own.
const CONCURRENT: usize = 4;

/// Messages read before the cursor on each partition, for their ids only: an event published
/// twice has its second copy close behind the first, and a client that had the first must not
/// get the second after the cursor.
const LOOKBEHIND: i64 = 1000;

/// What a read-back found.
pub struct ReadBackResult {
    /// The user's messages after the cursor.
    pub messages: Vec<Outbound>,
    /// The position reached (the cursor joined with the read-back's end).
    pub reached: Position,
    /// Ids of the user's events just before the cursor: the client has them.
    pub known: Vec<String>,
}

pub struct ReadBack {
    kafka: KafkaAccess,
    codec: Arc<EventCodec>,
    layout: Arc<Layout>,
    group: String,
    limit: usize,
    timeout: Duration,
    permits: Semaphore,
}

impl ReadBack {
    pub fn new(
        kafka: KafkaAccess,
        codec: Arc<EventCodec>,
        layout: Arc<Layout>,
        group_prefix: &str,
        limits: &ReplayLimits,
    ) -> Self {
        Self {
            kafka,
            codec,
            layout,
            // Never joined nor committed (partitions are assigned), but librdkafka wants one;
            // under the service's own prefix, which its ACLs allow.
            group: format!("{group_prefix}-read-back"),
            limit: limits.read_back,
            timeout: limits.read_back_timeout,
            permits: Semaphore::new(CONCURRENT),
        }
    }

    /// `user`'s messages between `from` and `to`, oldest first per partition, each with the
    /// cursor of what the client has seen once it has it; and the position reached (`from`
    /// joined with `to`).
    pub async fn messages(
        &self,
        user: &str,
        from: &Position,
        to: &Position,
    ) -> Result<ReadBackResult, Gap> {
        let wanted: Vec<(usize, i64, i64)> = from
            .iter()
            .zip(to.iter())
            .filter(|((_, a), (_, b))| a < b)
            .map(|((slot, a), (_, b))| (slot, a, b))
            .collect();
        let total: i64 = wanted.iter().map(|(_, a, b)| b - a).sum();
        if total > self.limit as i64 {
            return Err(Gap::TooFar);
        }
        match tokio::time::timeout(self.timeout, self.read(user, from, &wanted)).await {
            Ok(Ok((messages, known))) => Ok(ReadBackResult {
                messages,
                reached: from.joined(to),
                known,
            }),
            Ok(Err(gap)) => Err(gap),
            Err(_) => {
                tracing::warn!(timeout = ?self.timeout, "read-back did not finish in time");
                Err(Gap::Unavailable)
            }
        }
    }

    async fn read(
        &self,
        user: &str,
        from: &Position,
        wanted: &[(usize, i64, i64)],
    ) -> Result<(Vec<Outbound>, Vec<String>), Gap> {
        let _permit = self.permits.acquire().await.map_err(|_| Gap::Unavailable)?;
        let consumer: StreamConsumer = self
            .kafka
            .client_config_for("ws-gateway-read-back")
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "error")
            .create()
            .map_err(|e| unavailable(&e))?;
        // Where each partition starts: the cursor (its messages older than the topic's
        // retention mean resync), less the look-behind, within what Kafka still holds.
        let consumer = Arc::new(consumer);
        let (probe, layout, timeout) = (consumer.clone(), self.layout.clone(), self.timeout);
        let slots: Vec<(usize, i64)> = wanted.iter().map(|(s, start, _)| (*s, *start)).collect();
        let starts = tokio::task::spawn_blocking(move || {
            slots
                .into_iter()
                .map(|(slot, start)| {
                    let (topic, partition) = layout.slots()[slot];
                    let (low, _) = probe.fetch_watermarks(topic.name(), partition, timeout)?;
                    Ok((slot, start, low))
                })
                .collect::<Result<Vec<_>, KafkaError>>()
        })
        .await
        .map_err(|_| Gap::Unavailable)?
        .map_err(|e| unavailable(&e))?;
        let mut partitions = rdkafka::TopicPartitionList::new();
        for (slot, start, low) in starts {
            if start < low {
                return Err(Gap::TooOld);
            }
            let (topic, partition) = self.layout.slots()[slot];
            let from = (start - LOOKBEHIND).max(low);
            partitions
                .add_partition_offset(topic.name(), partition, rdkafka::Offset::Offset(from))
                .map_err(|e| unavailable(&e))?;
        }
        consumer.assign(&partitions).map_err(|e| unavailable(&e))?;
        let result = self.collect(&consumer, user, from, wanted).await;
        // Closing a consumer waits for its threads: not on the async runtime.
        tokio::task::spawn_blocking(move || drop(consumer));
        result
    }

    async fn collect(
        &self,
        consumer: &StreamConsumer,
        user: &str,
        from: &Position,
        wanted: &[(usize, i64, i64)],
    ) -> Result<(Vec<Outbound>, Vec<String>), Gap> {
        let mut remaining: Vec<(usize, i64)> =
            wanted.iter().map(|(s, _, end)| (*s, *end)).collect();
        let mut seen = from.clone();
        let mut out = Vec::new();
        let mut known = Vec::new();
        while !remaining.is_empty() {
            let message = match consumer.recv().await {
                Ok(m) => m,
                Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset)) => {
                    return Err(Gap::TooOld);
                }
                Err(e) => return Err(unavailable(&e)),
            };
            let Some(slot) = message
                .topic()
                .parse::<Topic>()
                .ok()
                .and_then(|t| self.layout.slot(t, message.partition()))
            else {
                continue;
            };
            let offset = message.offset();
            let Some(i) = remaining.iter().position(|(s, _)| *s == slot) else {
                continue;
            };
            let end = remaining[i].1;
            if offset < from.get(slot) {
                // Looking behind the cursor: what the client has, by id.
                if let Ok(event) = self.codec.decode(message.topic(), message.payload()).await
                    && events::audience::sees(&event, user)
                {
                    known.push(event.event_id().to_owned());
                }
            } else if offset < end {
                seen.advance(slot, offset + 1);
                // An undecodable message went to the dead-letter topic for the live path
                // too: skipping it here matches what the client would have been sent.
                if let Ok(event) = self.codec.decode(message.topic(), message.payload()).await {
                    let cursor = self.layout.encode(&seen);
                    out.extend(
                        messages::render(&event)
                            .iter()
                            .filter(|r| r.user_id == user)
                            .map(|r| r.outbound(&cursor, Some((slot, offset)))),
                    );
                }
            }
            if offset + 1 >= end {
                remaining.swap_remove(i);
            }
        }
        Ok((out, known))
    }
}

impl ReadBack {
    /// Whether `seen` (a client's cursor, ahead of this instance's `position` somewhere) is
    /// ahead of what Kafka itself holds: a cursor from topics since deleted and recreated (a
    /// wiped cluster), whose offsets started again. Taken at its word it would hide every new
    /// message until the offsets caught up; it gets resync instead. An instance merely behind
    /// the client is normal and answers `false`; so does a Kafka that does not answer.
    pub async fn is_ahead_of_kafka(&self, seen: &Position, position: &Position) -> bool {
        let ahead: Vec<(Topic, i32, i64)> = seen
            .iter()
            .filter(|(slot, offset)| *offset > position.get(*slot))
            .map(|(slot, offset)| {
                let (topic, partition) = self.layout.slots()[slot];
                (topic, partition, offset)
            })
            .collect();
        if ahead.is_empty() {
            return false;
        }
        let config = self.kafka.client_config_for("ws-gateway-read-back");
        let timeout = self.timeout;
        let check = move || -> Result<bool, KafkaError> {
            let consumer: rdkafka::consumer::BaseConsumer = config.create()?;
            for (topic, partition, offset) in ahead {
                let (_, high) = consumer.fetch_watermarks(topic.name(), partition, timeout)?;
                if offset > high {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        match tokio::task::spawn_blocking(check).await {
            Ok(Ok(ahead)) => ahead,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot compare a cursor with the high watermarks");
                false
            }
            Err(_) => false,
        }
    }
}

fn unavailable(e: &KafkaError) -> Gap {
    tracing::warn!(error = %e, "reading back from Kafka failed");
    Gap::Unavailable
}
