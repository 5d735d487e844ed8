//! What the service does with each consumed event, in batches of one transaction:
//!
//! * task events reschedule the task's reminders (the newest version wins; an older version
//!   arriving late changes nothing);
//! * user events store the newest profile (address, time zone, channels, webhook URL);
//! * reminder.triggered records a pending delivery under its notification id (a replay finds
//!   it there and does nothing), then wakes the delivery worker;
//! * task.assigned also records an "assigned to you" delivery on each of the assignee's
//!   channels, once per assignment version (its ids derive from the task and the version).
//!
//! Every effect is idempotent by version or by deterministic id, so the runtime's
//! at-least-once delivery never doubles anything.

use std::sync::Arc;

use events::{AnyEvent, NotificationChannel, ReminderTriggeredEvent, TaskAssignedEvent, Topic};
use service_kit::consumer::{EventHandler, HandleError, Received};
use service_kit::db::{Database, DbConnection, DbError};
use service_kit::telemetry::TraceContext;
use tokio::sync::Notify;

use crate::domain::message::NoticeKind;
use crate::domain::schedule::TaskSnapshot;
use crate::domain::{DeliveryState, ReminderState, channels_from_text, channels_to_text};
use crate::metrics::NotificationMetrics;
use crate::storage::deliveries::{self, NewDelivery};
use crate::storage::tasks::{self, ScheduleChange};
use crate::storage::users::{self, UserRow};
use crate::storage::{push, reminders};

pub struct NotificationConsumer {
    db: Database,
    metrics: NotificationMetrics,
    /// Wakes the scheduler after the schedule changed.
    scheduler: Arc<Notify>,
    /// Wakes the delivery worker after deliveries were recorded.
    deliveries: Arc<Notify>,
}

/// What one event changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Schedule(ScheduleChange),
    Profile {
        applied: bool,
    },
    Delivery {
        recorded: bool,
    },
    /// A task.assigned: the schedule (its reminders follow the assignee) and the notice.
    Assigned {
        change: ScheduleChange,
        recorded: bool,
    },
    Ignored(&'static str),
}

/// An event as the transaction needs it (owned, so the retryable closure can be re-run).
#[derive(Clone)]
struct Item {
    event: AnyEvent,
    topic: Topic,
    trace: TraceContext,
}

impl NotificationConsumer {
    pub fn new(
        db: Database,
        metrics: NotificationMetrics,
        scheduler: Arc<Notify>,
        deliveries: Arc<Notify>,
    ) -> Self {
        Self {
            db,
            metrics,
            scheduler,
            deliveries,
        }
    }

    async fn apply_all(&self, events: &[Received]) -> Result<(), HandleError> {
        let items: Vec<Item> = events
            .iter()
            .map(|r| Item {
                event: r.event.clone(),
                topic: r.meta.topic,
                trace: r.meta.trace,
            })
            .collect();
        let effects = self
            .db
            .transaction(move |conn| {
                let now = events::now_millis();
                items
                    .iter()
                    .map(|item| Ok((item.topic, apply(conn, item, now)?)))
                    .collect::<Result<Vec<_>, DbError>>()
            })
            .await?;
        self.after_commit(&effects);
        Ok(())
    }

    fn after_commit(&self, effects: &[(Topic, Effect)]) {
        let (mut schedule_changed, mut deliveries_recorded) = (false, false);
        for (topic, effect) in effects {
            match effect {
                Effect::Schedule(change) => {
                    if change.stale {
                        self.ignored(*topic, "stale_version");
                    }
                    self.metrics
                        .reminders_scheduled_total
                        .inc_by(change.scheduled as u64);
                    self.metrics
                        .reminders_cancelled_total
                        .inc_by(change.cancelled as u64);
                    schedule_changed |= change.touched_schedule();
                }
                Effect::Profile { applied: false } => self.ignored(*topic, "stale_version"),
                Effect::Profile { applied: true } => {}
                Effect::Delivery { recorded } => {
                    if *recorded {
                        deliveries_recorded = true;
                    } else {
                        self.ignored(*topic, "already_recorded");
                    }
                }
                Effect::Assigned { change, recorded } => {
                    schedule_changed |= change.touched_schedule();
                    deliveries_recorded |= *recorded;
                }
                Effect::Ignored(reason) => self.ignored(*topic, reason),
            }
        }
        if schedule_changed {
            self.scheduler.notify_one();
        }
        if deliveries_recorded {
            self.deliveries.notify_one();
        }
    }

    fn ignored(&self, topic: Topic, reason: &str) {
        self.metrics
            .events_ignored_total
            .with_label_values(&[topic.name(), reason])
            .inc();
    }
}

fn apply(conn: &mut DbConnection, item: &Item, now: i64) -> Result<Effect, DbError> {
    match &item.event {
        AnyEvent::TaskAssigned(e) => {
            let change = apply_task(conn, item, now)?;
            let recorded = record_assignment(conn, e, &item.trace, now)?;
            Ok(Effect::Assigned { change, recorded })
        }
        AnyEvent::TaskCreated(_)
        | AnyEvent::TaskUpdated(_)
        | AnyEvent::TaskCompleted(_)
        | AnyEvent::TaskDeleted(_)
        | AnyEvent::TaskShared(_) => apply_task(conn, item, now).map(Effect::Schedule),
        AnyEvent::UserRegistered(e) => {
            let row = UserRow {
                user_id: e.user_id.clone(),
                email: e.email.clone(),
                name: e.name.clone(),
                timezone: e.timezone.clone(),
                channels: channels_to_text(&e.notification_channels),
                webhook_url: e.webhook_url.clone(),
                profile_version: 0,
                updated_at: now,
                // A new account has no number; user.updated brings a verified one.
                phone_number: None,
            };
            users::record(conn, &row).map(|applied| Effect::Profile { applied })
        }
        AnyEvent::UserUpdated(e) => {
            let row = UserRow {
                user_id: e.user_id.clone(),
                email: e.email.clone(),
                name: e.name.clone(),
                timezone: e.timezone.clone(),
                channels: channels_to_text(&e.notification_channels),
                webhook_url: e.webhook_url.clone(),
                profile_version: e.version,
                updated_at: now,
                phone_number: e.verified_phone_number.clone(),
            };
            let applied = users::record(conn, &row)?;
            if applied {
                push::replace(conn, &e.user_id, &push::rows_of(e))?;
            }
            Ok(Effect::Profile { applied })
        }
        AnyEvent::ReminderTriggered(e) => record_delivery(conn, e, &item.trace, now),
        _ => Ok(Effect::Ignored("not_consumed")),
    }
}

