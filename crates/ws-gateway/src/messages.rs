//! What the browser receives: every event rendered once as client-friendly JSON (snake_case,
//! RFC 3339 times, lower-case enums, the task in the REST API's shape).
//!
//! Envelope: `{"type": <kind>, "event_id": <uuid>, "cursor": <cursor>, "data": {...}}`.
//!
//! | type | data |
//! |---|---|
//! | `task_created` | `{"task": Task, "occurred_at"}` |
//! | `task_updated` | `{"task": Task, "changed_fields": [..], "occurred_at"}` |
//! | `task_completed` | `{"task": Task, "time_to_complete_ms": n or null, "occurred_at"}` |
//! | `task_deleted` | `{"task_id", "version", "series_id", "occurred_at"}` |
//! | `reminder_triggered` | `{"reminder_id", "task_id", "task_version", "task_title", "due_at", "remind_at", "fired_at", "channel", "late", "occurred_at"}` |
//! | `notification_sent` | `{"notification_id", "reminder_id", "task_id", "channel", "status", "attempts", "sent_at", "error", "occurred_at"}` |
//!
//! `Task` = `{id, title, description, priority (critical|high|medium|low), status
//! (open|completed), due_at, category_id, tags, recurrence {rrule, cron, timezone, mode
//! (fixed|after_completion), until, count} or null, reminders [{before_due (minutes), at,
//! channel (email|webhook|in_app)}], series_id, occurrence_index, version, created_at,
//! updated_at, completed_at}`. Absent optional values are `null`.
//!
//! Control messages: `{"type":"ready","cursor","replayed"}` ends the opening of every
//! connection (after any replay) and gives a fresh client its first cursor;
//! `{"type":"resync","cursor","reason"}` says the missed messages cannot be replayed (reload over
//! REST). A client's text `ping` is answered with the text `pong`.

use bytestring::ByteString;
use chrono::{DateTime, SecondsFormat, Utc};
use events::{
    AnyEvent, DeliveryStatus, NotificationChannel, Priority, Recurrence, RecurrenceMode, Reminder,
    TaskStatus,
};
use serde::Serialize;

use crate::cursor::Cursor;

/// One message on its way to a connection: the rendered frame (shared by every connection of
/// the user and the replay buffer, never copied) and what the metrics need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub frame: ByteString,
    pub kind: MessageKind,
    /// Epoch ms at which the event happened.
    pub event_time: i64,
}

/// The kinds of event message, as the `type` field names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    TaskCreated,
    TaskUpdated,
    TaskCompleted,
    TaskDeleted,
    ReminderTriggered,
    NotificationSent,
}

impl MessageKind {
    pub const ALL: [MessageKind; 6] = [
        MessageKind::TaskCreated,
        MessageKind::TaskUpdated,
        MessageKind::TaskCompleted,
        MessageKind::TaskDeleted,
        MessageKind::ReminderTriggered,
        MessageKind::NotificationSent,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            MessageKind::TaskCreated => "task_created",
            MessageKind::TaskUpdated => "task_updated",
            MessageKind::TaskCompleted => "task_completed",
            MessageKind::TaskDeleted => "task_deleted",
            MessageKind::ReminderTriggered => "reminder_triggered",
            MessageKind::NotificationSent => "notification_sent",
        }
    }
}

/// An event rendered for its user, still without the cursor (which the hub assigns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEvent {
    pub kind: MessageKind,
    pub user_id: String,
    /// The event's id: the hub forwards each id once, however often Kafka redelivers it.
    pub event_id: String,
    /// Epoch ms at which the event happened (for the delivery latency).
    pub event_time: i64,
    /// `{"type":"…","event_id":"…","cursor":"` — everything before the cursor.
    head: String,
    /// `","data":{…}}` — everything after it.
    tail: String,
}

impl RenderedEvent {
    /// The complete message with its cursor: one allocation, no serialisation.
    pub fn frame(&self, cursor: Cursor) -> String {
        use std::fmt::Write;
        let mut frame = String::with_capacity(self.head.len() + self.tail.len() + 24);
        frame.push_str(&self.head);
        // Writing into a String cannot fail.
        let _ = write!(frame, "{cursor}");
        frame.push_str(&self.tail);
        frame
    }
}

fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(time)
}

const fn priority(p: Priority) -> &'static str {
    match p {
        Priority::Critical => "critical",
        Priority::High => "high",
        Priority::Medium => "medium",
        Priority::Low => "low",
    }
}

