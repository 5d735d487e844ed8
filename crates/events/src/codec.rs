//! Avro encoding and decoding in the Confluent wire format, backed by the schema registry.
//!
//! Wire format: magic byte `0`, the schema id as a 4-byte big-endian integer, the Avro binary body.
//!
//! * Producing: [`EventCodec::register`] registers (or looks up) a topic's schema under
//!   `<topic>-value` once, at start-up, and keeps the id; encoding after that never calls the
//!   registry, so a running producer survives a registry restart.
//! * Consuming: the writer's schema is fetched by id on first sight and cached (by
//!   `schema_registry_converter`'s decoder); a body written with an older schema is resolved
//!   against the current one, defaults filled in. When writer and reader schemas are the same,
//!   the body is deserialised straight into the Rust type without an intermediate `Value`.

use std::io::Cursor;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::ResolvedSchema;
use apache_avro::writer::datum::GenericDatumWriter;
use dashmap::DashMap;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::{SrSettings, post_schema};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    BytesResult, SchemaType, SuppliedSchema, get_bytes_result,
};

use crate::catalogue::Topic;
use crate::model::*;
use crate::registry::RegistryAccess;
use crate::validate::InvalidEvent;

/// Upper bound for any single allocation the Avro decoder makes from a length it read: a garbage
/// body must not make a consumer allocate gigabytes.
const MAX_AVRO_ALLOCATION_BYTES: usize = 8 * 1024 * 1024;
const MAGIC_BYTE: u8 = 0;

/// Why a message could not be decoded into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message has no value")]
    MissingValue,
    #[error("not in the Confluent wire format: {0}")]
    NotWireFormat(&'static str),
    #[error("schema id {0} is not known to the schema registry")]
    UnknownSchemaId(u32),
    #[error("schema id {id} cannot be used: {reason}")]
    UnusableSchema { id: u32, reason: String },
    #[error("schema registry unavailable: {0}")]
    RegistryUnavailable(String),
    #[error("topic {topic} carries {expected}, but this message is a {found}")]
    WrongType {
        topic: Topic,
        expected: &'static str,
        found: String,
    },
    #[error("Avro body does not match its schema: {0}")]
    Malformed(String),
    #[error("impossible event: {0}")]
    Invalid(#[from] InvalidEvent),
    #[error("not a topic of this system: {0}")]
    UnknownTopic(String),
}

impl DecodeError {
    /// A retryable error may succeed later (the registry is down); every other one is permanent
    /// for this message and sends it to the dead-letter topic.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DecodeError::RegistryUnavailable(_))
    }

    /// A short stable name, for metrics labels and dead-letter headers.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::MissingValue => "missing_value",
            DecodeError::NotWireFormat(_) => "not_wire_format",
            DecodeError::UnknownSchemaId(_) => "unknown_schema_id",
            DecodeError::UnusableSchema { .. } => "unusable_schema",
            DecodeError::RegistryUnavailable(_) => "registry_unavailable",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::Invalid(_) => "invalid",
            DecodeError::UnknownTopic(_) => "unknown_topic",
        }
    }
}

/// Why an event could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("schema registry unavailable while registering {subject}: {reason}")]
    RegistryUnavailable { subject: String, reason: String },
    #[error("schema registry refused {subject}: {reason}")]
    Refused { subject: String, reason: String },
    #[error("event does not fit its schema: {0}")]
    Avro(String),
}

impl EncodeError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, EncodeError::RegistryUnavailable { .. })
    }
}

/// The current (reader) schema of every topic, parsed once from `schemas/`.
static READER_SCHEMAS: LazyLock<[&'static Schema; Topic::ALL.len()]> = LazyLock::new(|| {
    Topic::ALL.map(|topic| {
        // The schemas are compiled in and parsed by this crate's tests: a failure here is a
        // broken build, not a runtime condition.
        #[allow(clippy::expect_used)]
        let schema = Schema::parse_str(topic.spec().schema).expect("schemas/*.avsc parse");
        &*Box::leak(Box::new(schema))
    })
});

