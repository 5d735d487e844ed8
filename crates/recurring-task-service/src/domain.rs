//! The service's domain, without I/O: what a task event says about a series, and the
//! task.created event of a next occurrence.

use chrono::{DateTime, Utc};
use events::{
    AnyEvent, Collaborator, EpochMillis, Priority, Recurrence, Reminder, TaskCreatedEvent,
    TaskState, TaskStatus, ids,
};
use recurrence::{RecurrenceRule, RuleError};
use serde::{Deserialize, Serialize};

/// The `producer` header of the events this service publishes.
pub const PRODUCER: &str = "recurring-task-service";

/// The kind of the derived event id of a next occurrence (`events::ids::derived_event_id`).
pub const NEXT_OCCURRENCE_EVENT: &str = "next-occurrence";

/// Where a task of a series stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OccurrenceStatus {
    Open,
    Completed,
    Deleted,
}

impl OccurrenceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OccurrenceStatus::Open => "open",
            OccurrenceStatus::Completed => "completed",
            OccurrenceStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(OccurrenceStatus::Open),
            "completed" => Some(OccurrenceStatus::Completed),
            "deleted" => Some(OccurrenceStatus::Deleted),
            _ => None,
        }
    }
}

impl From<TaskStatus> for OccurrenceStatus {
    fn from(status: TaskStatus) -> Self {
        match status {
            TaskStatus::Open => OccurrenceStatus::Open,
            TaskStatus::Completed => OccurrenceStatus::Completed,
        }
    }
}

/// Why a series has no further occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// A task of the series was deleted: final.
    Deleted,
    /// The rule has no occurrence left (count reached, past until).
    Finished,
    /// The completed task no longer had a recurrence.
    RecurrenceRemoved,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Deleted => "deleted",
            EndReason::Finished => "finished",
            EndReason::RecurrenceRemoved => "recurrence_removed",
        }
    }
}

/// What every occurrence of a series copies from the task it follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub category_id: Option<String>,
    pub tags: Vec<String>,
    pub reminders: Vec<Reminder>,
    /// Who the series is shared with: each occurrence keeps them. (Absent in templates stored
    /// before sharing existed.)
    #[serde(default)]
    pub collaborators: Vec<Collaborator>,
    #[serde(default)]
    pub assignee_id: Option<String>,
}

impl Template {
    /// The template of a series known only from its deletion.
    pub fn unknown() -> Self {
        Self {
            title: String::new(),
            description: None,
            priority: Priority::default(),
            category_id: None,
            tags: Vec::new(),
            reminders: Vec::new(),
            collaborators: Vec::new(),
            assignee_id: None,
        }
    }
}

/// The state of one task of a series at one version, as a task event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSnapshot {
    pub task_id: String,
    pub user_id: String,
    pub series_id: String,
    pub occurrence_index: u32,
    pub version: i64,
    pub status: OccurrenceStatus,
    pub due_date: Option<EpochMillis>,
    pub completed_at: Option<EpochMillis>,
    pub created_at: Option<EpochMillis>,
    pub event_timestamp: EpochMillis,
    pub recurrence: Option<Recurrence>,
    pub template: Template,
}

impl TaskSnapshot {
    /// Where the rule of a series starts when this task is the first one seen of it: its due
    /// date, else its creation.
    pub fn series_start(&self) -> EpochMillis {
        self.due_date
            .or(self.created_at)
            .unwrap_or(self.event_timestamp)
    }
}

/// What a consumed task event means for the series it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeriesEvent {
    /// task.created or task.updated: a task's state.
    Changed(TaskSnapshot),
    /// task.completed: a task's state at its completion, which may call for the next occurrence.
    Completed(TaskSnapshot),
    /// task.deleted: ends the series.
    Deleted {
        task_id: String,
        user_id: String,
        series_id: Option<String>,
        version: i64,
    },
}

/// Why a task event cannot be applied: it goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectedEvent {
    #[error("invalid recurrence rule: {0}")]
    Rule(#[from] RuleError),
    #[error("occurrenceIndex {0} is out of range")]
    Index(i64),
}

/// The series a task belongs to: its series id, or for a recurring task without one (an
/// external producer that does not assign series) a series named after the task itself.
fn series_of<'a>(
    task_id: &'a str,
    series_id: Option<&'a str>,
    recurrence: Option<&Recurrence>,
) -> Option<&'a str> {
    series_id.or_else(|| recurrence.is_some().then_some(task_id))
}

fn occurrence_index(index: Option<i64>) -> Result<u32, RejectedEvent> {
    let index = index.unwrap_or(0);
    u32::try_from(index).map_err(|_| RejectedEvent::Index(index))
}

impl Template {
    /// What the next occurrence copies from this task.
    fn of(task: &TaskState) -> Self {
        Self {
            title: task.title.clone(),
            description: task.description.clone(),
            priority: task.priority,
            category_id: task.category_id.clone(),
            tags: task.tags.clone(),
            reminders: task.reminders.clone(),
            collaborators: task.collaborators.clone(),
            assignee_id: task.assignee_id.clone(),
        }
    }
}

