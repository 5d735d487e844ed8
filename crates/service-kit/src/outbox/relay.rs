//! The relay: publishes outbox rows to Kafka in `seq` order and marks them sent only after the
//! brokers acknowledged them.
//!
//! ```text
//!  change's transaction ──▶ outbox row ──commit──▶ wake ─┐
//!                                      poll interval ────┴▶ turn: take the lock · then, until
//!          nothing is pending or in flight: read a batch in seq order (rows not already in
//!          flight) · encode it · hand it to the producer · once acknowledged, read and hand
//!          over the next · then mark the acknowledged one sent (one statement) · release the
//!          lock
//! ```
//!
//! * Order: rows enter the idempotent producer in `seq` order, a batch after the one before it
//!   was acknowledged ([`IN_FLIGHT_BATCHES`]); the producer keeps per-partition order across
//!   its own retries, so one key's rows reach their partition in order.
//!   On PostgreSQL a batch is read as "the oldest pending rows not in flight", not "rows after
//!   the last one read": writers commit concurrently, so a row may become visible after rows
//!   with a higher `seq` (never one of the same key: changes of one key lock its row, so they
//!   commit in the order they wrote). On SQLite writers take turns, rows become visible in
//!   `seq` order, and a read starts after the last row read (see [`Unread`]).
//! * Several instances: a turn holds a lock for as long as it has rows in flight, so the relays
//!   of several instances take turns and never interleave one key's rows. PostgreSQL: a session
//!   advisory lock (one per service) on the connection the turn's reads and marks run on, so a
//!   lost connection (and with it the lock) fails the turn instead of letting it go on
//!   unlocked; released at the end of the turn, and by the server if the process dies. SQLite
//!   (processes on one host sharing the file): an OS file lock beside it
//!   (`<file>.outbox-relay-<service>.lock`), which the kernel releases when a process dies.
//! * Failures: a row is marked sent only once acknowledged. While Kafka is unreachable turns
//!   fail, the backlog grows (writes go on), and the relay probes the cluster with a metadata
//!   request before its next turn (backing off with the shared [`RetryPolicy`]). A failed batch
//!   stops the turn from handing over more; what is already in flight settles and what was
//!   acknowledged is marked. A row that failed is published again in a later turn, after rows
//!   of its key that were in flight behind it had been acknowledged: the producer fails a row
//!   only once its message timeout passed, and consumers apply task events by version. A crash
//!   between acknowledgement and marking re-sends those rows: consumers deduplicate by
//!   `eventId`, as the contract requires of them anyway.
//! * A row that can never be published (its JSON unreadable, its schema refused by the
//!   registry) is set aside: `dead_at` and `dead_reason` are written, the rows behind it go on,
//!   `outbox_dead_rows` counts it and the `OutboxRowSetAside` alert fires. Nothing is deleted:
//!   an operator fixes the cause and clears `dead_at` to have it published.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use events::{AnyEvent, EventCodec, Service, Topic};
use futures::StreamExt;
use futures::future::join_all;
use futures::stream::FuturesOrdered;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio::sync::Notify;

use super::metrics::OutboxMetrics;
use super::store::{self, OutboxRow, Unread};
use crate::consumer::RetryPolicy;
use crate::db::{Backend, Database, DbConnection, DbError, PooledDb};
use crate::shutdown::Shutdown;
use crate::telemetry::{self, TraceContext};

/// Batches a turn has with the producer at a time: one. librdkafka's idempotent producer sends
/// a partition's next request only once the previous one was answered (it counts messages in
/// flight against its limit of five requests; librdkafka PR #4989), and while a batch that is
/// ready waits for that, its broker thread polls without a timeout: a core-eating spin,
/// measured at 16% of a core in task-api under load. A batch handed over only once the
/// previous one was acknowledged finds the partitions idle and leaves after the linger; what is
/// committed meanwhile goes together in the next one. Measured beside 4 batches in flight
/// (whole system, six alternating pairs on the two databases): creates +15% on average (-1% to
/// +46%); 201 -> on Kafka p99 0.2 to 0.4 of before in five pairs, higher in one; p50 about 7 ms
/// higher on SQLite (a row committed while a batch is in flight waits for its answer).
const IN_FLIGHT_BATCHES: usize = 1;

/// How a relay behaves.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows read and handed to the producer at a time (a batch), and marked sent together.
    pub batch_size: i64,
    /// How often an idle relay looks for rows nobody woke it for (a crash, another instance).
    pub poll_interval: Duration,
    /// How long the brokers may take to acknowledge a row before the turn counts it failed.
    pub publish_timeout: Duration,
    /// Backoff between failed turns.
    pub backoff: RetryPolicy,
    /// How long sent rows are kept (for inspection) before the monitor deletes them. Zero:
    /// a row is deleted once acknowledged, by the statement that would have marked it sent
    /// (one write per row instead of an update now and a delete later; the topic holds the
    /// event from then on).
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

