//! The at-least-once consumer runtime every consuming service runs on.
//!
//! ```text
//!  poll thread (librdkafka)          one task per assigned partition
//!  ───────────────────────          ────────────────────────────────────────────────
//!  poll ─▶ route by partition ─▶ ▮▮▮ queue ─▶ decode ─▶ handler ─▶ store offset
//!     │   (pause when a queue          │          │ retryable: backoff + jitter, bounded
//!     │    passes its high mark)       │          │ unavailable: backoff, unbounded
//!     │                                │          └ permanent / undecodable: dead-letter topic
//!     └ rebalance: finish in-flight, commit stored offsets synchronously
//! ```
//!
//! * Offsets are stored only after the handler returned (its effects committed together with
//!   an inbox row, see [`crate::db::apply_once`]) or the event was dead-lettered;
//!   `enable.auto.offset.store=false`, and the periodic auto-commit only commits what was stored.
//! * Order is kept within a partition (one task, one message at a time) while partitions
//!   proceed in parallel.
//! * Rebalance and shutdown: in-flight events finish, stored offsets are committed synchronously,
//!   queued but unstarted events are dropped and will be redelivered.
//!
//! The poll loop runs on its own OS thread because librdkafka calls the rebalance callback from
//! `poll`, and that callback waits for in-flight work: it must not block an async executor.

mod access;
mod backoff;
mod context;
pub mod dead_letter;
mod partition;

pub use access::ConsumerAccess;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::{AnyEvent, EventCodec, Service, Topic};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::mpsc;

pub use backoff::RetryPolicy;

use crate::kafka::KafkaAccess;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::telemetry::TraceContext;
use context::RuntimeContext;

/// The default queue bound per partition: 30,000 events, resumed at 15,000, which is more than
/// half a second of work for a partition handled at 25,000 events/s (audit-service's batches),
/// so a partition catching up never runs dry while its resume waits for a fetch. With 10,000
/// (resumed at 5,000) audit-service caught up on a 200,000-event backlog at 36k-54k events/s,
/// with 30,000 at 66k-80k, as fast as with no bound at all (`loadgen audit-ingest`, both
/// databases, alternating). What it costs: memory while a partition is behind, about 500 bytes
/// per queued task event (audit-service's peak RSS 173 MB with 10,000, 202 MB with 30,000,
/// three partitions catching up).
pub const DEFAULT_MAX_QUEUED_PER_PARTITION: usize = 30_000;

/// How a handler failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// May succeed if tried again: retried with backoff up to the policy's attempts, then
    /// dead-lettered.
    #[error("retryable: {0}")]
    Retryable(String),
    /// A dependency (the database, Kafka) is down: retried until it returns, never
    /// dead-lettered, because the event is not at fault.
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
    /// Can never succeed: dead-lettered at once.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<crate::db::DbError> for HandleError {
    fn from(e: crate::db::DbError) -> Self {
        if e.is_unavailable() {
            HandleError::Unavailable(e.to_string())
        } else {
            HandleError::Retryable(e.to_string())
        }
    }
}

impl From<events::PublishError> for HandleError {
    fn from(e: events::PublishError) -> Self {
        match e {
            events::PublishError::Encode(e) if !e.is_retryable() => {
                HandleError::Permanent(e.to_string())
            }
            other => HandleError::Unavailable(other.to_string()),
        }
    }
}

/// Where a consumed event came from.
#[derive(Debug, Clone)]
pub struct EventMeta {
    pub topic: Topic,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    /// The trace this event continues (from its `traceparent` header, or a new one).
    pub trace: TraceContext,
    /// The `producer` header.
    pub producer: Option<String>,
    /// Kafka message timestamp, epoch ms.
    pub timestamp: Option<i64>,
    /// Registry id of the schema the event was written with.
    pub schema_id: Option<u32>,
}

/// A decoded event and where it came from.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: AnyEvent,
    pub meta: EventMeta,
}

/// What a service does with each event. Effects must be idempotent by event id (use
/// [`crate::db::apply_once`]): the runtime delivers at least once.
pub trait EventHandler: Send + Sync + 'static {
    fn handle(&self, event: &Received) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// Most events handed to [`EventHandler::handle_batch`] at once; 1 turns batching off.
    /// Batches are made only of events already waiting, so batching adds no latency.
    fn max_batch(&self) -> usize {
        1
    }

    /// Apply consecutive events of one partition together (one transaction, one commit). On
    /// any error the runtime falls back to handling the batch's events one by one, so a poison
    /// event is isolated and dead-lettered alone.
    fn handle_batch(
        &self,
        events: &[Received],
    ) -> impl Future<Output = Result<(), HandleError>> + Send {
        async move {
            for event in events {
                self.handle(event).await?;
            }
            Ok(())
        }
    }
}

