//! Tasks: what a client may write (parsed into [`TaskFields`]), the stored [`Task`], the changes
//! made to it, and the events each change emits.

use events::{
    Collaborator, NotificationChannel, Priority, Recurrence, RecurrenceMode, Reminder, Role,
    ShareRole, TaskAssignedEvent, TaskCompletedEvent, TaskCreatedEvent, TaskDeletedEvent,
    TaskSharedEvent, TaskState, TaskStatus, TaskUpdatedEvent, TaskView,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::user::present;
use super::{Invalid, parse_uuid, time};

pub const MAX_TITLE_LEN: usize = 200;
pub const MAX_DESCRIPTION_LEN: usize = 10_000;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_LEN: usize = 50;
pub const MAX_REMINDERS: usize = 10;
/// A year, in minutes: the furthest ahead of its due date a reminder may fire.
pub const MAX_BEFORE_DUE_MINUTES: i64 = 525_600;
pub const MAX_RECURRENCE_COUNT: i64 = 100_000;

/// How a task repeats, as a client writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceInput {
    /// RFC 5545 RRULE body; give this or `cron`.
    #[schema(example = "FREQ=WEEKLY;BYDAY=MO,WE")]
    pub rrule: Option<String>,
    /// Cron expression (Unix five fields, or six with seconds); give this or `rrule`.
    #[schema(example = "0 9 * * MON")]
    pub cron: Option<String>,
    /// IANA time zone the rule is read in; default the user's time zone.
    #[schema(example = "Europe/Berlin")]
    pub timezone: Option<String>,
    /// `fixed` (default) or `after_completion`.
    #[schema(example = "fixed")]
    pub mode: Option<String>,
    /// RFC 3339 time after which the series ends.
    pub until: Option<String>,
    /// How many tasks the series has at most.
    pub count: Option<i64>,
}

/// One reminder, as a client writes it: `before_due` minutes or an absolute `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReminderInput {
    /// Minutes before the due date.
    #[schema(example = 30)]
    pub before_due: Option<i64>,
    /// RFC 3339 time.
    pub at: Option<String>,
    /// `email`, `webhook`, `in_app` or `sms` (on a server with an SMS gateway).
    #[schema(example = "email")]
    pub channel: String,
}

/// `POST /api/tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    #[schema(example = "Water the plants")]
    pub title: String,
    pub description: Option<String>,
    /// `critical`, `high`, `medium` (default) or `low`, any case.
    #[schema(example = "high")]
    pub priority: Option<String>,
    /// RFC 3339 time.
    #[schema(example = "2026-12-01T09:00:00Z")]
    pub due_at: Option<String>,
    /// One of the user's categories.
    pub category_id: Option<String>,
    #[schema(example = json!(["home"]))]
    pub tags: Option<Vec<String>>,
    pub recurrence: Option<RecurrenceInput>,
    pub reminders: Option<Vec<ReminderInput>>,
}

/// `PATCH /api/tasks/{id}`: only the fields present change; `null` clears a nullable field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskRequest {
    pub title: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub priority: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub due_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub category_id: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RecurrenceInput>)]
    pub recurrence: Option<Option<RecurrenceInput>>,
    pub reminders: Option<Vec<ReminderInput>>,
    /// The owner or a collaborator (UUID), or null for nobody. The owner assigns anyone who may
    /// see the task; a collaborator only themself.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub assignee_id: Option<Option<String>>,
}

impl UpdateTaskRequest {
    /// Whether the request changes the task's own fields (anything but its assignee).
    pub fn touches_fields(&self) -> bool {
        let Self {
            title,
            description,
            priority,
            due_at,
            category_id,
            tags,
            recurrence,
            reminders,
            assignee_id: _,
        } = self;
        title.is_some()
            || description.is_some()
            || priority.is_some()
            || due_at.is_some()
            || category_id.is_some()
            || tags.is_some()
            || recurrence.is_some()
            || reminders.is_some()
    }

    /// The assignee the request sets: `None` leaves it, `Some(None)` clears it.
    pub fn assignee(&self) -> Result<Option<Option<String>>, super::Invalid> {
        match &self.assignee_id {
            None => Ok(None),
            Some(None) => Ok(Some(None)),
            Some(Some(id)) => parse_uuid(id)
                .map(|id| Some(Some(id)))
                .map_err(|m| super::invalid("assignee_id", m)),
        }
    }
}

