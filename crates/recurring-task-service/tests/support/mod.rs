//! Starts a real recurring-task-service (in-process, or as its own process for crash tests)
//! against the real cluster, registry and a fresh database, and builds the task events of
//! recurring series the way task-api publishes them.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use events::{
    Delivered, EpochMillis, Event, EventCodec, EventPublisher, NotificationChannel, Priority,
    Recurrence, RecurrenceMode, Reminder, Service, TaskCompletedEvent, TaskCreatedEvent,
    TaskDeletedEvent, TaskStatus, TaskUpdatedEvent, Topic,
};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::OwnedMessage;
use recurring_task_service::config::Config;
use recurring_task_service::startup::Application;
use service_kit::auth::TokenSigner;
use service_kit::config::{CommonConfig, DatabaseUrl};
use service_kit::shutdown::Shutdown;
use service_kit::testing::{self, Backend};

pub const PRODUCER: &str = "recurring-task-service";

/// A prefix of user ids no other test uses: each service under test follows only its own
/// users' series, so services of concurrent tests never act on each other's events.
pub fn scope() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// A fresh user id within `scope`.
pub fn user_in(scope: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    format!("{scope}{}", &id[8..])
}

// ---- the service ----------------------------------------------------------------------------------

pub struct TestApp {
    pub address: String,
    /// The user-id prefix this instance follows.
    pub scope: String,
    pub signer: TokenSigner,
    pub db_url: DatabaseUrl,
    pub group: String,
    pub shutdown: Shutdown,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub publisher: EventPublisher,
    pub http: reqwest::Client,
}

pub fn publisher() -> EventPublisher {
    let codec = Arc::new(EventCodec::connect(&service_kit::testing::registry_access()).unwrap());
    EventPublisher::connect(
        service_kit::testing::kafka_config(),
        codec,
        "recurring-tests",
    )
    .unwrap()
}

/// A fresh database and a consumer group positioned at the end of the task topics.
pub async fn spawn_app(backend: Backend) -> TestApp {
    let db_url = testing::fresh_database(backend);
    let group = testing::unique_group("recurring");
    let topics = Service::RecurringTaskService.consumes().to_vec();
    let g = group.clone();
    tokio::task::spawn_blocking(move || testing::position_group_at_end(&g, &topics))
        .await
        .unwrap();
    spawn_app_on(db_url, group).await
}

/// The service on a given database and consumer group (for restarts and replays).
pub async fn spawn_app_on(db_url: DatabaseUrl, group: String) -> TestApp {
    spawn_app_scoped(db_url, group, scope()).await
}

pub async fn spawn_app_scoped(db_url: DatabaseUrl, group: String, scope: String) -> TestApp {
    let (signer, verifier, _) = testing::token_pair();
    spawn_app_verifying(db_url, group, scope, signer, verifier).await
}

/// The service verifying tokens with a given key (e.g. task-api's).
pub async fn spawn_app_verifying(
    db_url: DatabaseUrl,
    group: String,
    scope: String,
    signer: TokenSigner,
    verifier: service_kit::auth::TokenVerifier,
) -> TestApp {
    let config = Config {
        common: CommonConfig {
            kafka: service_kit::testing::kafka_access(),
            registry: service_kit::testing::registry_access(),
            database_url: db_url.clone(),
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            shutdown_timeout: Duration::from_secs(10),
        },
        verifier,
        consumer_group: group.clone(),
        relay_interval: Duration::from_millis(500),
        user_id_prefix: Some(scope.clone()),
    };
    let app = Application::build(config).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_handle();
    let handle = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        scope,
        signer,
        db_url,
        group,
        shutdown,
        handle,
        publisher: publisher(),
        http: reqwest::Client::new(),
    }
}

impl TestApp {
    /// A fresh user this instance follows.
    pub fn user(&self) -> String {
        user_in(&self.scope)
    }

    pub fn token(&self, user: &str) -> String {
        self.signer.issue(user).unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.address));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// `GET /api/series/{id}` as `user`: status and body.
    pub async fn series(&self, user: &str, series_id: &str) -> (u16, serde_json::Value) {
        let resp = self
            .get(&format!("/api/series/{series_id}"), Some(&self.token(user)))
            .await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Wait (bounded) until the series as its owner sees it satisfies `check`.
    pub async fn wait_series(
        &self,
        user: &str,
        series_id: &str,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        testing::wait_for(what, Duration::from_secs(60), || async {
            let (status, body) = self.series(user, series_id).await;
            (status == 200 && check(&body)).then_some(body)
        })
        .await
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn publish<E: Event>(&self, event: &E) -> (Topic, Delivered) {
        let delivered = self.publisher.publish(event, None).await.expect("publish");
        (E::TOPIC, delivered)
    }

    /// Publish, then wait until this service's consumer group has committed past the event:
    /// its effects (or their absence) are durable from then on.
    pub async fn publish_and_wait_processed<E: Event>(&self, event: &E) {
        let at = self.publish(event).await;
        wait_processed(&self.group, &[at]).await;
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(40), self.handle)
            .await
            .expect("stops within 40 s")
            .unwrap()
            .unwrap();
    }
}

