//! Deliveries: one row per notification id (reminder and channel), which is what makes a
//! delivery happen once however often reminder.triggered is replayed. Pending rows are a job
//! queue with durable retries; finished rows are what `GET /api/notifications` shows.

use diesel::prelude::*;
use service_kit::db::{DbConnection, DbError};

use super::schema::deliveries;
use crate::domain::DeliveryState;
use crate::domain::query::NotificationQuery;

#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = deliveries)]
pub struct NewDelivery {
    pub notification_id: String,
    pub reminder_id: String,
    pub user_id: String,
    pub task_id: String,
    pub task_title: String,
    pub task_version: i64,
    pub due_date: Option<i64>,
    pub channel: String,
    pub remind_at: i64,
    pub fired_at: i64,
    pub late: bool,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub traceparent: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// What the delivery is about: see [`crate::domain::message::NoticeKind`].
    pub kind: String,
    /// Who made the change announced (an assignment's assigner); `None` for reminders.
    pub actor_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = deliveries)]
pub struct DeliveryRow {
    pub seq: i64,
    pub notification_id: String,
    pub reminder_id: String,
    pub user_id: String,
    pub task_id: String,
    pub task_title: String,
    pub task_version: i64,
    pub due_date: Option<i64>,
    pub channel: String,
    pub remind_at: i64,
    pub fired_at: i64,
    pub late: bool,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub traceparent: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// What the delivery is about: see [`crate::domain::message::NoticeKind`].
    pub kind: String,
    /// Who made the change announced (an assignment's assigner); `None` for reminders.
    pub actor_id: Option<String>,
}

/// Record deliveries to make, skipping notification ids already known; returns how many are new.
pub fn enqueue(conn: &mut DbConnection, rows: &[NewDelivery]) -> Result<usize, DbError> {
    let mut inserted = 0;
    for row in rows {
        inserted += match conn {
            DbConnection::Sqlite(c) => diesel::insert_into(deliveries::table)
                .values(row)
                .on_conflict(deliveries::notification_id)
                .do_nothing()
                .execute(c)?,
            DbConnection::Postgresql(c) => diesel::insert_into(deliveries::table)
                .values(row)
                .on_conflict(deliveries::notification_id)
                .do_nothing()
                .execute(c)?,
        };
    }
    Ok(inserted)
}

/// Pending deliveries whose next attempt is due, at most `limit`, locked for this transaction
/// (skipping rows another instance holds, on PostgreSQL).
pub fn lock_due(
    conn: &mut DbConnection,
    now: i64,
    limit: i64,
) -> Result<Vec<DeliveryRow>, DbError> {
    // Built per arm: the select clause is typed by the backend.
    macro_rules! query {
        () => {
            deliveries::table
                .filter(deliveries::status.eq(DeliveryState::Pending.as_str()))
                .filter(deliveries::next_attempt_at.le(now))
                .order(deliveries::next_attempt_at.asc())
                .limit(limit)
                .select(DeliveryRow::as_select())
        };
    }
    Ok(match conn {
        DbConnection::Postgresql(c) => query!().for_update().skip_locked().load(c)?,
        DbConnection::Sqlite(c) => query!().load(c)?,
    })
}

/// Count an attempt as started and lease the rows until `lease_until`: should this process die
/// mid-attempt, the delivery is tried again after the lease.
pub fn start_attempts(
    conn: &mut DbConnection,
    seqs: &[i64],
    lease_until: i64,
    now: i64,
) -> Result<usize, DbError> {
    Ok(
        diesel::update(deliveries::table.filter(deliveries::seq.eq_any(seqs)))
            .set((
                deliveries::attempts.eq(deliveries::attempts + 1),
                deliveries::next_attempt_at.eq(Some(lease_until)),
                deliveries::updated_at.eq(now),
            ))
            .execute(conn)?,
    )
}

/// Finish a delivery (delivered or failed); `false` when it was no longer pending.
pub fn finish(
    conn: &mut DbConnection,
    notification_id: &str,
    state: DeliveryState,
    error: Option<&str>,
    now: i64,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        deliveries::table
            .filter(deliveries::notification_id.eq(notification_id))
            .filter(deliveries::status.eq(DeliveryState::Pending.as_str())),
    )
    .set((
        deliveries::status.eq(state.as_str()),
        deliveries::last_error.eq(error),
        deliveries::next_attempt_at.eq(None::<i64>),
        deliveries::updated_at.eq(now),
        deliveries::finished_at.eq(Some(now)),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Schedule the next attempt of a pending delivery.
pub fn retry_at(
    conn: &mut DbConnection,
    notification_id: &str,
    at: i64,
    error: &str,
    now: i64,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        deliveries::table
            .filter(deliveries::notification_id.eq(notification_id))
            .filter(deliveries::status.eq(DeliveryState::Pending.as_str())),
    )
    .set((
        deliveries::next_attempt_at.eq(Some(at)),
        deliveries::last_error.eq(Some(error)),
        deliveries::updated_at.eq(now),
    ))
    .execute(conn)?)
}

/// When the next pending delivery may be attempted, if any.
pub fn next_due(conn: &mut DbConnection) -> Result<Option<i64>, DbError> {
    Ok(deliveries::table
        .filter(deliveries::status.eq(DeliveryState::Pending.as_str()))
        .select(diesel::dsl::min(deliveries::next_attempt_at))
        .first::<Option<i64>>(conn)?)
}

pub fn get(conn: &mut DbConnection, notification_id: &str) -> Result<Option<DeliveryRow>, DbError> {
    Ok(deliveries::table
        .filter(deliveries::notification_id.eq(notification_id))
        .select(DeliveryRow::as_select())
        .first(conn)
        .optional()?)
}

/// A page of one user's deliveries, newest first.
pub fn list(
    conn: &mut DbConnection,
    user_id: &str,
    q: &NotificationQuery,
) -> Result<Vec<DeliveryRow>, DbError> {
    let mut query = deliveries::table
        .filter(deliveries::user_id.eq(user_id.to_owned()))
        .select(DeliveryRow::as_select())
        .into_boxed();
    if let Some(before) = q.before_seq {
        query = query.filter(deliveries::seq.lt(before));
    }
    if let Some(status) = q.status {
        query = query.filter(deliveries::status.eq(status.as_str()));
    }
    if let Some(channel) = q.channel {
        query = query.filter(deliveries::channel.eq(channel.as_str()));
    }
    if let Some(task) = &q.task_id {
        query = query.filter(deliveries::task_id.eq(task.clone()));
    }
    Ok(query
        .order(deliveries::seq.desc())
        .limit(q.limit)
        .load(conn)?)
}

/// Every delivery of a task (tests and diagnostics).
pub fn of_task(conn: &mut DbConnection, task_id: &str) -> Result<Vec<DeliveryRow>, DbError> {
    Ok(deliveries::table
        .filter(deliveries::task_id.eq(task_id))
        .order(deliveries::seq.asc())
        .select(DeliveryRow::as_select())
        .load(conn)?)
}
