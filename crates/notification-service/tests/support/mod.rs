//! Starts a real notification-service (in-process, or as its own process for crash tests)
//! against the real cluster, registry, a fresh database and a real SMTP server, and helps tests
//! publish the events task-api would and read what the service published.
//!
//! One service at a time per test binary: every instance with its own database reads the same
//! task topics, so two tests' instances would each fire the other's reminders. Tests hold
//! [`exclusive`] while their services run (test binaries themselves run one after another).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod mailpit;
pub mod push_service;
pub mod smtp;
pub mod topics;
pub mod webhook;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use events::{
    AnyEvent, Event, EventCodec, EventPublisher, NotificationChannel, Priority, Reminder, Service,
    TaskCompletedEvent, TaskCreatedEvent, TaskDeletedEvent, TaskStatus, TaskUpdatedEvent, Topic,
    UserRegisteredEvent,
};
use notification_service::config::{
    Config, DEFAULT_FROM, DeliverySettings, PushSettings, ScheduleSettings, SmtpSettings,
    WebhookSettings,
};
use notification_service::startup::{Application, MIGRATIONS};
use notification_service::storage::{deliveries, reminders, users};
use service_kit::auth::TokenSigner;
use service_kit::config::{CommonConfig, DatabaseUrl};
use service_kit::consumer::RetryPolicy;
use service_kit::db::Database;
use service_kit::outbox::{self, OutboxRow};
use service_kit::shutdown::Shutdown;
use service_kit::testing::{self, Backend};
use service_kit::webhook::WebhookKey;
use tokio::sync::{Mutex, MutexGuard};

pub const WEBHOOK_KEY: &str = "test-webhook-signing-key-0123456789abcdef";

static EXCLUSIVE: Mutex<()> = Mutex::const_new(());

/// Hold while this test's services run.
pub async fn exclusive() -> MutexGuard<'static, ()> {
    EXCLUSIVE.lock().await
}

/// The tests' VAPID key pair (a fixed private key: any scalar below the curve's order is one).
pub fn vapid_key() -> p256::SecretKey {
    p256::SecretKey::from_slice(&[0x42; 32]).unwrap()
}

pub const VAPID_SUBJECT: &str = "mailto:push-tests@example.com";

pub fn webhook_key() -> WebhookKey {
    WebhookKey::new(WEBHOOK_KEY)
}

/// What a test may change of the service's settings.
#[derive(Clone)]
pub struct Options {
    pub smtp_url: String,
    pub retry: RetryPolicy,
    pub late_after: Duration,
    pub concurrency: usize,
    pub webhook_timeout: Duration,
    pub batch_size: i64,
    /// The SMS gateway (a sink in the test); `None`: SMS off.
    pub sms: Option<service_kit::sms::SmsGatewaySettings>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            smtp_url: mailpit::smtp_url(),
            retry: RetryPolicy {
                initial: Duration::from_millis(200),
                max_delay: Duration::from_secs(1),
                max_attempts: 4,
            },
            late_after: Duration::from_secs(2),
            concurrency: 8,
            webhook_timeout: Duration::from_secs(2),
            batch_size: 500,
            sms: None,
        }
    }
}

/// Where events come from and go, shared by the instances of one test.
pub struct Bus {
    pub codec: Arc<EventCodec>,
    pub publisher: EventPublisher,
    /// Offsets of the produced topics when the test began.
    pub triggered_from: Vec<i64>,
    pub sent_from: Vec<i64>,
}

impl Bus {
    pub async fn new() -> Self {
        let codec =
            Arc::new(EventCodec::connect(&service_kit::testing::registry_access()).unwrap());
        let publisher = EventPublisher::connect(
            service_kit::testing::kafka_config(),
            codec.clone(),
            "task-api",
        )
        .unwrap();
        Self {
            codec,
            publisher,
            triggered_from: topics::offsets_now(Topic::ReminderTriggered).await,
            sent_from: topics::offsets_now(Topic::NotificationSent).await,
        }
    }

    pub async fn publish<E: Event>(&self, event: &E) {
        self.publisher.publish(event, None).await.expect("publish");
    }

    /// reminder.triggered events published since the test began for these reminders.
    pub async fn triggered<S: AsRef<str>>(
        &self,
        reminder_ids: &[S],
    ) -> Vec<events::ReminderTriggeredEvent> {
        let keys: HashSet<String> = reminder_ids.iter().map(|s| s.as_ref().to_owned()).collect();
        topics::keyed(
            &self.codec,
            Topic::ReminderTriggered,
            &self.triggered_from,
            &keys,
        )
        .await
        .into_iter()
        .filter_map(|p| match p.event {
            AnyEvent::ReminderTriggered(e) => Some(e),
            _ => None,
        })
        .collect()
    }

