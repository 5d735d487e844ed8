//! Starts a real task-api (in-process, or as its own process) against the real cluster,
//! registry and a fresh database, with helpers to call it and to read what it published.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use events::{AnyEvent, EventCodec, EventPublisher, Topic};
use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};
use serde_json::{Value, json};
use service_kit::auth::TokenSigner;
use service_kit::config::{CommonConfig, DatabaseUrl};
use service_kit::shutdown::Shutdown;
use service_kit::testing::{self, Backend};
use service_kit::webhook::WebhookKey;
use task_api::config::{Config, LoginLimits, OutboxSettings};
use task_api::http::client_address::ClientAddress;
use task_api::startup::Application;

pub const PASSWORD: &str = "correct horse battery";
/// Nothing listens here: an instance pointed at it has no Kafka.
pub const NO_KAFKA: &str = "127.0.0.1:1";

pub struct Options {
    pub backend: Backend,
    pub db_url: Option<DatabaseUrl>,
    pub bootstrap: String,
    pub login_limits: LoginLimits,
    /// `TRUSTED_PROXIES`.
    pub client_address: ClientAddress,
    pub outbox: OutboxSettings,
    /// Key pair shared with another instance (private, public PEM).
    pub keys: Option<(String, String)>,
    /// The SMS gateway (a sink in the test); `None`: no SMS on this server.
    pub sms: Option<service_kit::sms::SmsGatewaySettings>,
    /// `VAPID_PUBLIC_KEY`: push offered when set.
    pub vapid_public_key: Option<String>,
}

impl Options {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            db_url: None,
            bootstrap: testing::bootstrap_servers(),
            login_limits: LoginLimits {
                per_email: 5,
                per_ip: 10_000,
                window: Duration::from_secs(60),
            },
            client_address: ClientAddress::default(),
            outbox: OutboxSettings {
                poll_interval: Duration::from_millis(200),
                publish_timeout: Duration::from_secs(3),
                ..OutboxSettings::default()
            },
            keys: None,
            sms: None,
            vapid_public_key: None,
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub signer: TokenSigner,
    pub keys: (String, String),
    pub db_url: DatabaseUrl,
    pub shutdown: Shutdown,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
    pub db: service_kit::db::Database,
}

pub struct TestUser {
    pub id: String,
    pub email: String,
    pub token: String,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(Options::new(backend)).await
}

