//! What the browser receives: every event rendered once as client-friendly JSON (snake_case,
//! RFC 3339 times, lower-case enums, the task in the REST API's shape).
//!
//! Envelope: `{"type": <kind>, "event_id": <uuid>, "cursor": <cursor>, "occurred_at": <time>,
//! "data": {...}}`, where `data` is the object itself, as seed 000's client reads it
//! (`message.data.id`, `message.data.title`).
//!
//! | type | data |
//! |---|---|
//! | `task_created`, `task_updated`, `task_completed` | the task, exactly as the REST API returns this version ([`events::TaskView`]) |
//! | `task_deleted` | `{"id", "version", "series_id", "owner_id"}` |
//! | `reminder_triggered` | `{"reminder_id", "task_id", "task_version", "task_title", "due_at", "remind_at", "fired_at", "channel", "late"}` |
//! | `notification_sent` | `{"notification_id", "reminder_id", "task_id", "channel", "status", "attempts", "sent_at", "error"}` |
//!
//! task_updated also names what changed, beside `data`: `"changed_fields": ["title", …]`.
//! Absent optional values are `null`.
//!
//! Control messages: `{"type":"ready","cursor","replayed"}` ends the opening of every
//! connection (after any replay) and gives a fresh client its first cursor;
//! `{"type":"resync","cursor","reason"}` says the missed messages cannot be replayed (reload over
//! REST). A client's text `ping` is answered with the text `pong`.

use bytestring::ByteString;
use events::time::rfc3339;
use events::{AnyEvent, DeletedTaskView, Role, TaskState, TaskView};
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
    /// `","occurred_at":"…","data":{…}}` — everything after it.
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

fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(rfc3339)
}

/// `data` of reminder_triggered: the reminder that fired.
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
}

/// `data` of notification_sent: the delivery it reports.
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
}

/// The `data` of an event's message as JSON text; `None` for events the gateway does not
/// forward.
fn data_of(event: &AnyEvent) -> Option<(MessageKind, serde_json::Result<String>)> {
    let task = |state: TaskState| serde_json::to_string(&TaskView::new(&state, Role::Owner));
    Some(match event {
        AnyEvent::TaskCreated(e) => (MessageKind::TaskCreated, task(TaskState::from(e))),
        AnyEvent::TaskUpdated(e) => (MessageKind::TaskUpdated, task(TaskState::from(e))),
        AnyEvent::TaskCompleted(e) => (MessageKind::TaskCompleted, task(TaskState::from(e))),
        AnyEvent::TaskDeleted(e) => (
            MessageKind::TaskDeleted,
            serde_json::to_string(&DeletedTaskView::from(e)),
        ),
        AnyEvent::ReminderTriggered(e) => (
            MessageKind::ReminderTriggered,
            serde_json::to_string(&ReminderFired {
                reminder_id: &e.reminder_id,
                task_id: &e.task_id,
                task_version: e.task_version,
                task_title: &e.task_title,
                due_at: opt_time(e.due_date),
                remind_at: rfc3339(e.remind_at),
                fired_at: rfc3339(e.fired_at),
                channel: e.channel.as_str(),
                late: e.late,
            }),
        ),
        AnyEvent::NotificationSent(e) => (
            MessageKind::NotificationSent,
            serde_json::to_string(&NotificationReport {
                notification_id: &e.notification_id,
                reminder_id: e.reminder_id.as_deref(),
                task_id: e.task_id.as_deref(),
                channel: e.channel.as_str(),
                status: e.status.as_str(),
                attempts: e.attempts,
                sent_at: rfc3339(e.sent_at),
                error: e.error.as_deref(),
            }),
        ),
        AnyEvent::UserRegistered(_) | AnyEvent::UserAuthenticated(_) | AnyEvent::UserUpdated(_) => {
            return None;
        }
    })
}