/// What a client can set on a task, valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFields {
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub due_at: Option<i64>,
    pub category_id: Option<String>,
    pub tags: Vec<String>,
    pub recurrence: Option<Recurrence>,
    pub reminders: Vec<Reminder>,
}

fn parse_title(value: &str) -> Result<String, String> {
    let t = value.trim();
    if t.is_empty() {
        Err("must not be empty".to_owned())
    } else if t.chars().count() > MAX_TITLE_LEN {
        Err(format!("must have at most {MAX_TITLE_LEN} characters"))
    } else {
        Ok(t.to_owned())
    }
}

fn parse_description(value: Option<&str>) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(d) if d.trim().is_empty() => Ok(None),
        Some(d) if d.chars().count() > MAX_DESCRIPTION_LEN => Err(format!(
            "must have at most {MAX_DESCRIPTION_LEN} characters"
        )),
        Some(d) => Ok(Some(d.to_owned())),
    }
}

fn parse_tags(invalid: &mut Invalid, values: &[String]) -> Vec<String> {
    if values.len() > MAX_TAGS {
        invalid.add("tags", format!("at most {MAX_TAGS} tags"));
        return Vec::new();
    }
    let mut tags: Vec<String> = Vec::with_capacity(values.len());
    for (i, raw) in values.iter().enumerate() {
        let tag = raw.trim();
        if tag.is_empty() {
            invalid.add(format!("tags[{i}]"), "must not be empty");
        } else if tag.chars().count() > MAX_TAG_LEN {
            invalid.add(
                format!("tags[{i}]"),
                format!("must have at most {MAX_TAG_LEN} characters"),
            );
        } else if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
    }
    tags
}

fn parse_mode(value: Option<&str>) -> Result<RecurrenceMode, events::UnknownName> {
    value.map_or(Ok(RecurrenceMode::Fixed), str::parse)
}

/// Validate a recurrence with the rules the recurring-task-service evaluates it with.
fn parse_recurrence(
    invalid: &mut Invalid,
    input: &RecurrenceInput,
    default_timezone: &str,
) -> Option<Recurrence> {
    let mode = invalid.check("recurrence.mode", parse_mode(input.mode.as_deref()));
    let until = match &input.until {
        None => Some(None),
        Some(u) => invalid.check("recurrence.until", time::parse(u)).map(Some),
    };
    let count = match input.count {
        None => Some(None),
        Some(n) if (1..=MAX_RECURRENCE_COUNT).contains(&n) => Some(Some(n as u32)),
        Some(_) => {
            invalid.add(
                "recurrence.count",
                format!("must be between 1 and {MAX_RECURRENCE_COUNT}"),
            );
            None
        }
    };
    let (mode, until, count) = (mode?, until?, count?);
    let timezone = input.timezone.as_deref().unwrap_or(default_timezone);
    let rrule = input.rrule.as_deref().filter(|s| !s.trim().is_empty());
    let cron = input.cron.as_deref().filter(|s| !s.trim().is_empty());
    match recurrence::RecurrenceRule::parse(
        rrule,
        cron,
        timezone,
        mode.into(),
        until.and_then(time::to_datetime),
        count,
    ) {
        Ok(rule) => Some(rule.to_event()),
        Err(e) => {
            let field = if e.field == "recurrence" {
                "recurrence".to_owned()
            } else {
                format!("recurrence.{}", e.field)
            };
            invalid.add(field, e.message);
            None
        }
    }
}

fn parse_reminders(invalid: &mut Invalid, values: &[ReminderInput]) -> Vec<Reminder> {
    if values.len() > MAX_REMINDERS {
        invalid.add("reminders", format!("at most {MAX_REMINDERS} reminders"));
        return Vec::new();
    }
    let mut reminders = Vec::with_capacity(values.len());
    for (i, r) in values.iter().enumerate() {
        let field = |name: &str| format!("reminders[{i}].{name}");
        let channel: Option<NotificationChannel> =
            invalid.check(&field("channel"), r.channel.parse::<NotificationChannel>());
        let when = match (r.before_due, &r.at) {
            (Some(m), None) if (0..=MAX_BEFORE_DUE_MINUTES).contains(&m) => Some((Some(m), None)),
            (Some(_), None) => {
                invalid.add(
                    field("before_due"),
                    format!("must be between 0 and {MAX_BEFORE_DUE_MINUTES} minutes"),
                );
                None
            }
            (None, Some(at)) => invalid
                .check(&field("at"), time::parse(at))
                .map(|at| (None, Some(at))),
            _ => {
                invalid.add(
                    format!("reminders[{i}]"),
                    "give exactly one of before_due (minutes) and at (time)",
                );
                None
            }
        };
        if let (Some(channel), Some((before_due_minutes, at))) = (channel, when) {
            let reminder = Reminder {
                before_due_minutes,
                at,
                channel,
            };
            if !reminders.contains(&reminder) {
                reminders.push(reminder);
            }
        }
    }
    reminders
}

