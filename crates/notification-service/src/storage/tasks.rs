//! Applying a task event to the schedule: last writer wins by version, then the task's reminders
//! are made to match what the winning version asks for.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use service_kit::db::{DbConnection, DbError};

use super::reminders::ReminderRow;
use super::schema::{reminders, tasks};
use crate::domain::schedule::{TaskSnapshot, worth_scheduling};
use crate::domain::{ReminderState, TaskState};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = tasks, treat_none_as_null = true)]
pub struct TaskRow {
    pub task_id: String,
    pub user_id: String,
    pub title: String,
    pub due_date: Option<i64>,
    pub state: String,
    pub version: i64,
    pub updated_at: i64,
}

/// What applying a task event changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScheduleChange {
    /// The event was older than what is stored: nothing changed.
    pub stale: bool,
    /// Reminders newly scheduled (or revived).
    pub scheduled: usize,
    pub cancelled: usize,
    /// Scheduled reminders whose task details were refreshed.
    pub refreshed: usize,
}

impl ScheduleChange {
    pub fn touched_schedule(&self) -> bool {
        self.scheduled > 0 || self.cancelled > 0
    }
}

/// The stored row, locked on PostgreSQL until the transaction ends so that concurrent events of
/// one task (they arrive on different partitions) apply one after the other. SQLite serialises
/// writers anyway.
fn lock(conn: &mut DbConnection, task_id: &str) -> Result<Option<TaskRow>, DbError> {
    // Built per arm: the select clause is typed by the backend.
    macro_rules! query {
        () => {
            tasks::table.find(task_id).select(TaskRow::as_select())
        };
    }
    Ok(match conn {
        DbConnection::Postgresql(c) => query!().for_update().first(c).optional()?,
        DbConnection::Sqlite(c) => query!().first(c).optional()?,
    })
}

/// Apply one task event inside the caller's transaction.
pub fn apply(
    conn: &mut DbConnection,
    snapshot: &TaskSnapshot,
    traceparent: Option<&str>,
    now: i64,
) -> Result<ScheduleChange, DbError> {
    let stored = lock(conn, &snapshot.task_id)?;
    let row = |stored_version: i64, stored_title: Option<&str>| TaskRow {
        task_id: snapshot.task_id.clone(),
        user_id: snapshot.user_id.clone(),
        title: snapshot
            .title
            .clone()
            .or_else(|| stored_title.map(str::to_owned))
            .unwrap_or_default(),
        due_date: snapshot.due_date,
        state: snapshot.state.as_str().to_owned(),
        // A completion of unknown version (0) keeps the version it completed.
        version: snapshot.version.max(stored_version),
        updated_at: now,
    };
    match &stored {
        Some(s) if !(snapshot.supersedes(s.version) || unknown_terminal(snapshot)) => {
            return Ok(ScheduleChange {
                stale: true,
                ..Default::default()
            });
        }
        Some(s) => {
            diesel::update(tasks::table.find(&snapshot.task_id))
                .set(row(s.version, Some(&s.title)))
                .execute(conn)?;
        }
        None => {
            diesel::insert_into(tasks::table)
                .values(row(0, None))
                .execute(conn)?;
        }
    }
    reconcile(conn, snapshot, traceparent, now)
}

/// A completion written with the seed schema carries no version: it still cancels.
fn unknown_terminal(snapshot: &TaskSnapshot) -> bool {
    snapshot.version == 0 && snapshot.state != TaskState::Open
}

/// Make the task's reminders what the snapshot asks for: cancel the scheduled ones it no longer
/// wants, schedule new ones, refresh the task details of those that stay. Fired and expired
/// reminders are history and never change; a cancelled one comes back if asked for again.
fn reconcile(
    conn: &mut DbConnection,
    snapshot: &TaskSnapshot,
    traceparent: Option<&str>,
    now: i64,
) -> Result<ScheduleChange, DbError> {
    let existing: HashMap<String, ReminderRow> = reminders::table
        .filter(reminders::task_id.eq(&snapshot.task_id))
        .select(ReminderRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|r| (r.reminder_id.clone(), r))
        .collect();
    let planned = snapshot.planned();
    let wanted: HashSet<&str> = planned.iter().map(|p| p.reminder_id.as_str()).collect();
    let scheduled = ReminderState::Scheduled.as_str();
    let mut change = ScheduleChange::default();

    let to_cancel: Vec<&str> = existing
        .values()
        .filter(|r| r.state == scheduled && !wanted.contains(r.reminder_id.as_str()))
        .map(|r| r.reminder_id.as_str())
        .collect();
    if !to_cancel.is_empty() {
        change.cancelled =
            diesel::update(reminders::table.filter(reminders::reminder_id.eq_any(&to_cancel)))
                .set((
                    reminders::state.eq(ReminderState::Cancelled.as_str()),
                    reminders::updated_at.eq(now),
                ))
                .execute(conn)?;
    }

    let title = snapshot.title.clone().unwrap_or_default();
    for p in &planned {
        // A scheduled reminder follows the task to its assignee.
        let details = (
            reminders::user_id.eq(&snapshot.recipient),
            reminders::task_version.eq(snapshot.version),
            reminders::task_title.eq(&title),
            reminders::due_date.eq(snapshot.due_date),
            reminders::traceparent.eq(traceparent),
            reminders::updated_at.eq(now),
        );
        let current = existing.get(&p.reminder_id);
        let state = current.and_then(|r| ReminderState::parse(&r.state));
        match state {
            None if worth_scheduling(p.remind_at, snapshot.changed_at) => {
                diesel::insert_into(reminders::table)
                    .values(ReminderRow {
                        reminder_id: p.reminder_id.clone(),
                        task_id: snapshot.task_id.clone(),
                        user_id: snapshot.recipient.clone(),
                        channel: p.channel.as_str().to_owned(),
                        remind_at: p.remind_at,
                        state: scheduled.to_owned(),
                        task_version: snapshot.version,
                        task_title: title.clone(),
                        due_date: snapshot.due_date,
                        traceparent: traceparent.map(str::to_owned),
                        fired_at: None,
                        late: false,
                        created_at: now,
                        updated_at: now,
                    })
                    .execute(conn)?;
                change.scheduled += 1;
            }
            Some(ReminderState::Scheduled) => {
                change.refreshed += diesel::update(reminders::table.find(&p.reminder_id))
                    .set(details)
                    .execute(conn)?;
            }
            Some(ReminderState::Cancelled)
                if worth_scheduling(p.remind_at, snapshot.changed_at) =>
            {
                diesel::update(reminders::table.find(&p.reminder_id))
                    .set((reminders::state.eq(scheduled), details))
                    .execute(conn)?;
                change.scheduled += 1;
            }
            _ => {}
        }
    }
    Ok(change)
}

pub fn get(conn: &mut DbConnection, task_id: &str) -> Result<Option<TaskRow>, DbError> {
    Ok(tasks::table
        .find(task_id)
        .select(TaskRow::as_select())
        .first(conn)
        .optional()?)
}