pub async fn spawn_with(opts: Options) -> TestApp {
    let db_url = opts
        .db_url
        .clone()
        .unwrap_or_else(|| testing::fresh_database(opts.backend));
    let keys = opts
        .keys
        .clone()
        .unwrap_or_else(|| service_kit::auth::generate_keypair().unwrap());
    let signer = TokenSigner::from_pem(&keys.0, 3600).unwrap();
    let verifier = service_kit::auth::TokenVerifier::from_pem(&keys.1).unwrap();
    // Every instance gets its own ingest group, at the end of task.created.
    let group = testing::unique_group("task-api");
    let g = group.clone();
    if opts.bootstrap != NO_KAFKA {
        tokio::task::spawn_blocking(move || {
            testing::position_group_at_end(&g, &[Topic::TaskCreated])
        })
        .await
        .unwrap();
    }
    let config = Config {
        common: CommonConfig {
            kafka: service_kit::kafka::KafkaAccess {
                bootstrap_servers: opts.bootstrap.clone(),
                ..testing::kafka_access()
            },
            registry: service_kit::testing::registry_access(),
            database_url: db_url.clone(),
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            shutdown_timeout: Duration::from_secs(10),
        },
        signer: signer.clone(),
        verifier,
        webhook_key: WebhookKey::new("test-webhook-signing-key-of-32-chars!!"),
        sms: opts.sms.clone(),
        ws_public_url: "ws://127.0.0.1:8001".into(),
        vapid_public_key: opts.vapid_public_key.clone(),
        consumer_group: group,
        login_limits: opts.login_limits,
        client_address: opts.client_address.clone(),
        outbox: opts.outbox,
    };
    let app = Application::build(config).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_handle();
    let db = app.database();
    let handle = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        signer,
        keys,
        db_url,
        shutdown,
        handle,
        http: reqwest::Client::new(),
        db,
    }
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request with the user's token.
    pub fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub async fn register(&self, email: &str) -> reqwest::Response {
        self.http
            .post(self.url("/api/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD, "name": "Test"}))
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.http
            .post(self.url("/api/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// A registered, logged-in user.
    pub async fn new_user(&self) -> TestUser {
        let email = unique_email();
        let r = self.register(&email).await;
        assert_eq!(r.status(), 201, "register");
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = self.login(&email, PASSWORD).await;
        assert_eq!(r.status(), 200, "login");
        let token = r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        TestUser { id, email, token }
    }

    pub async fn create_task(&self, user: &TestUser, body: Value) -> Value {
        let r = self
            .req(reqwest::Method::POST, "/api/tasks", Some(&user.token))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 201, "create task: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub async fn get_json(&self, user: &TestUser, path: &str) -> Value {
        let r = self
            .req(reqwest::Method::GET, path, Some(&user.token))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Every task of the user, following cursors.
    pub async fn all_tasks(&self, user: &TestUser, query: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/tasks?{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.get_json(user, &path).await;
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn backlog(&self) -> f64 {
        testing::metric_sum(&self.metrics().await, "outbox_backlog_rows", &[])
    }

    /// Wait until every outbox row of this instance's database is published.
    pub async fn wait_outbox_empty(&self) {
        let db = self.db.clone();
        testing::wait_for("outbox drained", Duration::from_secs(60), || {
            let db = db.clone();
            async move {
                let backlog = db.run(service_kit::outbox::store::backlog).await.ok()?;
                (backlog.rows == 0).then_some(())
            }
        })
        .await;
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("stops within 30 s")
            .unwrap()
            .unwrap();
    }
}

/// Where each partition of a topic ends now: read from here to see what comes next.
pub async fn offsets(topic: Topic) -> Vec<i64> {
    tokio::task::spawn_blocking(move || testing::end_offsets(topic.name(), topic.spec().partitions))
        .await
        .unwrap()
}

/// Every message of `topic` from `from` to the current end of each partition.
pub fn read_to_end(topic: Topic, from: &[i64]) -> Vec<OwnedMessage> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let end = testing::end_offsets(topic.name(), topic.spec().partitions);
    let mut remaining: HashSet<i32> = (0..from.len() as i32)
        .filter(|&p| end[p as usize] > from[p as usize])
        .collect();
    if remaining.is_empty() {
        return Vec::new();
    }
    let consumer: BaseConsumer = service_kit::testing::kafka_config()
        .set("group.id", testing::unique_group("task-api-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for &p in &remaining {
        tpl.add_partition_offset(topic.name(), p, rdkafka::Offset::Offset(from[p as usize]))
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while !remaining.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} timed out"
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let p = m.partition();
            if m.offset() + 1 >= end[p as usize] {
                remaining.remove(&p);
            }
            if m.offset() < end[p as usize] {
                seen.push(m.detach());
            }
        }
    }
    seen
}

/// A published event with its message key and headers.
#[derive(Debug, Clone)]
pub struct Published {
    pub key: String,
    pub event: AnyEvent,
    pub producer: Option<String>,
    pub traceparent: Option<String>,
    pub partition: i32,
    pub offset: i64,
}

fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

pub fn codec() -> Arc<EventCodec> {
    Arc::new(EventCodec::connect(&service_kit::testing::registry_access()).unwrap())
}

/// Wait until `topic` holds at least `n` messages (after `from`) whose key is in `keys`, then
/// return all of them (up to the end offsets at that moment), decoded, in partition order.
pub async fn wait_for_published(
    topic: Topic,
    from: &[i64],
    keys: &HashSet<String>,
    n: usize,
) -> Vec<Published> {
    let codec = codec();
    let from = from.to_vec();
    let messages = testing::wait_for(
        &format!("{n} messages on {topic}"),
        Duration::from_secs(90),
        || {
            let from = from.clone();
            let keys = keys.clone();
            async move {
                let ours: Vec<OwnedMessage> =
                    tokio::task::spawn_blocking(move || read_to_end(topic, &from))
                        .await
                        .unwrap()
                        .into_iter()
                        .filter(|m| {
                            m.key()
                                .and_then(|k| std::str::from_utf8(k).ok())
                                .is_some_and(|k| keys.contains(k))
                        })
                        .collect();
                (ours.len() >= n).then_some(ours)
            }
        },
    )
    .await;
    let mut out = Vec::new();
    for m in messages {
        let event = codec
            .decode(m.topic(), m.payload())
            .await
            .expect("every published message decodes");
        out.push(Published {
            key: String::from_utf8_lossy(m.key().unwrap()).into_owned(),
            event,
            producer: header(&m, events::headers::PRODUCER),
            traceparent: header(&m, events::headers::TRACEPARENT),
            partition: m.partition(),
            offset: m.offset(),
        });
    }
    out
}

pub fn keys<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> HashSet<String> {
    items.into_iter().map(Into::into).collect()
}

/// A publisher speaking as another service (ingest tests).
pub fn publisher_as(producer: &'static str) -> EventPublisher {
    EventPublisher::connect(service_kit::testing::kafka_config(), codec(), producer).unwrap()
}