    /// notification.sent events published since the test began for these notifications.
    pub async fn sent<S: AsRef<str>>(
        &self,
        notification_ids: &[S],
    ) -> Vec<events::NotificationSentEvent> {
        let keys: HashSet<String> = notification_ids
            .iter()
            .map(|s| s.as_ref().to_owned())
            .collect();
        topics::keyed(&self.codec, Topic::NotificationSent, &self.sent_from, &keys)
            .await
            .into_iter()
            .filter_map(|p| match p.event {
                AnyEvent::NotificationSent(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// Wait until `n` reminder.triggered events exist for these reminders (bounded).
    pub async fn wait_triggered<S: AsRef<str>>(
        &self,
        reminder_ids: &[S],
        n: usize,
        bound: Duration,
    ) -> Vec<events::ReminderTriggeredEvent> {
        testing::wait_for(&format!("{n} reminder.triggered"), bound, || async {
            let found = self.triggered(reminder_ids).await;
            (found.len() >= n).then_some(found)
        })
        .await
    }

    pub async fn wait_sent<S: AsRef<str>>(
        &self,
        notification_ids: &[S],
        n: usize,
        bound: Duration,
    ) -> Vec<events::NotificationSentEvent> {
        testing::wait_for(&format!("{n} notification.sent"), bound, || async {
            let found = self.sent(notification_ids).await;
            (found.len() >= n).then_some(found)
        })
        .await
    }
}

pub fn config(db_url: &DatabaseUrl, group: &str, options: &Options) -> (Config, TokenSigner) {
    let (signer, verifier, _) = testing::token_pair();
    let config = Config {
        common: CommonConfig {
            kafka: service_kit::testing::kafka_access(),
            registry: service_kit::testing::registry_access(),
            database_url: db_url.clone(),
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            shutdown_timeout: Duration::from_secs(10),
        },
        verifier,
        consumer_group: group.to_owned(),
        smtp: SmtpSettings::parse(
            &options.smtp_url,
            DEFAULT_FROM.parse().unwrap(),
            Duration::from_secs(5),
        )
        .unwrap(),
        webhook: WebhookSettings {
            key: webhook_key(),
            timeout: options.webhook_timeout,
        },
        sms: options.sms.clone(),
        push: Some(PushSettings {
            vapid_key: vapid_key(),
            subject: VAPID_SUBJECT.into(),
            timeout: options.webhook_timeout,
        }),
        app_base_url: "http://127.0.0.1:8000".into(),
        schedule: ScheduleSettings {
            late_after: options.late_after,
            batch_size: options.batch_size,
            ..ScheduleSettings::defaults()
        },
        delivery: DeliverySettings {
            retry: options.retry,
            concurrency: options.concurrency,
            lease: DeliverySettings::DEFAULT_LEASE,
        },
    };
    (config, signer)
}

pub struct TestApp {
    pub address: String,
    pub signer: TokenSigner,
    pub db: Database,
    pub db_url: DatabaseUrl,
    pub group: String,
    pub shutdown: Shutdown,
    pub handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub http: reqwest::Client,
}

/// A consumer group positioned at the end of the service's topics.
pub async fn fresh_group() -> String {
    let group = testing::unique_group("notification");
    let topics = Service::NotificationService.consumes().to_vec();
    let g = group.clone();
    tokio::task::spawn_blocking(move || testing::position_group_at_end(&g, &topics))
        .await
        .unwrap();
    group
}

pub async fn spawn_app(backend: Backend, options: &Options) -> TestApp {
    let db_url = testing::fresh_database(backend);
    let group = fresh_group().await;
    spawn_instance(&db_url, &group, options).await
}

/// An instance on a given database and group (two of them share the work).
pub async fn spawn_instance(db_url: &DatabaseUrl, group: &str, options: &Options) -> TestApp {
    let (config, signer) = config(db_url, group, options);
    let app = Application::build(config).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_handle();
    let db = app.database();
    let handle = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        signer,
        db,
        db_url: db_url.clone(),
        group: group.to_owned(),
        shutdown,
        handle: Some(handle),
        http: reqwest::Client::new(),
    }
}

impl TestApp {
    pub fn token(&self, user: &str) -> String {
        self.signer.issue(user).unwrap()
    }

    pub async fn get(&self, path: &str, user: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.address));
        if let Some(u) = user {
            req = req.bearer_auth(self.token(u));
        }
        req.send().await.expect("request")
    }

    pub async fn notifications(&self, user: &str) -> Vec<serde_json::Value> {
        let resp = self.get("/api/notifications?limit=200", Some(user)).await;
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        body["items"].as_array().unwrap().clone()
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

    pub async fn reminders_of(&self, task_id: &str) -> Vec<reminders::ReminderRow> {
        let task = task_id.to_owned();
        self.db
            .run(move |conn| reminders::of_task(conn, &task))
            .await
            .unwrap()
    }

    pub async fn deliveries_of(&self, task_id: &str) -> Vec<deliveries::DeliveryRow> {
        let task = task_id.to_owned();
        self.db
            .run(move |conn| deliveries::of_task(conn, &task))
            .await
            .unwrap()
    }

    pub async fn outbox_rows(&self, event_id: &str) -> Vec<OutboxRow> {
        let id = event_id.to_owned();
        let rows = self.db.run(outbox::store::all).await.unwrap();
        rows.into_iter().filter(|r| r.event_id == id).collect()
    }

    /// Wait until the task has `n` reminders in `state`.
    pub async fn wait_reminders(
        &self,
        task_id: &str,
        state: &str,
        n: usize,
    ) -> Vec<reminders::ReminderRow> {
        testing::wait_for(
            &format!("{n} {state} reminders of {task_id}"),
            Duration::from_secs(30),
            || async {
                let rows: Vec<_> = self
                    .reminders_of(task_id)
                    .await
                    .into_iter()
                    .filter(|r| r.state == state)
                    .collect();
                (rows.len() == n).then_some(rows)
            },
        )
        .await
    }

    /// Wait until the task's deliveries are all finished (at least `n` of them).
    pub async fn wait_finished(
        &self,
        task_id: &str,
        n: usize,
        bound: Duration,
    ) -> Vec<deliveries::DeliveryRow> {
        testing::wait_for(
            &format!("{n} finished deliveries of {task_id}"),
            bound,
            || async {
                let rows = self.deliveries_of(task_id).await;
                (rows.len() >= n && rows.iter().all(|r| r.status != "pending")).then_some(rows)
            },
        )
        .await
    }

    /// Wait until the user's profile is stored. User and task events travel on different topics
    /// and are consumed in any order; a test that needs a profile (a name in a mail) waits here.
    pub async fn wait_user(&self, user_id: &str) {
        testing::wait_for(
            &format!("the profile of {user_id}"),
            Duration::from_secs(30),
            || async {
                let id = user_id.to_owned();
                self.db
                    .run(move |conn| users::get(conn, &id))
                    .await
                    .unwrap()
                    .map(|_| ())
            },
        )
        .await
    }

    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(40), handle)
                .await
                .expect("stops within 40 s")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // A failed test must not leave its service consuming for the next one.
        self.shutdown.trigger();
    }
}