impl SeriesEvent {
    /// The series meaning of a task event; `None` for a task outside any series (most tasks).
    /// A rule that does not parse rejects the event (it goes to the dead-letter topic).
    pub fn from_event(event: &AnyEvent) -> Result<Option<Self>, RejectedEvent> {
        if let AnyEvent::TaskDeleted(e) = event {
            return Ok(Some(SeriesEvent::Deleted {
                task_id: e.task_id.clone(),
                user_id: e.user_id.clone(),
                series_id: e.series_id.clone(),
                version: e.version,
            }));
        }
        let Some(task) = TaskState::from_event(event) else {
            return Ok(None);
        };
        let Some(series) = series_of(
            &task.id,
            task.series_id.as_deref(),
            task.recurrence.as_ref(),
        ) else {
            return Ok(None);
        };
        let snapshot = TaskSnapshot {
            series_id: series.to_owned(),
            occurrence_index: occurrence_index(task.occurrence_index)?,
            version: task.version,
            status: task.status.into(),
            due_date: task.due_date,
            completed_at: task.completed_at,
            created_at: Some(task.created_at),
            event_timestamp: task.updated_at,
            template: Template::of(&task),
            recurrence: task.recurrence,
            task_id: task.id,
            user_id: task.owner_id,
        };
        let parsed = if matches!(event, AnyEvent::TaskCompleted(_)) {
            SeriesEvent::Completed(snapshot)
        } else {
            SeriesEvent::Changed(snapshot)
        };
        if let SeriesEvent::Changed(s) | SeriesEvent::Completed(s) = &parsed
            && let Some(r) = &s.recurrence
        {
            RecurrenceRule::from_event(r)?;
        }
        Ok(Some(parsed))
    }
}

/// The completed task a next occurrence follows, at its newest known version.
#[derive(Debug, Clone)]
pub struct CompletedOccurrence {
    pub user_id: String,
    pub series_id: String,
    pub task_id: String,
    pub occurrence_index: u32,
    pub due_date: Option<EpochMillis>,
    pub completed_at: EpochMillis,
    pub recurrence: Recurrence,
    pub template: Template,
}

/// When the next occurrence of a series is due, or why there is none.
pub fn next_due(
    rule: &RecurrenceRule,
    series_start: EpochMillis,
    completed: &CompletedOccurrence,
) -> Option<EpochMillis> {
    let at = |ms: EpochMillis| DateTime::<Utc>::from_timestamp_millis(ms);
    rule.next_due(
        at(series_start)?,
        completed.due_date.and_then(at),
        at(completed.completed_at)?,
        completed.occurrence_index,
    )
    .map(|t| t.timestamp_millis())
}

/// The task.created event of the occurrence after `completed`, due at `due`.
///
/// Its task id and event id are derived from the series and the index, so every replay and
/// every instance derives the same ones and consumers deduplicate them.
pub fn next_occurrence_event(
    completed: &CompletedOccurrence,
    due: EpochMillis,
    now: EpochMillis,
) -> TaskCreatedEvent {
    let index = completed.occurrence_index + 1;
    let task_id = ids::occurrence_task_id(&completed.series_id, i64::from(index)).to_string();
    let t = &completed.template;
    TaskCreatedEvent {
        event_id: ids::derived_event_id(NEXT_OCCURRENCE_EVENT, &task_id).to_string(),
        event_timestamp: now,
        user_id: completed.user_id.clone(),
        task_id,
        title: t.title.clone(),
        description: t.description.clone(),
        priority: t.priority,
        due_date: Some(due),
        category_id: t.category_id.clone(),
        tags: t.tags.clone(),
        version: 1,
        status: TaskStatus::Open,
        recurrence: Some(completed.recurrence.clone()),
        reminders: carried_reminders(
            &t.reminders,
            completed.due_date,
            due,
            completed.completed_at,
        ),
        series_id: Some(completed.series_id.clone()),
        occurrence_index: Some(i64::from(index)),
        created_at: Some(now),
        collaborators: t.collaborators.clone(),
        assignee_id: t.assignee_id.clone(),
        actor_id: None,
    }
}

/// Reminders of the next occurrence. Relative ones (minutes before the due date) carry over
/// as they are. An absolute one moves with the due date (the same distance before it); when the
/// previous task had no due date to measure from, an absolute reminder already past is dropped
/// rather than fired late for a task that did not exist then.
fn carried_reminders(
    reminders: &[Reminder],
    previous_due: Option<EpochMillis>,
    next_due: EpochMillis,
    completed_at: EpochMillis,
) -> Vec<Reminder> {
    reminders
        .iter()
        .filter_map(|r| match (r.at, previous_due) {
            (None, _) => Some(r.clone()),
            (Some(at), Some(previous)) => Some(Reminder {
                at: Some(at + (next_due - previous)),
                ..r.clone()
            }),
            (Some(at), None) => (at > completed_at).then(|| r.clone()),
        })
        .collect()
}