/// Wait until `group` has committed offsets past every `(topic, delivered)` position.
pub async fn wait_processed(group: &str, positions: &[(Topic, Delivered)]) {
    let group = group.to_owned();
    let positions = positions.to_vec();
    testing::wait_for(
        "the service to commit past the published events",
        Duration::from_secs(60),
        || {
            let group = group.clone();
            let positions = positions.clone();
            async move {
                tokio::task::spawn_blocking(move || committed_past(&group, &positions))
                    .await
                    .unwrap()
                    .then_some(())
            }
        },
    )
    .await;
}

fn committed_past(group: &str, positions: &[(Topic, Delivered)]) -> bool {
    let consumer: BaseConsumer = service_kit::testing::kafka_config()
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (topic, d) in positions {
        tpl.add_partition(topic.name(), d.partition);
    }
    let Ok(committed) = consumer.committed_offsets(tpl, Duration::from_secs(10)) else {
        return false;
    };
    positions.iter().all(|(topic, d)| {
        committed
            .find_partition(topic.name(), d.partition)
            .and_then(|e| e.offset().to_raw())
            .is_some_and(|o| o > d.offset)
    })
}

/// Commit `group`'s offsets at the given positions of every task topic (to replay from there).
pub fn position_group(group: &str, offsets: &[(Topic, Vec<i64>)]) {
    let consumer: BaseConsumer = service_kit::testing::kafka_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (topic, per_partition) in offsets {
        for (p, o) in per_partition.iter().enumerate() {
            tpl.add_partition_offset(topic.name(), p as i32, rdkafka::Offset::Offset(*o))
                .unwrap();
        }
    }
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
}

/// End offsets of every task topic now.
pub fn task_topic_ends() -> Vec<(Topic, Vec<i64>)> {
    Service::RecurringTaskService
        .consumes()
        .iter()
        .map(|t| (*t, testing::end_offsets(t.name(), t.spec().partitions)))
        .collect()
}

// ---- reading what the service published ------------------------------------------------------------

/// Reads a topic from given offsets, keeping every message seen.
pub struct TopicReader {
    topic: Topic,
    consumer: BaseConsumer,
    /// Next offset to read, per partition.
    next: Vec<i64>,
    pub seen: Vec<OwnedMessage>,
}

impl TopicReader {
    /// From the current end of the topic: sees what is published from now on.
    pub fn from_now(topic: Topic) -> Self {
        let from = testing::end_offsets(topic.name(), topic.spec().partitions);
        Self::from_offsets(topic, &from)
    }

