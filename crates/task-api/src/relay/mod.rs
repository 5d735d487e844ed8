//! The outbox relay: publishes outbox rows to Kafka, in order, and marks them sent only after
//! the brokers acknowledged them.
//!
//! ```text
//!  API transaction ──▶ outbox row ──commit──▶ notify ─┐
//!                                    poll interval ───┴▶ round: lock · read batch (seq order)
//!                                                         · encode Avro · enqueue all in order
//!                                                         · await acks · mark acked rows sent
//! ```
//!
//! * Order: rows are read in `seq` order and handed to the idempotent producer in that order
//!   before any acknowledgement is awaited; the producer keeps per-partition order across its
//!   own retries, so the rows of one key reach their partition in order while a whole batch
//!   is in flight at once.
//! * One publisher at a time: on PostgreSQL each round runs in a transaction holding an advisory
//!   transaction lock, so relays of several instances take turns and never interleave one key's
//!   rows. The lock ends with the transaction, so a crashed instance never blocks the others.
//! * Failures: a row is marked sent only once acknowledged. While Kafka is unreachable rounds
//!   fail, the backlog grows (the API keeps writing), and the relay probes the cluster with a
//!   cheap metadata request before it takes the lock again, so a relay cut off from Kafka does
//!   not hold the lock against one that can publish. When Kafka returns, the backlog drains.
//!   A crash between acknowledgement and marking re-sends those rows: consumers deduplicate by
//!   `eventId`, as the contract requires of them anyway.

pub mod metrics;

use std::sync::Arc;
use std::time::{Duration, Instant};

use events::{Event, EventCodec, Service, Topic};
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use service_kit::db::{Backend, Database, DbError};
use service_kit::shutdown::Shutdown;
use tokio::sync::Notify;

use crate::config::OutboxSettings;
use crate::storage::outbox::{self, OutboxRow};
pub use metrics::OutboxMetrics;

/// Delay after a failed round: doubles from the first to the last value.
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often the backlog gauges are refreshed and old rows cleaned up.
const MONITOR_INTERVAL: Duration = Duration::from_secs(1);
const CLEANUP_EVERY: u32 = 60;
/// How long Idempotency-Key responses are remembered.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("{failed} of {total} rows not acknowledged: {first_error}")]
    Publish {
        failed: usize,
        total: usize,
        first_error: String,
    },
    #[error("schema registry unavailable: {0}")]
    Registry(String),
}

/// Why one row could not be encoded.
enum RowError {
    /// Never publishable: set aside.
    Poison(String),
    /// The registry is unavailable: try the round again later.
    Retry(String),
}

async fn encode_as<E: Event>(codec: &EventCodec, payload: &str) -> Result<Vec<u8>, RowError> {
    let event: E = serde_json::from_str(payload)
        .map_err(|e| RowError::Poison(format!("unreadable {} row: {e}", E::TOPIC)))?;
    codec.encode(&event).await.map_err(|e| {
        if e.is_retryable() {
            RowError::Retry(e.to_string())
        } else {
            RowError::Poison(e.to_string())
        }
    })
}

/// The Avro wire-format value of a row's event.
async fn encode(codec: &EventCodec, row: &OutboxRow) -> Result<Vec<u8>, RowError> {
    let topic: Topic = row
        .topic
        .parse()
        .map_err(|e| RowError::Poison(format!("{e}")))?;
    let p = row.payload.as_str();
    match topic {
        Topic::TaskCreated => encode_as::<events::TaskCreatedEvent>(codec, p).await,
        Topic::TaskUpdated => encode_as::<events::TaskUpdatedEvent>(codec, p).await,
        Topic::TaskCompleted => encode_as::<events::TaskCompletedEvent>(codec, p).await,
        Topic::TaskDeleted => encode_as::<events::TaskDeletedEvent>(codec, p).await,
        Topic::UserRegistered => encode_as::<events::UserRegisteredEvent>(codec, p).await,
        Topic::UserAuthenticated => encode_as::<events::UserAuthenticatedEvent>(codec, p).await,
        Topic::UserUpdated => encode_as::<events::UserUpdatedEvent>(codec, p).await,
        Topic::NotificationSent | Topic::ReminderTriggered => Err(RowError::Poison(format!(
            "task-api does not produce {topic}"
        ))),
    }
}

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Rows read (0: the outbox was empty, or another relay holds the lock).
    pub read: usize,
    pub published: usize,
    /// Another instance's relay holds the lock.
    pub locked_out: bool,
}

#[derive(Clone)]
pub struct OutboxRelay {
    db: Database,
    producer: FutureProducer,
    codec: Arc<EventCodec>,
    settings: OutboxSettings,
    wakeup: Arc<Notify>,
    metrics: OutboxMetrics,
}

