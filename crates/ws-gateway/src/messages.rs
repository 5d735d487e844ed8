//! What the browser receives: every event rendered once as client-friendly JSON (snake_case,
//! RFC 3339 times, lower-case enums, the task in the REST API's shape).
//!
//! Envelope: `{"type": <kind>, "event_id": <uuid>, "cursor": <cursor>, "occurred_at": <time>,
//! "data": {...}}`, where `data` is the object itself, as seed 000's client reads it
//! (`message.data.id`, `message.data.title`).
//!
//! | type | data |
//! |---|---|
//! | `task_created`, `task_updated`, `task_completed`, `task_shared`, `task_assigned` | the task, exactly as the REST API returns this version to this reader ([`events::TaskView`], `role` theirs) |
//! | `task_deleted` | `{"id", "version", "series_id", "owner_id"}` |
//! | `task_shared` to the user whose share was removed | `{"id", "version", "series_id", "owner_id"}`, as for a deletion: the task is gone for them |
//! | `reminder_triggered` | `{"reminder_id", "task_id", "task_version", "task_title", "due_at", "remind_at", "fired_at", "channel", "late"}` |
//! | `notification_sent` | `{"notification_id", "reminder_id", "task_id", "channel", "status", "attempts", "sent_at", "error"}` |
//!
//! Beside `data`, task_updated names what changed (`"changed_fields": ["title", …]`),
//! task_shared whose share changed (`"share": {"user_id", "role"}`, role `viewer`, `editor` or
//! `none`), task_assigned the assignee before (`"previous_assignee_id"`). Absent optional values
//! are `null`.
//!
//! Who receives a task message: the task's owner and every collaborator the event names (the
//! event carries them), each with their own role in `data`; on task_shared also the user whose
//! share it changed, so that a removed collaborator hears it once and then nothing more.
//! Reminders and notifications go to the user they name.
//!
//! Control messages: `{"type":"ready","cursor","replayed"}` ends the opening of every
//! connection (after any replay) and gives a fresh client its first cursor;
//! `{"type":"resync","cursor","reason"}` says the missed messages cannot be replayed (reload over
//! REST). A client's text `ping` is answered with the text `pong`.

use bytestring::ByteString;
use events::time::rfc3339;
use events::{AnyEvent, DeletedTaskView, Sees, TaskState, TaskView};
use serde::Serialize;

/// One message on its way to a connection: the rendered frame (shared by every connection of
/// the user and the replay buffer, never copied), where its event sits in Kafka, and what the
/// metrics need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub frame: ByteString,
    pub kind: MessageKind,
    /// Epoch ms at which the event happened.
    pub event_time: i64,
    /// The task version it is about (0 when none): with `event_time`, the order of a replay.
    pub version: i64,
    /// The event's partition (its slot in the gateway's [`crate::cursor::Layout`]) and offset.
    pub at: Option<(usize, i64)>,
    /// Where the cursor's text sits in `frame`.
    cursor_span: (u32, u32),
}

impl Outbound {
    /// The id of the event the message is about, as the JSON string the frame's head carries
    /// (quotes included, escapes kept): a key as unique as the id, read without parsing.
    pub fn event_id(&self) -> &str {
        let head = &self.frame[..self.cursor_span.0 as usize];
        head.split_once(r#""event_id":"#)
            .and_then(|(_, rest)| rest.rsplit_once(r#","cursor":""#))
            .map_or("", |(id, _)| id)
    }

    /// The cursor the frame carries.
    pub fn cursor(&self) -> &str {
        &self.frame[self.cursor_span.0 as usize..self.cursor_span.1 as usize]
    }

    /// The same message with another cursor.
    pub fn with_cursor(&self, cursor: &str) -> Outbound {
        let (start, end) = (self.cursor_span.0 as usize, self.cursor_span.1 as usize);
        let mut frame = String::with_capacity(self.frame.len() - (end - start) + cursor.len());
        frame.push_str(&self.frame[..start]);
        frame.push_str(cursor);
        frame.push_str(&self.frame[end..]);
        Outbound {
            frame: frame.into(),
            cursor_span: (start as u32, (start + cursor.len()) as u32),
            ..self.clone()
        }
    }
}

/// The kinds of event message, as the `type` field names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    TaskCreated,
    TaskUpdated,
    TaskCompleted,
    TaskDeleted,
    TaskShared,
    TaskAssigned,
    ReminderTriggered,
    NotificationSent,
}

impl MessageKind {
    pub const ALL: [MessageKind; 8] = [
        MessageKind::TaskCreated,
        MessageKind::TaskUpdated,
        MessageKind::TaskCompleted,
        MessageKind::TaskDeleted,
        MessageKind::TaskShared,
        MessageKind::TaskAssigned,
        MessageKind::ReminderTriggered,
        MessageKind::NotificationSent,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            MessageKind::TaskCreated => "task_created",
            MessageKind::TaskUpdated => "task_updated",
            MessageKind::TaskCompleted => "task_completed",
            MessageKind::TaskDeleted => "task_deleted",
            MessageKind::TaskShared => "task_shared",
            MessageKind::TaskAssigned => "task_assigned",
            MessageKind::ReminderTriggered => "reminder_triggered",
            MessageKind::NotificationSent => "notification_sent",
        }
    }
}

/// An event rendered for one of its readers, still without the cursor (which the hub assigns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEvent {
    pub kind: MessageKind,
    pub user_id: String,
    /// The event's id: the hub forwards each id once per reader, however often Kafka
    /// redelivers it.
    pub event_id: String,
    /// Epoch ms at which the event happened (for the delivery latency).
    pub event_time: i64,
    /// The task version it is about (0 when none).
    pub version: i64,
    /// `{"type":"…","event_id":"…","cursor":"` — everything before the cursor.
    head: String,
    /// `","occurred_at":"…","data":{…}}` — everything after it.
    tail: String,
}

