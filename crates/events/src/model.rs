//! The event types, one per topic, field for field the records of `schemas/*.avsc`.
//!
//! Field names are the Avro names (camelCase) through serde; times are epoch milliseconds as on the
//! wire. The tests of this crate serialise every type against its schema, field by field, so a
//! field added on one side only fails them.

use serde::{Deserialize, Serialize};

use crate::catalogue::Topic;

/// Milliseconds since the Unix epoch.
pub type EpochMillis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Priority {
    Critical,
    High,
    #[default]
    Medium,
    Low,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    #[default]
    Open,
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationChannel {
    Email,
    Webhook,
    InApp,
    /// A text message through the configured SMS gateway, to a verified number.
    Sms,
    /// Web Push (RFC 8030) to the user's subscribed browsers.
    Push,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecurrenceMode {
    Fixed,
    AfterCompletion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthOutcome {
    Success,
    InvalidPassword,
    UnknownUser,
    RateLimited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    Delivered,
    Failed,
}

/// How a task repeats. Exactly one of `rrule` and `cron` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recurrence {
    pub rrule: Option<String>,
    pub cron: Option<String>,
    pub timezone: String,
    pub mode: RecurrenceMode,
    pub until: Option<EpochMillis>,
    pub count: Option<i32>,
}

/// One reminder: minutes before the due date, or at an absolute time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reminder {
    pub before_due_minutes: Option<i64>,
    pub at: Option<EpochMillis>,
    pub channel: NotificationChannel,
}

/// What a collaborator may do with a task. `None` appears only on task.shared: the share was
/// removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShareRole {
    Viewer,
    Editor,
    None,
}

