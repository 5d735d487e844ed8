//! Helpers for the services' integration tests (feature `testing`): fresh databases, keys,
//! tokens, and bounded waiting. Tests run against the real cluster, registry and databases.

use std::future::Future;
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};

use crate::auth::{TokenSigner, TokenVerifier, generate_keypair};
use crate::config::DatabaseUrl;

pub fn bootstrap_servers() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        .unwrap_or_else(|_| "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094".into())
}

pub fn registry_url() -> String {
    std::env::var("SCHEMA_REGISTRY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into())
}

/// The brokers of [`bootstrap_servers`] with the security settings of the test's environment
/// (`KAFKA_SECURITY_PROTOCOL`, ...: a test against the secured cluster connects as its user).
pub fn kafka_access() -> crate::kafka::KafkaAccess {
    crate::kafka::KafkaAccess::from_env_with_bootstrap(&bootstrap_servers())
        .unwrap_or_else(|e| panic!("Kafka settings of the test environment: {e}"))
}

/// The client settings a test helper starts from: [`kafka_access`]'s.
pub fn kafka_config() -> rdkafka::ClientConfig {
    kafka_access().client_config()
}

/// The registry of [`registry_url`] with the credentials and CA of the test's environment.
pub fn registry_access() -> events::registry::RegistryAccess {
    crate::kafka::registry_from_env_with_url(&registry_url())
        .unwrap_or_else(|e| panic!("registry settings of the test environment: {e}"))
}

/// Server URL of the test PostgreSQL (`TEST_POSTGRES_URL`, default the local one).
pub fn postgres_server_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of the given backend.
pub fn fresh_database(backend: Backend) -> DatabaseUrl {
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join("todo-platform-tests");
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join(format!("{}.db", uuid::Uuid::new_v4()));
            DatabaseUrl::Sqlite(path.to_string_lossy().into_owned())
        }
        Backend::Postgres => {
            let server = postgres_server_url();
            let mut conn = PgConnection::establish(&server).unwrap_or_else(|e| {
                panic!("PostgreSQL at {server} (scripts/postgres.sh start): {e}")
            });
            let name = format!("test_{}", uuid::Uuid::new_v4().simple());
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .expect("create database");
            let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
            DatabaseUrl::Postgres(format!("{base}/{name}"))
        }
    }
}

/// A signer and matching verifier with a fresh key pair.
pub fn token_pair() -> (TokenSigner, TokenVerifier, String) {
    let (private, public) = generate_keypair().expect("key pair");
    (
        TokenSigner::from_pem(&private, 3600).expect("signer"),
        TokenVerifier::from_pem(&public).expect("verifier"),
        public,
    )
}

/// Poll `check` until it returns `Some`, at most `bound`; panics naming `what` otherwise.
pub async fn wait_for<T, F, Fut>(what: &str, bound: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {bound:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A consumer group id nobody else uses, so parallel tests never share partitions.
pub fn unique_group(prefix: &str) -> String {
    format!("{prefix}-test-{}", uuid::Uuid::new_v4().simple())
}

/// How long a test helper keeps asking Kafka through transient errors (a partition whose
/// leader is moving answers NotLeaderForPartition or UnknownPartition for a moment).
const TRANSIENT_BOUND: Duration = Duration::from_secs(60);

/// Low and high watermark of a partition, retried through transient errors within
/// [`TRANSIENT_BOUND`], as the services retry them; panics with the last error after that.
pub fn watermarks(
    consumer: &rdkafka::consumer::BaseConsumer,
    topic: &str,
    partition: i32,
) -> (i64, i64) {
    use rdkafka::consumer::Consumer;
    let deadline = Instant::now() + TRANSIENT_BOUND;
    let mut pause = Duration::from_millis(100);
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Ok(w) => return w,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(%e, topic, partition, "watermarks not available yet; retrying");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => panic!(
                "watermarks of {topic}/{partition}: still failing after {TRANSIENT_BOUND:?}: {e}"
            ),
        }
    }
}

