//! The relay: publishes outbox rows to Kafka in `seq` order and marks them sent only after the
//! brokers acknowledged them.
//!
//! ```text
//!  change's transaction ──▶ outbox row ──commit──▶ wake ─┐
//!                                      poll interval ────┴▶ round: (lock) · read a batch in seq
//!                                                            order · encode · hand all of it to
//!                                                            the producer in order · await the
//!                                                            acks · mark them sent (one statement)
//! ```
//!
//! * Order: rows enter the idempotent producer in `seq` order before any acknowledgement is
//!   awaited; the producer keeps per-partition order across its own retries with up to five
//!   requests in flight, so one key's rows reach their partition in order while a whole batch
//!   is in flight at once.
//! * Several instances: on PostgreSQL a round runs in a transaction holding an advisory lock
//!   (one per service), so the relays of several instances take turns and never interleave one
//!   key's rows; the lock ends with the transaction, so a crashed instance blocks nobody. On
//!   SQLite no transaction is held while publishing (SQLite's single writer would stall every
//!   write for that long); instances sharing the file (processes on one host) take turns
//!   through an OS file lock beside it (`<file>.outbox-relay-<service>.lock`), which the
//!   kernel releases when a process dies, so a crashed instance blocks nobody there either.
//! * Failures: a row is marked sent only once acknowledged. While Kafka is unreachable rounds
//!   fail, the backlog grows (writes go on), and the relay probes the cluster with a metadata
//!   request before its next round (backing off with the shared [`RetryPolicy`]). A crash
//!   between acknowledgement and marking re-sends those rows: consumers deduplicate by
//!   `eventId`, as the contract requires of them anyway.
//! * A row that can never be published (its JSON unreadable, its schema refused by the
//!   registry) is set aside: `dead_at` and `dead_reason` are written, the rows behind it go on,
//!   `outbox_dead_rows` counts it and the `OutboxRowSetAside` alert fires. Nothing is deleted:
//!   an operator fixes the cause and clears `dead_at` to have it published.

use std::sync::Arc;
use std::time::Duration;

use events::{AnyEvent, EventCodec, Service, Topic};
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::Notify;

use super::metrics::OutboxMetrics;
use super::store::{self, OutboxRow};
use crate::consumer::RetryPolicy;
use crate::db::{Backend, Database, DbConnection, DbError};
use crate::shutdown::Shutdown;
use crate::telemetry::{self, TraceContext};

/// How a relay behaves.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows read, published and marked per round.
    pub batch_size: i64,
    /// How often an idle relay looks for rows nobody woke it for (a crash, another instance).
    pub poll_interval: Duration,
    /// How long the brokers may take to acknowledge a row before the round counts it failed.
    pub publish_timeout: Duration,
    /// Backoff between failed rounds.
    pub backoff: RetryPolicy,
    /// How long sent rows are kept (for inspection) before the monitor deletes them.
    pub retention: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            poll_interval: Duration::from_millis(500),
            publish_timeout: Duration::from_secs(30),
            backoff: RetryPolicy {
                initial: Duration::from_millis(200),
                max_delay: Duration::from_secs(5),
                max_attempts: u32::MAX,
            },
            retention: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("the relay's lock file beside the SQLite database: {0}")]
    Lock(String),
    #[error("{failed} of {total} rows not acknowledged: {first_error}")]
    Publish {
        failed: usize,
        total: usize,
        first_error: String,
    },
}

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Rows read (0: the outbox was empty, or another instance's relay holds the lock).
    pub read: usize,
    pub published: usize,
    /// Rows set aside as never publishable.
    pub set_aside: usize,
    /// Another instance's relay holds the lock.
    pub locked_out: bool,
}

/// Why one row cannot be encoded.
enum RowError {
    /// Never publishable: set it aside.
    Poison(String),
    /// The registry is unavailable: try again later.
    Retry(String),
}

