//! The tools' arguments as a model writes them: JSON Schemas (schemars) whose descriptions say
//! what each value means, with examples. Nothing is checked here: the arguments become the REST
//! requests of [`crate::domain::task`] and are parsed there, by the same rules as over REST.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::domain::query::RawTaskQuery;
use crate::domain::task::{CreateTaskRequest, RecurrenceInput, ReminderInput, UpdateTaskRequest};
use crate::domain::user::present;

/// How a task repeats.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceArg {
    /// RFC 5545 RRULE body, without "RRULE:". Examples: "FREQ=DAILY", "FREQ=WEEKLY;BYDAY=MO,WE",
    /// "FREQ=MONTHLY;BYMONTHDAY=1", "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR". Give this or `cron`.
    pub rrule: Option<String>,
    /// Cron expression, five fields (minute hour day-of-month month day-of-week), e.g.
    /// "0 9 * * MON" (Mondays 09:00) or "30 17 * * 1-5" (weekdays 17:30). Give this or `rrule`.
    pub cron: Option<String>,
    /// IANA time zone the rule is read in, e.g. "Europe/Berlin". Default: the user's time zone.
    pub timezone: Option<String>,
    /// "fixed" (default: the next task is due on the rule's next date) or "after_completion"
    /// (the next date is counted from when the task is completed).
    pub mode: Option<String>,
    /// The series ends after this time (same formats as `due_at`).
    pub until: Option<String>,
    /// The series has at most this many tasks.
    pub count: Option<i64>,
}

/// One reminder: `before_due` minutes before the due date, or at a fixed time `at`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReminderArg {
    /// Minutes before the task's due date (the task needs a `due_at`), e.g. 30 or 1440 (a day).
    pub before_due: Option<i64>,
    /// A fixed time instead (same formats as `due_at`).
    pub at: Option<String>,
    /// "email", "webhook" or "in_app".
    pub channel: String,
}

/// `add_task`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTaskArgs {
    /// Short title, 1 to 200 characters, e.g. "Water the plants".
    pub title: String,
    /// Longer notes (up to 10 000 characters).
    pub description: Option<String>,
    /// "critical", "high", "medium" (default) or "low".
    pub priority: Option<String>,
    /// When the task is due. Local time in the user's time zone as "2026-12-07T09:00" (no
    /// offset), or an RFC 3339 time with an offset, e.g. "2026-12-07T09:00:00+01:00".
    pub due_at: Option<String>,
    /// One of the user's categories (UUID).
    pub category_id: Option<String>,
    /// Labels, e.g. ["home", "garden"] (at most 20, each up to 50 characters).
    pub tags: Option<Vec<String>>,
    /// Makes the task repeat (a new task is created when this one is completed or falls due).
    pub recurrence: Option<RecurrenceArg>,
    /// Reminders (at most 10).
    pub reminders: Option<Vec<ReminderArg>>,
    /// Any unique text (e.g. a UUID) for this request: calling again with the same key and the
    /// same arguments returns the task created the first time instead of a second task. Use it
    /// when retrying after a timeout.
    pub idempotency_key: Option<String>,
}

/// `update_task`: only the fields given change; `null` clears description, due_at,
/// category_id or recurrence.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskArgs {
    /// The task's id (UUID), as add_task or find_tasks returned it.
    pub id: String,
    /// Change only if the task still has this version (from the last result); otherwise the
    /// call fails with "The task was changed meanwhile" and nothing changes.
    pub expected_version: Option<i64>,
    /// New title.
    pub title: Option<String>,
    /// New notes; null clears them.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<String>")]
    pub description: Option<Option<String>>,
    /// "critical", "high", "medium" or "low".
    pub priority: Option<String>,
    /// New due time (local "2026-12-07T09:00" in the user's time zone, or RFC 3339 with an
    /// offset); null removes the due date.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<String>")]
    pub due_at: Option<Option<String>>,
    /// New category (UUID); null removes it.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<String>")]
    pub category_id: Option<Option<String>>,
    /// The new full list of tags (replaces the old one).
    pub tags: Option<Vec<String>>,
    /// The new recurrence; null stops the task repeating.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<RecurrenceArg>")]
    pub recurrence: Option<Option<RecurrenceArg>>,
    /// The new full list of reminders (replaces the old one; [] removes all).
    pub reminders: Option<Vec<ReminderArg>>,
}

/// `share_task`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareTaskArgs {
    /// The task's id (UUID); only its owner shares it.
    pub id: String,
    /// The email of the person to share with (someone without an account is invited).
    pub email: String,
    /// "viewer" (reads), "editor" (also edits, completes, reopens), or "none" to stop sharing
    /// with them.
    pub role: String,
    /// Act only if the task still has this version.
    pub expected_version: Option<i64>,
}

/// `assign_task`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignTaskArgs {
    /// The task's id (UUID).
    pub id: String,
    /// "me", the email of one of the task's collaborators, their user id, or null to unassign.
    pub assignee: Option<String>,
    /// Act only if the task still has this version.
    pub expected_version: Option<i64>,
}