/// A user the owner shared a task with, and their role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Collaborator {
    pub user_id: String,
    pub role: ShareRole,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCreatedEvent {
    pub event_id: String,
    pub event_timestamp: EpochMillis,
    pub user_id: String,
    pub task_id: String,
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub due_date: Option<EpochMillis>,
    pub category_id: Option<String>,
    pub tags: Vec<String>,
    pub version: i64,
    pub status: TaskStatus,
    pub recurrence: Option<Recurrence>,
    pub reminders: Vec<Reminder>,
    pub series_id: Option<String>,
    pub occurrence_index: Option<i64>,
    pub created_at: Option<EpochMillis>,
    /// Everyone the task is shared with after this event, besides its owner (`user_id`).
    #[serde(default)]
    pub collaborators: Vec<Collaborator>,
    /// The assignee after this event (the owner or a collaborator).
    #[serde(default)]
    pub assignee_id: Option<String>,
    /// Who made the change when it was not the owner (an editor).
    #[serde(default)]
    pub actor_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskUpdatedEvent {
    pub event_id: String,
    pub event_timestamp: EpochMillis,
    pub user_id: String,
    pub task_id: String,
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub due_date: Option<EpochMillis>,
    pub category_id: Option<String>,
    pub tags: Vec<String>,
    pub version: i64,
    pub status: TaskStatus,
    pub recurrence: Option<Recurrence>,
    pub reminders: Vec<Reminder>,
    pub series_id: Option<String>,
    pub occurrence_index: Option<i64>,
    pub created_at: Option<EpochMillis>,
    pub changed_fields: Vec<String>,
    pub completed_at: Option<EpochMillis>,
    /// Everyone the task is shared with after this event, besides its owner (`user_id`).
    #[serde(default)]
    pub collaborators: Vec<Collaborator>,
    /// The assignee after this event (the owner or a collaborator).
    #[serde(default)]
    pub assignee_id: Option<String>,
    /// Who made the change when it was not the owner (an editor).
    #[serde(default)]
    pub actor_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCompletedEvent {
    pub event_id: String,
    pub event_timestamp: EpochMillis,
    pub user_id: String,
    pub task_id: String,
    pub completed_at: EpochMillis,
    pub time_to_complete: Option<i64>,
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub due_date: Option<EpochMillis>,
    pub category_id: Option<String>,
    pub tags: Vec<String>,
    /// 0 when the producer did not say (events written with the seed schema).
    pub version: i64,
    pub recurrence: Option<Recurrence>,
    pub reminders: Vec<Reminder>,
    pub series_id: Option<String>,
    pub occurrence_index: Option<i64>,
    pub created_at: Option<EpochMillis>,
    /// Everyone the task is shared with after this event, besides its owner (`user_id`).
    #[serde(default)]
    pub collaborators: Vec<Collaborator>,
    /// The assignee after this event (the owner or a collaborator).
    #[serde(default)]
    pub assignee_id: Option<String>,
    /// Who made the change when it was not the owner (an editor).
    #[serde(default)]
    pub actor_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDeletedEvent {
    pub event_id: String,
    pub event_timestamp: EpochMillis,
    pub user_id: String,
    pub task_id: String,
    pub version: i64,
    pub series_id: Option<String>,
    /// Everyone the task is shared with after this event, besides its owner (`user_id`).
    #[serde(default)]
    pub collaborators: Vec<Collaborator>,
    /// The assignee after this event (the owner or a collaborator).
    #[serde(default)]
    pub assignee_id: Option<String>,
    /// Who made the change when it was not the owner (an editor).
    #[serde(default)]
    pub actor_id: Option<String>,
}

/// The owner shared a task with a user, changed their role, or removed the share
/// (`role: None`). Carries the whole task after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSharedEvent {
    pub event_id: String,
    pub event_timestamp: EpochMillis,
    pub user_id: String,
    pub task_id: String,
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub due_date: Option<EpochMillis>,
    pub category_id: Option<String>,
    pub tags: Vec<String>,
    pub version: i64,
    pub status: TaskStatus,
    pub recurrence: Option<Recurrence>,
    pub reminders: Vec<Reminder>,
    pub series_id: Option<String>,
    pub occurrence_index: Option<i64>,
    pub created_at: Option<EpochMillis>,
    pub completed_at: Option<EpochMillis>,
    pub collaborators: Vec<Collaborator>,
    pub assignee_id: Option<String>,
    pub actor_id: Option<String>,
    /// The user whose share changed.
    pub shared_with_user_id: String,
    /// Their role after the change.
    pub role: ShareRole,
}

/// A task got an assignee, another one, or none (`assignee_id`). Carries the whole task after
/// the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskAssignedEvent {
    pub event_id: String,
    pub event_timestamp: EpochMillis,
    pub user_id: String,
    pub task_id: String,
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub due_date: Option<EpochMillis>,
    pub category_id: Option<String>,
    pub tags: Vec<String>,
    pub version: i64,
    pub status: TaskStatus,
    pub recurrence: Option<Recurrence>,
    pub reminders: Vec<Reminder>,
    pub series_id: Option<String>,
    pub occurrence_index: Option<i64>,
    pub created_at: Option<EpochMillis>,
    pub completed_at: Option<EpochMillis>,
    pub collaborators: Vec<Collaborator>,
    pub assignee_id: Option<String>,
    pub actor_id: Option<String>,
    pub previous_assignee_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRegisteredEvent {
    pub event_id: String,
    pub event_timestamp: EpochMillis,
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub timezone: String,
    pub notification_channels: Vec<NotificationChannel>,
    pub webhook_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserUpdatedEvent {
    pub event_id: String,
    pub event_timestamp: EpochMillis,
    pub user_id: String,
    pub version: i64,
    pub email: String,
    pub name: Option<String>,
    pub timezone: String,
    pub notification_channels: Vec<NotificationChannel>,
    pub webhook_url: Option<String>,
    /// E.164, only once verified (absent in events written before it existed).
    #[serde(default)]
    pub verified_phone_number: Option<String>,
    /// The user's live push subscriptions, the whole list after the change.
    #[serde(default)]
    pub push_subscriptions: Vec<PushSubscription>,
}

/// A browser's Web Push subscription as it travels on user.updated: the auth secret sealed
/// (`service_kit::push`), never in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushSubscription {
    pub id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth_sealed: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthenticatedEvent {
    pub event_id: String,
    pub event_timestamp: EpochMillis,
    pub user_id: Option<String>,
    pub email: String,
    pub outcome: AuthOutcome,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReminderTriggeredEvent {
    pub event_id: String,
    pub event_timestamp: EpochMillis,
    pub reminder_id: String,
    pub user_id: String,
    pub task_id: String,
    pub task_version: i64,
    pub task_title: String,
    pub due_date: Option<EpochMillis>,
    pub remind_at: EpochMillis,
    pub fired_at: EpochMillis,
    pub channel: NotificationChannel,
    pub late: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSentEvent {
    pub event_id: String,
    pub event_timestamp: EpochMillis,
    pub notification_id: String,
    pub reminder_id: Option<String>,
    pub user_id: String,
    pub task_id: Option<String>,
    pub channel: NotificationChannel,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub sent_at: EpochMillis,
    pub error: Option<String>,
}

/// What every event of the system can say about itself.
pub trait Event:
    Serialize
    + serde::de::DeserializeOwned
    + crate::validate::Validate
    + Clone
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The topic this event type travels on.
    const TOPIC: Topic;

    /// The dedup key of the event (a UUID).
    fn event_id(&self) -> &str;

    /// Epoch milliseconds at which the event happened.
    fn event_timestamp(&self) -> EpochMillis;

    /// The message key (the catalogue's `key_field`).
    fn key(&self) -> &str;

    /// The user whose data this event is, for per-user routing and access checks.
    fn user_id(&self) -> Option<&str>;

    /// Wrap into the sum type.
    fn into_any(self) -> AnyEvent;
}

macro_rules! event {
    ($ty:ident, $topic:ident, $variant:ident, key = |$e:ident| $key:expr, user = |$u:ident| $user:expr) => {
        impl Event for $ty {
            const TOPIC: Topic = Topic::$topic;

            fn event_id(&self) -> &str {
                &self.event_id
            }

            fn event_timestamp(&self) -> EpochMillis {
                self.event_timestamp
            }

            fn key(&self) -> &str {
                let $e = self;
                $key
            }

            fn user_id(&self) -> Option<&str> {
                let $u = self;
                $user
            }

            fn into_any(self) -> AnyEvent {
                AnyEvent::$variant(self)
            }
        }
    };
}

event!(
    TaskCreatedEvent,
    TaskCreated,
    TaskCreated,
    key = |e| &e.user_id,
    user = |e| Some(&e.user_id)
);
event!(
    TaskUpdatedEvent,
    TaskUpdated,
    TaskUpdated,
    key = |e| &e.task_id,
    user = |e| Some(&e.user_id)
);
event!(
    TaskCompletedEvent,
    TaskCompleted,
    TaskCompleted,
    key = |e| &e.task_id,
    user = |e| Some(&e.user_id)
);
event!(
    TaskDeletedEvent,
    TaskDeleted,
    TaskDeleted,
    key = |e| &e.task_id,
    user = |e| Some(&e.user_id)
);
event!(
    TaskSharedEvent,
    TaskShared,
    TaskShared,
    key = |e| &e.task_id,
    user = |e| Some(&e.user_id)
);
event!(
    TaskAssignedEvent,
    TaskAssigned,
    TaskAssigned,
    key = |e| &e.task_id,
    user = |e| Some(&e.user_id)
);
event!(
    UserRegisteredEvent,
    UserRegistered,
    UserRegistered,
    key = |e| &e.user_id,
    user = |e| Some(&e.user_id)
);
event!(
    UserUpdatedEvent,
    UserUpdated,
    UserUpdated,
    key = |e| &e.user_id,
    user = |e| Some(&e.user_id)
);
event!(
    UserAuthenticatedEvent,
    UserAuthenticated,
    UserAuthenticated,
    // A failed attempt for an unknown email has no user: it is keyed by the email so that the
    // attempts against one address stay in order.
    key = |e| e.user_id.as_deref().unwrap_or(&e.email),
    user = |e| e.user_id.as_deref()
);
event!(
    ReminderTriggeredEvent,
    ReminderTriggered,
    ReminderTriggered,
    key = |e| &e.reminder_id,
    user = |e| Some(&e.user_id)
);
event!(
    NotificationSentEvent,
    NotificationSent,
    NotificationSent,
    key = |e| &e.notification_id,
    user = |e| Some(&e.user_id)
);

/// Any event of the system: what decoding a consumed message yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyEvent {
    TaskCreated(TaskCreatedEvent),
    TaskUpdated(TaskUpdatedEvent),
    TaskCompleted(TaskCompletedEvent),
    TaskDeleted(TaskDeletedEvent),
    UserRegistered(UserRegisteredEvent),
    UserAuthenticated(UserAuthenticatedEvent),
    NotificationSent(NotificationSentEvent),
    ReminderTriggered(ReminderTriggeredEvent),
    UserUpdated(UserUpdatedEvent),
    TaskShared(TaskSharedEvent),
    TaskAssigned(TaskAssignedEvent),
}

/// Call `$body` with `$e` bound to the inner event, whatever its type.
macro_rules! with_event {
    ($any:expr, $e:ident => $body:expr) => {
        match $any {
            AnyEvent::TaskCreated($e) => $body,
            AnyEvent::TaskUpdated($e) => $body,
            AnyEvent::TaskCompleted($e) => $body,
            AnyEvent::TaskDeleted($e) => $body,
            AnyEvent::UserRegistered($e) => $body,
            AnyEvent::UserAuthenticated($e) => $body,
            AnyEvent::NotificationSent($e) => $body,
            AnyEvent::ReminderTriggered($e) => $body,
            AnyEvent::UserUpdated($e) => $body,
            AnyEvent::TaskShared($e) => $body,
            AnyEvent::TaskAssigned($e) => $body,
        }
    };
}

impl AnyEvent {
    pub fn topic(&self) -> Topic {
        fn topic_of<E: Event>(_: &E) -> Topic {
            E::TOPIC
        }
        with_event!(self, e => topic_of(e))
    }

    pub fn event_id(&self) -> &str {
        with_event!(self, e => e.event_id())
    }

    pub fn event_timestamp(&self) -> EpochMillis {
        with_event!(self, e => e.event_timestamp())
    }

    pub fn key(&self) -> &str {
        with_event!(self, e => e.key())
    }

    pub fn user_id(&self) -> Option<&str> {
        with_event!(self, e => e.user_id())
    }

    /// The task the event is about, if any.
    pub fn task_id(&self) -> Option<&str> {
        match self {
            AnyEvent::TaskCreated(e) => Some(&e.task_id),
            AnyEvent::TaskUpdated(e) => Some(&e.task_id),
            AnyEvent::TaskCompleted(e) => Some(&e.task_id),
            AnyEvent::TaskDeleted(e) => Some(&e.task_id),
            AnyEvent::TaskShared(e) => Some(&e.task_id),
            AnyEvent::TaskAssigned(e) => Some(&e.task_id),
            AnyEvent::ReminderTriggered(e) => Some(&e.task_id),
            AnyEvent::NotificationSent(e) => e.task_id.as_deref(),
            AnyEvent::UserRegistered(_)
            | AnyEvent::UserAuthenticated(_)
            | AnyEvent::UserUpdated(_) => None,
        }
    }

    /// The task version the event carries, for last-writer-wins (task events only).
    pub fn task_version(&self) -> Option<i64> {
        match self {
            AnyEvent::TaskCreated(e) => Some(e.version),
            AnyEvent::TaskUpdated(e) => Some(e.version),
            AnyEvent::TaskCompleted(e) => Some(e.version),
            AnyEvent::TaskDeleted(e) => Some(e.version),
            AnyEvent::TaskShared(e) => Some(e.version),
            AnyEvent::TaskAssigned(e) => Some(e.version),
            AnyEvent::ReminderTriggered(e) => Some(e.task_version),
            _ => None,
        }
    }

    /// The event of `topic` from its JSON text (Avro field names), as [`AnyEvent::to_json_string`]
    /// writes it: how a stored event (an outbox row, an audit entry) becomes typed again.
    pub fn from_json(topic: Topic, json: &str) -> serde_json::Result<Self> {
        Ok(match topic {
            Topic::TaskCreated => AnyEvent::TaskCreated(serde_json::from_str(json)?),
            Topic::TaskUpdated => AnyEvent::TaskUpdated(serde_json::from_str(json)?),
            Topic::TaskCompleted => AnyEvent::TaskCompleted(serde_json::from_str(json)?),
            Topic::TaskDeleted => AnyEvent::TaskDeleted(serde_json::from_str(json)?),
            Topic::UserRegistered => AnyEvent::UserRegistered(serde_json::from_str(json)?),
            Topic::UserAuthenticated => AnyEvent::UserAuthenticated(serde_json::from_str(json)?),
            Topic::NotificationSent => AnyEvent::NotificationSent(serde_json::from_str(json)?),
            Topic::ReminderTriggered => AnyEvent::ReminderTriggered(serde_json::from_str(json)?),
            Topic::UserUpdated => AnyEvent::UserUpdated(serde_json::from_str(json)?),
            Topic::TaskShared => AnyEvent::TaskShared(serde_json::from_str(json)?),
            Topic::TaskAssigned => AnyEvent::TaskAssigned(serde_json::from_str(json)?),
        })
    }

    /// The event as JSON text with its Avro field names, serialised directly (no intermediate
    /// `Value`): what a log or an audit row stores.
    pub fn to_json_string(&self) -> String {
        with_event!(self, e => serde_json::to_string(e).unwrap_or_default())
    }

    /// The event as JSON with its Avro field names, e.g. for an audit log or a WebSocket.
    pub fn to_json(&self) -> serde_json::Value {
        with_event!(self, e => serde_json::to_value(e).unwrap_or(serde_json::Value::Null))
    }
}

pub(crate) use with_event;