/// The PostgreSQL advisory lock key of a service's relay: one per service, so services sharing
/// a database never wait for each other.
fn lock_key(service: Service) -> i64 {
    // FNV-1a of the name: stable across builds and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("outbox-relay/{}", service.name()).bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

diesel::define_sql_function! {
    fn pg_try_advisory_xact_lock(key: diesel::sql_types::BigInt) -> diesel::sql_types::Bool;
}

fn try_lock(conn: &mut DbConnection, key: i64) -> Result<bool, DbError> {
    use diesel::RunQueryDsl;
    match conn {
        DbConnection::Postgresql(c) => {
            Ok(diesel::select(pg_try_advisory_xact_lock(key)).get_result::<bool>(c)?)
        }
        DbConnection::Sqlite(_) => Ok(true),
    }
}

/// The turn of one relay among the processes sharing a SQLite file: an exclusive `flock` on a
/// file beside the database, released when the round ends (or the process dies).
struct LocalTurn(Arc<std::fs::File>);

impl LocalTurn {
    /// The lock file of `service` beside the SQLite database at `path`; `None` (with a warning)
    /// where it cannot be opened, e.g. a read-only directory: the relay then runs alone.
    fn open(path: &str, service: Service) -> Option<Arc<std::fs::File>> {
        let lock = format!("{path}.outbox-relay-{}.lock", service.name());
        match std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
        {
            Ok(file) => Some(Arc::new(file)),
            Err(e) => {
                tracing::warn!(lock, error = %e, "no outbox relay lock file: instances sharing this SQLite file may publish a row twice");
                None
            }
        }
    }

    /// This process's turn, or `None` while another process holds it.
    fn try_take(file: &Arc<std::fs::File>) -> std::io::Result<Option<Self>> {
        match file.try_lock() {
            Ok(()) => Ok(Some(Self(file.clone()))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

impl Drop for LocalTurn {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Publishes one service's outbox.
#[derive(Clone)]
pub struct OutboxRelay {
    /// The file lock instances sharing a SQLite database take turns with (none on PostgreSQL).
    local_lock: Option<Arc<std::fs::File>>,
    db: Database,
    producer: FutureProducer,
    codec: Arc<EventCodec>,
    service: Service,
    settings: RelaySettings,
    wake: Arc<Notify>,
    metrics: OutboxMetrics,
}

impl OutboxRelay {
    /// A relay with its own idempotent producer (`acks=all`, at most five requests in flight),
    /// whose messages give up after the publish timeout so that a round fails rather than hangs.
    /// Give it a database pool of its own ([`Database::dedicated`]) so its rounds never queue
    /// behind request handling for a connection.
    pub fn new(
        db: Database,
        kafka: &crate::kafka::KafkaAccess,
        codec: Arc<EventCodec>,
        service: Service,
        settings: RelaySettings,
        metrics: OutboxMetrics,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let producer: FutureProducer = events::producer_config(kafka.client_config())
            .set(
                "message.timeout.ms",
                settings.publish_timeout.as_millis().to_string(),
            )
            .set("max.in.flight.requests.per.connection", "5")
            .set("client.id", format!("{}-outbox", service.name()))
            .create()?;
        let local_lock = match db.url() {
            crate::config::DatabaseUrl::Sqlite(path) => LocalTurn::open(path, service),
            crate::config::DatabaseUrl::Postgres(_) => None,
        };
        Ok(Self {
            local_lock,
            db,
            producer,
            codec,
            service,
            settings,
            wake: Arc::new(Notify::new()),
            metrics,
        })
    }

    /// What writers notify after committing outbox rows, so the relay publishes them at once
    /// instead of at its next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Publish rounds until `stop` is triggered; then one last bounded round for what was
    /// written before, and return.
    pub async fn run(self, stop: Shutdown) {
        let mut failures: u32 = 0;
        loop {
            if stop.is_triggered() {
                match tokio::time::timeout(self.settings.publish_timeout, self.drain()).await {
                    Ok(Ok(n)) => tracing::info!(published = n, "outbox relay stopped"),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "outbox relay stopped with rows unsent; they are published after restart")
                    }
                    Err(_) => tracing::warn!("outbox relay stopped; final round timed out"),
                }
                return;
            }
            if failures > 0 && !self.kafka_reachable().await {
                failures = failures.saturating_add(1);
                self.pause(&stop, failures).await;
                continue;
            }
            match self.round().await {
                Ok(r) => {
                    failures = 0;
                    if r.read as i64 >= self.settings.batch_size && !r.locked_out {
                        continue;
                    }
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.settings.poll_interval) => {}
                        _ = stop.wait() => {}
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, failures, "outbox round failed; retrying with backoff");
                    self.pause(&stop, failures).await;
                }
            }
        }
    }

    async fn pause(&self, stop: &Shutdown, failures: u32) {
        tokio::select! {
            _ = tokio::time::sleep(self.settings.backoff.delay(failures)) => {}
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

    async fn local_round(&self) -> Result<Round, RelayError> {
        let _turn = match &self.local_lock {
            Some(file) => match LocalTurn::try_take(file) {
                Ok(Some(turn)) => Some(turn),
                Ok(None) => {
                    return Ok(Round {
                        locked_out: true,
                        ..Round::default()
                    });
                }
                Err(e) => return Err(RelayError::Lock(e.to_string())),
            },
            None => None,
        };
        let limit = self.settings.batch_size;
        let rows = self.db.run(move |conn| store::pending(conn, limit)).await?;
        if rows.is_empty() {
            return Ok(Round::default());
        }
        let outcome = self.publish(&rows).await;
        let marks = outcome.marks();
        self.db.transaction(move |conn| marks.apply(conn)).await?;
        self.settle(rows.len(), outcome)
    }

    async fn locked_round(&self) -> Result<Round, RelayError> {
        let this = self.clone();
        let handle = tokio::runtime::Handle::current();
        let key = lock_key(self.service);
        self.db
            .run(move |conn| {
                use diesel::Connection;
                conn.transaction::<_, DbError, _>(|conn| {
                    if !try_lock(conn, key)? {
                        return Ok(Ok(Round {
                            locked_out: true,
                            ..Round::default()
                        }));
                    }
                    let rows = store::pending(conn, this.settings.batch_size)?;
                    if rows.is_empty() {
                        return Ok(Ok(Round::default()));
                    }
                    // This closure runs on the blocking pool, where waiting for the brokers
                    // blocks no executor thread.
                    let outcome = handle.block_on(this.publish(&rows));
                    outcome.marks().apply(conn)?;
                    // What was acknowledged is committed even when other rows failed.
                    Ok(this.settle(rows.len(), outcome))
                })
            })
            .await?
    }

    fn settle(&self, read: usize, outcome: Outcome) -> Result<Round, RelayError> {
        let service = self.metrics.service();
        match outcome.failure {
            None => Ok(Round {
                read,
                published: outcome.sent.len(),
                set_aside: outcome.set_aside.len(),
                locked_out: false,
            }),
            Some((failed, first_error)) => {
                self.metrics
                    .publish_failures_total
                    .with_label_values(&[service])
                    .inc_by(failed as u64);
                Err(RelayError::Publish {
                    failed,
                    total: read,
                    first_error,
                })
            }
        }
    }

    /// Encode every row, hand them all to the producer in order, then await the
    /// acknowledgements.
    async fn publish(&self, rows: &[OutboxRow]) -> Outcome {
        let service = self.metrics.service();
        let mut outcome = Outcome::default();
        let mut in_flight = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let payload = match self.encode(row).await {
                Ok(p) => p,
                Err(RowError::Poison(reason)) => {
                    tracing::error!(seq = row.seq, topic = %row.topic, event_id = %row.event_id, %reason, "outbox row can never be published; set aside");
                    self.metrics
                        .dead_rows_total
                        .with_label_values(&[service])
                        .inc();
                    outcome.set_aside.push((row.seq, reason));
                    continue;
                }
                Err(RowError::Retry(reason)) => {
                    // Later rows may share a key with this one: stop here to keep their order.
                    outcome.failure = Some((rows.len() - i, format!("schema registry: {reason}")));
                    break;
                }
            };
            let mut headers = OwnedHeaders::new_with_capacity(2).insert(Header {
                key: events::headers::PRODUCER,
                value: Some(self.service.name()),
            });
            // The publish, a step of the row's trace, open until the brokers answered; the
            // message carries its context, so each consumer's handling is its child.
            let (span, traceparent) = publish_span(row);
            if let Some(tp) = &traceparent {
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
                Ok(delivery) => in_flight.push((row, span.clone(), delivery)),
                Err((e, _)) => {
                    outcome.failure = Some((rows.len() - i, format!("cannot enqueue: {e}")));
                    break;
                }
            }
        }
        let mut rows_in_flight = Vec::with_capacity(in_flight.len());
        let mut deliveries = Vec::with_capacity(in_flight.len());
        let mut open_spans = Vec::with_capacity(in_flight.len());
        for (row, span, delivery) in in_flight {
            rows_in_flight.push(row);
            open_spans.push(span);
            deliveries.push(delivery);
        }
        let results = join_all(deliveries).await;
        let now = events::now_millis();
        let mut failed = 0;
        let mut first_error = None;
        for (row, result) in rows_in_flight.into_iter().zip(results) {
            match result {
                Ok(Ok(_)) => {
                    outcome.sent.push(row.seq);
                    self.metrics
                        .published_total
                        .with_label_values(&[service, row.topic.as_str()])
                        .inc();
                    self.metrics
                        .publish_latency_seconds
                        .with_label_values(&[service])
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
        if let Some(e) = first_error {
            let (before, reason) = outcome.failure.take().unwrap_or((0, e));
            outcome.failure = Some((before + failed, reason));
        }
        // The publish spans end once every acknowledgement is in.
        drop(open_spans);
        outcome
    }

    /// The Avro wire-format value of a row's event.
    async fn encode(&self, row: &OutboxRow) -> Result<Vec<u8>, RowError> {
        let topic: Topic = row
            .topic
            .parse()
            .map_err(|e| RowError::Poison(format!("{e}")))?;
        let event = AnyEvent::from_json(topic, &row.payload)
            .map_err(|e| RowError::Poison(format!("unreadable {topic} row: {e}")))?;
        self.codec.encode_any(&event).await.map_err(|e| {
            if e.is_retryable() {
                RowError::Retry(e.to_string())
            } else {
                RowError::Poison(e.to_string())
            }
        })
    }
}

/// What publishing a batch came to.
#[derive(Debug, Default)]
struct Outcome {
    /// Acknowledged.
    sent: Vec<i64>,
    /// Never publishable, with the reason.
    set_aside: Vec<(i64, String)>,
    /// How many rows failed (retried next round) and the first error.
    failure: Option<(usize, String)>,
}

impl Outcome {
    fn marks(&self) -> Marks {
        Marks {
            sent: self.sent.clone(),
            set_aside: self.set_aside.clone(),
        }
    }
}

/// The statements that record a round's outcome.
struct Marks {
    sent: Vec<i64>,
    set_aside: Vec<(i64, String)>,
}

impl Marks {
    fn apply(&self, conn: &mut DbConnection) -> Result<(), DbError> {
        let now = events::now_millis();
        store::mark_sent(conn, &self.sent, now)?;
        for (seq, reason) in &self.set_aside {
            store::set_aside(conn, *seq, reason, now)?;
        }
        Ok(())
    }
}

/// Refreshes the backlog gauges every second and deletes rows sent longer than `retention` ago.
pub async fn monitor(db: Database, metrics: OutboxMetrics, retention: Duration, stop: Shutdown) {
    const EVERY: Duration = Duration::from_secs(1);
    const PURGE_EVERY: u32 = 60;
    let service = metrics.service();
    let mut ticks: u32 = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.wait() => return,
        }
        match db.run(store::backlog).await {
            Ok(b) => {
                metrics
                    .backlog_rows
                    .with_label_values(&[service])
                    .set(b.rows);
                let age = b.oldest.map_or(0, |t| (events::now_millis() - t).max(0));
                metrics
                    .oldest_unsent_age_seconds
                    .with_label_values(&[service])
                    .set(age as f64 / 1000.0);
                metrics.dead_rows.with_label_values(&[service]).set(b.dead);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the outbox backlog"),
        }
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(PURGE_EVERY) {
            let before = events::now_millis() - retention.as_millis() as i64;
            match db
                .transaction(move |conn| store::purge_sent(conn, before))
                .await
            {
                Ok(n) if n > 0 => tracing::debug!(rows = n, "deleted sent outbox rows"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox cleanup failed"),
            }
        }
    }
}

/// The `outbox publish` span of a row and the `traceparent` its message carries: the span's
/// own context with traces on; the row's as written with them off (no span is made then).
fn publish_span(row: &OutboxRow) -> (tracing::Span, Option<String>) {
    if !telemetry::traces_enabled() {
        return (tracing::Span::none(), row.traceparent.clone());
    }
    let span = tracing::info_span!(
        "outbox publish",
        trace_id = tracing::field::Empty,
        topic = %row.topic,
        event_id = %row.event_id,
        seq = row.seq,
    );
    let parent = row.traceparent.as_deref().and_then(TraceContext::parse);
    let own = telemetry::continue_trace(&span, parent);
    (span, Some(own.header()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_has_its_own_stable_lock_key() {
        let keys: std::collections::HashSet<i64> =
            Service::ALL.iter().map(|s| lock_key(*s)).collect();
        assert_eq!(keys.len(), Service::ALL.len());
        assert_eq!(lock_key(Service::TaskApi), lock_key(Service::TaskApi));
    }
}
