//! The outbox relay: publishes recorded next occurrences and marks them published only after
//! the brokers acknowledged them (`acks=all`).
//!
//! The consumer wakes it after each commit, so a next occurrence usually leaves within
//! milliseconds; a periodic look catches whatever a crash or a Kafka outage left behind. A
//! crash between the acknowledgement and the mark re-publishes the same event (same event id,
//! same task id) on restart, which consumers deduplicate.

use std::sync::Arc;
use std::time::Duration;

use events::{EventPublisher, TaskCreatedEvent};
use service_kit::db::Database;
use service_kit::shutdown::Shutdown;
use tokio::sync::Notify;

use crate::metrics::SeriesMetrics;
use crate::storage::{self, NextOccurrenceRow};

/// Rows published per round.
const BATCH: i64 = 200;
/// Bounds of the delay between rounds while publishing fails.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long the last round on shutdown may take.
const FINAL_ROUND: Duration = Duration::from_secs(10);

pub struct OutboxRelay {
    db: Database,
    publisher: EventPublisher,
    wake: Arc<Notify>,
    interval: Duration,
    metrics: SeriesMetrics,
}

impl OutboxRelay {
    pub fn new(
        db: Database,
        publisher: EventPublisher,
        wake: Arc<Notify>,
        interval: Duration,
        metrics: SeriesMetrics,
    ) -> Self {
        Self {
            db,
            publisher,
            wake,
            interval,
            metrics,
        }
    }

    /// Run until `stop`, then make one last bounded attempt at what is pending.
    pub async fn run(self, stop: Shutdown) {
        let mut backoff = MIN_BACKOFF;
        loop {
            if stop.is_triggered() {
                break;
            }
            let pause = match self.round().await {
                // A full batch: there may be more right away.
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => {
                    backoff = MIN_BACKOFF;
                    tokio::select! {
                        _ = self.wake.notified() => continue,
                        _ = tokio::time::sleep(self.interval) => continue,
                        _ = stop.wait() => break,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "publishing next occurrences failed");
                    let pause = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    pause
                }
            };
            // Jitter keeps several instances from retrying in lockstep.
            let jitter = Duration::from_millis(fastrand_ms(pause));
            tokio::select! {
                _ = tokio::time::sleep(pause + jitter) => {}
                _ = stop.wait() => break,
            }
        }
        match tokio::time::timeout(FINAL_ROUND, self.round()).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(published = n, "outbox drained on shutdown"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "outbox left pending on shutdown; published on restart")
            }
            Err(_) => tracing::warn!("outbox round timed out on shutdown; published on restart"),
            Ok(Ok(_)) => {}
        }
    }

    /// Publish one batch of pending rows; returns how many were published.
    pub async fn round(&self) -> Result<usize, RelayError> {
        let rows = self.db.run(|conn| storage::pending(conn, BATCH)).await?;
        if rows.is_empty() {
            self.metrics.outbox_pending.set(0);
            return Ok(0);
        }
        // Sent in order and concurrently: the producer keeps the order of one key's messages.
        let sends = rows.iter().map(|row| self.publish(row));
        let results = futures::future::join_all(sends).await;
        let now = events::now_millis();
        let mut published = Vec::new();
        let mut failure = None;
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => {
                    published.push((row.series_id.clone(), row.occurrence_index));
                    self.metrics
                        .outbox_delay_seconds
                        .observe((now - row.created_at).max(0) as f64 / 1000.0);
                }
                Err(e) => {
                    self.metrics.publish_failures_total.inc();
                    let (series, index) = (row.series_id.clone(), row.occurrence_index);
                    let _ = self
                        .db
                        .run(move |conn| storage::count_failed_attempt(conn, &series, index))
                        .await;
                    failure.get_or_insert(e);
                }
            }
        }
        let count = published.len();
        if count > 0 {
            self.db
                .transaction(move |conn| storage::mark_published(conn, &published, now))
                .await?;
            self.metrics
                .next_occurrences_published_total
                .inc_by(count as u64);
        }
        if let Ok(pending) = self.db.run(storage::count_pending).await {
            self.metrics.outbox_pending.set(pending);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }

    async fn publish(&self, row: &NextOccurrenceRow) -> Result<(), RelayError> {
        let event: TaskCreatedEvent = serde_json::from_str(&row.payload).map_err(|e| {
            RelayError::Payload(format!("{} of series {}: {e}", row.task_id, row.series_id))
        })?;
        self.publisher
            .publish(&event, row.traceparent.as_deref())
            .await?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Db(#[from] service_kit::db::DbError),
    #[error(transparent)]
    Publish(#[from] events::PublishError),
    #[error("stored event unreadable: {0}")]
    Payload(String),
}

/// Up to a quarter of `pause`, in milliseconds.
fn fastrand_ms(pause: Duration) -> u64 {
    let quarter = (pause.as_millis() / 4) as u64;
    if quarter == 0 {
        0
    } else {
        fastrand::u64(0..quarter)
    }
}
