//! Dead-letter publishing: what a service cannot process goes, unchanged, to
//! `<topic>.dlq.<service>` with the same key and headers saying where it came from and why.

use std::time::Duration;

use events::{DeadLetterTopic, Service, Topic};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Header names on dead-lettered messages.
pub mod headers {
    pub const SOURCE_TOPIC: &str = "dlq.source.topic";
    pub const SOURCE_PARTITION: &str = "dlq.source.partition";
    pub const SOURCE_OFFSET: &str = "dlq.source.offset";
    pub const ERROR: &str = "dlq.error";
    pub const ERROR_KIND: &str = "dlq.error.kind";
    pub const ATTEMPTS: &str = "dlq.attempts";
    pub const FAILED_AT: &str = "dlq.failed.at";
    pub const SERVICE: &str = "dlq.service";
    /// The consumer group that gave up on the message (several groups of one service may run,
    /// e.g. side by side in tests).
    pub const GROUP: &str = "dlq.group";
}

pub(crate) struct DeadLetterPublisher {
    producer: FutureProducer,
    service: Service,
    group: String,
}

impl DeadLetterPublisher {
    pub fn new(
        kafka: &crate::kafka::KafkaAccess,
        service: Service,
        group: &str,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        Ok(Self {
            producer: events::producer_config(
                kafka.client_config_for(&format!("{}-dlq", service.name())),
            )
            .create()?,
            service,
            group: group.to_owned(),
        })
    }

    /// Publish `message` to its dead-letter topic; resolves when the brokers acknowledged it.
    pub async fn publish(
        &self,
        source: Topic,
        message: &OwnedMessage,
        kind: &str,
        error: &str,
        attempts: u32,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let topic = DeadLetterTopic::new(source, self.service).name();
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let attempts = attempts.to_string();
        let failed_at = chrono::Utc::now().to_rfc3339();
        let mut headers = OwnedHeaders::new_with_capacity(8);
        // Keep the original headers (traceparent, producer) first.
        if let Some(original) = message.headers() {
            for h in original.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        for (key, value) in [
            (headers::SOURCE_TOPIC, source.name()),
            (headers::SOURCE_PARTITION, partition.as_str()),
            (headers::SOURCE_OFFSET, offset.as_str()),
            (headers::ERROR, error),
            (headers::ERROR_KIND, kind),
            (headers::ATTEMPTS, attempts.as_str()),
            (headers::FAILED_AT, failed_at.as_str()),
            (headers::SERVICE, self.service.name()),
            (headers::GROUP, self.group.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        self.producer
            .send(record, Duration::from_secs(5))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}