impl TaskFields {
    /// A task with a title and a priority and nothing else (no due date, category, tags,
    /// recurrence or reminders).
    pub fn titled(title: &str, priority: Priority) -> Self {
        Self {
            title: title.to_owned(),
            description: None,
            priority,
            due_at: None,
            category_id: None,
            tags: vec![],
            recurrence: None,
            reminders: vec![],
        }
    }

    /// A new task from `POST /api/tasks`; `default_timezone` (the user's) reads a recurrence
    /// that names none.
    pub fn parse_new(req: &CreateTaskRequest, default_timezone: &str) -> Result<Self, Invalid> {
        let mut invalid = Invalid::new();
        let title = invalid.check("title", parse_title(&req.title));
        let description =
            invalid.check("description", parse_description(req.description.as_deref()));
        let priority = match &req.priority {
            None => Some(Priority::Medium),
            Some(p) => invalid.check("priority", p.parse::<Priority>()),
        };
        let due_at = match &req.due_at {
            None => Some(None),
            Some(d) => invalid.check("due_at", time::parse(d)).map(Some),
        };
        let category_id = match &req.category_id {
            None => Some(None),
            Some(c) => invalid.check("category_id", parse_uuid(c)).map(Some),
        };
        let tags = parse_tags(&mut invalid, req.tags.as_deref().unwrap_or_default());
        let recurrence = match &req.recurrence {
            None => Some(None),
            Some(r) => parse_recurrence(&mut invalid, r, default_timezone).map(Some),
        };
        let reminders = parse_reminders(&mut invalid, req.reminders.as_deref().unwrap_or_default());
        let fields = (|| {
            Some(Self {
                title: title?,
                description: description?,
                priority: priority?,
                due_at: due_at?,
                category_id: category_id?,
                tags,
                recurrence: recurrence?,
                reminders,
            })
        })();
        if let Some(f) = &fields {
            f.check_together(&mut invalid);
        }
        invalid.finish(|| fields)
    }

    /// These fields with a `PATCH` applied.
    pub fn apply(&self, req: &UpdateTaskRequest, default_timezone: &str) -> Result<Self, Invalid> {
        let mut invalid = Invalid::new();
        let mut next = self.clone();
        if let Some(t) = &req.title
            && let Some(t) = invalid.check("title", parse_title(t))
        {
            next.title = t;
        }
        if let Some(d) = &req.description
            && let Some(d) = invalid.check("description", parse_description(d.as_deref()))
        {
            next.description = d;
        }
        if let Some(p) = &req.priority
            && let Some(p) = invalid.check("priority", p.parse::<Priority>())
        {
            next.priority = p;
        }
        if let Some(d) = &req.due_at {
            let parsed = match d {
                None => Some(None),
                Some(d) => invalid.check("due_at", time::parse(d)).map(Some),
            };
            if let Some(d) = parsed {
                next.due_at = d;
            }
        }
        if let Some(c) = &req.category_id {
            let parsed = match c {
                None => Some(None),
                Some(c) => invalid.check("category_id", parse_uuid(c)).map(Some),
            };
            if let Some(c) = parsed {
                next.category_id = c;
            }
        }
        if let Some(tags) = &req.tags {
            next.tags = parse_tags(&mut invalid, tags);
        }
        if let Some(r) = &req.recurrence {
            let parsed = match r {
                None => Some(None),
                Some(r) => parse_recurrence(&mut invalid, r, default_timezone).map(Some),
            };
            if let Some(r) = parsed {
                next.recurrence = r;
            }
        }
        if let Some(reminders) = &req.reminders {
            next.reminders = parse_reminders(&mut invalid, reminders);
        }
        if invalid.is_empty() {
            next.check_together(&mut invalid);
        }
        invalid.finish(|| Some(next))
    }

