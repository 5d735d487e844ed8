//! The durable schedule: reminders by state and time, and the claim of due ones.

use diesel::prelude::*;
use service_kit::db::{DbConnection, DbError};

use super::schema::reminders;
use crate::domain::ReminderState;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = reminders)]
pub struct ReminderRow {
    pub reminder_id: String,
    pub task_id: String,
    pub user_id: String,
    pub channel: String,
    pub remind_at: i64,
    pub state: String,
    pub task_version: i64,
    pub task_title: String,
    pub due_date: Option<i64>,
    pub traceparent: Option<String>,
    pub fired_at: Option<i64>,
    pub late: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Scheduled reminders due at `now`, oldest first, at most `limit`, locked for this transaction.
/// On PostgreSQL rows another instance has locked are skipped (`FOR UPDATE SKIP LOCKED`), so
/// instances share the work and none claims a row twice; SQLite has one writer at a time.
pub fn lock_due(
    conn: &mut DbConnection,
    now: i64,
    limit: i64,
) -> Result<Vec<ReminderRow>, DbError> {
    // Built per arm: the select clause is typed by the backend.
    macro_rules! query {
        () => {
            reminders::table
                .filter(reminders::state.eq(ReminderState::Scheduled.as_str()))
                .filter(reminders::remind_at.le(now))
                .order(reminders::remind_at.asc())
                .limit(limit)
                .select(ReminderRow::as_select())
        };
    }
    Ok(match conn {
        DbConnection::Postgresql(c) => query!().for_update().skip_locked().load(c)?,
        DbConnection::Sqlite(c) => query!().load(c)?,
    })
}

/// Move reminders (claimed by [`lock_due`]) to `state`, recording when they fired.
pub fn mark(
    conn: &mut DbConnection,
    ids: &[&str],
    state: ReminderState,
    fired_at: Option<i64>,
    late: bool,
    now: i64,
) -> Result<usize, DbError> {
    let mut changed = 0;
    for chunk in ids.chunks(super::ROWS_PER_STATEMENT) {
        changed += diesel::update(reminders::table.filter(reminders::reminder_id.eq_any(chunk)))
            .set((
                reminders::state.eq(state.as_str()),
                reminders::fired_at.eq(fired_at),
                reminders::late.eq(late),
                reminders::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(changed)
}

/// When the next scheduled reminder is due, if any.
pub fn next_due(conn: &mut DbConnection) -> Result<Option<i64>, DbError> {
    Ok(reminders::table
        .filter(reminders::state.eq(ReminderState::Scheduled.as_str()))
        .select(diesel::dsl::min(reminders::remind_at))
        .first(conn)?)
}

pub fn get(conn: &mut DbConnection, reminder_id: &str) -> Result<Option<ReminderRow>, DbError> {
    Ok(reminders::table
        .find(reminder_id)
        .select(ReminderRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every reminder of a task (tests and diagnostics).
pub fn of_task(conn: &mut DbConnection, task_id: &str) -> Result<Vec<ReminderRow>, DbError> {
    Ok(reminders::table
        .filter(reminders::task_id.eq(task_id))
        .order(reminders::remind_at.asc())
        .select(ReminderRow::as_select())
        .load(conn)?)
}
