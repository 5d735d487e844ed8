//! The Kafka side: every instance reads every partition of its topics and hands each event,
//! rendered once, with its place in Kafka, to the hub.
//!
//! Each instance runs the shared at-least-once runtime in a consumer group of its own
//! (`ws-gateway-<uuid>`), so the group never splits partitions between instances and any
//! number of them can stand behind a load balancer; undecodable messages still go to
//! `<topic>.dlq.ws-gateway` through the runtime. Before the runtime subscribes, the new
//! group's offsets are committed at the current end of every partition: the instance starts
//! with what is published from its start on (a live feed has no use for last week's events;
//! a reconnect that needs older ones reads them back), and nothing published between its
//! start and the group's first assignment is skipped. Those offsets are also the hub's start
//! position, what cursors are measured against: so the consumer starts only once they are
//! known (the gateway retries while Kafka is away, refusing connections meanwhile).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use service_kit::consumer::{EventHandler, HandleError, Received};

use crate::cursor::{Layout, Position};
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
        let meta = &received.meta;
        let at = self
            .hub
            .layout()
            .slot(meta.topic, meta.partition)
            .map(|slot| (slot, meta.offset));
        if at.is_none() {
            tracing::warn!(topic = %meta.topic, partition = meta.partition, "a partition the catalogue does not list: delivered live, not resumable");
        }
        let readers = messages::render(&received.event);
        let queued = self.hub.publish(at, &readers);
        tracing::trace!(
            event_id = received.event.event_id(),
            readers = readers.len(),
            queued,
            "event routed"
        );
        Ok(())
    }
}

/// A consumer group nobody else uses.
pub fn instance_group(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// How long positioning may take in all: with Kafka away the gateway starts anyway.
const POSITIONING_BOUND: Duration = Duration::from_secs(10);

/// Commit `group`'s offsets at the current end of every partition of `layout`, and return
/// them. Blocking, at most about [`POSITIONING_BOUND`].
pub fn start_at_end(
    kafka: &service_kit::kafka::KafkaAccess,
    group: &str,
    layout: &Layout,
) -> anyhow::Result<Position> {
    let consumer: BaseConsumer = kafka
        .client_config_for("ws-gateway-positioning")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let deadline = Instant::now() + POSITIONING_BOUND;
    let mut positions = rdkafka::TopicPartitionList::new();
    let mut start = Vec::with_capacity(layout.len());
    for (topic, partition) in layout.slots() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            anyhow::bail!("the brokers did not answer within {POSITIONING_BOUND:?}");
        }
        let (_, high) = consumer.fetch_watermarks(topic.name(), *partition, left)?;
        positions.add_partition_offset(topic.name(), *partition, rdkafka::Offset::Offset(high))?;
        start.push(high);
    }
    consumer.commit(&positions, CommitMode::Sync)?;
    Ok(Position::from_offsets(start))
}