    pub fn from_offsets(topic: Topic, from: &[i64]) -> Self {
        let consumer: BaseConsumer = service_kit::testing::kafka_config()
            .set("group.id", testing::unique_group("reader"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (p, offset) in from.iter().enumerate() {
            tpl.add_partition_offset(topic.name(), p as i32, rdkafka::Offset::Offset(*offset))
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        Self {
            topic,
            consumer,
            next: from.to_vec(),
            seen: Vec::new(),
        }
    }

    /// Read everything up to the topic's end as of now.
    pub fn catch_up(&mut self) {
        let end = testing::end_offsets(self.topic.name(), self.topic.spec().partitions);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.next.iter().zip(&end).any(|(n, e)| n < e) {
            assert!(
                Instant::now() < deadline,
                "reading {} timed out",
                self.topic
            );
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(100)) {
                let p = m.partition() as usize;
                self.next[p] = self.next[p].max(m.offset() + 1);
                self.seen.push(m.detach());
            }
        }
    }

    /// task.created messages this service published for `user` (keyed by user id).
    pub fn next_occurrences_of(&self, user: &str) -> Vec<OwnedMessage> {
        self.seen
            .iter()
            .filter(|m| m.key() == Some(user.as_bytes()))
            .filter(|m| events::publish::header_str(*m, "producer") == Some(PRODUCER))
            .cloned()
            .collect()
    }
}

/// Read on (bounded) until the service published at least `n` next occurrences for `user`;
/// returns them all, decoded, with the reader for later looks.
pub async fn wait_next_occurrences(
    reader: TopicReader,
    user: &str,
    n: usize,
) -> (TopicReader, Vec<TaskCreatedEvent>) {
    let user = user.to_owned();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut reader = reader;
    loop {
        let (r, found) = tokio::task::spawn_blocking({
            let user = user.clone();
            move || {
                let mut r = reader;
                r.catch_up();
                let found = r.next_occurrences_of(&user);
                (r, found)
            }
        })
        .await
        .unwrap();
        reader = r;
        if found.len() >= n {
            return (reader, decode_all(&found).await);
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} next occurrences of {user} ({} seen)",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Everything the reader has seen for `user` after reading to the current end, decoded.
pub async fn next_occurrences_now(
    reader: TopicReader,
    user: &str,
) -> (TopicReader, Vec<TaskCreatedEvent>) {
    let user = user.to_owned();
    let (reader, found) = tokio::task::spawn_blocking(move || {
        let mut r = reader;
        r.catch_up();
        let found = r.next_occurrences_of(&user);
        (r, found)
    })
    .await
    .unwrap();
    (reader, decode_all(&found).await)
}

pub async fn decode_all(messages: &[OwnedMessage]) -> Vec<TaskCreatedEvent> {
    let codec = EventCodec::connect(&service_kit::testing::registry_access()).unwrap();
    let mut out = Vec::new();
    for m in messages {
        out.push(
            codec
                .decode_as::<TaskCreatedEvent>(m.payload())
                .await
                .expect("the service publishes decodable events"),
        );
    }
    out
}

// ---- times ----------------------------------------------------------------------------------------

/// A local wall-clock time in a zone, as epoch ms.
pub fn local_ms(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> EpochMillis {
    tz.with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("unambiguous local time")
        .timestamp_millis()
}

pub fn utc_ms(s: &str) -> EpochMillis {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

pub fn rfc3339(ms: EpochMillis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The first Monday on or after `date`.
pub fn monday_on_or_after(date: NaiveDate) -> NaiveDate {
    use chrono::Datelike;
    let mut d = date;
    while d.weekday() != chrono::Weekday::Mon {
        d = d.succ_opt().unwrap();
    }
    d
}

// ---- the events task-api publishes for a recurring task ------------------------------------------

pub fn rrule(text: &str, tz: &str, mode: RecurrenceMode) -> Recurrence {
    Recurrence {
        rrule: Some(text.into()),
        cron: None,
        timezone: tz.into(),
        mode,
        until: None,
        count: None,
    }
}

pub fn cron(text: &str, tz: &str, mode: RecurrenceMode) -> Recurrence {
    Recurrence {
        rrule: None,
        cron: Some(text.into()),
        timezone: tz.into(),
        mode,
        until: None,
        count: None,
    }
}

/// task.created of the first task of a new series (what task-api publishes on POST /api/tasks).
pub fn first_of_series(
    user: &str,
    recurrence: Recurrence,
    due: Option<EpochMillis>,
) -> TaskCreatedEvent {
    let now = events::now_millis();
    TaskCreatedEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_timestamp: now,
        user_id: user.into(),
        task_id: uuid::Uuid::new_v4().to_string(),
        title: "Water the plants".into(),
        description: Some("Both balconies".into()),
        priority: Priority::High,
        due_date: due,
        category_id: Some(uuid::Uuid::new_v4().to_string()),
        tags: vec!["home".into()],
        version: 1,
        status: TaskStatus::Open,
        recurrence: Some(recurrence),
        reminders: vec![Reminder {
            before_due_minutes: Some(30),
            at: None,
            channel: NotificationChannel::Email,
        }],
        series_id: Some(uuid::Uuid::new_v4().to_string()),
        occurrence_index: Some(0),
        created_at: Some(now),
        collaborators: Vec::new(),
        assignee_id: None,
        actor_id: None,
    }
}

/// task.completed of a task (a snapshot of it at `version`), completed at `completed_at`.
pub fn completion_of(
    task: &TaskCreatedEvent,
    version: i64,
    completed_at: EpochMillis,
) -> TaskCompletedEvent {
    TaskCompletedEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_timestamp: events::now_millis(),
        user_id: task.user_id.clone(),
        task_id: task.task_id.clone(),
        completed_at,
        time_to_complete: task.created_at.map(|c| (completed_at - c).max(0)),
        title: task.title.clone(),
        description: task.description.clone(),
        priority: task.priority,
        due_date: task.due_date,
        category_id: task.category_id.clone(),
        tags: task.tags.clone(),
        version,
        recurrence: task.recurrence.clone(),
        reminders: task.reminders.clone(),
        series_id: task.series_id.clone(),
        occurrence_index: task.occurrence_index,
        created_at: task.created_at,
        collaborators: Vec::new(),
        assignee_id: None,
        actor_id: None,
    }
}

/// task.updated of a task at `version` with `status`.
pub fn update_of(task: &TaskCreatedEvent, version: i64, status: TaskStatus) -> TaskUpdatedEvent {
    TaskUpdatedEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_timestamp: events::now_millis(),
        user_id: task.user_id.clone(),
        task_id: task.task_id.clone(),
        title: task.title.clone(),
        description: task.description.clone(),
        priority: task.priority,
        due_date: task.due_date,
        category_id: task.category_id.clone(),
        tags: task.tags.clone(),
        version,
        status,
        recurrence: task.recurrence.clone(),
        reminders: task.reminders.clone(),
        series_id: task.series_id.clone(),
        occurrence_index: task.occurrence_index,
        created_at: task.created_at,
        changed_fields: vec!["status".into()],
        completed_at: None,
        collaborators: Vec::new(),
        assignee_id: None,
        actor_id: None,
    }
}

pub fn deletion_of(task: &TaskCreatedEvent, version: i64) -> TaskDeletedEvent {
    TaskDeletedEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_timestamp: events::now_millis(),
        user_id: task.user_id.clone(),
        task_id: task.task_id.clone(),
        version,
        series_id: task.series_id.clone(),
        collaborators: Vec::new(),
        assignee_id: None,
        actor_id: None,
    }
}

/// The task id the service gives occurrence `index` of the series of `task`.
pub fn occurrence_id(task: &TaskCreatedEvent, index: i64) -> String {
    events::ids::occurrence_task_id(task.series_id.as_deref().unwrap(), index).to_string()
}

// ---- the binary as its own process -----------------------------------------------------------------

pub struct ServiceProcess {
    pub child: std::process::Child,
    pub address: String,
    pub log: std::path::PathBuf,
}

pub struct ProcessEnv {
    pub scope: String,
    pub db_url: DatabaseUrl,
    pub group: String,
    pub public_key: String,
}

impl ProcessEnv {
    pub async fn new(backend: Backend) -> Self {
        let (_, _, public_key) = testing::token_pair();
        let group = testing::unique_group("recurring-proc");
        let topics = Service::RecurringTaskService.consumes().to_vec();
        let g = group.clone();
        tokio::task::spawn_blocking(move || testing::position_group_at_end(&g, &topics))
            .await
            .unwrap();
        Self {
            scope: scope(),
            db_url: testing::fresh_database(backend),
            group,
            public_key,
        }
    }

    pub fn command(&self, port: u16, log: &std::path::Path) -> std::process::Command {
        let database_url = match &self.db_url {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{p}"),
            DatabaseUrl::Postgres(u) => u.clone(),
        };
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_recurring-task-service"));
        cmd.env("KAFKA_BOOTSTRAP_SERVERS", testing::bootstrap_servers())
            .env("SCHEMA_REGISTRY_URL", testing::registry_url())
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("JWT_PUBLIC_KEY", &self.public_key)
            .env("CONSUMER_GROUP", &self.group)
            .env("RECURRING_RELAY_INTERVAL_MS", "500")
            .env("RECURRING_USER_ID_PREFIX", &self.scope)
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(std::process::Stdio::inherit());
        cmd
    }

    pub async fn start(&self) -> ServiceProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!(
            "recurring-task-service-{}.log",
            uuid::Uuid::new_v4()
        ));
        let child = self
            .command(port, &log)
            .spawn()
            .expect("start recurring-task-service");
        let address = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        testing::wait_for(
            "recurring-task-service /readyz",
            Duration::from_secs(60),
            || async {
                let r = http.get(format!("{address}/readyz")).send().await.ok()?;
                (r.status() == 200).then_some(())
            },
        )
        .await;
        ServiceProcess {
            child,
            address,
            log,
        }
    }

    /// Ledger rows (series id, index, published?) read straight from the database: published
    /// when its event no longer waits in the outbox.
    pub async fn ledger(&self) -> Vec<(String, i64, bool)> {
        use diesel::prelude::*;
        use recurring_task_service::storage::next_occurrences::dsl as n;
        let url = self.db_url.clone();
        tokio::task::spawn_blocking(move || {
            let db = service_kit::db::Database::connect(
                &url,
                recurring_task_service::startup::MIGRATIONS,
            )
            .unwrap();
            let mut conn = db.pool().get().unwrap();
            n::next_occurrences
                .select((n::series_id, n::occurrence_index, n::event_id))
                .load::<(String, i64, String)>(&mut *conn)
                .unwrap()
                .into_iter()
                .map(|(s, i, e)| {
                    let pending = service_kit::outbox::store::is_pending(&mut conn, &e).unwrap();
                    (s, i, !pending)
                })
                .collect()
        })
        .await
        .unwrap()
    }
}