/// A task event's effect on the schedule (every task event carries the task's version, and its
/// reminders follow the assignee).
fn apply_task(conn: &mut DbConnection, item: &Item, now: i64) -> Result<ScheduleChange, DbError> {
    let Some(snapshot) = TaskSnapshot::of(&item.event) else {
        return Ok(ScheduleChange::default());
    };
    let trace = item.trace.header();
    tasks::apply(conn, &snapshot, Some(&trace), now)
}

/// The channels an "assigned to you" goes out on before the assignee's profile is known here:
/// the defaults of a new account (the delivery waits for the profile, see `delivery`).
const DEFAULT_CHANNELS: [NotificationChannel; 2] =
    [NotificationChannel::Email, NotificationChannel::InApp];

/// Record "assigned to you" on each of the assignee's channels, once per assignment version.
/// Taking a task oneself is no news, nor is unassigning.
fn record_assignment(
    conn: &mut DbConnection,
    e: &TaskAssignedEvent,
    trace: &TraceContext,
    now: i64,
) -> Result<bool, DbError> {
    let Some(assignee) = &e.assignee_id else {
        return Ok(false);
    };
    let actor = e.actor_id.as_deref().unwrap_or(&e.user_id);
    if assignee == actor {
        return Ok(false);
    }
    let channels = match users::get(conn, assignee)? {
        Some(user) => channels_from_text(&user.channels),
        None => DEFAULT_CHANNELS.to_vec(),
    };
    let assignment_id =
        events::ids::derived_event_id("assignment", &format!("{}:{}", e.task_id, e.version))
            .to_string();
    let rows: Vec<NewDelivery> = channels
        .into_iter()
        .map(|channel| NewDelivery {
            notification_id: events::ids::notification_id(&assignment_id, channel).to_string(),
            reminder_id: assignment_id.clone(),
            user_id: assignee.clone(),
            task_id: e.task_id.clone(),
            task_title: e.title.clone(),
            task_version: e.version,
            due_date: e.due_date,
            channel: channel.as_str().to_owned(),
            remind_at: e.event_timestamp,
            fired_at: e.event_timestamp,
            late: false,
            status: DeliveryState::Pending.as_str().to_owned(),
            attempts: 0,
            next_attempt_at: Some(now),
            last_error: None,
            traceparent: Some(trace.child().header()),
            created_at: now,
            updated_at: now,
            finished_at: None,
            kind: NoticeKind::Assigned.as_str().to_owned(),
            actor_id: Some(actor.to_owned()),
        })
        .collect();
    Ok(deliveries::enqueue(conn, &rows)? > 0)
}

/// Record the delivery of a fired reminder, once per notification id. Only reminders this
/// service's schedule fired are delivered: the schedule (shared by every instance) is the one
/// source of reminders, so a stray event on the topic sends nothing.
fn record_delivery(
    conn: &mut DbConnection,
    e: &ReminderTriggeredEvent,
    trace: &TraceContext,
    now: i64,
) -> Result<Effect, DbError> {
    let Some(reminder) = reminders::get(conn, &e.reminder_id)? else {
        return Ok(Effect::Ignored("unknown_reminder"));
    };
    if reminder.state != ReminderState::Fired.as_str() || reminder.user_id != e.user_id {
        return Ok(Effect::Ignored("reminder_not_fired"));
    }
    let notification_id = events::ids::notification_id(&e.reminder_id, e.channel).to_string();
    let row = NewDelivery {
        notification_id,
        reminder_id: e.reminder_id.clone(),
        user_id: e.user_id.clone(),
        task_id: e.task_id.clone(),
        task_title: e.task_title.clone(),
        task_version: e.task_version,
        due_date: e.due_date,
        channel: e.channel.as_str().to_owned(),
        remind_at: e.remind_at,
        fired_at: e.fired_at,
        late: e.late,
        status: DeliveryState::Pending.as_str().to_owned(),
        attempts: 0,
        next_attempt_at: Some(now),
        last_error: None,
        traceparent: Some(trace.child().header()),
        created_at: now,
        updated_at: now,
        finished_at: None,
        kind: NoticeKind::Reminder.as_str().to_owned(),
        actor_id: None,
    };
    let recorded = deliveries::enqueue(conn, std::slice::from_ref(&row))? == 1;
    Ok(Effect::Delivery { recorded })
}

impl EventHandler for NotificationConsumer {
    async fn handle(&self, event: &Received) -> Result<(), HandleError> {
        self.apply_all(std::slice::from_ref(event)).await
    }

    fn max_batch(&self) -> usize {
        200
    }

    async fn handle_batch(&self, events: &[Received]) -> Result<(), HandleError> {
        self.apply_all(events).await
    }
}
