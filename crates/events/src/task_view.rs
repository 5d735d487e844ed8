//! The task as clients see it, in one place.
//!
//! [`TaskState`] is a task at one version, read from any task event (or built by task-api from
//! its stored row); [`TaskView`] is the client JSON of it: what `GET /api/tasks/{id}` answers
//! and what a WebSocket `task_*` message carries as `data`, byte for byte the same for the same
//! version. Consumers that keep their own view of tasks (reminders, series) start from
//! [`TaskState::from_event`] instead of reading event fields themselves.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{
    AnyEvent, Collaborator, EpochMillis, Priority, Recurrence, Reminder, ShareRole,
    TaskAssignedEvent, TaskCompletedEvent, TaskCreatedEvent, TaskDeletedEvent, TaskSharedEvent,
    TaskStatus, TaskUpdatedEvent,
};
use crate::time::rfc3339;

/// What the caller may do with a task: its owner everything; an editor reads, updates,
/// completes, reopens and assigns it to themself; a viewer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Owner,
    Editor,
    Viewer,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    /// May this role change the task's fields, complete and reopen it?
    pub const fn may_edit(self) -> bool {
        matches!(self, Role::Owner | Role::Editor)
    }
}

/// A task at one version: everything a task event says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    pub id: String,
    pub owner_id: String,
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub status: TaskStatus,
    pub due_date: Option<EpochMillis>,
    pub category_id: Option<String>,
    pub tags: Vec<String>,
    pub recurrence: Option<Recurrence>,
    pub reminders: Vec<Reminder>,
    pub series_id: Option<String>,
    pub occurrence_index: Option<i64>,
    /// 0 when the producer did not say (a task.completed written with the seed schema).
    pub version: i64,
    pub created_at: EpochMillis,
    /// When this version was made: the event's timestamp.
    pub updated_at: EpochMillis,
    pub completed_at: Option<EpochMillis>,
    /// Who the task is shared with besides its owner.
    pub collaborators: Vec<Collaborator>,
    pub assignee_id: Option<String>,
}

impl TaskState {
    /// The task state a task event carries: every task event carries the whole task except
    /// deletion (see [`TaskDeletedEvent`]); events of other kinds carry none.
    pub fn from_event(event: &AnyEvent) -> Option<Self> {
        match event {
            AnyEvent::TaskCreated(e) => Some(Self::from(e)),
            AnyEvent::TaskUpdated(e) => Some(Self::from(e)),
            AnyEvent::TaskCompleted(e) => Some(Self::from(e)),
            AnyEvent::TaskShared(e) => Some(Self::from(e)),
            AnyEvent::TaskAssigned(e) => Some(Self::from(e)),
            _ => None,
        }
    }

    /// What `user` may do with the task, or `None`: they may not see it.
    pub fn role_of(&self, user: &str) -> Option<Role> {
        role_in(&self.owner_id, &self.collaborators, user)
    }
}

/// What `user` may do with a task of `owner` shared with `collaborators`.
pub fn role_in(owner: &str, collaborators: &[Collaborator], user: &str) -> Option<Role> {
    if user == owner {
        return Some(Role::Owner);
    }
    collaborators
        .iter()
        .find(|c| c.user_id == user)
        .and_then(|c| match c.role {
            ShareRole::Editor => Some(Role::Editor),
            ShareRole::Viewer => Some(Role::Viewer),
            ShareRole::None => None,
        })
}

/// An event carrying the whole task, built from a [`TaskState`]: the fields every such event
/// shares come from the state, and the event's own (`event_id`, `event_timestamp`,
/// `actor_id`, `status`, `completed_at`, `changed_fields`, …) are given after it. The reverse
/// of `From<&Event> for TaskState`, with the shared field list written once.
///
/// ```ignore
/// task_event!(TaskSharedEvent from task.state(), {
///     event_id, event_timestamp: now, actor_id: None, status, completed_at,
///     shared_with_user_id: user, role,
/// })
/// ```
#[macro_export]
macro_rules! task_event {
    ($event:ident from $state:expr, { $($field:ident $(: $value:expr)?),* $(,)? }) => {{
        let state: $crate::TaskState = $state;
        $crate::$event {
            user_id: state.owner_id,
            task_id: state.id,
            title: state.title,
            description: state.description,
            priority: state.priority,
            due_date: state.due_date,
            category_id: state.category_id,
            tags: state.tags,
            version: state.version,
            recurrence: state.recurrence,
            reminders: state.reminders,
            series_id: state.series_id,
            occurrence_index: state.occurrence_index,
            created_at: Some(state.created_at),
            collaborators: state.collaborators,
            assignee_id: state.assignee_id,
            $($field $(: $value)?),*
        }
    }};
}