/// Commit `group`'s offsets at the current end of every partition of `topics`, so a service
/// started with that group sees only what is published from now on, whatever the topics hold.
pub fn position_group_at_end(group: &str, topics: &[events::Topic]) {
    position_group_at_end_with(&kafka_access(), group, topics)
}

/// [`position_group_at_end`] on the cluster of `kafka`.
pub fn position_group_at_end_with(
    kafka: &crate::kafka::KafkaAccess,
    group: &str,
    topics: &[events::Topic],
) {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for topic in topics {
        for partition in 0..topic.spec().partitions {
            let (_, high) = watermarks(&consumer, topic.name(), partition);
            tpl.add_partition_offset(topic.name(), partition, rdkafka::Offset::Offset(high))
                .expect("offset");
        }
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .expect("commit group offsets");
}

/// The members of a consumer group and the partitions each one holds now, as the group
/// coordinator reports them (`(member id, [(topic, partition)])`, sorted); empty while the group
/// has no members or is rebalancing. Members are named by their member id.
pub fn group_assignments(group: &str) -> Vec<(String, Vec<(String, i32)>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = kafka_config().create().expect("consumer");
    let Ok(list) = consumer.fetch_group_list(Some(group), Duration::from_secs(10)) else {
        return Vec::new();
    };
    let mut members: Vec<(String, Vec<(String, i32)>)> = list
        .groups()
        .iter()
        .filter(|g| g.name() == group && g.state() == "Stable")
        .flat_map(|g| g.members())
        .map(|m| {
            let mut held = m.assignment().map(parse_assignment).unwrap_or_default();
            held.sort();
            (m.id().to_owned(), held)
        })
        .collect();
    members.sort();
    members
}

/// The topic partitions of a consumer protocol `Assignment` (version, then per topic its name
/// and partitions; user data after is ignored).
fn parse_assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (b.get(..n)?, b.get(n..)?);
        *b = tail;
        Some(head)
    }
    fn i16_(b: &mut &[u8]) -> Option<i16> {
        Some(i16::from_be_bytes(take(b, 2)?.try_into().ok()?))
    }
    fn i32_(b: &mut &[u8]) -> Option<i32> {
        Some(i32::from_be_bytes(take(b, 4)?.try_into().ok()?))
    }
    let mut b = bytes;
    let mut out = Vec::new();
    let parse = |b: &mut &[u8], out: &mut Vec<(String, i32)>| -> Option<()> {
        i16_(b)?;
        for _ in 0..i32_(b)? {
            let len = usize::try_from(i16_(b)?).ok()?;
            let topic = String::from_utf8_lossy(take(b, len)?).into_owned();
            for _ in 0..i32_(b)? {
                out.push((topic.clone(), i32_(b)?));
            }
        }
        Some(())
    };
    let _ = parse(&mut b, &mut out);
    out
}

/// End offsets of every partition of a topic (by name), to read what arrives after them.
pub fn end_offsets(topic: &str, partitions: i32) -> Vec<i64> {
    use rdkafka::consumer::BaseConsumer;
    let consumer: BaseConsumer = kafka_config().create().expect("consumer");
    (0..partitions)
        .map(|p| watermarks(&consumer, topic, p).1)
        .collect()
}

/// Read messages of `topic` from the given per-partition offsets until `predicate` holds for
/// the collected messages, at most `bound`.
pub fn read_until(
    topic: &str,
    from: &[i64],
    bound: Duration,
    predicate: impl Fn(&[rdkafka::message::OwnedMessage]) -> bool,
) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = kafka_config()
        .set("group.id", unique_group("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (p, offset) in from.iter().enumerate() {
        tpl.add_partition_offset(topic, p as i32, rdkafka::Offset::Offset(*offset))
            .expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + bound;
    let mut seen = Vec::new();
    while !predicate(&seen) {
        assert!(
            Instant::now() < deadline,
            "timed out after {bound:?} reading {topic} ({} messages seen)",
            seen.len()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            seen.push(m.detach());
        }
    }
    seen
}

/// Sum of a Prometheus counter or gauge in a text exposition, over the series whose labels
/// contain every `label="value"` fragment given.
pub fn metric_sum(exposition: &str, name: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|frag| l.contains(frag)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