impl OutboxRelay {
    /// A relay with its own idempotent producer (`acks=all`), whose messages give up after
    /// the configured publish timeout so that a round fails rather than hangs.
    pub fn new(
        db: Database,
        bootstrap_servers: &str,
        codec: Arc<EventCodec>,
        settings: OutboxSettings,
        wakeup: Arc<Notify>,
        metrics: OutboxMetrics,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let producer: FutureProducer = events::producer_config(bootstrap_servers)
            .set(
                "message.timeout.ms",
                settings.publish_timeout.as_millis().to_string(),
            )
            .set("client.id", "task-api-outbox")
            .create()?;
        Ok(Self {
            db,
            producer,
            codec,
            settings,
            wakeup,
            metrics,
        })
    }

    /// Publish rounds until `stop` is triggered; then one last round for what the API wrote
    /// before it stopped, and return.
    pub async fn run(self, stop: Shutdown) {
        let mut delay = BACKOFF_START;
        let mut failing = false;
        loop {
            if stop.is_triggered() {
                match tokio::time::timeout(self.settings.publish_timeout, self.drain()).await {
                    Ok(Ok(n)) => tracing::info!(published = n, "outbox relay stopped"),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "outbox relay stopped with rows unsent")
                    }
                    Err(_) => tracing::warn!("outbox relay stopped; final round timed out"),
                }
                return;
            }
            if failing && !self.kafka_reachable().await {
                self.pause(&stop, delay).await;
                delay = (delay * 2).min(BACKOFF_MAX);
                continue;
            }
            match self.round().await {
                Ok(r) => {
                    failing = false;
                    delay = BACKOFF_START;
                    if r.read as i64 >= self.settings.batch_size && !r.locked_out {
                        continue;
                    }
                    tokio::select! {
                        _ = self.wakeup.notified() => {}
                        _ = tokio::time::sleep(self.settings.poll_interval) => {}
                        _ = stop.wait() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "outbox round failed");
                    failing = true;
                    self.pause(&stop, delay).await;
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn pause(&self, stop: &Shutdown, delay: Duration) {
        // Jitter spreads the retries of several instances.
        let jitter = Duration::from_millis(fastrand::u64(0..=delay.as_millis() as u64 / 4));
        tokio::select! {
            _ = tokio::time::sleep(delay + jitter) => {}
            _ = stop.wait() => {}
        }
    }

    /// Publish until the outbox is empty; returns how many rows were published.
    pub async fn drain(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            let r = self.round().await?;
            total += r.published;
            if r.read == 0 || r.locked_out {
                return Ok(total);
            }
        }
    }

    async fn kafka_reachable(&self) -> bool {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
                .map(|m| !m.brokers().is_empty())
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }

    /// One round: read a batch, publish it, mark what was acknowledged.
    pub async fn round(&self) -> Result<Round, RelayError> {
        match self.db.backend() {
            Backend::Postgres => self.locked_round().await,
            Backend::Sqlite => self.local_round().await,
        }
    }

    /// SQLite: one instance, so no lock; and no transaction held while publishing, because
    /// SQLite's single writer would stall every API write for that long.
    async fn local_round(&self) -> Result<Round, RelayError> {
        let limit = self.settings.batch_size;
        let rows = self
            .db
            .run(move |conn| outbox::pending(conn, limit))
            .await?;
        if rows.is_empty() {
            return Ok(Round::default());
        }
        let (sent, failure) = self.publish(&rows).await;
        let marked = sent.clone();
        self.db
            .transaction(move |conn| outbox::mark_sent(conn, &marked, events::now_millis()))
            .await?;
        self.settle(&rows, sent.len(), failure)
    }

    /// PostgreSQL: the round holds the relay's advisory lock in its transaction, from reading
    /// the batch to marking it sent.
    async fn locked_round(&self) -> Result<Round, RelayError> {
        let this = self.clone();
        let handle = tokio::runtime::Handle::current();

        self.db
            .run(move |conn| {
                use diesel::Connection;
                conn.transaction::<_, DbError, _>(|conn| {
                    if !outbox::try_lock_relay(conn)? {
                        return Ok(Ok(Round {
                            locked_out: true,
                            ..Round::default()
                        }));
                    }
                    let rows = outbox::pending(conn, this.settings.batch_size)?;
                    if rows.is_empty() {
                        return Ok(Ok(Round::default()));
                    }
                    // This closure runs on the blocking pool, where waiting for the brokers
                    // blocks no executor thread.
                    let (sent, failure) = handle.block_on(this.publish(&rows));
                    outbox::mark_sent(conn, &sent, events::now_millis())?;
                    // What was acknowledged is committed even when other rows failed.
                    Ok(this.settle(&rows, sent.len(), failure))
                })
            })
            .await?
    }

    fn settle(
        &self,
        rows: &[OutboxRow],
        published: usize,
        failure: Option<(usize, String)>,
    ) -> Result<Round, RelayError> {
        match failure {
            None => Ok(Round {
                read: rows.len(),
                published,
                locked_out: false,
            }),
            Some((failed, first_error)) => {
                self.metrics.publish_failures_total.inc_by(failed as u64);
                Err(RelayError::Publish {
                    failed,
                    total: rows.len(),
                    first_error,
                })
            }
        }
    }

    /// Encode every row, enqueue them all in order, then await the acknowledgements. Returns the
    /// `seq` of every row that is done (acknowledged, or set aside as unpublishable) and, if
    /// some failed, how many and the first error.
    async fn publish(&self, rows: &[OutboxRow]) -> (Vec<i64>, Option<(usize, String)>) {
        let mut done = Vec::with_capacity(rows.len());
        let mut in_flight = Vec::with_capacity(rows.len());
        let mut failed = 0;
        let mut first_error: Option<String> = None;
        for row in rows {
            let payload = match encode(&self.codec, row).await {
                Ok(p) => p,
                Err(RowError::Poison(reason)) => {
                    tracing::error!(seq = row.seq, topic = %row.topic, event_id = %row.event_id, %reason, "outbox row can never be published; set aside");
                    self.metrics.dead_rows_total.inc();
                    done.push(row.seq);
                    continue;
                }
                Err(RowError::Retry(reason)) => {
                    // Later rows may share a key with this one: stop here to keep their order.
                    failed = rows.len() - done.len() - in_flight.len();
                    first_error = Some(format!("schema registry: {reason}"));
                    break;
                }
            };
            let mut headers = OwnedHeaders::new_with_capacity(2).insert(Header {
                key: events::headers::PRODUCER,
                value: Some(Service::TaskApi.name()),
            });
            if let Some(tp) = &row.traceparent {
                headers = headers.insert(Header {
                    key: events::headers::TRACEPARENT,
                    value: Some(tp.as_str()),
                });
            }
            let record = FutureRecord::to(&row.topic)
                .key(&row.message_key)
                .payload(&payload)
                .headers(headers);
            // `send_result` enqueues synchronously, so rows enter the producer in seq order.
            match self.producer.send_result(record) {
                Ok(delivery) => in_flight.push((row, delivery)),
                Err((e, _)) => {
                    failed = rows.len() - done.len() - in_flight.len();
                    first_error = Some(format!("cannot enqueue: {e}"));
                    break;
                }
            }
        }
        let seqs: Vec<(&OutboxRow, _)> = in_flight;
        let (rows_in_flight, deliveries): (Vec<&OutboxRow>, Vec<_>) = seqs.into_iter().unzip();
        let acked_at = Instant::now();
        let results = join_all(deliveries).await;
        let now = events::now_millis();
        for (row, result) in rows_in_flight.into_iter().zip(results) {
            match result {
                Ok(Ok(_)) => {
                    done.push(row.seq);
                    self.metrics
                        .published_total
                        .with_label_values(&[row.topic.as_str()])
                        .inc();
                    self.metrics
                        .delivery_delay_seconds
                        .observe((now - row.created_at).max(0) as f64 / 1000.0);
                }
                Ok(Err((e, _))) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| e.to_string());
                }
                Err(_) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| "delivery canceled".to_owned());
                }
            }
        }
        tracing::debug!(
            rows = rows.len(),
            elapsed_ms = acked_at.elapsed().as_millis() as u64,
            "outbox batch"
        );
        (done, first_error.map(|e| (failed, e)))
    }
}