// ---- events as task-api would publish them ----

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn user(channels: &[NotificationChannel]) -> UserRegisteredEvent {
    let user_id = new_id();
    UserRegisteredEvent {
        event_id: new_id(),
        event_timestamp: events::now_millis(),
        email: format!("{user_id}@example.com"),
        user_id,
        name: Some("Ada Lovelace".into()),
        timezone: "Europe/Berlin".into(),
        notification_channels: channels.to_vec(),
        webhook_url: None,
    }
}

pub fn at(time: i64, channel: NotificationChannel) -> Reminder {
    Reminder {
        before_due_minutes: None,
        at: Some(time),
        channel,
    }
}

pub fn before(minutes: i64, channel: NotificationChannel) -> Reminder {
    Reminder {
        before_due_minutes: Some(minutes),
        at: None,
        channel,
    }
}

pub fn task(
    user_id: &str,
    title: &str,
    due: Option<i64>,
    reminders: Vec<Reminder>,
) -> TaskCreatedEvent {
    let now = events::now_millis();
    TaskCreatedEvent {
        event_id: new_id(),
        event_timestamp: now,
        user_id: user_id.into(),
        task_id: new_id(),
        title: title.into(),
        description: None,
        priority: Priority::Medium,
        due_date: due,
        category_id: None,
        tags: vec![],
        version: 1,
        status: TaskStatus::Open,
        recurrence: None,
        reminders,
        series_id: None,
        occurrence_index: None,
        created_at: Some(now),
        collaborators: Vec::new(),
        assignee_id: None,
        actor_id: None,
    }
}