/// Why a turn stopped.
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

/// What a turn did.
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
    fn pg_try_advisory_lock(key: diesel::sql_types::BigInt) -> diesel::sql_types::Bool;
}

diesel::define_sql_function! {
    fn pg_advisory_unlock_all();
}

/// The turn's statements and the lock that makes them this instance's alone.
enum Turn {
    /// PostgreSQL: the connection holding the session advisory lock; the turn's reads and
    /// marks run on it (`None` only while one of them does).
    Postgres(Option<PooledDb>),
    /// SQLite: statements on the relay's pool, the file lock held beside the database (none
    /// where the lock file cannot be opened).
    Sqlite {
        /// Held for the turn; released when dropped.
        _lock: Option<LocalTurn>,
    },
}

/// The turn of one relay among the processes sharing a SQLite file: an exclusive `flock` on a
/// file beside the database, released when the turn ends (or the process dies).
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
    /// whose messages give up after the publish timeout so that a turn fails rather than hangs.
    /// Give it a database pool of its own ([`Database::dedicated`]) so its turns never queue
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

    /// Take turns publishing until `stop` is triggered; then one last bounded turn for what was
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
                    Err(_) => tracing::warn!("outbox relay stopped; final turn timed out"),
                }
                return;
            }
            if failures > 0 && !self.kafka_reachable().await {
                failures = failures.saturating_add(1);
                self.pause(&stop, failures).await;
                continue;
            }
            match self.round().await {
                Ok(_) => {
                    failures = 0;
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.settings.poll_interval) => {}
                        _ = stop.wait() => {}
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, failures, "outbox turn failed; retrying with backoff");
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

    /// One turn: take the lock (or find another instance's relay holding it), then publish
    /// until nothing is pending or in flight, and release it.
    pub async fn round(&self) -> Result<Round, RelayError> {
        let Some(mut turn) = self.take_turn().await? else {
            return Ok(Round {
                locked_out: true,
                ..Round::default()
            });
        };
        let result = self.publish_while_pending(&mut turn).await;
        self.end_turn(turn).await;
        result
    }

    async fn take_turn(&self) -> Result<Option<Turn>, RelayError> {
        match self.db.backend() {
            Backend::Postgres => {
                let pool = self.db.pool().clone();
                let key = lock_key(self.service);
                let conn = tokio::task::spawn_blocking(move || -> Result<_, DbError> {
                    use diesel::RunQueryDsl;
                    let mut conn = pool.get()?;
                    let locked = match &mut *conn {
                        DbConnection::Postgresql(c) => {
                            diesel::select(pg_try_advisory_lock(key)).get_result::<bool>(c)?
                        }
                        DbConnection::Sqlite(_) => true,
                    };
                    Ok(locked.then_some(conn))
                })
                .await
                .map_err(|e| DbError::Unavailable(format!("database task failed: {e}")))??;
                Ok(conn.map(|c| Turn::Postgres(Some(c))))
            }
            Backend::Sqlite => match &self.local_lock {
                Some(file) => match LocalTurn::try_take(file) {
                    Ok(Some(lock)) => Ok(Some(Turn::Sqlite { _lock: Some(lock) })),
                    Ok(None) => Ok(None),
                    Err(e) => Err(RelayError::Lock(e.to_string())),
                },
                None => Ok(Some(Turn::Sqlite { _lock: None })),
            },
        }
    }

    /// Release the turn's lock. On PostgreSQL a connection whose unlock fails is not trusted
    /// again: the pool tests it before lending it out, and a broken one is dropped (its
    /// session, and lock, end with it).
    async fn end_turn(&self, turn: Turn) {
        if let Turn::Postgres(Some(mut conn)) = turn {
            let _ = tokio::task::spawn_blocking(move || {
                use diesel::RunQueryDsl;
                if let DbConnection::Postgresql(c) = &mut *conn
                    && let Err(e) = diesel::select(pg_advisory_unlock_all()).execute(c)
                {
                    tracing::warn!(error = %e, "releasing the outbox relay's lock failed");
                }
            })
            .await;
        }
    }

    /// Run a statement of the turn: on the locked connection (PostgreSQL) or the pool (SQLite,
    /// where one that writes waits for the process's other writers: [`Database::write`]).
    async fn exec<T, F>(&self, turn: &mut Turn, access: Access, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    {
        match turn {
            Turn::Postgres(slot) => {
                let mut conn = slot.take().ok_or_else(|| {
                    DbError::Unavailable("the relay lost its locked connection".to_owned())
                })?;
                let (conn, outcome) = tokio::task::spawn_blocking(move || {
                    let outcome = f(&mut conn);
                    (conn, outcome)
                })
                .await
                .map_err(|e| DbError::Unavailable(format!("database task failed: {e}")))?;
                *slot = Some(conn);
                outcome
            }
            Turn::Sqlite { .. } => match access {
                Access::Read => self.db.run(f).await,
                Access::Write => self.db.write(f).await,
            },
        }
    }

    /// The turn's work: keep up to [`IN_FLIGHT_BATCHES`] batches with the producer, read the
    /// next whenever there is room, and mark each settled batch (in order) once the next one is
    /// with the producer, so the brokers work on it while the mark runs; done when a read finds
    /// nothing and nothing is in flight. After a failure nothing more is handed over; what is
    /// in flight settles (and what was acknowledged is marked) before the error is returned.
    async fn publish_while_pending(&self, turn: &mut Turn) -> Result<Round, RelayError> {
        let limit = self.settings.batch_size;
        let mut round = Round::default();
        let mut in_flight = FuturesOrdered::new();
        // Rows read by this turn and not settled yet: PostgreSQL's next read skips them.
        let mut taken: HashSet<i64> = HashSet::new();
        // The last row read (SQLite's reads start after it: see [`Unread`]).
        let mut last_read: Option<i64> = None;
        let mut failed: Option<RelayError> = None;
        // A batch stopped short of handing over all its rows: nothing after them may enter the
        // producer before they do (its settling then fails the turn).
        let mut halted = false;
        // Settled, not marked yet: marked after the next read and hand-over.
        let mut unmarked: Option<Outcome> = None;
        loop {
            let mut handed_over = false;
            if failed.is_none() && !halted && in_flight.len() < IN_FLIGHT_BATCHES {
                let unread = match turn {
                    Turn::Sqlite { .. } => Unread::After(last_read),
                    Turn::Postgres(_) => Unread::Except(taken.iter().copied().collect()),
                };
                match self
                    .exec(turn, Access::Read, move |c| {
                        store::pending(c, limit, &unread)
                    })
                    .await
                {
                    Ok(rows) if !rows.is_empty() => {
                        round.read += rows.len();
                        taken.extend(rows.iter().map(|r| r.seq));
                        last_read = rows.last().map(|r| r.seq);
                        // Handed over here, before the next read: batches enter the producer
                        // in the order they were read even when encoding one waits (on the
                        // registry), which a hand-over inside the in-flight future did not
                        // ensure (CI saw one user's task.created leave out of order).
                        let handed = self.hand_over(rows).await;
                        halted = handed.outcome.failure.is_some();
                        in_flight.push_back(self.acknowledged(handed));
                        handed_over = true;
                    }
                    Ok(_) => {}
                    Err(e) => failed = Some(e.into()),
                }
            }
            if let Some(outcome) = unmarked.take() {
                self.mark(turn, outcome, &mut taken, &mut round, &mut failed)
                    .await;
            }
            let room = failed.is_none() && !halted && in_flight.len() < IN_FLIGHT_BATCHES;
            if handed_over && room {
                continue;
            }
            tokio::select! {
                biased;
                settled = in_flight.next() => {
                    let Some(outcome) = settled else {
                        // Nothing in flight, and the last read found nothing (or failed).
                        return failed.map_or(Ok(round), Err);
                    };
                    if outcome.failure.is_some() {
                        // Nothing more may be handed over: settle it (and fail the turn) now.
                        self.mark(turn, outcome, &mut taken, &mut round, &mut failed)
                            .await;
                    } else {
                        unmarked = Some(outcome);
                    }
                }
                // New rows were committed: read them while the others await their acks.
                _ = self.wake.notified(), if room => {}
            }
        }
    }

    /// Record a settled batch: mark what was acknowledged and set aside, count it in the
    /// turn, and keep the first error of the turn.
    async fn mark(
        &self,
        turn: &mut Turn,
        outcome: Outcome,
        taken: &mut HashSet<i64>,
        round: &mut Round,
        failed: &mut Option<RelayError>,
    ) {
        let marks = outcome.marks(!self.settings.retention.is_zero());
        let marked = self
            .exec(turn, Access::Write, move |c| {
                use diesel::Connection;
                c.transaction(|c| marks.apply(c))
            })
            .await;
        for seq in &outcome.seqs {
            taken.remove(seq);
        }
        if let Err(e) = marked {
            failed.get_or_insert(e.into());
        }
        match self.settle(outcome) {
            Ok(r) => {
                round.published += r.published;
                round.set_aside += r.set_aside;
            }
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }

    /// A settled batch's counts, or the error of its rows that were not acknowledged.
    fn settle(&self, outcome: Outcome) -> Result<Round, RelayError> {
        let service = self.metrics.service();
        match outcome.failure {
            None => Ok(Round {
                read: outcome.seqs.len(),
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
                    total: outcome.seqs.len(),
                    first_error,
                })
            }
        }
    }

    /// Encode every row of a batch and hand them to the producer in order, stopping at the
    /// first that cannot be handed over (it and the rows after it are retried in a later turn).
    async fn hand_over(&self, rows: Vec<OutboxRow>) -> Handed {
        let service = self.metrics.service();
        let mut outcome = Outcome {
            seqs: rows.iter().map(|r| r.seq).collect(),
            ..Outcome::default()
        };
        // Every row is encoded before the first enters the producer, so the batch enters it
        // in one burst, well within its linger, and leaves as one request per partition.
        let mut encoded = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            match self.encode(&row).await {
                Ok(payload) => encoded.push((row, payload)),
                Err(RowError::Poison(reason)) => {
                    tracing::error!(seq = row.seq, topic = %row.topic, event_id = %row.event_id, %reason, "outbox row can never be published; set aside");
                    self.metrics
                        .dead_rows_total
                        .with_label_values(&[service])
                        .inc();
                    outcome.set_aside.push((row.seq, reason));
                }
                Err(RowError::Retry(reason)) => {
                    // Later rows may share a key with this one: stop here to keep their order.
                    outcome.failure =
                        Some((outcome.seqs.len() - i, format!("schema registry: {reason}")));
                    break;
                }
            }
        }
        let mut in_flight = Vec::with_capacity(encoded.len());
        for (row, payload) in encoded {
            let mut headers = OwnedHeaders::new_with_capacity(2).insert(Header {
                key: events::headers::PRODUCER,
                value: Some(self.service.name()),
            });
            // The publish, a step of the row's trace, open until the brokers answered; the
            // message carries its context, so each consumer's handling is its child.
            let (span, traceparent) = publish_span(&row);
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
                Ok(delivery) => in_flight.push((row, span, delivery)),
                Err((e, _)) => {
                    // Every row neither handed over nor set aside stays unsent (those after a
                    // failure met while encoding among them).
                    let unsent = outcome.seqs.len() - in_flight.len() - outcome.set_aside.len();
                    outcome.failure = Some((unsent, format!("cannot enqueue: {e}")));
                    break;
                }
            }
        }
        Handed { outcome, in_flight }
    }

    /// Await the acknowledgements of a batch handed over: what was sent, and what failed.
    async fn acknowledged(&self, handed: Handed) -> Outcome {
        let service = self.metrics.service();
        let Handed {
            mut outcome,
            in_flight,
        } = handed;
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

/// A batch handed to the producer: what is known of its outcome so far, and the rows awaiting
/// their acknowledgement.
struct Handed {
    outcome: Outcome,
    in_flight: Vec<(OutboxRow, tracing::Span, DeliveryFuture)>,
}

/// What publishing a batch came to.
#[derive(Debug, Default)]
struct Outcome {
    /// Every row of the batch.
    seqs: Vec<i64>,
    /// Acknowledged.
    sent: Vec<i64>,
    /// Never publishable, with the reason.
    set_aside: Vec<(i64, String)>,
    /// How many rows failed (retried in a later turn) and the first error.
    failure: Option<(usize, String)>,
}

impl Outcome {
    fn marks(&self, keep_sent: bool) -> Marks {
        Marks {
            sent: self.sent.clone(),
            keep_sent,
            set_aside: self.set_aside.clone(),
        }
    }
}

/// Whether a statement of a turn reads or writes.
#[derive(Debug, Clone, Copy)]
enum Access {
    Read,
    Write,
}

/// The statements that record a batch's outcome.
struct Marks {
    sent: Vec<i64>,
    /// Mark the acknowledged rows sent (kept for the retention) rather than delete them.
    keep_sent: bool,
    set_aside: Vec<(i64, String)>,
}

impl Marks {
    fn apply(&self, conn: &mut DbConnection) -> Result<(), DbError> {
        let now = events::now_millis();
        if self.keep_sent {
            store::mark_sent(conn, &self.sent, now)?;
        } else {
            store::delete_sent(conn, &self.sent)?;
        }
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
        // With no retention the relay deletes what it publishes: nothing is left to purge.
        if !retention.is_zero() && ticks.is_multiple_of(PURGE_EVERY) {
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
