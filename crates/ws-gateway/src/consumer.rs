//! The Kafka side: every instance reads every partition of its topics and hands each event,
//! rendered once, to the hub.
//!
//! Each instance runs the shared at-least-once runtime in a consumer group of its own
//! (`ws-gateway-<uuid>`), so the group never splits partitions between instances and any
//! number of them can stand behind a load balancer; undecodable messages still go to
//! `<topic>.dlq.ws-gateway` through the runtime. Before the runtime subscribes, the new
//! group's offsets are committed at the current end of every partition: the instance starts
//! with what is published from its start on (a live feed has no use for last week's events),
//! and nothing published between its start and the group's first assignment is skipped.
//! Should that fail (Kafka still down), `auto.offset.reset=latest` gives the same start, minus
//! that window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use events::Topic;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use service_kit::consumer::{EventHandler, HandleError, Received};

use crate::hub::Hub;
use crate::messages;

/// Routes consumed events to the hub. Never fails: an event nobody listens to is still kept
/// for resume, and there is no effect to retry.
pub struct EventRouter {
    hub: Arc<Hub>,
}

impl EventRouter {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl EventHandler for EventRouter {
    async fn handle(&self, received: &Received) -> Result<(), HandleError> {
        for rendered in messages::render(&received.event) {
            let queued = self.hub.publish(&rendered);
            tracing::trace!(event_id = received.event.event_id(), user = %rendered.user_id, queued, "event routed");
        }
        Ok(())
    }
}

/// A consumer group nobody else uses.
pub fn instance_group(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// How long positioning may take in all: with Kafka away the gateway starts anyway.
const POSITIONING_BOUND: Duration = Duration::from_secs(10);

/// Commit `group`'s offsets at the current end of every partition of `topics`. Blocking, at
/// most about [`POSITIONING_BOUND`].
pub fn start_at_end(
    kafka: &service_kit::kafka::KafkaAccess,
    group: &str,
    topics: &[Topic],
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = kafka
        .client_config_for("ws-gateway-positioning")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let deadline = Instant::now() + POSITIONING_BOUND;
    let mut positions = rdkafka::TopicPartitionList::new();
    for topic in topics {
        for partition in 0..topic.spec().partitions {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                anyhow::bail!("the brokers did not answer within {POSITIONING_BOUND:?}");
            }
            let (_, high) = consumer.fetch_watermarks(topic.name(), partition, left)?;
            positions.add_partition_offset(
                topic.name(),
                partition,
                rdkafka::Offset::Offset(high),
            )?;
        }
    }
    consumer.commit(&positions, CommitMode::Sync)?;
    Ok(())
}