/// How a consumer is set up.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub service: Service,
    /// Where the brokers are and how to authenticate ([`crate::kafka`]).
    pub kafka: KafkaAccess,
    /// Consumer group; the service name unless each instance must see every partition.
    pub group_id: String,
    pub topics: Vec<Topic>,
    pub retry: RetryPolicy,
    /// Queue length per partition past which the partition is paused (it resumes at half).
    /// A pause is not free: librdkafka drops what it had fetched ahead for the partition, and
    /// a resumed partition is fetched again only once its broker answered the fetch already
    /// outstanding, which waits up to `fetch.wait.max.ms` (500 ms) while the consumer's other
    /// partitions there are idle. So the half left queued at a resume must outlast that wait:
    /// see [`DEFAULT_MAX_QUEUED_PER_PARTITION`].
    pub max_queued_per_partition: usize,
    /// How long rebalance and shutdown wait for in-flight events.
    pub drain_timeout: Duration,
    /// Extra librdkafka settings (e.g. `auto.offset.reset`).
    pub overrides: Vec<(String, String)>,
}

impl ConsumerSettings {
    /// The service's group and its contract topics, default policies. The group is the
    /// service's name unless `CONSUMER_GROUP` is set (system tests run each service in a group
    /// of their own, positioned where they start).
    pub fn for_service(service: Service, kafka: &KafkaAccess) -> Self {
        let group_id =
            crate::config::optional("CONSUMER_GROUP").unwrap_or_else(|| service.name().to_owned());
        Self {
            service,
            kafka: kafka.clone(),
            group_id,
            topics: service.consumes().to_vec(),
            retry: RetryPolicy::default(),
            max_queued_per_partition: DEFAULT_MAX_QUEUED_PER_PARTITION,
            drain_timeout: Duration::from_secs(20),
            overrides: Vec::new(),
        }
    }