/// The parsed current schema of a topic.
pub fn reader_schema(topic: Topic) -> &'static Schema {
    READER_SCHEMAS[topic.index()]
}

/// What is kept per registered topic to encode without touching the registry.
struct Registered {
    id: u32,
    writer: GenericDatumWriter<'static>,
}

/// How to read bodies written with one schema id.
struct ReadPlan {
    topic: Topic,
    reader: GenericDatumReader<'static>,
    /// The writer schema is the reader schema: deserialise straight into the Rust type.
    direct: bool,
}

/// Encodes and decodes events; cheap to share behind an [`Arc`].
pub struct EventCodec {
    settings: SrSettings,
    decoder: AvroDecoder,
    /// One registration per topic however many encodes race for it (single flight).
    registered: [tokio::sync::OnceCell<Registered>; Topic::ALL.len()],
    plans: DashMap<u32, Arc<ReadPlan>>,
}

impl std::fmt::Debug for EventCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventCodec").finish_non_exhaustive()
    }
}

impl EventCodec {
    /// A codec talking to the unauthenticated Confluent-compatible registry at `registry_url`.
    pub fn new(registry_url: &str) -> Result<Self, SRCError> {
        Self::connect(&RegistryAccess::plain(registry_url))
    }

    /// A codec talking to the registry with its credentials and CA bundle, if any.
    pub fn connect(access: &RegistryAccess) -> Result<Self, SRCError> {
        apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION_BYTES);
        let timeout = Duration::from_secs(5);
        let mut builder = SrSettings::new_builder(access.url().to_owned());
        builder.set_timeout(timeout).no_proxy();
        if let Some((user, password)) = access.basic_auth() {
            builder.set_basic_authorization(user, Some(password));
        }
        let settings = builder.build_with(access.http_builder(timeout))?;
        Ok(Self {
            decoder: AvroDecoder::new(settings.clone()),
            settings,
            registered: std::array::from_fn(|_| tokio::sync::OnceCell::new()),
            plans: DashMap::new(),
        })
    }

    /// Register the topic's schema under `<topic>-value` (or find it already there) and keep its
    /// id for encoding. Returns the id.
    pub async fn register(&self, topic: Topic) -> Result<u32, EncodeError> {
        let registered = self.registered[topic.index()]
            .get_or_try_init(|| self.register_now(topic))
            .await?;
        Ok(registered.id)
    }

    async fn register_now(&self, topic: Topic) -> Result<Registered, EncodeError> {
        let spec = topic.spec();
        let subject = topic.subject();
        let supplied = SuppliedSchema::new(
            Some(spec.value_type.to_owned()),
            SchemaType::Avro,
            spec.schema.to_owned(),
        );
        let registered = post_schema(&self.settings, subject.clone(), supplied)
            .await
            .map_err(|e| {
                let reason = e.to_string();
                if e.retriable || status_is_server_error(&e) {
                    EncodeError::RegistryUnavailable {
                        subject: subject.clone(),
                        reason,
                    }
                } else {
                    EncodeError::Refused {
                        subject: subject.clone(),
                        reason,
                    }
                }
            })?;
        let writer = GenericDatumWriter::builder(reader_schema(topic))
            .human_readable(false)
            .build()
            .map_err(|e| EncodeError::Avro(e.to_string()))?;
        Ok(Registered {
            id: registered.id,
            writer,
        })
    }

    /// Register every topic in `topics`; what a producer calls at start.
    pub async fn register_all(&self, topics: &[Topic]) -> Result<Vec<(Topic, u32)>, EncodeError> {
        let mut ids = Vec::with_capacity(topics.len());
        for &topic in topics {
            ids.push((topic, self.register(topic).await?));
        }
        Ok(ids)
    }

    /// The schema id used to encode `topic`, when registered.
    pub fn registered_id(&self, topic: Topic) -> Option<u32> {
        self.registered[topic.index()].get().map(|r| r.id)
    }

    /// Encode an event in the wire format; registers its schema on first use.
    pub async fn encode<E: Event>(&self, event: &E) -> Result<Vec<u8>, EncodeError> {
        if self.registered[E::TOPIC.index()].get().is_none() {
            self.register(E::TOPIC).await?;
        }
        self.encode_registered(event)
    }

    /// Encode an event whose topic is already registered, without awaiting anything.
    pub fn encode_registered<E: Event>(&self, event: &E) -> Result<Vec<u8>, EncodeError> {
        let Some(registered) = self.registered[E::TOPIC.index()].get() else {
            return Err(EncodeError::Avro(format!(
                "schema of {} not registered yet",
                E::TOPIC
            )));
        };
        // The header is written here rather than with schema_registry_converter's `get_payload`,
        // which takes the Avro body as a separate Vec and copies it behind the header: this way
        // the body is serialised straight into the one buffer the message is sent from.
        // Decoding uses the converter's `get_bytes_result`.
        let mut buf = Vec::with_capacity(256);
        buf.push(MAGIC_BYTE);
        buf.extend_from_slice(&registered.id.to_be_bytes());
        registered
            .writer
            .write_ser(&mut buf, event)
            .map_err(|e| EncodeError::Avro(e.to_string()))?;
        Ok(buf)
    }

    /// Encode any event (see [`EventCodec::encode`]).
    pub async fn encode_any(&self, event: &AnyEvent) -> Result<Vec<u8>, EncodeError> {
        crate::model::with_event!(event, e => self.encode(e).await)
    }

    /// Decode a message consumed from `topic` into the event type of that topic.
    pub async fn decode(
        &self,
        topic: &str,
        payload: Option<&[u8]>,
    ) -> Result<AnyEvent, DecodeError> {
        let topic: Topic = topic
            .parse()
            .map_err(|_| DecodeError::UnknownTopic(topic.to_owned()))?;
        Ok(match topic {
            Topic::TaskCreated => self
                .decode_as::<TaskCreatedEvent>(payload)
                .await?
                .into_any(),
            Topic::TaskUpdated => self
                .decode_as::<TaskUpdatedEvent>(payload)
                .await?
                .into_any(),
            Topic::TaskCompleted => self
                .decode_as::<TaskCompletedEvent>(payload)
                .await?
                .into_any(),
            Topic::TaskDeleted => self
                .decode_as::<TaskDeletedEvent>(payload)
                .await?
                .into_any(),
            Topic::UserRegistered => self
                .decode_as::<UserRegisteredEvent>(payload)
                .await?
                .into_any(),
            Topic::UserAuthenticated => self
                .decode_as::<UserAuthenticatedEvent>(payload)
                .await?
                .into_any(),
            Topic::NotificationSent => self
                .decode_as::<NotificationSentEvent>(payload)
                .await?
                .into_any(),
            Topic::ReminderTriggered => self
                .decode_as::<ReminderTriggeredEvent>(payload)
                .await?
                .into_any(),
            Topic::UserUpdated => self
                .decode_as::<UserUpdatedEvent>(payload)
                .await?
                .into_any(),
            Topic::TaskShared => self.decode_as::<TaskSharedEvent>(payload).await?.into_any(),
            Topic::TaskAssigned => self
                .decode_as::<TaskAssignedEvent>(payload)
                .await?
                .into_any(),
        })
    }

    /// Decode a wire-format payload into `E`, which must be the type of the topic it came from.
    pub async fn decode_as<E: Event>(&self, payload: Option<&[u8]>) -> Result<E, DecodeError> {
        let (id, body) = match get_bytes_result(payload) {
            BytesResult::Valid(id, body) => (id, body),
            BytesResult::Null => return Err(DecodeError::MissingValue),
            BytesResult::Invalid(bytes) if bytes.len() < 5 => {
                return Err(DecodeError::NotWireFormat("shorter than the 5-byte header"));
            }
            BytesResult::Invalid(_) => {
                return Err(DecodeError::NotWireFormat(
                    "first byte is not the magic byte 0",
                ));
            }
        };
        let plan = self.read_plan(id, E::TOPIC).await?;
        if plan.topic != E::TOPIC {
            return Err(DecodeError::WrongType {
                topic: E::TOPIC,
                expected: E::TOPIC.spec().value_type,
                found: plan.topic.spec().value_type.to_owned(),
            });
        }
        let mut cursor = Cursor::new(body);
        let event: E = if plan.direct {
            plan.reader
                .read_deser(&mut cursor)
                .map_err(|e| DecodeError::Malformed(e.to_string()))?
        } else {
            let value = plan
                .reader
                .read_value(&mut cursor)
                .map_err(|e| DecodeError::Malformed(e.to_string()))?;
            apache_avro::from_value(&value).map_err(|e| DecodeError::Malformed(e.to_string()))?
        };
        if cursor.position() as usize != body.len() {
            return Err(DecodeError::Malformed(format!(
                "{} bytes left over after the record",
                body.len() - cursor.position() as usize
            )));
        }
        event.validate()?;
        Ok(event)
    }

    async fn read_plan(&self, id: u32, expected: Topic) -> Result<Arc<ReadPlan>, DecodeError> {
        if let Some(plan) = self.plans.get(&id) {
            return Ok(plan.clone());
        }
        let writer = self.decoder.get_schema(id).await.map_err(|e| {
            if e.retriable {
                DecodeError::RegistryUnavailable(e.to_string())
            } else if status_is(&e, "404") {
                DecodeError::UnknownSchemaId(id)
            } else if status_is_server_error(&e) {
                // A registry in trouble is not the message's fault: forget the cached failure
                // so the retry asks again.
                self.decoder.remove_errors_from_cache();
                DecodeError::RegistryUnavailable(e.to_string())
            } else {
                DecodeError::UnusableSchema {
                    id,
                    reason: e.to_string(),
                }
            }
        })?;
        let found = match &writer.parsed {
            Schema::Record(record) => record.name.fullname(None),
            other => format!("{other:?}"),
        };
        let Some(topic) = Topic::ALL
            .into_iter()
            .find(|t| t.spec().value_type == found)
        else {
            return Err(DecodeError::WrongType {
                topic: expected,
                expected: expected.spec().value_type,
                found,
            });
        };
        let reader_schema = reader_schema(topic);
        // Plans are built once per schema id and the set of ids is small and bounded by the
        // registry's versions, so the leaked writer schema lives as long as the process anyway.
        let writer_schema: &'static Schema = Box::leak(Box::new(writer.parsed.clone()));
        let direct = writer_schema == reader_schema;
        let unusable = |e: apache_avro::Error| DecodeError::UnusableSchema {
            id,
            reason: e.to_string(),
        };
        let resolved = ResolvedSchema::try_from(writer_schema).map_err(unusable)?;
        let reader = if direct {
            GenericDatumReader::builder(writer_schema)
                .resolved_writer_schemata(resolved)
                .human_readable(false)
                .build()
        } else {
            GenericDatumReader::builder(writer_schema)
                .resolved_writer_schemata(resolved)
                .reader_schema(reader_schema)
                .human_readable(false)
                .build()
        }
        .map_err(unusable)?;
        let plan = Arc::new(ReadPlan {
            topic,
            reader,
            direct,
        });
        self.plans.insert(id, plan.clone());
        Ok(plan)
    }
}