pub fn updated(
    created: &TaskCreatedEvent,
    version: i64,
    due: Option<i64>,
    reminders: Vec<Reminder>,
) -> TaskUpdatedEvent {
    TaskUpdatedEvent {
        event_id: new_id(),
        event_timestamp: events::now_millis(),
        user_id: created.user_id.clone(),
        task_id: created.task_id.clone(),
        title: created.title.clone(),
        description: None,
        priority: created.priority,
        due_date: due,
        category_id: None,
        tags: vec![],
        version,
        status: TaskStatus::Open,
        recurrence: None,
        reminders,
        series_id: None,
        occurrence_index: None,
        created_at: created.created_at,
        changed_fields: vec!["due_at".into(), "reminders".into()],
        completed_at: None,
        collaborators: Vec::new(),
        assignee_id: None,
        actor_id: None,
    }
}

pub fn completed(created: &TaskCreatedEvent, version: i64) -> TaskCompletedEvent {
    let now = events::now_millis();
    TaskCompletedEvent {
        event_id: new_id(),
        event_timestamp: now,
        user_id: created.user_id.clone(),
        task_id: created.task_id.clone(),
        completed_at: now,
        time_to_complete: None,
        title: created.title.clone(),
        description: None,
        priority: created.priority,
        due_date: created.due_date,
        category_id: None,
        tags: vec![],
        version,
        recurrence: None,
        reminders: created.reminders.clone(),
        series_id: None,
        occurrence_index: None,
        created_at: created.created_at,
        collaborators: Vec::new(),
        assignee_id: None,
        actor_id: None,
    }
}

pub fn deleted(created: &TaskCreatedEvent, version: i64) -> TaskDeletedEvent {
    TaskDeletedEvent {
        event_id: new_id(),
        event_timestamp: events::now_millis(),
        user_id: created.user_id.clone(),
        task_id: created.task_id.clone(),
        version,
        series_id: None,
        collaborators: Vec::new(),
        assignee_id: None,
        actor_id: None,
    }
}

pub fn reminder_id(
    task: &TaskCreatedEvent,
    remind_at: i64,
    channel: NotificationChannel,
) -> String {
    events::ids::reminder_id(&task.task_id, remind_at, channel).to_string()
}

pub fn notification_id(reminder_id: &str, channel: NotificationChannel) -> String {
    events::ids::notification_id(reminder_id, channel).to_string()
}

// ---- the binary as its own process ----

pub struct ServiceProcess {
    pub child: std::process::Child,
    pub address: String,
    pub log: std::path::PathBuf,
}

/// Environment of a service process; `extra` overrides or adds variables.
pub fn process_env(
    db_url: &DatabaseUrl,
    group: &str,
    public_key: &str,
    port: u16,
) -> Vec<(String, String)> {
    let database_url = match db_url {
        DatabaseUrl::Sqlite(p) => format!("sqlite://{p}"),
        DatabaseUrl::Postgres(u) => u.clone(),
    };
    [
        ("KAFKA_BOOTSTRAP_SERVERS", testing::bootstrap_servers()),
        ("SCHEMA_REGISTRY_URL", testing::registry_url()),
        ("DATABASE_URL", database_url),
        ("BIND_ADDR", format!("127.0.0.1:{port}")),
        ("JWT_PUBLIC_KEY", public_key.to_owned()),
        ("CONSUMER_GROUP", group.to_owned()),
        ("SMTP_URL", mailpit::smtp_url()),
        ("WEBHOOK_SIGNING_KEY", WEBHOOK_KEY.to_owned()),
        ("REMINDER_LATE_AFTER_MS", "2000".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn start_process(env: &[(String, String)], port: u16) -> ServiceProcess {
    let log = std::env::temp_dir().join(format!("notification-service-{}.log", new_id()));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_notification-service"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start notification-service");
    let address = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    testing::wait_for(
        "notification-service /readyz",
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

/// Open a service's database from the test (to inspect it while the service runs or not).
pub async fn open_db(db_url: &DatabaseUrl) -> Database {
    let url = db_url.clone();
    tokio::task::spawn_blocking(move || Database::connect(&url, MIGRATIONS).unwrap())
        .await
        .unwrap()
}