/// Refreshes the backlog gauges every second and cleans up sent rows and old idempotency keys.
pub async fn monitor(db: Database, metrics: OutboxMetrics, retention: Duration, stop: Shutdown) {
    let mut ticks: u32 = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(MONITOR_INTERVAL) => {}
            _ = stop.wait() => return,
        }
        match db.run(outbox::backlog).await {
            Ok((rows, oldest)) => {
                metrics.backlog_rows.set(rows);
                let age = oldest.map_or(0, |t| (events::now_millis() - t).max(0));
                metrics.oldest_unsent_age_seconds.set(age as f64 / 1000.0);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the outbox backlog"),
        }
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(CLEANUP_EVERY) {
            let now = events::now_millis();
            let sent_before = now - retention.as_millis() as i64;
            let keys_before = now - IDEMPOTENCY_RETENTION.as_millis() as i64;
            let result = db
                .transaction(move |conn| {
                    Ok((
                        outbox::purge_sent(conn, sent_before)?,
                        crate::storage::idempotency::expire(conn, keys_before)?,
                    ))
                })
                .await;
            match result {
                Ok((rows, keys)) if rows + keys > 0 => {
                    tracing::debug!(
                        rows,
                        keys,
                        "cleaned up sent outbox rows and old idempotency keys"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox cleanup failed"),
            }
        }
    }
}
