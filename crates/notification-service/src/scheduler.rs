//! The firing loop: sleeps until the next reminder is due (or the consumer changed the
//! schedule), then in one transaction claims the due reminders, marks them fired and writes
//! their reminder.triggered events to the outbox. A reminder is claimed by one transaction only,
//! so it fires once; several instances on PostgreSQL share the work through
//! `FOR UPDATE SKIP LOCKED`. Reminders that came due while the service was down are due at start
//! and fire at once, marked late.

use std::sync::Arc;

use events::{Event, NotificationChannel, ReminderTriggeredEvent, Topic};
use service_kit::db::{Database, DbError};
use service_kit::telemetry::TraceContext;
use tokio::sync::Notify;

use crate::config::ScheduleSettings;
use crate::domain::ReminderState;
use crate::domain::schedule::{Firing, firing};
use crate::due_loop::{DuePass, Next};
use crate::metrics::NotificationMetrics;
use crate::storage::reminders::{self, ReminderRow};
use service_kit::outbox::NewOutboxRow;

pub struct ReminderScheduler {
    db: Database,
    settings: ScheduleSettings,
    metrics: NotificationMetrics,
    /// Wakes the outbox relay when events were written.
    relay: Arc<Notify>,
}

/// What one claim found.
#[derive(Debug, Default)]
struct Claimed {
    /// (remind_at, fired_at, late) of each fired reminder.
    fired: Vec<(i64, i64, bool)>,
    expired: usize,
    total: usize,
}

/// The event announcing a fired reminder; its id derives from the reminder id, so the event a
/// reminder produces is the same whatever happens.
pub fn triggered_event(
    row: &ReminderRow,
    channel: NotificationChannel,
    fired_at: i64,
    late: bool,
) -> ReminderTriggeredEvent {
    ReminderTriggeredEvent {
        event_id: events::ids::derived_event_id(Topic::ReminderTriggered.name(), &row.reminder_id)
            .to_string(),
        event_timestamp: fired_at,
        reminder_id: row.reminder_id.clone(),
        user_id: row.user_id.clone(),
        task_id: row.task_id.clone(),
        task_version: row.task_version.max(1),
        task_title: row.task_title.clone(),
        due_date: row.due_date,
        remind_at: row.remind_at,
        fired_at,
        channel,
        late,
    }
}

/// An outbox row for an event, continuing `trace` (or a new trace).
pub fn outbox_entry<E: Event>(event: &E, trace: Option<&str>, now: i64) -> NewOutboxRow {
    let trace = TraceContext::from_header_or_new(trace).child();
    NewOutboxRow {
        event_id: event.event_id().to_owned(),
        topic: E::TOPIC.name().to_owned(),
        message_key: event.key().to_owned(),
        payload: serde_json::to_string(event).unwrap_or_default(),
        traceparent: Some(trace.header()),
        created_at: now,
    }
}

impl ReminderScheduler {
    pub fn new(
        db: Database,
        settings: ScheduleSettings,
        metrics: NotificationMetrics,
        relay: Arc<Notify>,
    ) -> Self {
        Self {
            db,
            settings,
            metrics,
            relay,
        }
    }

    async fn fire_due(&self) -> Result<Claimed, DbError> {
        let limit = self.settings.batch_size;
        let late_after = self.settings.late_after.as_millis() as i64;
        let expire_after = self.settings.expire_after.as_millis() as i64;
        self.db
            .transaction(move |conn| {
                let now = events::now_millis();
                let due = reminders::lock_due(conn, now, limit)?;
                let mut claimed = Claimed {
                    total: due.len(),
                    ..Default::default()
                };
                let (mut on_time, mut late, mut expired) = (Vec::new(), Vec::new(), Vec::new());
                let mut entries = Vec::with_capacity(due.len());
                for row in &due {
                    let Some(channel) = row.channel.parse::<NotificationChannel>().ok() else {
                        // Written by this service from a valid channel: cannot happen.
                        expired.push(row.reminder_id.as_str());
                        continue;
                    };
                    let kind = firing(row.remind_at, now, late_after, expire_after);
                    match kind {
                        Firing::Expired => {
                            expired.push(row.reminder_id.as_str());
                            continue;
                        }
                        Firing::Late => late.push(row.reminder_id.as_str()),
                        Firing::OnTime => on_time.push(row.reminder_id.as_str()),
                    }
                    let is_late = kind == Firing::Late;
                    let event = triggered_event(row, channel, now, is_late);
                    entries.push(outbox_entry(&event, row.traceparent.as_deref(), now));
                    claimed.fired.push((row.remind_at, now, is_late));
                }
                reminders::mark(conn, &on_time, ReminderState::Fired, Some(now), false, now)?;
                reminders::mark(conn, &late, ReminderState::Fired, Some(now), true, now)?;
                reminders::mark(conn, &expired, ReminderState::Expired, None, false, now)?;
                service_kit::outbox::store::insert(conn, &entries)?;
                claimed.expired = expired.len();
                Ok(claimed)
            })
            .await
    }

    fn record(&self, claimed: &Claimed) {
        for &(remind_at, fired_at, late) in &claimed.fired {
            self.metrics
                .reminders_fired_total
                .with_label_values(&[if late { "true" } else { "false" }])
                .inc();
            self.metrics
                .reminder_firing_delay_seconds
                .observe((fired_at - remind_at).max(0) as f64 / 1000.0);
        }
        if claimed.expired > 0 {
            self.metrics
                .reminders_expired_total
                .inc_by(claimed.expired as u64);
            tracing::warn!(
                expired = claimed.expired,
                "reminders missed by more than REMINDER_EXPIRE_AFTER_MS were not fired"
            );
        }
        if !claimed.fired.is_empty() {
            let late = claimed.fired.iter().filter(|f| f.2).count();
            tracing::info!(fired = claimed.fired.len(), late, "reminders fired");
        }
    }
}

impl DuePass for ReminderScheduler {
    async fn pass(&mut self) -> Result<Next, DbError> {
        let claimed = self.fire_due().await?;
        self.record(&claimed);
        if !claimed.fired.is_empty() {
            self.relay.notify_one();
        }
        if claimed.total as i64 >= self.settings.batch_size {
            return Ok(Next::Now);
        }
        Ok(match self.db.run(reminders::next_due).await? {
            Some(at) => Next::At(at),
            None => Next::Idle,
        })
    }
}
