//! The events crate against the real cluster and registry.

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

mod support;

use std::process::Command;

use apache_avro::Schema;
use apache_avro::types::Value;
use events::admin::{DesiredTopic, TopicAdmin};
use events::registry::RegistryAdmin;
use events::{AnyEvent, DecodeError, Event, Topic, headers, sample};
use rdkafka::Message;
use support::*;

#[tokio::test]
async fn every_event_type_round_trips_through_its_topic_with_its_key() {
    let codec = codec();
    let publisher = publisher(codec.clone());
    for event in sample::one_of_each(&user()) {
        let delivered = publisher
            .publish_any(
                &event,
                Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            )
            .await
            .expect("publish");
        let topic = event.topic().name();
        let message = fetch(topic, delivered.partition, delivered.offset);
        assert_eq!(message.key(), Some(event.key().as_bytes()), "{topic}: key");
        let decoded = codec
            .decode(topic, message.payload())
            .await
            .expect("decode");
        assert_eq!(decoded, event, "{topic}: round trip");
        assert_eq!(
            events::publish::header_str(&message, headers::PRODUCER),
            Some("events-tests")
        );
        assert_eq!(
            events::publish::header_str(&message, headers::TRACEPARENT),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
    }
}

#[tokio::test]
async fn the_key_is_the_catalogue_key_field() {
    for event in sample::one_of_each(&user()) {
        let json = event.to_json();
        let field = event.topic().spec().key_field;
        let expected = json[field]
            .as_str()
            .or_else(|| json["email"].as_str())
            .unwrap();
        assert_eq!(event.key(), expected, "{}", event.topic());
    }
}

#[tokio::test]
async fn the_registry_holds_a_subject_per_topic_with_backward_compatibility() {
    let codec = codec();
    codec.register_all(&Topic::ALL).await.expect("register");
    let registry = RegistryAdmin::new(&registry_url()).unwrap();
    let subjects = registry.subjects().await.expect("subjects");
    for topic in Topic::ALL {
        assert!(
            subjects.contains(&topic.subject()),
            "missing {}",
            topic.subject()
        );
        assert_eq!(
            registry
                .compatibility(Some(&topic.subject()))
                .await
                .unwrap(),
            "BACKWARD"
        );
    }
}

fn with_extra_field(field: serde_json::Value) -> String {
    let mut schema: serde_json::Value =
        serde_json::from_str(Topic::TaskCreated.spec().schema).unwrap();
    schema["fields"].as_array_mut().unwrap().push(field);
    schema.to_string()
}

#[tokio::test]
async fn the_registry_refuses_an_incompatible_task_created_schema() {
    let codec = codec();
    codec
        .register(Topic::TaskCreated)
        .await
        .expect("register current");
    let registry = RegistryAdmin::new(&registry_url()).unwrap();
    let subject = Topic::TaskCreated.subject();

    let no_default = with_extra_field(serde_json::json!({"name": "assignee", "type": "string"}));
    let err = registry
        .register(&subject, &no_default)
        .await
        .expect_err("must be refused");
    assert_eq!(err.status(), Some(409), "{err}");

    let mut changed_type: serde_json::Value =
        serde_json::from_str(Topic::TaskCreated.spec().schema).unwrap();
    changed_type["fields"][4]["type"] = serde_json::json!("long"); // title: string -> long
    let err = registry
        .register(&subject, &changed_type.to_string())
        .await
        .expect_err("must be refused");
    assert_eq!(err.status(), Some(409), "{err}");

    // A compatible change (new field with a default) would be accepted: the rule is not just
    // "refuse everything".
    let with_default = with_extra_field(
        serde_json::json!({"name": "assignee", "type": ["null", "string"], "default": null}),
    );
    assert!(
        registry
            .is_compatible(&subject, &with_default)
            .await
            .unwrap()
    );
    assert!(!registry.is_compatible(&subject, &no_default).await.unwrap());
}

/// What `make bench` does with a baseline's older schemas: registered as a new version for a
/// run, then deleted for good, leaving the subject as it was.
#[tokio::test]
async fn a_version_deleted_for_good_is_gone_from_its_subject() {
    let registry = RegistryAdmin::new(&registry_url()).unwrap();
    let subject = format!("deletion-test-{}-value", user());
    let first = with_extra_field(
        serde_json::json!({"name": "first", "type": ["null", "string"], "default": null}),
    );
    let second = with_extra_field(
        serde_json::json!({"name": "second", "type": ["null", "string"], "default": null}),
    );
    registry.register(&subject, &first).await.unwrap();
    registry.register(&subject, &second).await.unwrap();
    assert_eq!(registry.versions(&subject).await.unwrap(), vec![1, 2]);

    registry.delete_version(&subject, 2).await.unwrap();
    assert_eq!(registry.versions(&subject).await.unwrap(), vec![1]);
    // Gone for good: a second deletion finds nothing to delete.
    let err = registry.delete_version(&subject, 2).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    registry.delete_version(&subject, 1).await.unwrap();
}

#[tokio::test]
async fn a_task_created_written_with_the_seed_schema_reads_with_defaults() {
    let seed_json = include_str!("fixtures/seed-task-created.avsc");
    let seed = Schema::parse_str(seed_json).unwrap();
    let registry = RegistryAdmin::new(&registry_url()).unwrap();
    // The seed goes under a scratch subject: registering it as a new version of
    // task.created-value would make the old schema the subject's latest.
    let seed_id = registry
        .register("evolution-test.task.created.seed-value", seed_json)
        .await
        .expect("register seed");

    let (user, task, event_id) = (user(), user(), user());
    let record = Value::Record(vec![
        ("eventId".into(), Value::String(event_id.clone())),
        ("eventTimestamp".into(), Value::Long(events::now_millis())),
        ("userId".into(), Value::String(user.clone())),
        ("taskId".into(), Value::String(task.clone())),
        ("title".into(), Value::String("Seeded".into())),
        ("description".into(), Value::Union(0, Box::new(Value::Null))),
        ("priority".into(), Value::Enum(1, "HIGH".into())),
        ("dueDate".into(), Value::Union(0, Box::new(Value::Null))),
        ("categoryId".into(), Value::Union(0, Box::new(Value::Null))),
        (
            "tags".into(),
            Value::Array(vec![Value::String("old".into())]),
        ),
    ]);
    let body = apache_avro::writer::datum::GenericDatumWriter::builder(&seed)
        .build()
        .unwrap()
        .write_value_to_vec(record)
        .unwrap();
    let mut payload = vec![0u8];
    payload.extend_from_slice(&seed_id.to_be_bytes());
    payload.extend_from_slice(&body);

    let codec = codec();
    let publisher = publisher(codec.clone());
    let delivered = publisher
        .send(Topic::TaskCreated.name(), &user, &payload, None)
        .await
        .expect("send");
    let message = fetch(
        Topic::TaskCreated.name(),
        delivered.partition,
        delivered.offset,
    );
    let AnyEvent::TaskCreated(e) = codec
        .decode(Topic::TaskCreated.name(), message.payload())
        .await
        .expect("decode seed-written event")
    else {
        panic!("not a TaskCreated")
    };
    assert_eq!(
        (e.event_id.as_str(), e.task_id.as_str(), e.title.as_str()),
        (event_id.as_str(), task.as_str(), "Seeded")
    );
    assert_eq!(e.priority, events::Priority::High);
    assert_eq!(e.tags, vec!["old".to_string()]);
    // Fields the seed did not have come from the defaults of the current schema.
    assert_eq!(e.version, 1);
    assert_eq!(e.status, events::TaskStatus::Open);
    assert_eq!(e.recurrence, None);
    assert!(e.reminders.is_empty());
    assert_eq!(e.series_id, None);
}

#[tokio::test]
async fn topic_configurations_on_the_brokers_match_the_catalogue() {
    let admin = TopicAdmin::connect(&client_config()).unwrap();
    let desired = DesiredTopic::everything();
    let names: Vec<&str> = desired.iter().map(|d| d.name.as_str()).collect();
    let states = admin.describe(&names).await.expect("describe");
    assert_eq!(states.len(), desired.len());
    for (d, s) in desired.iter().zip(&states) {
        assert_eq!(s.partitions, d.partitions, "{}", d.name);
        assert_eq!(s.replication_factor, 3, "{}", d.name);
        assert_eq!(s.configs, d.configs, "{}", d.name);
    }
    let brokers = admin.brokers().await.unwrap();
    assert_eq!(brokers.len(), 3, "{brokers:?}");
}

#[tokio::test]
async fn garbage_unknown_ids_and_foreign_types_are_typed_decode_errors() {
    let codec = codec();
    let topic = Topic::TaskCreated.name();

    assert_eq!(
        codec.decode(topic, None).await,
        Err(DecodeError::MissingValue)
    );
    assert!(matches!(
        codec.decode(topic, Some(b"{\"json\":true}")).await,
        Err(DecodeError::NotWireFormat(_))
    ));
    assert!(matches!(
        codec.decode(topic, Some(&[0, 0])).await,
        Err(DecodeError::NotWireFormat(_))
    ));
    assert_eq!(
        codec
            .decode(topic, Some(&[0, 0x7f, 0xff, 0xff, 0x01, 2, 3]))
            .await,
        Err(DecodeError::UnknownSchemaId(0x7fff_ff01))
    );

    // A UserRegistered message put on task.created.
    let user_registered = codec
        .encode(&sample::user_registered(&user()))
        .await
        .unwrap();
    let err = codec
        .decode(topic, Some(&user_registered))
        .await
        .unwrap_err();
    assert!(matches!(err, DecodeError::WrongType { .. }), "{err}");
    assert!(!err.is_retryable());

    // The right header followed by a body that is not the record.
    let mut truncated = codec.encode(&sample::task_created(&user())).await.unwrap();
    truncated.truncate(12);
    assert!(matches!(
        codec.decode(topic, Some(&truncated)).await,
        Err(DecodeError::Malformed(_))
    ));
    let mut garbage = truncated[..5].to_vec();
    garbage.extend_from_slice(&[0xff; 64]);
    assert!(matches!(
        codec.decode(topic, Some(&garbage)).await,
        Err(DecodeError::Malformed(_))
    ));
    let mut trailing = codec.encode(&sample::task_created(&user())).await.unwrap();
    trailing.extend_from_slice(b"tail");
    assert!(matches!(
        codec.decode(topic, Some(&trailing)).await,
        Err(DecodeError::Malformed(_))
    ));

    // Valid Avro, impossible values.
    let mut impossible = sample::task_created(&user());
    impossible.task_id = "not-a-uuid".into();
    let bytes = codec.encode(&impossible).await.unwrap();
    assert!(matches!(
        codec.decode(topic, Some(&bytes)).await,
        Err(DecodeError::Invalid(_))
    ));
    let mut impossible = sample::task_created(&user());
    impossible.version = 0;
    let bytes = codec.encode(&impossible).await.unwrap();
    assert!(matches!(
        codec.decode(topic, Some(&bytes)).await,
        Err(DecodeError::Invalid(_))
    ));
}

#[tokio::test]
async fn random_bytes_never_panic_the_decoder() {
    let codec = codec();
    let id = codec.register(Topic::TaskUpdated).await.unwrap();
    // A small deterministic generator: the same inputs every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..400usize {
        let mut payload = vec![0u8];
        payload.extend_from_slice(&id.to_be_bytes());
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            payload.push(state as u8);
        }
        let result = codec
            .decode(Topic::TaskUpdated.name(), Some(&payload))
            .await;
        assert!(result.is_err() || len > 0, "empty body decoded");
    }
}

#[test]
fn an_independent_confluent_deserializer_reads_what_the_events_crate_writes() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let codec = codec();
    let publisher = publisher(codec.clone());
    let event = sample::task_created(&user());
    let delivered = runtime
        .block_on(publisher.publish(&event, None))
        .expect("publish");

    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap();
        format!("{home}/.cache/todo-platform/venv/bin/python")
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/interop/confluent_decode.py"
    );
    let output = Command::new(&python)
        .arg(script)
        .args(["--bootstrap", &bootstrap(), "--registry", &registry_url()])
        .args(["--topic", Topic::TaskCreated.name()])
        .args(["--partition", &delivered.partition.to_string()])
        .args(["--offset", &delivered.offset.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("running {python} (installed by scripts/install-deps.sh): {e}"));
    assert!(
        output.status.success(),
        "confluent deserializer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoded: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("json from python");
    assert_eq!(decoded["key"], event.key());
    assert_eq!(decoded["value"], serde_json::to_value(&event).unwrap());
}