pub use events::time::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;
    use events::{Event, NotificationChannel, RecurrenceMode, sample};

    /// 2026-03-02T09:00:00Z.
    const T0: EpochMillis = 1_772_442_000_000;

    fn completed(due: Option<EpochMillis>) -> CompletedOccurrence {
        CompletedOccurrence {
            user_id: "7c0e3c1e-8f0c-4c57-9d0a-1f4f3a2b9e10".into(),
            series_id: "0b6f2a8e-33c0-4c3b-9f5e-9a3f9e6f0a11".into(),
            task_id: "t".into(),
            occurrence_index: 0,
            due_date: due,
            completed_at: T0,
            recurrence: sample::recurrence(),
            template: Template {
                title: "Water the plants".into(),
                description: None,
                priority: Priority::High,
                category_id: None,
                tags: vec!["home".into()],
                reminders: vec![
                    Reminder {
                        before_due_minutes: Some(30),
                        at: None,
                        channel: NotificationChannel::Email,
                    },
                    Reminder {
                        before_due_minutes: None,
                        at: Some(T0 - 100_000),
                        channel: NotificationChannel::InApp,
                    },
                ],
                collaborators: vec![Collaborator {
                    user_id: "5d1c1b8e-1a2b-4c3d-8e9f-0a1b2c3d4e5f".into(),
                    role: events::ShareRole::Editor,
                }],
                assignee_id: Some("5d1c1b8e-1a2b-4c3d-8e9f-0a1b2c3d4e5f".into()),
            },
        }
    }

    #[test]
    fn the_next_occurrence_has_deterministic_ids_and_the_template() {
        let c = completed(Some(T0));
        let a = next_occurrence_event(&c, T0 + 4_000_000, T0 + 1);
        let b = next_occurrence_event(&c, T0 + 4_000_000, T0 + 2);
        assert_eq!(a.task_id, b.task_id);
        assert_eq!(a.event_id, b.event_id);
        assert_eq!(
            a.task_id,
            ids::occurrence_task_id(&c.series_id, 1).to_string()
        );
        assert_eq!(
            a.event_id,
            ids::derived_event_id("next-occurrence", &a.task_id).to_string()
        );
        assert_eq!(a.occurrence_index, Some(1));
        assert_eq!(a.version, 1);
        assert_eq!(a.status, TaskStatus::Open);
        assert_eq!(a.title, "Water the plants");
        assert_eq!(a.due_date, Some(T0 + 4_000_000));
        // The series' sharing carries over.
        assert_eq!(a.collaborators, c.template.collaborators);
        assert_eq!(a.assignee_id, c.template.assignee_id);
        events::Validate::validate(&a).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn absolute_reminders_move_with_the_due_date() {
        let c = completed(Some(T0));
        let e = next_occurrence_event(&c, T0 + 4_000_000, T0 + 1);
        assert_eq!(e.reminders[0].before_due_minutes, Some(30));
        assert_eq!(e.reminders[1].at, Some(T0 + 3_900_000));
        // Without a previous due date, a spent absolute reminder is dropped.
        let e = next_occurrence_event(&completed(None), T0 + 4_000_000, T0 + 1);
        assert_eq!(e.reminders.len(), 1);
    }

    #[test]
    fn a_task_outside_any_series_means_nothing_here() {
        let mut e = sample::task_created("7c0e3c1e-8f0c-4c57-9d0a-1f4f3a2b9e10");
        e.series_id = None;
        e.recurrence = None;
        assert_eq!(SeriesEvent::from_event(&e.into_any()), Ok(None));
    }

    #[test]
    fn a_bad_rule_is_rejected_naming_the_field() {
        let mut e = sample::task_completed("7c0e3c1e-8f0c-4c57-9d0a-1f4f3a2b9e10");
        e.recurrence = Some(Recurrence {
            rrule: Some("FREQ=SOMETIMES".into()),
            cron: None,
            timezone: "Europe/Berlin".into(),
            mode: RecurrenceMode::Fixed,
            until: None,
            count: None,
        });
        let err = SeriesEvent::from_event(&e.into_any()).expect_err("bad rule");
        assert!(err.to_string().contains("rrule"), "{err}");
    }

    #[test]
    fn a_recurring_task_without_a_series_id_starts_a_series_named_after_it() {
        let mut e = sample::task_created("7c0e3c1e-8f0c-4c57-9d0a-1f4f3a2b9e10");
        e.series_id = None;
        e.occurrence_index = None;
        let task = e.task_id.clone();
        let Ok(Some(SeriesEvent::Changed(s))) = SeriesEvent::from_event(&e.into_any()) else {
            panic!("a series event");
        };
        assert_eq!(s.series_id, task);
        assert_eq!(s.occurrence_index, 0);
    }
}
