//! Shared set-up of the cluster tests: they run against the real three-broker cluster and the
//! real registry that `scripts/cluster.sh up` starts (addresses from the environment, defaulting
//! to the contract's local ports).

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use events::{EventCodec, EventPublisher};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

pub const WAIT: Duration = Duration::from_secs(30);

pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        .unwrap_or_else(|_| "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094".into())
}

pub fn registry_url() -> String {
    std::env::var("SCHEMA_REGISTRY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into())
}

/// The plaintext local cluster: the `events` crate has no security settings of its own (they
/// are `service_kit::kafka`'s, which depends on this crate), and its tests run on the local one.
pub fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap());
    config
}

pub fn codec() -> Arc<EventCodec> {
    Arc::new(EventCodec::new(&registry_url()).expect("registry settings"))
}

pub fn publisher(codec: Arc<EventCodec>) -> EventPublisher {
    EventPublisher::connect(client_config(), codec, "events-tests").expect("producer")
}

/// Read the one message at `topic`/`partition`/`offset`, waiting at most [`WAIT`].
pub fn fetch(topic: &str, partition: i32, offset: i64) -> OwnedMessage {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("events-tests-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
        .expect("partition offset");
    consumer.assign(&tpl).expect("assign");
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.offset() == offset => return m.detach(),
            Some(Ok(_)) | None => {}
            // Transport errors while a broker is down are transient: librdkafka reconnects
            // and fails over by itself; the bound above decides when to give up.
            Some(Err(e)) => eprintln!("consuming {topic}/{partition}@{offset}: {e} (retrying)"),
        }
    }
    panic!("no message at {topic}/{partition}@{offset} within {WAIT:?}")
}

/// A random user id, so tests never see each other's data.
pub fn user() -> String {
    uuid::Uuid::new_v4().to_string()
}