/// The fields every event carrying the whole task shares, field for field; `$status` and
/// `$completed_at` differ by event (completion says both, creation only a status).
macro_rules! task_state_from {
    ($ty:ty, |$e:ident| status: $status:expr, created_at: $created:expr, updated_at: $updated:expr, completed_at: $completed:expr) => {
        impl From<&$ty> for TaskState {
            fn from($e: &$ty) -> Self {
                Self {
                    id: $e.task_id.clone(),
                    owner_id: $e.user_id.clone(),
                    title: $e.title.clone(),
                    description: $e.description.clone(),
                    priority: $e.priority,
                    status: $status,
                    due_date: $e.due_date,
                    category_id: $e.category_id.clone(),
                    tags: $e.tags.clone(),
                    recurrence: $e.recurrence.clone(),
                    reminders: $e.reminders.clone(),
                    series_id: $e.series_id.clone(),
                    occurrence_index: $e.occurrence_index,
                    version: $e.version,
                    created_at: $created,
                    updated_at: $updated,
                    completed_at: $completed,
                    collaborators: $e.collaborators.clone(),
                    assignee_id: $e.assignee_id.clone(),
                }
            }
        }
    };
}

task_state_from!(TaskCreatedEvent, |e|
    status: e.status,
    created_at: e.created_at.unwrap_or(e.event_timestamp),
    updated_at: e.event_timestamp.max(e.created_at.unwrap_or(e.event_timestamp)),
    // A producer may announce a task that is already done.
    completed_at: (e.status == TaskStatus::Completed).then_some(e.event_timestamp)
);
task_state_from!(TaskUpdatedEvent, |e|
    status: e.status,
    created_at: e.created_at.unwrap_or(e.event_timestamp),
    updated_at: e.event_timestamp,
    completed_at: e.completed_at
);
task_state_from!(TaskCompletedEvent, |e|
    status: TaskStatus::Completed,
    created_at: e.created_at.unwrap_or(e.event_timestamp),
    updated_at: e.event_timestamp,
    completed_at: Some(e.completed_at)
);
task_state_from!(TaskSharedEvent, |e|
    status: e.status,
    created_at: e.created_at.unwrap_or(e.event_timestamp),
    updated_at: e.event_timestamp,
    completed_at: e.completed_at
);
task_state_from!(TaskAssignedEvent, |e|
    status: e.status,
    created_at: e.created_at.unwrap_or(e.event_timestamp),
    updated_at: e.event_timestamp,
    completed_at: e.completed_at
);

/// How a task repeats, as clients read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecurrenceView {
    /// RFC 5545 RRULE body, e.g. `FREQ=WEEKLY;BYDAY=MO,WE` (or null when `cron` is set).
    pub rrule: Option<String>,
    /// Cron expression, e.g. `0 9 * * MON` (or null when `rrule` is set).
    pub cron: Option<String>,
    /// IANA time zone the rule is read in.
    pub timezone: String,
    /// `fixed` or `after_completion`.
    pub mode: String,
    /// RFC 3339 time after which the series ends.
    pub until: Option<String>,
    /// How many tasks the series has at most.
    pub count: Option<i32>,
}

impl From<&Recurrence> for RecurrenceView {
    fn from(r: &Recurrence) -> Self {
        Self {
            rrule: r.rrule.clone(),
            cron: r.cron.clone(),
            timezone: r.timezone.clone(),
            mode: r.mode.as_str().to_owned(),
            until: r.until.map(rfc3339),
            count: r.count,
        }
    }
}

/// One reminder, as clients read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReminderView {
    /// Minutes before the due date (or null when `at` is set).
    pub before_due: Option<i64>,
    /// RFC 3339 time (or null when `before_due` is set).
    pub at: Option<String>,
    /// `email`, `webhook` or `in_app`.
    pub channel: String,
}

impl From<&Reminder> for ReminderView {
    fn from(r: &Reminder) -> Self {
        Self {
            before_due: r.before_due_minutes,
            at: r.at.map(rfc3339),
            channel: r.channel.as_str().to_owned(),
        }
    }
}

