//! The rules of the schedule: which reminders a task version asks for, which task events win
//! (last writer by version, since events of one task travel on different topics), and whether a
//! reminder is on time, late or too old to send.

use std::collections::HashSet;

use events::{AnyEvent, EpochMillis, NotificationChannel, Reminder, TaskStatus};

use super::TaskState;

/// A reminder whose time was already this far in the past when the task change was made is not
/// scheduled: the user set a time that had passed. The margin absorbs clock skew between hosts.
pub const PAST_GRACE_MS: EpochMillis = 60_000;

/// One reminder a task version asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedReminder {
    pub reminder_id: String,
    pub remind_at: EpochMillis,
    pub channel: NotificationChannel,
}

/// The reminders of a task: `beforeDueMinutes` needs a due date (without one it asks for
/// nothing); `at` is absolute. The same time and channel twice is one reminder (same id).
pub fn plan(
    task_id: &str,
    due_date: Option<EpochMillis>,
    reminders: &[Reminder],
) -> Vec<PlannedReminder> {
    let mut seen = HashSet::new();
    reminders
        .iter()
        .filter_map(|r| {
            let remind_at = match (r.before_due_minutes, r.at) {
                (Some(minutes), None) => due_date?.checked_sub(minutes.checked_mul(60_000)?)?,
                (None, Some(at)) => at,
                // The decoder refuses both or neither; nothing to plan if one slips through.
                _ => return None,
            };
            let id = events::ids::reminder_id(task_id, remind_at, r.channel).to_string();
            seen.insert(id.clone()).then_some(PlannedReminder {
                reminder_id: id,
                remind_at,
                channel: r.channel,
            })
        })
        .collect()
}

/// Whether a reminder planned by a change made at `changed_at` is still worth scheduling.
pub fn worth_scheduling(remind_at: EpochMillis, changed_at: EpochMillis) -> bool {
    remind_at >= changed_at - PAST_GRACE_MS
}

/// How a due reminder goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firing {
    OnTime,
    /// Fired noticeably after its time (the service was down, or overloaded).
    Late,
    /// Missed by so much that sending it would be noise: recorded, not fired.
    Expired,
}

pub fn firing(
    remind_at: EpochMillis,
    now: EpochMillis,
    late_after_ms: i64,
    expire_after_ms: i64,
) -> Firing {
    let behind = now - remind_at;
    if behind > expire_after_ms {
        Firing::Expired
    } else if behind > late_after_ms {
        Firing::Late
    } else {
        Firing::OnTime
    }
}

/// What one task event says about its task, reduced to what the schedule needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSnapshot {
    pub task_id: String,
    pub user_id: String,
    /// Who the task's reminders go to: its assignee, else its owner.
    pub recipient: String,
    /// `None` when the event does not carry it (task.deleted): the stored title stays.
    pub title: Option<String>,
    pub due_date: Option<EpochMillis>,
    pub state: TaskState,
    /// 0 = unknown (a task.completed written with the seed schema).
    pub version: i64,
    /// Completion and deletion also apply at the version they were made at (a producer may not
    /// bump the version for them); creation and updates need a newer one.
    pub applies_at_equal_version: bool,
    pub reminders: Vec<Reminder>,
    /// When the change was made (the event's timestamp).
    pub changed_at: EpochMillis,
}

impl TaskSnapshot {
    /// The snapshot of a task event; `None` for events of other kinds.
    pub fn of(event: &AnyEvent) -> Option<Self> {
        if let AnyEvent::TaskDeleted(e) = event {
            return Some(Self {
                task_id: e.task_id.clone(),
                user_id: e.user_id.clone(),
                recipient: e.assignee_id.clone().unwrap_or_else(|| e.user_id.clone()),
                title: None,
                due_date: None,
                state: TaskState::Deleted,
                version: e.version,
                applies_at_equal_version: true,
                reminders: Vec::new(),
                changed_at: e.event_timestamp,
            });
        }
        let task = events::TaskState::from_event(event)?;
        Some(Self {
            task_id: task.id,
            recipient: task.assignee_id.unwrap_or_else(|| task.owner_id.clone()),
            user_id: task.owner_id,
            title: Some(task.title),
            due_date: task.due_date,
            state: match task.status {
                TaskStatus::Open => TaskState::Open,
                TaskStatus::Completed => TaskState::Completed,
            },
            version: task.version,
            applies_at_equal_version: matches!(event, AnyEvent::TaskCompleted(_)),
            reminders: task.reminders,
            changed_at: task.updated_at,
        })
    }

    /// Whether this snapshot replaces a stored version.
    pub fn supersedes(&self, stored_version: i64) -> bool {
        self.version > stored_version
            || (self.applies_at_equal_version && self.version == stored_version)
    }

    /// The reminders this version wants scheduled (none unless the task is open).
    pub fn planned(&self) -> Vec<PlannedReminder> {
        if self.state == TaskState::Open {
            plan(&self.task_id, self.due_date, &self.reminders)
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DUE: EpochMillis = 1_800_000_000_000;

    fn before(minutes: i64, channel: NotificationChannel) -> Reminder {
        Reminder {
            before_due_minutes: Some(minutes),
            at: None,
            channel,
        }
    }

    #[test]
    fn reminders_are_planned_before_the_due_date_or_at_a_time() {
        let at = Reminder {
            before_due_minutes: None,
            at: Some(DUE - 5),
            channel: NotificationChannel::Webhook,
        };
        let planned = plan(
            "t",
            Some(DUE),
            &[before(30, NotificationChannel::Email), at.clone()],
        );
        assert_eq!(planned.len(), 2);
        assert_eq!(planned[0].remind_at, DUE - 30 * 60_000);
        assert_eq!(planned[1].remind_at, DUE - 5);
        assert_eq!(
            planned[0].reminder_id,
            events::ids::reminder_id("t", DUE - 1_800_000, NotificationChannel::Email).to_string()
        );
        // No due date: only absolute reminders remain.
        assert_eq!(
            plan("t", None, &[before(30, NotificationChannel::Email), at]).len(),
            1
        );
    }

    #[test]
    fn the_same_time_and_channel_twice_is_one_reminder() {
        let r = before(10, NotificationChannel::Email);
        assert_eq!(plan("t", Some(DUE), &[r.clone(), r]).len(), 1);
    }

    #[test]
    fn versions_decide_and_terminal_events_apply_at_equal_version() {
        let mut e = events::sample::task_updated(&uuid::Uuid::new_v4().to_string());
        e.version = 3;
        let s = TaskSnapshot::of(&AnyEvent::TaskUpdated(e)).unwrap();
        assert!(s.supersedes(2));
        assert!(!s.supersedes(3));
        assert!(!s.supersedes(4));
        let mut d = events::sample::task_deleted(&uuid::Uuid::new_v4().to_string());
        d.version = 3;
        let s = TaskSnapshot::of(&AnyEvent::TaskDeleted(d)).unwrap();
        assert!(s.supersedes(3));
        assert!(s.planned().is_empty());
    }

    #[test]
    fn lateness_and_expiry() {
        assert_eq!(firing(1000, 1500, 10_000, 60_000), Firing::OnTime);
        assert_eq!(firing(1000, 12_000, 10_000, 60_000), Firing::Late);
        assert_eq!(firing(1000, 70_000, 10_000, 60_000), Firing::Expired);
        assert!(worth_scheduling(1000, 1000 + PAST_GRACE_MS));
        assert!(!worth_scheduling(1000, 1001 + PAST_GRACE_MS));
    }
}