/// A task, by id.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskIdArgs {
    /// The task's id (UUID).
    pub id: String,
}

/// `complete_task`, `reopen_task`, `delete_task`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskChangeArgs {
    /// The task's id (UUID).
    pub id: String,
    /// Act only if the task still has this version; otherwise nothing changes.
    pub expected_version: Option<i64>,
}

/// `find_tasks`: every filter given must match (AND).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindTasksArgs {
    /// "open" or "completed".
    pub status: Option<String>,
    /// "critical", "high", "medium" or "low".
    pub priority: Option<String>,
    /// Tasks carrying this tag.
    pub tag: Option<String>,
    /// Tasks in this category (UUID).
    pub category_id: Option<String>,
    /// Due strictly before this time (local "2026-12-07T00:00" in the user's time zone, or RFC
    /// 3339 with an offset).
    pub due_before: Option<String>,
    /// Due at or after this time (same formats).
    pub due_after: Option<String>,
    /// Words searched in title and description (case-insensitive).
    pub q: Option<String>,
    /// "created_at", "updated_at", "due_at" or "priority"; "-" in front for descending.
    /// Default "-created_at" (newest first).
    pub sort: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous result, for the next page (same filters and sort).
    pub cursor: Option<String>,
    /// "me": only the user's own tasks; "others": only tasks shared with the user. Default both.
    pub owner: Option<String>,
    /// "me": only tasks assigned to the user.
    pub assignee: Option<String>,
}

/// `task_history`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskHistoryArgs {
    /// The task's id (UUID); deleted tasks have a history too.
    pub id: String,
    /// Entries per page, 1 to 200.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous result.
    pub cursor: Option<String>,
}

/// `preview_recurrence`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRecurrenceArgs {
    /// RFC 5545 RRULE body, e.g. "FREQ=WEEKLY;BYDAY=MO". Give this or `cron`.
    pub rrule: Option<String>,
    /// Cron expression, e.g. "0 9 * * MON". Give this or `rrule`.
    pub cron: Option<String>,
    /// IANA time zone, e.g. "Europe/Berlin". Default: the user's time zone.
    pub timezone: Option<String>,
    /// How many occurrences, 1 to 100 (default 10).
    pub count: Option<i64>,
    /// First possible occurrence (local "2026-12-07T09:00" in the user's time zone, or RFC 3339
    /// with an offset); default now. Its time of day is the rule's time of day for an RRULE.
    pub start: Option<String>,
}

impl From<RecurrenceArg> for RecurrenceInput {
    fn from(r: RecurrenceArg) -> Self {
        RecurrenceInput {
            rrule: r.rrule,
            cron: r.cron,
            timezone: r.timezone,
            mode: r.mode,
            until: r.until,
            count: r.count,
        }
    }
}

impl From<ReminderArg> for ReminderInput {
    fn from(r: ReminderArg) -> Self {
        ReminderInput {
            before_due: r.before_due,
            at: r.at,
            channel: r.channel,
        }
    }
}

fn reminders(list: Option<Vec<ReminderArg>>) -> Option<Vec<ReminderInput>> {
    list.map(|l| l.into_iter().map(Into::into).collect())
}

impl AddTaskArgs {
    /// The `POST /api/tasks` body these arguments stand for, and the idempotency key.
    pub fn into_request(self) -> (CreateTaskRequest, Option<String>) {
        let request = CreateTaskRequest {
            title: self.title,
            description: self.description,
            priority: self.priority,
            due_at: self.due_at,
            category_id: self.category_id,
            tags: self.tags,
            recurrence: self.recurrence.map(Into::into),
            reminders: reminders(self.reminders),
        };
        (request, self.idempotency_key)
    }
}

impl UpdateTaskArgs {
    /// The `PATCH /api/tasks/{id}` body these arguments stand for.
    pub fn to_request(&self) -> UpdateTaskRequest {
        let this = self.clone();
        UpdateTaskRequest {
            title: this.title,
            description: this.description,
            priority: this.priority,
            due_at: this.due_at,
            category_id: this.category_id,
            tags: this.tags,
            recurrence: this.recurrence.map(|r| r.map(Into::into)),
            reminders: reminders(this.reminders),
            // Assigning is its own tool (assign_task).
            assignee_id: None,
        }
    }
}

impl From<FindTasksArgs> for RawTaskQuery {
    fn from(a: FindTasksArgs) -> Self {
        RawTaskQuery {
            status: a.status,
            priority: a.priority,
            tag: a.tag,
            category_id: a.category_id,
            due_before: a.due_before,
            due_after: a.due_after,
            q: a.q,
            sort: a.sort,
            limit: a.limit.map(|l| l.to_string()),
            cursor: a.cursor,
            owner: a.owner,
            assignee: a.assignee,
        }
    }
}