/// Render an event for its user; `None` for events the gateway does not forward.
pub fn render(event: &AnyEvent) -> Option<RenderedEvent> {
    let (kind, data) = data_of(event)?;
    // Serialising plain structs of strings and numbers cannot fail.
    let data = data.ok()?;
    let event_id = serde_json::to_string(event.event_id()).ok()?;
    // What changed is about the event, not the task: beside `data`, which stays the task.
    let changed_fields = match event {
        AnyEvent::TaskUpdated(e) => format!(
            r#","changed_fields":{}"#,
            serde_json::to_string(&e.changed_fields).ok()?
        ),
        _ => String::new(),
    };
    Some(RenderedEvent {
        kind,
        user_id: event.user_id()?.to_owned(),
        event_id: event.event_id().to_owned(),
        event_time: event.event_timestamp(),
        head: format!(
            r#"{{"type":"{}","event_id":{event_id},"cursor":""#,
            kind.name()
        ),
        tail: format!(
            r#"","occurred_at":"{}"{changed_fields},"data":{data}}}"#,
            rfc3339(event.event_timestamp())
        ),
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
    fn task_created_carries_the_task_itself_as_data() {
        let e = sample::task_created("u-1");
        let v = frame(e.clone().into_any());
        assert_eq!(v["type"], "task_created");
        assert_eq!(v["event_id"], e.event_id.as_str());
        assert_eq!(v["cursor"], "00000007.3");
        assert!(v["occurred_at"].as_str().unwrap().ends_with('Z'));
        // seed 000's client reads message.data.id and message.data.title
        let t = &v["data"];
        assert_eq!(t["id"], e.task_id.as_str());
        assert_eq!(t["title"], "Water the plants");
        assert_eq!(t["priority"], "high");
        assert_eq!(t["status"], "open");
        assert_eq!(t["tags"], serde_json::json!(["home", "weekly"]));
        assert_eq!(t["recurrence"]["mode"], "fixed");
        assert_eq!(t["recurrence"]["rrule"], "FREQ=WEEKLY;BYDAY=MO,WE");
        assert_eq!(t["reminders"][0]["before_due"], 30);
        assert_eq!(t["reminders"][1]["channel"], "webhook");
        assert_eq!(t["version"], 1);
        assert_eq!(t["owner_id"], "u-1");
        assert_eq!(t["role"], "owner");
    }

    #[test]
    fn task_data_is_the_shared_task_view_byte_for_byte() {
        for event in [
            sample::task_created("u").into_any(),
            sample::task_updated("u").into_any(),
            sample::task_completed("u").into_any(),
        ] {
            let (_, data) = data_of(&event).unwrap();
            let view = TaskView::new(&TaskState::from_event(&event).unwrap(), Role::Owner);
            assert_eq!(data.unwrap(), serde_json::to_string(&view).unwrap());
        }
    }

    #[test]
    fn updates_and_completions_carry_the_task_and_what_changed() {
        let v = frame(sample::task_updated("u").into_any());
        assert_eq!(
            v["changed_fields"],
            serde_json::json!(["title", "priority"])
        );
        assert_eq!(v["data"]["priority"], "critical");
        assert_eq!(v["data"]["version"], 2);
        let e = sample::task_completed("u");
        let v = frame(e.clone().into_any());
        assert_eq!(v["type"], "task_completed");
        assert_eq!(v["data"]["id"], e.task_id.as_str());
        assert_eq!(v["data"]["status"], "completed");
        assert!(v["data"]["completed_at"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn a_deleted_task_is_its_id_and_version() {
        let e = sample::task_deleted("u");
        let v = frame(e.clone().into_any());
        assert_eq!(v["type"], "task_deleted");
        assert_eq!(v["data"]["id"], e.task_id.as_str());
        assert_eq!(v["data"]["version"], e.version);
        assert_eq!(v["data"]["owner_id"], "u");
    }

    #[test]
    fn reminders_and_notifications_carry_themselves() {
        let e = sample::reminder_triggered("u");
        let v = frame(e.clone().into_any());
        assert_eq!(v["type"], "reminder_triggered");
        assert_eq!(v["data"]["reminder_id"], e.reminder_id.as_str());
        assert_eq!(v["data"]["task_id"], e.task_id.as_str());
        assert_eq!(v["data"]["channel"], "in_app");
        assert_eq!(v["data"]["task_title"], "Water the plants");
        let e = sample::notification_sent("u");
        let v = frame(e.clone().into_any());
        assert_eq!(v["type"], "notification_sent");
        assert_eq!(v["data"]["notification_id"], e.notification_id.as_str());
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