const fn status(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Open => "open",
        TaskStatus::Completed => "completed",
    }
}

const fn channel(c: NotificationChannel) -> &'static str {
    match c {
        NotificationChannel::Email => "email",
        NotificationChannel::Webhook => "webhook",
        NotificationChannel::InApp => "in_app",
    }
}

const fn mode(m: RecurrenceMode) -> &'static str {
    match m {
        RecurrenceMode::Fixed => "fixed",
        RecurrenceMode::AfterCompletion => "after_completion",
    }
}

const fn delivery(s: DeliveryStatus) -> &'static str {
    match s {
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Failed => "failed",
    }
}

#[derive(Serialize)]
struct RecurrenceView<'a> {
    rrule: Option<&'a str>,
    cron: Option<&'a str>,
    timezone: &'a str,
    mode: &'static str,
    until: Option<String>,
    count: Option<i32>,
}

impl<'a> From<&'a Recurrence> for RecurrenceView<'a> {
    fn from(r: &'a Recurrence) -> Self {
        Self {
            rrule: r.rrule.as_deref(),
            cron: r.cron.as_deref(),
            timezone: &r.timezone,
            mode: mode(r.mode),
            until: opt_time(r.until),
            count: r.count,
        }
    }
}

#[derive(Serialize)]
struct ReminderView {
    before_due: Option<i64>,
    at: Option<String>,
    channel: &'static str,
}

impl From<&Reminder> for ReminderView {
    fn from(r: &Reminder) -> Self {
        Self {
            before_due: r.before_due_minutes,
            at: opt_time(r.at),
            channel: channel(r.channel),
        }
    }
}

/// A task in the REST API's shape.
#[derive(Serialize)]
struct TaskView<'a> {
    id: &'a str,
    title: &'a str,
    description: Option<&'a str>,
    priority: &'static str,
    status: &'static str,
    due_at: Option<String>,
    category_id: Option<&'a str>,
    tags: &'a [String],
    recurrence: Option<RecurrenceView<'a>>,
    reminders: Vec<ReminderView>,
    series_id: Option<&'a str>,
    occurrence_index: Option<i64>,
    version: i64,
    created_at: Option<String>,
    updated_at: String,
    completed_at: Option<String>,
}

/// The fields every task event shares, borrowed from it.
struct TaskFields<'a> {
    id: &'a str,
    title: &'a str,
    description: &'a Option<String>,
    priority: Priority,
    status: TaskStatus,
    due_date: Option<i64>,
    category_id: &'a Option<String>,
    tags: &'a [String],
    recurrence: &'a Option<Recurrence>,
    reminders: &'a [Reminder],
    series_id: &'a Option<String>,
    occurrence_index: Option<i64>,
    version: i64,
    created_at: Option<i64>,
    updated_at: i64,
    completed_at: Option<i64>,
}

impl<'a> From<TaskFields<'a>> for TaskView<'a> {
    fn from(t: TaskFields<'a>) -> Self {
        Self {
            id: t.id,
            title: t.title,
            description: t.description.as_deref(),
            priority: priority(t.priority),
            status: status(t.status),
            due_at: opt_time(t.due_date),
            category_id: t.category_id.as_deref(),
            tags: t.tags,
            recurrence: t.recurrence.as_ref().map(RecurrenceView::from),
            reminders: t.reminders.iter().map(ReminderView::from).collect(),
            series_id: t.series_id.as_deref(),
            occurrence_index: t.occurrence_index,
            version: t.version,
            created_at: opt_time(t.created_at),
            updated_at: time(t.updated_at),
            completed_at: opt_time(t.completed_at),
        }
    }
}

#[derive(Serialize)]
struct TaskChange<'a> {
    task: TaskView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_fields: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_to_complete_ms: Option<Option<i64>>,
    occurred_at: String,
}

#[derive(Serialize)]
struct TaskRemoval<'a> {
    task_id: &'a str,
    version: i64,
    series_id: Option<&'a str>,
    occurred_at: String,
}

#[derive(Serialize)]
struct ReminderFired<'a> {
    reminder_id: &'a str,
    task_id: &'a str,
    task_version: i64,
    task_title: &'a str,
    due_at: Option<String>,
    remind_at: String,
    fired_at: String,
    channel: &'static str,
    late: bool,
    occurred_at: String,
}