    pub fn with_override(mut self, key: &str, value: &str) -> Self {
        self.overrides.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// State of one partition shared by the poll thread, its task and the rebalance callback.
pub(crate) struct PartitionState {
    pub topic: String,
    pub partition: i32,
    /// Set on revoke or shutdown: the task finishes its current event and stops.
    pub revoked: AtomicBool,
    /// The task is between taking an event and storing its offset.
    pub busy: AtomicBool,
    pub queued: AtomicUsize,
    pub paused: Mutex<bool>,
}

pub(crate) type PartitionKey = (String, i32);
pub(crate) type PartitionMap = Arc<Mutex<HashMap<PartitionKey, Arc<PartitionState>>>>;

pub(crate) type KafkaConsumer = BaseConsumer<RuntimeContext>;

/// What the partition tasks share.
pub(crate) struct Shared<H> {
    pub settings: ConsumerSettings,
    pub handler: H,
    pub codec: Arc<EventCodec>,
    pub dead_letters: dead_letter::DeadLetterPublisher,
    pub metrics: Metrics,
    pub shutdown: Shutdown,
    pub consumer: Arc<KafkaConsumer>,
    pub access: ConsumerAccess,
}

/// A running consumer; [`ConsumerRuntime::join`] waits until it has drained and committed.
pub struct ConsumerRuntime {
    thread: Option<std::thread::JoinHandle<()>>,
    access: ConsumerAccess,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("cannot start the poll thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl ConsumerRuntime {
    /// Subscribe and start consuming. Must be called within a tokio runtime (partition tasks
    /// are spawned on it).
    pub fn start<H: EventHandler>(
        settings: ConsumerSettings,
        handler: H,
        codec: Arc<EventCodec>,
        metrics: Metrics,
        shutdown: Shutdown,
    ) -> Result<Self, StartError> {
        let partitions: PartitionMap = Arc::default();
        let access = ConsumerAccess::default();
        let context = RuntimeContext::new(
            partitions.clone(),
            metrics.clone(),
            settings.drain_timeout,
            access.clone(),
        );
        let mut config = settings.kafka.client_config_for(settings.service.name());
        config
            .set("group.id", &settings.group_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("statistics.interval.ms", "5000")
            .set("enable.partition.eof", "false");
        for (k, v) in &settings.overrides {
            config.set(k, v);
        }
        let consumer: Arc<KafkaConsumer> = Arc::new(config.create_with_context(context)?);
        let topics: Vec<&str> = settings.topics.iter().map(|t| t.name()).collect();
        consumer.subscribe(&topics)?;
        let dead_letters = dead_letter::DeadLetterPublisher::new(
            &settings.kafka,
            settings.service,
            &settings.group_id,
        )?;
        let shared = Arc::new(Shared {
            settings,
            handler,
            codec,
            dead_letters,
            metrics,
            shutdown,
            consumer: consumer.clone(),
            access: access.clone(),
        });
        let runtime = tokio::runtime::Handle::current();
        let name = format!("{}-poll", shared.settings.service.name());
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || poll_loop(shared, partitions, runtime))?;
        Ok(Self {
            thread: Some(thread),
            access,
        })
    }

    /// Whether the brokers accept this consumer, for `/readyz`
    /// ([`crate::http::consumer_access_probe`]).
    pub fn access(&self) -> ConsumerAccess {
        self.access.clone()
    }

    /// Wait (without blocking the executor) until the consumer has drained, committed and
    /// closed after shutdown was triggered.
    pub async fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Consumer errors, logged without flooding: the same error at most once a minute while it
/// lasts. A refusal (no ACL for a topic or the group, credentials refused) is an error line
/// that says what to grant; the consumer keeps polling (an ACL added later is picked up, no
/// restart, no crash loop) and `/readyz` reports the refusal ([`ConsumerAccess`]).
#[derive(Default)]
struct ErrorLog {
    last: Option<(String, std::time::Instant)>,
}

impl ErrorLog {
    const REPEAT_AFTER: Duration = Duration::from_secs(60);

    fn report(&mut self, error: &rdkafka::error::KafkaError, settings: &ConsumerSettings) {
        let text = error.to_string();
        if let Some((last, at)) = &self.last
            && *last == text
            && at.elapsed() < Self::REPEAT_AFTER
        {
            return;
        }
        self.last = Some((text, std::time::Instant::now()));
        if crate::kafka::is_refusal(error) {
            let topics: Vec<&str> = settings.topics.iter().map(|t| t.name()).collect();
            tracing::error!(
                error = %error,
                user = %settings.kafka.describe(),
                group = %settings.group_id,
                topics = %topics.join(","),
                "kafka refused this consumer: grant its user READ on each of its topics and on its group (`todoctl acls`), or fix its credentials"
            );
        } else {
            tracing::warn!(error = %error, "kafka consumer error");
        }
    }
}

struct Route {
    tx: mpsc::UnboundedSender<OwnedMessage>,
    state: Arc<PartitionState>,
}

fn poll_loop<H: EventHandler>(
    shared: Arc<Shared<H>>,
    partitions: PartitionMap,
    runtime: tokio::runtime::Handle,
) {
    let consumer = shared.consumer.clone();
    let mut routes: HashMap<PartitionKey, Route> = HashMap::new();
    let mut errors = ErrorLog::default();
    while !shared.shutdown.is_triggered() {
        let message = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(e)) => {
                errors.report(&e, &shared.settings);
                if crate::kafka::is_refusal(&e) {
                    shared.access.refused(&e);
                }
                continue;
            }
            Some(Ok(m)) => {
                shared.access.accepted();
                m.detach()
            }
        };
        let key = (message.topic().to_owned(), message.partition());
        let stale = routes
            .get(&key)
            .is_none_or(|r| r.state.revoked.load(Ordering::Acquire) || r.tx.is_closed());
        if stale {
            let state = Arc::new(PartitionState {
                topic: key.0.clone(),
                partition: key.1,
                revoked: AtomicBool::new(false),
                busy: AtomicBool::new(false),
                queued: AtomicUsize::new(0),
                paused: Mutex::new(false),
            });
            if let Ok(mut map) = partitions.lock() {
                map.insert(key.clone(), state.clone());
            }
            let (tx, rx) = mpsc::unbounded_channel();
            runtime.spawn(partition::run(shared.clone(), state.clone(), rx));
            routes.insert(key.clone(), Route { tx, state });
        }
        let Some(route) = routes.get(&key) else {
            continue;
        };
        let queued = route.state.queued.fetch_add(1, Ordering::AcqRel) + 1;
        if route.tx.send(message).is_err() {
            // The task ended (revoked); the message will be fetched again after the rebalance.
            continue;
        }
        if queued >= shared.settings.max_queued_per_partition {
            partition::pause(&consumer, &route.state, &shared.metrics);
        }
    }

    // Shutdown: stop every partition task after its current event, wait, commit, close.
    tracing::info!("consumer shutting down: draining in-flight events");
    let states: Vec<Arc<PartitionState>> = partitions
        .lock()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    for s in &states {
        s.revoked.store(true, Ordering::Release);
    }
    drop(routes);
    context::wait_idle(&states, shared.settings.drain_timeout);
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => tracing::info!("final offsets committed"),
        // Nothing stored since the last commit is reported as an error by librdkafka.
        Err(e) => tracing::debug!(error = %e, "final commit"),
    }
    consumer.unsubscribe();
}