impl RenderedEvent {
    /// The complete message with its cursor: one allocation, no serialisation.
    pub fn outbound(&self, cursor: &str, at: Option<(usize, i64)>) -> Outbound {
        let mut frame = String::with_capacity(self.head.len() + cursor.len() + self.tail.len());
        frame.push_str(&self.head);
        frame.push_str(cursor);
        frame.push_str(&self.tail);
        Outbound {
            frame: frame.into(),
            kind: self.kind,
            event_time: self.event_time,
            version: self.version,
            at,
            cursor_span: (
                self.head.len() as u32,
                (self.head.len() + cursor.len()) as u32,
            ),
        }
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

/// A reader of a message and the `data` they get, as JSON text.
type Reader = (String, serde_json::Result<String>);

/// The readers of an event's message and the `data` each one gets; `None` for events the
/// gateway does not forward. Who reads what is [`events::audience`], the one home of the rule
/// (the reliability suite's ledger expects exactly these messages).
fn readers_of(event: &AnyEvent) -> Option<(MessageKind, Vec<Reader>)> {
    let kind = match event {
        AnyEvent::TaskCreated(_) => MessageKind::TaskCreated,
        AnyEvent::TaskUpdated(_) => MessageKind::TaskUpdated,
        AnyEvent::TaskCompleted(_) => MessageKind::TaskCompleted,
        AnyEvent::TaskDeleted(_) => MessageKind::TaskDeleted,
        AnyEvent::TaskShared(_) => MessageKind::TaskShared,
        AnyEvent::TaskAssigned(_) => MessageKind::TaskAssigned,
        AnyEvent::ReminderTriggered(_) => MessageKind::ReminderTriggered,
        AnyEvent::NotificationSent(_) => MessageKind::NotificationSent,
        AnyEvent::UserRegistered(_) | AnyEvent::UserAuthenticated(_) | AnyEvent::UserUpdated(_) => {
            return None;
        }
    };
    let state = TaskState::from_event(event);
    let readers = events::audience(event)
        .into_iter()
        .filter_map(|(user, sees)| {
            let data = match sees {
                Sees::Task(role) => serde_json::to_string(&TaskView::new(state.as_ref()?, role)),
                Sees::Gone => serde_json::to_string(&gone(event)?),
                Sees::Addressed => addressed(event)?,
            };
            Some((user, data))
        })
        .collect();
    Some((kind, readers))
}

/// What a reader for whom the task is gone gets: its id and version (deleted, or their share
/// removed).
fn gone(event: &AnyEvent) -> Option<DeletedTaskView> {
    match event {
        AnyEvent::TaskDeleted(e) => Some(DeletedTaskView::from(e)),
        AnyEvent::TaskShared(e) => Some(DeletedTaskView {
            id: e.task_id.clone(),
            version: e.version,
            series_id: e.series_id.clone(),
            owner_id: e.user_id.clone(),
        }),
        _ => None,
    }
}

/// The `data` of a reminder or notification, for the user it is addressed to.
fn addressed(event: &AnyEvent) -> Option<serde_json::Result<String>> {
    Some(match event {
        AnyEvent::ReminderTriggered(e) => serde_json::to_string(&ReminderFired {
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
        AnyEvent::NotificationSent(e) => serde_json::to_string(&NotificationReport {
            notification_id: &e.notification_id,
            reminder_id: e.reminder_id.as_deref(),
            task_id: e.task_id.as_deref(),
            channel: e.channel.as_str(),
            status: e.status.as_str(),
            attempts: e.attempts,
            sent_at: rfc3339(e.sent_at),
            error: e.error.as_deref(),
        }),
        _ => return None,
    })
}

/// The task version an event is about, 0 when none.
fn version_of(event: &AnyEvent) -> i64 {
    match event {
        AnyEvent::TaskCreated(e) => e.version,
        AnyEvent::TaskUpdated(e) => e.version,
        AnyEvent::TaskCompleted(e) => e.version,
        AnyEvent::TaskDeleted(e) => e.version,
        AnyEvent::TaskShared(e) => e.version,
        AnyEvent::TaskAssigned(e) => e.version,
        AnyEvent::ReminderTriggered(e) => e.task_version,
        AnyEvent::NotificationSent(_)
        | AnyEvent::UserRegistered(_)
        | AnyEvent::UserAuthenticated(_)
        | AnyEvent::UserUpdated(_) => 0,
    }
}

/// What an event says beside `data`, as `,"name":value` JSON text.
fn beside_data(event: &AnyEvent) -> serde_json::Result<String> {
    Ok(match event {
        AnyEvent::TaskUpdated(e) => format!(
            r#","changed_fields":{}"#,
            serde_json::to_string(&e.changed_fields)?
        ),
        AnyEvent::TaskShared(e) => format!(
            r#","share":{}"#,
            serde_json::json!({"user_id": e.shared_with_user_id, "role": e.role.as_str()})
        ),
        AnyEvent::TaskAssigned(e) => format!(
            r#","previous_assignee_id":{}"#,
            serde_json::to_string(&e.previous_assignee_id)?
        ),
        _ => String::new(),
    })
}

/// Render an event for each of its readers; empty for events the gateway does not forward.
pub fn render(event: &AnyEvent) -> Vec<RenderedEvent> {
    let Some((kind, readers)) = readers_of(event) else {
        return Vec::new();
    };
    // Serialising plain structs of strings and numbers cannot fail.
    let (Ok(event_id), Ok(beside)) = (serde_json::to_string(event.event_id()), beside_data(event))
    else {
        return Vec::new();
    };
    let occurred_at = rfc3339(event.event_timestamp());
    readers
        .into_iter()
        .filter_map(|(user_id, data)| {
            let data = data.ok()?;
            Some(RenderedEvent {
                kind,
                user_id,
                event_id: event.event_id().to_owned(),
                event_time: event.event_timestamp(),
                version: version_of(event),
                head: format!(
                    r#"{{"type":"{}","event_id":{event_id},"cursor":""#,
                    kind.name()
                ),
                tail: format!(r#"","occurred_at":"{occurred_at}"{beside},"data":{data}}}"#),
            })
        })
        .collect()
}

/// `{"type":"ready",…}`: the end of a connection's opening.
pub fn ready(cursor: &str, replayed: usize) -> String {
    serde_json::json!({"type": "ready", "cursor": cursor, "replayed": replayed}).to_string()
}

/// `{"type":"resync",…}`: what was missed cannot be replayed.
pub fn resync(cursor: &str, reason: &str) -> String {
    serde_json::json!({"type": "resync", "cursor": cursor, "reason": reason}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{Event, ShareRole, sample};
    use serde_json::Value;

    fn frame(event: AnyEvent) -> Value {
        let mut rendered = render(&event);
        assert_eq!(rendered.len(), 1, "one reader");
        let message = rendered.remove(0).outbound("c3", None);
        assert_eq!(message.cursor(), "c3");
        assert_eq!(
            message.event_id(),
            serde_json::to_string(event.event_id()).unwrap()
        );
        serde_json::from_str(&message.frame).expect("valid JSON")
    }

    /// Every reader's message, by reader.
    fn frames(event: AnyEvent) -> std::collections::BTreeMap<String, Value> {
        render(&event)
            .into_iter()
            .map(|r| {
                (
                    r.user_id.clone(),
                    serde_json::from_str(&r.outbound("c3", None).frame).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn another_cursor_replaces_only_the_cursor() {
        let rendered = render(&sample::task_created("u-1").into_any()).remove(0);
        let first = rendered.outbound("short", Some((2, 40)));
        let moved = first.with_cursor("a-much-longer-cursor");
        assert_eq!(moved.cursor(), "a-much-longer-cursor");
        assert_eq!(moved.at, Some((2, 40)));
        let (a, b): (Value, Value) = (
            serde_json::from_str(&first.frame).unwrap(),
            serde_json::from_str(&moved.frame).unwrap(),
        );
        assert_eq!(a["data"], b["data"]);
        assert_eq!(b["cursor"], "a-much-longer-cursor");
        assert_eq!(moved.with_cursor("short"), first);
    }

    #[test]
    fn task_created_carries_the_task_itself_as_data() {
        let e = sample::task_created("u-1");
        let v = frame(e.clone().into_any());
        assert_eq!(v["type"], "task_created");
        assert_eq!(v["event_id"], e.event_id.as_str());
        assert_eq!(v["cursor"], "c3");
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
            let (_, mut readers) = readers_of(&event).unwrap();
            let (user, data) = readers.remove(0);
            assert_eq!(user, "u");
            let view = TaskView::new(&TaskState::from_event(&event).unwrap(), events::Role::Owner);
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
        assert!(render(&sample::user_registered("u").into_any()).is_empty());
        assert!(render(&sample::user_updated("u").into_any()).is_empty());
        assert!(render(&sample::user_authenticated("u").into_any()).is_empty());
    }

    #[test]
    fn a_shared_task_reaches_its_owner_and_every_collaborator_each_with_their_role() {
        let e = sample::task_shared("owner");
        let (viewer, editor) = (&e.collaborators[0].user_id, &e.collaborators[1].user_id);
        let by_user = frames(e.clone().into_any());
        assert_eq!(by_user.len(), 3);
        assert_eq!(by_user["owner"]["data"]["role"], "owner");
        assert_eq!(by_user[viewer]["data"]["role"], "viewer");
        assert_eq!(by_user[editor]["data"]["role"], "editor");
        for v in by_user.values() {
            assert_eq!(v["type"], "task_shared");
            assert_eq!(v["share"]["user_id"], editor.as_str());
            assert_eq!(v["share"]["role"], "editor");
            assert_eq!(v["data"]["id"], e.task_id.as_str());
            assert_eq!(v["data"]["collaborators"].as_array().unwrap().len(), 2);
        }
        // Any task event reaches the same readers.
        let mut u = sample::task_updated("owner");
        u.collaborators = e.collaborators.clone();
        assert_eq!(frames(u.into_any()).len(), 3);
    }

    #[test]
    fn a_removed_collaborator_hears_once_that_the_task_is_gone_for_them() {
        let mut e = sample::task_shared("owner");
        let removed = e.collaborators.pop().unwrap().user_id;
        e.shared_with_user_id = removed.clone();
        e.role = ShareRole::None;
        let by_user = frames(e.clone().into_any());
        assert_eq!(
            by_user.len(),
            3,
            "owner, the viewer left, and the removed editor"
        );
        let gone = &by_user[&removed];
        assert_eq!(gone["share"]["role"], "none");
        assert_eq!(gone["data"]["id"], e.task_id.as_str());
        assert!(
            gone["data"].get("title").is_none(),
            "nothing of the task itself"
        );
        // The next change of the task no longer reaches them.
        let mut u = sample::task_updated("owner");
        u.collaborators = e.collaborators.clone();
        assert!(!frames(u.into_any()).contains_key(&removed));
    }

    #[test]
    fn an_assignment_names_the_assignee_before() {
        let e = sample::task_assigned("owner");
        let by_user = frames(e.clone().into_any());
        let v = &by_user["owner"];
        assert_eq!(v["type"], "task_assigned");
        assert_eq!(
            v["data"]["assignee_id"],
            e.assignee_id.clone().unwrap().as_str()
        );
        assert_eq!(
            v["previous_assignee_id"],
            e.previous_assignee_id.clone().unwrap().as_str()
        );
    }

    #[test]
    fn a_deletion_reaches_every_collaborator() {
        let mut d = sample::task_deleted("owner");
        d.collaborators = sample::task_shared("owner").collaborators;
        let by_user = frames(d.into_any());
        assert_eq!(by_user.len(), 3);
        assert!(by_user.values().all(|v| v["type"] == "task_deleted"));
    }

    #[test]
    fn quotes_in_ids_cannot_break_the_envelope() {
        let mut e = sample::task_deleted("u");
        e.event_id = "a\"b".into();
        let v = frame(e.into_any());
        assert_eq!(v["event_id"], "a\"b");
    }
}