/// A task, as every client reads it (REST, WebSocket, MCP): snake_case, RFC 3339 times in UTC
/// with milliseconds, lower-case enum names, absent values as `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    /// `critical`, `high`, `medium` or `low`.
    pub priority: String,
    /// `open` or `completed`.
    pub status: String,
    pub due_at: Option<String>,
    pub category_id: Option<String>,
    pub tags: Vec<String>,
    pub recurrence: Option<RecurrenceView>,
    pub reminders: Vec<ReminderView>,
    /// The recurring series the task belongs to.
    pub series_id: Option<String>,
    /// Its place in the series (0 for the first task).
    pub occurrence_index: Option<i64>,
    /// Starts at 1, grows with every change; the ETag.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    /// The user the task belongs to.
    pub owner_id: String,
    /// The user the task is assigned to, or null.
    pub assignee_id: Option<String>,
    /// Who the task is shared with besides its owner.
    pub collaborators: Vec<CollaboratorView>,
    /// The reader's role: `owner`, `editor` or `viewer`.
    pub role: String,
}

impl TaskView {
    /// The task as a reader with `role` sees it.
    pub fn new(task: &TaskState, role: Role) -> Self {
        Self {
            id: task.id.clone(),
            title: task.title.clone(),
            description: task.description.clone(),
            priority: task.priority.as_str().to_owned(),
            status: task.status.as_str().to_owned(),
            due_at: task.due_date.map(rfc3339),
            category_id: task.category_id.clone(),
            tags: task.tags.clone(),
            recurrence: task.recurrence.as_ref().map(RecurrenceView::from),
            reminders: task.reminders.iter().map(ReminderView::from).collect(),
            series_id: task.series_id.clone(),
            occurrence_index: task.occurrence_index,
            version: task.version,
            created_at: rfc3339(task.created_at),
            updated_at: rfc3339(task.updated_at),
            completed_at: task.completed_at.map(rfc3339),
            owner_id: task.owner_id.clone(),
            assignee_id: task.assignee_id.clone(),
            collaborators: task
                .collaborators
                .iter()
                .map(CollaboratorView::from)
                .collect(),
            role: role.as_str().to_owned(),
        }
    }
}

/// A user a task is shared with, as clients read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CollaboratorView {
    pub user_id: String,
    /// `viewer` or `editor`.
    pub role: String,
}

impl From<&Collaborator> for CollaboratorView {
    fn from(c: &Collaborator) -> Self {
        Self {
            user_id: c.user_id.clone(),
            role: c.role.as_str().to_owned(),
        }
    }
}

/// A deleted task, as clients read it: its id and the version the deletion made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeletedTaskView {
    pub id: String,
    pub version: i64,
    pub series_id: Option<String>,
    pub owner_id: String,
}

impl From<&TaskDeletedEvent> for DeletedTaskView {
    fn from(e: &TaskDeletedEvent) -> Self {
        Self {
            id: e.task_id.clone(),
            version: e.version,
            series_id: e.series_id.clone(),
            owner_id: e.user_id.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sample;

    #[test]
    fn the_view_has_the_rest_field_names_and_lower_case_names() {
        let e = sample::task_created("u-1");
        let v = serde_json::to_value(TaskView::new(&TaskState::from(&e), Role::Owner)).unwrap();
        assert_eq!(v["id"], e.task_id.as_str());
        assert_eq!(v["priority"], "high");
        assert_eq!(v["status"], "open");
        assert_eq!(v["recurrence"]["mode"], "fixed");
        assert_eq!(v["reminders"][0]["channel"], "email");
        assert_eq!(v["reminders"][0]["before_due"], 30);
        assert!(v["due_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(v["owner_id"], "u-1");
        assert_eq!(v["role"], "owner");
        assert!(v["assignee_id"].is_null());
        assert!(v["completed_at"].is_null());
    }

    #[test]
    fn every_task_event_with_a_task_gives_its_state() {
        let c = sample::task_completed("u");
        let s = TaskState::from_event(&AnyEvent::TaskCompleted(c.clone())).unwrap();
        assert_eq!(s.status, TaskStatus::Completed);
        assert_eq!(s.completed_at, Some(c.completed_at));
        let u = sample::task_updated("u");
        let s = TaskState::from_event(&AnyEvent::TaskUpdated(u.clone())).unwrap();
        assert_eq!(s.version, u.version);
        assert_eq!(s.priority, Priority::Critical);
        assert!(TaskState::from_event(&AnyEvent::TaskDeleted(sample::task_deleted("u"))).is_none());
    }

    #[test]
    fn a_created_event_without_created_at_was_created_when_announced() {
        let mut e = sample::task_created("u");
        e.created_at = None;
        let s = TaskState::from(&e);
        assert_eq!(s.created_at, e.event_timestamp);
        assert_eq!(s.updated_at, e.event_timestamp);
    }
}
