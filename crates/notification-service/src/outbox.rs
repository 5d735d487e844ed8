//! The outbox relay: publishes the events the scheduler and the delivery worker wrote to the
//! outbox, with the idempotent producer, and marks them sent only after the brokers acknowledged
//! them. Rows are leased while being published, so several instances never publish the same row
//! at once; a failed publish is retried later, so nothing written is ever lost while Kafka is away.

use std::time::Duration;

use events::{AnyEvent, EventPublisher, Topic};
use service_kit::consumer::RetryPolicy;
use service_kit::db::{Database, DbError};

use crate::due_loop::{DuePass, Next};
use crate::metrics::NotificationMetrics;
use crate::storage::outbox::{self, OutboxRow};

/// Rows published per pass.
const BATCH: i64 = 500;
/// How long a claimed row stays with this relay: longer than the producer's delivery timeout.
const LEASE: Duration = Duration::from_secs(60);
/// Backoff of rows whose publishing failed.
const PUBLISH_BACKOFF: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(500),
    max_delay: Duration::from_secs(10),
    max_attempts: u32::MAX,
};
/// Published rows are kept this long (for diagnosis), then deleted.
const KEEP_SENT_MS: i64 = 24 * 60 * 60 * 1000;
const PURGE_EVERY_MS: i64 = 10 * 60 * 1000;

pub struct OutboxRelay {
    db: Database,
    publisher: EventPublisher,
    metrics: NotificationMetrics,
    failures: u32,
    last_purge: i64,
}

/// The typed event of an outbox row.
fn event_of(row: &OutboxRow) -> Result<AnyEvent, String> {
    let topic: Topic = row.topic.parse().map_err(|e| format!("{e}"))?;
    let parsed = match topic {
        Topic::ReminderTriggered => {
            serde_json::from_str(&row.payload).map(AnyEvent::ReminderTriggered)
        }
        Topic::NotificationSent => {
            serde_json::from_str(&row.payload).map(AnyEvent::NotificationSent)
        }
        other => return Err(format!("{other} is not a topic this service produces")),
    };
    parsed.map_err(|e| e.to_string())
}

impl OutboxRelay {
    pub fn new(db: Database, publisher: EventPublisher, metrics: NotificationMetrics) -> Self {
        Self {
            db,
            publisher,
            metrics,
            failures: 0,
            last_purge: 0,
        }
    }

    /// Publish one claimed batch; returns (published, failed) row sequence numbers.
    async fn publish(&self, rows: &[OutboxRow]) -> (Vec<i64>, Vec<i64>) {
        let sends = rows.iter().map(|row| async move {
            let event = match event_of(row) {
                Ok(e) => e,
                Err(e) => {
                    // Written by this service from a typed event: a bug, not a condition.
                    tracing::error!(seq = row.seq, error = %e, "outbox row cannot be read; skipped");
                    return (row, Ok(()));
                }
            };
            let result = self
                .publisher
                .publish_any(&event, row.traceparent.as_deref())
                .await
                .map(|_| ());
            (row, result)
        });
        let mut published = Vec::new();
        let mut failed = Vec::new();
        for (row, result) in futures::future::join_all(sends).await {
            match result {
                Ok(()) => {
                    self.metrics
                        .outbox_published_total
                        .with_label_values(&[row.topic.as_str()])
                        .inc();
                    published.push(row.seq);
                }
                Err(e) => {
                    self.metrics
                        .outbox_publish_failures_total
                        .with_label_values(&[row.topic.as_str()])
                        .inc();
                    tracing::warn!(seq = row.seq, topic = %row.topic, error = %e, "publish failed; will retry");
                    failed.push(row.seq);
                }
            }
        }
        (published, failed)
    }

    async fn purge_if_due(&mut self, now: i64) -> Result<(), DbError> {
        if now - self.last_purge < PURGE_EVERY_MS {
            return Ok(());
        }
        self.last_purge = now;
        let purged = self
            .db
            .run(move |conn| outbox::purge_sent(conn, now - KEEP_SENT_MS))
            .await?;
        if purged > 0 {
            tracing::debug!(purged, "published outbox rows deleted");
        }
        Ok(())
    }

    /// Publish everything publishable now, pass after pass, for at most `bound` (shutdown).
    pub async fn drain(&mut self, bound: Duration) {
        let deadline = tokio::time::Instant::now() + bound;
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, self.pass()).await {
                Ok(Ok(Next::Now)) => continue,
                Ok(Ok(_)) => return,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "outbox not drained at shutdown");
                    return;
                }
                Err(_) => {
                    tracing::warn!("outbox drain timed out; the rest is published after restart");
                    return;
                }
            }
        }
    }
}

impl DuePass for OutboxRelay {
    async fn pass(&mut self) -> Result<Next, DbError> {
        let now = events::now_millis();
        let lease_until = now + LEASE.as_millis() as i64;
        let rows = self
            .db
            .transaction(move |conn| outbox::claim(conn, now, BATCH, lease_until))
            .await?;
        if !rows.is_empty() {
            let (published, failed) = self.publish(&rows).await;
            let retry_at = if failed.is_empty() {
                self.failures = 0;
                0
            } else {
                self.failures += 1;
                events::now_millis() + PUBLISH_BACKOFF.delay(self.failures).as_millis() as i64
            };
            self.db
                .transaction(move |conn| {
                    let sent_at = events::now_millis();
                    outbox::mark_sent(conn, &published, sent_at)?;
                    outbox::release(conn, &failed, retry_at)?;
                    Ok(())
                })
                .await?;
        }
        self.purge_if_due(now).await?;
        let (backlog, next_release) = self
            .db
            .run(|conn| Ok((outbox::backlog(conn)?, outbox::next_release(conn)?)))
            .await?;
        self.metrics.outbox_backlog.set(backlog);
        if rows.len() as i64 >= BATCH && self.failures == 0 {
            return Ok(Next::Now);
        }
        Ok(match next_release {
            Some(at) => Next::At(at),
            None if backlog > 0 => Next::Now,
            None => Next::Idle,
        })
    }
}