#[derive(Serialize)]
struct NotificationReport<'a> {
    notification_id: &'a str,
    reminder_id: Option<&'a str>,
    task_id: Option<&'a str>,
    channel: &'static str,
    status: &'static str,
    attempts: i32,
    sent_at: String,
    error: Option<&'a str>,
    occurred_at: String,
}

/// Render an event for its user; `None` for events the gateway does not forward.
pub fn render(event: &AnyEvent) -> Option<RenderedEvent> {
    let (kind, data) = match event {
        AnyEvent::TaskCreated(e) => {
            let task = TaskFields {
                id: &e.task_id,
                title: &e.title,
                description: &e.description,
                priority: e.priority,
                status: e.status,
                due_date: e.due_date,
                category_id: &e.category_id,
                tags: &e.tags,
                recurrence: &e.recurrence,
                reminders: &e.reminders,
                series_id: &e.series_id,
                occurrence_index: e.occurrence_index,
                version: e.version,
                created_at: e.created_at.or(Some(e.event_timestamp)),
                updated_at: e.event_timestamp,
                completed_at: None,
            };
            (
                MessageKind::TaskCreated,
                serde_json::to_string(&TaskChange {
                    task: task.into(),
                    changed_fields: None,
                    time_to_complete_ms: None,
                    occurred_at: time(e.event_timestamp),
                }),
            )
        }
        AnyEvent::TaskUpdated(e) => {
            let task = TaskFields {
                id: &e.task_id,
                title: &e.title,
                description: &e.description,
                priority: e.priority,
                status: e.status,
                due_date: e.due_date,
                category_id: &e.category_id,
                tags: &e.tags,
                recurrence: &e.recurrence,
                reminders: &e.reminders,
                series_id: &e.series_id,
                occurrence_index: e.occurrence_index,
                version: e.version,
                created_at: e.created_at,
                updated_at: e.event_timestamp,
                completed_at: e.completed_at,
            };
            (
                MessageKind::TaskUpdated,
                serde_json::to_string(&TaskChange {
                    task: task.into(),
                    changed_fields: Some(&e.changed_fields),
                    time_to_complete_ms: None,
                    occurred_at: time(e.event_timestamp),
                }),
            )
        }
        AnyEvent::TaskCompleted(e) => {
            let task = TaskFields {
                id: &e.task_id,
                title: &e.title,
                description: &e.description,
                priority: e.priority,
                status: TaskStatus::Completed,
                due_date: e.due_date,
                category_id: &e.category_id,
                tags: &e.tags,
                recurrence: &e.recurrence,
                reminders: &e.reminders,
                series_id: &e.series_id,
                occurrence_index: e.occurrence_index,
                version: e.version,
                created_at: e.created_at,
                updated_at: e.event_timestamp,
                completed_at: Some(e.completed_at),
            };
            (
                MessageKind::TaskCompleted,
                serde_json::to_string(&TaskChange {
                    task: task.into(),
                    changed_fields: None,
                    time_to_complete_ms: Some(e.time_to_complete),
                    occurred_at: time(e.event_timestamp),
                }),
            )
        }
        AnyEvent::TaskDeleted(e) => (
            MessageKind::TaskDeleted,
            serde_json::to_string(&TaskRemoval {
                task_id: &e.task_id,
                version: e.version,
                series_id: e.series_id.as_deref(),
                occurred_at: time(e.event_timestamp),
            }),
        ),
        AnyEvent::ReminderTriggered(e) => (
            MessageKind::ReminderTriggered,
            serde_json::to_string(&ReminderFired {
                reminder_id: &e.reminder_id,
                task_id: &e.task_id,
                task_version: e.task_version,
                task_title: &e.task_title,
                due_at: opt_time(e.due_date),
                remind_at: time(e.remind_at),
                fired_at: time(e.fired_at),
                channel: channel(e.channel),
                late: e.late,
                occurred_at: time(e.event_timestamp),
            }),
        ),
        AnyEvent::NotificationSent(e) => (
            MessageKind::NotificationSent,
            serde_json::to_string(&NotificationReport {
                notification_id: &e.notification_id,
                reminder_id: e.reminder_id.as_deref(),
                task_id: e.task_id.as_deref(),
                channel: channel(e.channel),
                status: delivery(e.status),
                attempts: e.attempts,
                sent_at: time(e.sent_at),
                error: e.error.as_deref(),
                occurred_at: time(e.event_timestamp),
            }),
        ),
        AnyEvent::UserRegistered(_) | AnyEvent::UserAuthenticated(_) | AnyEvent::UserUpdated(_) => {
            return None;
        }
    };
    // Serialising plain structs of strings and numbers cannot fail.
    let data = data.ok()?;
    let event_id = serde_json::to_string(event.event_id()).ok()?;
    Some(RenderedEvent {
        kind,
        user_id: event.user_id()?.to_owned(),
        event_id: event.event_id().to_owned(),
        event_time: event.event_timestamp(),
        head: format!(
            r#"{{"type":"{}","event_id":{event_id},"cursor":""#,
            kind.name()
        ),
        tail: format!(r#"","data":{data}}}"#),
    })
}

/// `{"type":"ready",…}`: the end of a connection's opening.
pub fn ready(cursor: Cursor, replayed: usize) -> String {
    serde_json::json!({"type": "ready", "cursor": cursor.to_string(), "replayed": replayed})
        .to_string()
}

/// `{"type":"resync",…}`: what was missed cannot be replayed.
pub fn resync(cursor: Cursor, reason: &str) -> String {
    serde_json::json!({"type": "resync", "cursor": cursor.to_string(), "reason": reason})
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::InstanceId;
    use events::{Event, sample};
    use serde_json::Value;

    fn frame(event: AnyEvent) -> Value {
        let cursor = Cursor {
            instance: InstanceId::new(7),
            seq: 3,
        };
        let rendered = render(&event).expect("forwarded");
        serde_json::from_str(&rendered.frame(cursor)).expect("valid JSON")
    }

    #[test]
    fn task_created_carries_the_task_in_rest_shape() {
        let e = sample::task_created("u-1");
        let v = frame(e.clone().into_any());
        assert_eq!(v["type"], "task_created");
        assert_eq!(v["event_id"], e.event_id.as_str());
        assert_eq!(v["cursor"], "00000007.3");
        let t = &v["data"]["task"];
        assert_eq!(t["id"], e.task_id.as_str());
        assert_eq!(t["priority"], "high");
        assert_eq!(t["status"], "open");
        assert_eq!(t["tags"], serde_json::json!(["home", "weekly"]));
        assert_eq!(t["recurrence"]["mode"], "fixed");
        assert_eq!(t["recurrence"]["rrule"], "FREQ=WEEKLY;BYDAY=MO,WE");
        assert_eq!(t["reminders"][0]["before_due"], 30);
        assert_eq!(t["reminders"][0]["channel"], "email");
        assert_eq!(t["reminders"][1]["channel"], "webhook");
        assert!(t["reminders"][1]["at"].as_str().unwrap().ends_with('Z'));
        assert!(t["due_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(t["version"], 1);
        assert!(v["data"]["occurred_at"].is_string());
    }

    #[test]
    fn every_forwarded_kind_renders_as_valid_json() {
        let v = frame(sample::task_updated("u").into_any());
        assert_eq!(
            v["data"]["changed_fields"],
            serde_json::json!(["title", "priority"])
        );
        assert_eq!(v["data"]["task"]["priority"], "critical");
        let v = frame(sample::task_completed("u").into_any());
        assert_eq!(v["data"]["task"]["status"], "completed");
        assert_eq!(v["data"]["time_to_complete_ms"], 5000);
        let v = frame(sample::task_deleted("u").into_any());
        assert_eq!(v["type"], "task_deleted");
        assert!(v["data"]["task_id"].is_string());
        let v = frame(sample::reminder_triggered("u").into_any());
        assert_eq!(v["data"]["channel"], "in_app");
        assert_eq!(v["data"]["task_title"], "Water the plants");
        let v = frame(sample::notification_sent("u").into_any());
        assert_eq!(v["data"]["status"], "failed");
        assert_eq!(v["data"]["error"], "550 mailbox unavailable");
    }

    #[test]
    fn user_events_are_not_forwarded() {
        assert!(render(&sample::user_registered("u").into_any()).is_none());
        assert!(render(&sample::user_updated("u").into_any()).is_none());
        assert!(render(&sample::user_authenticated("u").into_any()).is_none());
    }

    #[test]
    fn quotes_in_ids_cannot_break_the_envelope() {
        let mut e = sample::task_deleted("u");
        e.event_id = "a\"b".into();
        let v = frame(e.into_any());
        assert_eq!(v["event_id"], "a\"b");
    }
}