    /// Rules across fields.
    fn check_together(&self, invalid: &mut Invalid) {
        if self.due_at.is_none() {
            for (i, r) in self.reminders.iter().enumerate() {
                if r.before_due_minutes.is_some() {
                    invalid.add(
                        format!("reminders[{i}].before_due"),
                        "needs the task to have a due_at",
                    );
                }
            }
        }
    }

    /// Names (as events spell them) of the fields that differ from `other`.
    pub fn changed_from(&self, other: &TaskFields) -> Vec<String> {
        let mut changed = Vec::new();
        let mut note = |differs: bool, name: &str| {
            if differs {
                changed.push(name.to_owned());
            }
        };
        note(self.title != other.title, "title");
        note(self.description != other.description, "description");
        note(self.priority != other.priority, "priority");
        note(self.due_at != other.due_at, "dueDate");
        note(self.category_id != other.category_id, "categoryId");
        note(self.tags != other.tags, "tags");
        note(self.recurrence != other.recurrence, "recurrence");
        note(self.reminders != other.reminders, "reminders");
        changed
    }
}

/// A stored task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub user_id: String,
    pub fields: TaskFields,
    pub status: TaskStatus,
    pub series_id: Option<String>,
    pub occurrence_index: Option<i64>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
    /// `task-api`, or the producer whose task.created was ingested.
    pub origin: String,
    /// Who the owner shared the task with (accounts only; invitations are stored apart).
    pub collaborators: Vec<Collaborator>,
    /// The owner or a collaborator, or nobody.
    pub assignee_id: Option<String>,
}

impl Task {
    /// A new task, version 1. A recurring task starts a new series as its occurrence 0.
    pub fn new(user_id: &str, fields: TaskFields, now: i64) -> Self {
        let recurring = fields.recurrence.is_some();
        Self {
            // Time-ordered ids: tasks created in the same millisecond still list in creation
            // order (ids break ties of the sort keys).
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user_id.to_owned(),
            fields,
            status: TaskStatus::Open,
            series_id: recurring.then(|| uuid::Uuid::new_v4().to_string()),
            occurrence_index: recurring.then_some(0),
            version: 1,
            created_at: now,
            updated_at: now,
            completed_at: None,
            origin: events::Service::TaskApi.name().to_owned(),
            collaborators: Vec::new(),
            assignee_id: None,
        }
    }

    /// What `user` may do with this task; `None`: they may not even see it.
    pub fn role_of(&self, user: &str) -> Option<Role> {
        events::role_in(&self.user_id, &self.collaborators, user)
    }

    /// The actor an event names: nobody when the owner acted.
    fn actor(&self, actor: &str) -> Option<String> {
        (actor != self.user_id).then(|| actor.to_owned())
    }

    /// This task shared with `user` as `role` (`ShareRole::None`: no longer shared), one
    /// version on; `None` when that is already so. Unsharing the assignee unassigns the task.
    pub fn shared(&self, user: &str, role: ShareRole, now: i64) -> Option<Task> {
        let current = self.collaborators.iter().position(|c| c.user_id == user);
        let mut next = self.clone();
        match (current, role) {
            (None, ShareRole::None) => return None,
            (Some(i), ShareRole::None) => {
                next.collaborators.remove(i);
                if next.assignee_id.as_deref() == Some(user) {
                    next.assignee_id = None;
                }
            }
            (Some(i), role) if self.collaborators[i].role == role => return None,
            (Some(i), role) => next.collaborators[i].role = role,
            (None, role) => next.collaborators.push(Collaborator {
                user_id: user.to_owned(),
                role,
            }),
        }
        next.version += 1;
        next.updated_at = now;
        Some(next)
    }

    /// This task assigned to `assignee` (or nobody), one version on; `None` when it already is.
    pub fn assigned(&self, assignee: Option<&str>, now: i64) -> Option<Task> {
        (self.assignee_id.as_deref() != assignee).then(|| Task {
            assignee_id: assignee.map(str::to_owned),
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        })
    }

    /// This task with new fields, and the names of what changed (empty: nothing to do).
    pub fn edited(&self, fields: TaskFields, now: i64) -> (Task, Vec<String>) {
        let changed = fields.changed_from(&self.fields);
        if changed.is_empty() {
            return (self.clone(), changed);
        }
        let mut next = self.clone();
        // A task that starts repeating starts a series.
        if fields.recurrence.is_some() && next.series_id.is_none() {
            next.series_id = Some(uuid::Uuid::new_v4().to_string());
            next.occurrence_index = Some(0);
        }
        next.fields = fields;
        next.version += 1;
        next.updated_at = now;
        (next, changed)
    }