fn status_is(e: &SRCError, status: &str) -> bool {
    e.error.contains(&format!("status {status}"))
}

fn status_is_server_error(e: &SRCError) -> bool {
    e.error.contains("status 5")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;
    use crate::validate::Validate;
    use apache_avro::types::Value;

    /// The Rust type and the .avsc must have the same fields, in the same order, of compatible
    /// types; checked by serialising a fully populated sample against the schema.
    fn assert_conforms(event: &AnyEvent) {
        let topic = event.topic();
        let schema = reader_schema(topic);
        let value = crate::model::with_event!(event, e => apache_avro::to_value(e)).unwrap();
        let Value::Record(fields) = &value else {
            panic!("{topic}: not a record")
        };
        let Schema::Record(record) = schema else {
            panic!("{topic}: schema not a record")
        };
        let rust: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        let avro: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            rust, avro,
            "{topic}: Rust fields differ from schemas/{topic}.avsc"
        );
        assert!(
            value.validate(schema),
            "{topic}: sample does not validate against its schema"
        );
    }

    fn encode_plain<E: Event>(event: &E) -> Vec<u8> {
        GenericDatumWriter::builder(reader_schema(E::TOPIC))
            .human_readable(false)
            .build()
            .unwrap()
            .write_ser_to_vec(event)
            .unwrap()
    }

    fn decode_plain<E: Event>(bytes: &[u8]) -> E {
        GenericDatumReader::builder(reader_schema(E::TOPIC))
            .human_readable(false)
            .build()
            .unwrap()
            .read_deser(&mut Cursor::new(bytes))
            .unwrap()
    }

    #[test]
    fn every_event_type_matches_its_schema_field_for_field() {
        for event in sample::one_of_each("0b6f2a8e-33c0-4c3b-9f5e-9a3f9e6f0a11") {
            assert_conforms(&event);
        }
    }

    #[test]
    fn every_sample_is_valid() {
        for event in sample::one_of_each("0b6f2a8e-33c0-4c3b-9f5e-9a3f9e6f0a11") {
            assert_eq!(event.validate(), Ok(()), "{}", event.topic());
        }
    }

    #[test]
    fn serde_bodies_round_trip_without_a_registry() {
        let user = "0b6f2a8e-33c0-4c3b-9f5e-9a3f9e6f0a11";
        let e = sample::task_created(user);
        assert_eq!(decode_plain::<TaskCreatedEvent>(&encode_plain(&e)), e);
        let e = sample::user_authenticated(user);
        assert_eq!(decode_plain::<UserAuthenticatedEvent>(&encode_plain(&e)), e);
        let e = sample::notification_sent(user);
        assert_eq!(decode_plain::<NotificationSentEvent>(&encode_plain(&e)), e);
        let mut e = sample::task_updated(user);
        e.recurrence = Some(sample::recurrence());
        assert_eq!(decode_plain::<TaskUpdatedEvent>(&encode_plain(&e)), e);
    }

    #[test]
    fn seed_fields_of_task_created_and_completed_come_first_and_unchanged() {
        for (topic, seed) in [
            (Topic::TaskCreated, SEED_TASK_CREATED),
            (Topic::TaskCompleted, SEED_TASK_COMPLETED),
        ] {
            let current: serde_json::Value = serde_json::from_str(topic.spec().schema).unwrap();
            let seed: serde_json::Value = serde_json::from_str(seed).unwrap();
            let current_fields = current["fields"].as_array().unwrap();
            let seed_fields = seed["fields"].as_array().unwrap();
            for (i, seed_field) in seed_fields.iter().enumerate() {
                let mut field = current_fields[i].clone();
                field.as_object_mut().unwrap().remove("doc");
                assert_eq!(&field, seed_field, "{topic}: seed field {i} changed");
            }
            for added in &current_fields[seed_fields.len()..] {
                assert!(
                    added.get("default").is_some(),
                    "{topic}: added field {} has no default",
                    added["name"]
                );
            }
            assert_eq!(current["name"], seed["name"]);
            assert_eq!(current["namespace"], seed["namespace"]);
        }
    }

    #[test]
    fn every_field_added_after_the_first_version_is_backward_compatible() {
        // Every schema parses, and reading a body written with the seed schema works with the
        // current one (defaults fill the new fields).
        for topic in Topic::ALL {
            let _ = reader_schema(topic);
        }
        let seed = Schema::parse_str(SEED_TASK_CREATED).unwrap();
        let current = reader_schema(Topic::TaskCreated);
        let compat =
            apache_avro::schema_compatibility::SchemaCompatibility::can_read(&seed, current);
        assert!(compat.is_ok(), "{compat:?}");
    }

    /// The seed definitions of SPEC section 3, verbatim.
    pub(crate) const SEED_TASK_CREATED: &str =
        include_str!("../tests/fixtures/seed-task-created.avsc");
    pub(crate) const SEED_TASK_COMPLETED: &str =
        include_str!("../tests/fixtures/seed-task-completed.avsc");
}
