//! Publishing typed events to their topics with an idempotent producer.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::codec::{EncodeError, EventCodec};
use crate::model::{AnyEvent, Event};

/// Message header names of the contract.
pub mod headers {
    /// W3C trace context of the request or event that caused this one.
    pub const TRACEPARENT: &str = "traceparent";
    /// Name of the producing service.
    pub const PRODUCER: &str = "producer";
}

/// Producer settings every service uses: idempotent, `acks=all`, so an acknowledged write is on
/// at least `min.insync.replicas` brokers and a retry never duplicates or reorders a partition.
/// `client` says where the brokers are and how to authenticate (`service_kit::kafka` builds it).
pub fn producer_config(client: ClientConfig) -> ClientConfig {
    let mut config = client;
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "snappy")
        // Small batching window: a few ms of latency buys far fewer requests under load.
        .set("linger.ms", "5")
        // librdkafka retries internally until this bound; callers see one outcome per message.
        .set("message.timeout.ms", "30000");
    if config.get("client.id").is_none() {
        config.set("client.id", "todo-platform");
    }
    config
}

/// Where a published message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("kafka refused or timed out the message: {0}")]
    Kafka(#[from] KafkaError),
}

/// Publishes events through the codec, with the contract's headers.
#[derive(Clone)]
pub struct EventPublisher {
    producer: FutureProducer,
    codec: Arc<EventCodec>,
    producer_name: &'static str,
}

impl EventPublisher {
    pub fn new(
        producer: FutureProducer,
        codec: Arc<EventCodec>,
        producer_name: &'static str,
    ) -> Self {
        Self {
            producer,
            codec,
            producer_name,
        }
    }

    /// Build the producer from [`producer_config`] over `client`.
    pub fn connect(
        client: ClientConfig,
        codec: Arc<EventCodec>,
        producer_name: &'static str,
    ) -> Result<Self, KafkaError> {
        let producer = producer_config(client).create()?;
        Ok(Self::new(producer, codec, producer_name))
    }

    pub fn codec(&self) -> &Arc<EventCodec> {
        &self.codec
    }

    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Publish one event to its topic, keyed by its key field; resolves once the brokers
    /// acknowledged it (`acks=all`).
    pub async fn publish<E: Event>(
        &self,
        event: &E,
        traceparent: Option<&str>,
    ) -> Result<Delivered, PublishError> {
        let payload = self.codec.encode(event).await?;
        self.send(E::TOPIC.name(), event.key(), &payload, traceparent)
            .await
    }

    /// Publish any event (see [`EventPublisher::publish`]).
    pub async fn publish_any(
        &self,
        event: &AnyEvent,
        traceparent: Option<&str>,
    ) -> Result<Delivered, PublishError> {
        let payload = self.codec.encode_any(event).await?;
        self.send(event.topic().name(), event.key(), &payload, traceparent)
            .await
    }

    /// Send an already encoded payload with the contract's headers.
    pub async fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        traceparent: Option<&str>,
    ) -> Result<Delivered, PublishError> {
        let mut headers = OwnedHeaders::new_with_capacity(2).insert(Header {
            key: headers::PRODUCER,
            value: Some(self.producer_name),
        });
        if let Some(tp) = traceparent {
            headers = headers.insert(Header {
                key: headers::TRACEPARENT,
                value: Some(tp),
            });
        }
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        // The timeout bounds only the wait for room in the local queue; delivery itself is
        // bounded by message.timeout.ms.
        let delivery = self
            .producer
            .send(record, Duration::from_secs(5))
            .await
            .map_err(|(e, _)| e)?;
        Ok(Delivered {
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }
}

/// A header's value as UTF-8 text, if present.
pub fn header_str<'a, M: Message>(message: &'a M, name: &str) -> Option<&'a str> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}