    /// Completed now; `None` when it already was (completing twice changes nothing).
    pub fn completed(&self, now: i64) -> Option<Task> {
        (self.status == TaskStatus::Open).then(|| Task {
            status: TaskStatus::Completed,
            completed_at: Some(now),
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        })
    }

    /// Open again; `None` when it already was.
    pub fn reopened(&self, now: i64) -> Option<Task> {
        (self.status == TaskStatus::Completed).then(|| Task {
            status: TaskStatus::Open,
            completed_at: None,
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        })
    }

    /// The task at its current version, as task events carry it.
    pub fn state(&self) -> TaskState {
        let f = &self.fields;
        TaskState {
            id: self.id.clone(),
            owner_id: self.user_id.clone(),
            title: f.title.clone(),
            description: f.description.clone(),
            priority: f.priority,
            status: self.status,
            due_date: f.due_at,
            category_id: f.category_id.clone(),
            tags: f.tags.clone(),
            recurrence: f.recurrence.clone(),
            reminders: f.reminders.clone(),
            series_id: self.series_id.clone(),
            occurrence_index: self.occurrence_index,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            completed_at: self.completed_at,
            collaborators: self.collaborators.clone(),
            assignee_id: self.assignee_id.clone(),
        }
    }

    /// The task as its owner reads it (the same JSON the WebSocket sends for this version).
    pub fn view(&self) -> TaskView {
        TaskView::new(&self.state(), Role::Owner)
    }

    /// The task as `user` reads it, with their role (a viewer's when they have none: only a
    /// caller who may see the task gets here).
    pub fn view_for(&self, user: &str) -> TaskView {
        TaskView::new(&self.state(), self.role_of(user).unwrap_or(Role::Viewer))
    }

    pub fn created_event(&self) -> TaskCreatedEvent {
        events::task_event!(TaskCreatedEvent from self.state(), {
            event_id: events::ids::new_event_id(),
            event_timestamp: self.updated_at,
            status: self.status,
            actor_id: None,
        })
    }

    pub fn updated_event(&self, changed_fields: Vec<String>, actor: &str) -> TaskUpdatedEvent {
        events::task_event!(TaskUpdatedEvent from self.state(), {
            event_id: events::ids::new_event_id(),
            event_timestamp: self.updated_at,
            status: self.status,
            completed_at: self.completed_at,
            actor_id: self.actor(actor),
            changed_fields,
        })
    }

    /// The task.completed of a task just completed.
    pub fn completed_event(&self, actor: &str) -> TaskCompletedEvent {
        let completed_at = self.completed_at.unwrap_or(self.updated_at);
        events::task_event!(TaskCompletedEvent from self.state(), {
            event_id: events::ids::new_event_id(),
            event_timestamp: self.updated_at,
            completed_at,
            time_to_complete: Some((completed_at - self.created_at).max(0)),
            actor_id: self.actor(actor),
        })
    }

    /// The task.deleted of this task, one version past its last. It names who could see the
    /// task, so that every one of them hears it is gone.
    pub fn deleted_event(&self, now: i64) -> TaskDeletedEvent {
        TaskDeletedEvent {
            event_id: events::ids::new_event_id(),
            event_timestamp: now,
            user_id: self.user_id.clone(),
            task_id: self.id.clone(),
            version: self.version + 1,
            series_id: self.series_id.clone(),
            collaborators: self.collaborators.clone(),
            assignee_id: self.assignee_id.clone(),
            actor_id: None,
        }
    }

    /// The task.shared of this task just shared with `user` as `role` (None: unshared).
    pub fn shared_event(&self, user: &str, role: ShareRole) -> TaskSharedEvent {
        events::task_event!(TaskSharedEvent from self.state(), {
            event_id: events::ids::new_event_id(),
            event_timestamp: self.updated_at,
            status: self.status,
            completed_at: self.completed_at,
            actor_id: None,
            shared_with_user_id: user.to_owned(),
            role,
        })
    }

    /// The task.assigned of this task just (un)assigned by `actor`, who had `previous`.
    pub fn assigned_event(&self, previous: Option<String>, actor: &str) -> TaskAssignedEvent {
        events::task_event!(TaskAssignedEvent from self.state(), {
            event_id: events::ids::new_event_id(),
            event_timestamp: self.updated_at,
            status: self.status,
            completed_at: self.completed_at,
            actor_id: self.actor(actor),
            previous_assignee_id: previous,
        })
    }

    /// A task another producer created (the recurring engine, an importer), as it announced it.
    pub fn from_created_event(e: &TaskCreatedEvent, producer: &str) -> Self {
        let s = TaskState::from(e);
        Self {
            id: s.id,
            user_id: s.owner_id,
            fields: TaskFields {
                title: s.title.trim().to_owned(),
                description: s.description,
                priority: s.priority,
                due_at: s.due_date,
                category_id: s.category_id,
                tags: s.tags,
                recurrence: s.recurrence,
                reminders: s.reminders,
            },
            status: s.status,
            series_id: s.series_id,
            occurrence_index: s.occurrence_index,
            version: s.version,
            created_at: s.created_at,
            updated_at: s.updated_at,
            completed_at: s.completed_at,
            origin: producer.to_owned(),
            // The series' sharing carries over to each occurrence.
            collaborators: s.collaborators,
            assignee_id: s.assignee_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::Validate;

    fn request() -> CreateTaskRequest {
        CreateTaskRequest {
            title: " Water the plants ".into(),
            description: None,
            priority: Some("HIGH".into()),
            due_at: Some("2026-12-01T09:00:00Z".into()),
            category_id: None,
            tags: Some(vec!["home".into(), "home".into(), " garden ".into()]),
            recurrence: None,
            reminders: Some(vec![ReminderInput {
                before_due: Some(30),
                at: None,
                channel: "Email".into(),
            }]),
        }
    }

    #[test]
    fn a_valid_request_parses_into_clean_fields() {
        let f = TaskFields::parse_new(&request(), "UTC").unwrap();
        assert_eq!(f.title, "Water the plants");
        assert_eq!(f.priority, Priority::High);
        assert_eq!(f.tags, vec!["home", "garden"]);
        assert_eq!(f.reminders.len(), 1);
        let task = Task::new("0b6f2a8e-33c0-4c3b-9f5e-9a3f9e6f0a11", f, 1_764_000_000_000);
        assert_eq!(task.created_event().validate(), Ok(()));
        assert_eq!(task.series_id, None);
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let mut req = request();
        req.title = "  ".into();
        req.priority = Some("urgent".into());
        req.due_at = Some("soon".into());
        req.category_id = Some("42".into());
        let p = TaskFields::parse_new(&req, "UTC").unwrap_err();
        let fields: Vec<&str> = p.fields().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["title", "priority", "due_at", "category_id"]);
    }

    #[test]
    fn before_due_reminders_need_a_due_date() {
        let mut req = request();
        req.due_at = None;
        let p = TaskFields::parse_new(&req, "UTC").unwrap_err();
        assert_eq!(p.fields()[0].field, "reminders[0].before_due");
    }

    #[test]
    fn completing_twice_changes_nothing_the_second_time() {
        let f = TaskFields::parse_new(&request(), "UTC").unwrap();
        let task = Task::new("0b6f2a8e-33c0-4c3b-9f5e-9a3f9e6f0a11", f, 1_764_000_000_000);
        let done = task.completed(1_764_000_060_000).unwrap();
        assert_eq!(done.version, 2);
        assert_eq!(
            done.completed_event(&done.user_id).time_to_complete,
            Some(60_000)
        );
        assert!(done.completed(1_764_000_070_000).is_none());
        let open = done.reopened(1_764_000_080_000).unwrap();
        assert_eq!((open.version, open.status), (3, TaskStatus::Open));
    }

    #[test]
    fn an_edit_that_changes_nothing_keeps_the_version() {
        let f = TaskFields::parse_new(&request(), "UTC").unwrap();
        let task = Task::new("0b6f2a8e-33c0-4c3b-9f5e-9a3f9e6f0a11", f.clone(), 1);
        let same = f.apply(&UpdateTaskRequest::default(), "UTC").unwrap();
        let (t, changed) = task.edited(same, 2);
        assert!(changed.is_empty());
        assert_eq!(t.version, 1);
        let req = UpdateTaskRequest {
            title: Some("New".into()),
            due_at: Some(None),
            reminders: Some(vec![]),
            ..Default::default()
        };
        let (t, changed) = task.edited(f.apply(&req, "UTC").unwrap(), 2);
        assert_eq!(changed, ["title", "dueDate", "reminders"]);
        assert_eq!(t.version, 2);
    }
}
