//! The service's tables: series, the last known state of each of their tasks, and the ledger of
//! next occurrences that doubles as the outbox of their task.created events.
//!
//! Exactly once comes from the ledger's primary key `(series_id, occurrence_index)`: a next
//! occurrence is recorded with `INSERT … ON CONFLICT DO NOTHING` in the transaction that also
//! holds the inbox row of the completion, and only a row actually inserted is published.
//! Last-writer-wins on task state is `UPDATE … WHERE version < new` followed by an insert that
//! yields to any row already there.

use diesel::prelude::*;
use service_kit::db::{DbConnection, DbError};

diesel::table! {
    series (series_id) {
        series_id -> Text,
        user_id -> Text,
        series_start -> BigInt,
        start_index -> BigInt,
        head_index -> BigInt,
        head_version -> BigInt,
        recurrence -> Nullable<Text>,
        template -> Text,
        ended_at -> Nullable<BigInt>,
        end_reason -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    occurrences (task_id) {
        task_id -> Text,
        series_id -> Text,
        user_id -> Text,
        occurrence_index -> BigInt,
        version -> BigInt,
        status -> Text,
        due_date -> Nullable<BigInt>,
        completed_at -> Nullable<BigInt>,
        recurrence -> Nullable<Text>,
        template -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    next_occurrences (series_id, occurrence_index) {
        series_id -> Text,
        occurrence_index -> BigInt,
        task_id -> Text,
        user_id -> Text,
        event_id -> Text,
        source_task_id -> Text,
        source_event_id -> Text,
        due_date -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

/// Insert a row unless its key exists; returns how many rows were inserted (0 or 1). Diesel
/// cannot express `ON CONFLICT` for the multi-backend connection, so it runs per backend.
macro_rules! insert_or_ignore {
    ($conn:expr, $table:expr, $values:expr) => {
        match $conn {
            DbConnection::Sqlite(c) => diesel::insert_into($table)
                .values($values)
                .on_conflict_do_nothing()
                .execute(c),
            DbConnection::Postgresql(c) => diesel::insert_into($table)
                .values($values)
                .on_conflict_do_nothing()
                .execute(c),
        }
    };
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = series)]
pub struct SeriesRow {
    pub series_id: String,
    pub user_id: String,
    /// Where the rule starts (the due date of the earliest task seen of the series).
    pub series_start: i64,
    /// The occurrence index whose due date `series_start` is.
    pub start_index: i64,
    /// Index and version of the task event the current rule and template come from.
    pub head_index: i64,
    pub head_version: i64,
    /// JSON of `events::Recurrence`.
    pub recurrence: Option<String>,
    /// JSON of `domain::Template`.
    pub template: String,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = occurrences, treat_none_as_null = true)]
pub struct OccurrenceRow {
    pub task_id: String,
    pub series_id: String,
    pub user_id: String,
    pub occurrence_index: i64,
    pub version: i64,
    pub status: String,
    pub due_date: Option<i64>,
    pub completed_at: Option<i64>,
    pub recurrence: Option<String>,
    pub template: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = next_occurrences)]
pub struct NextOccurrenceRow {
    pub series_id: String,
    pub occurrence_index: i64,
    pub task_id: String,
    pub user_id: String,
    pub event_id: String,
    pub source_task_id: String,
    pub source_event_id: String,
    pub due_date: Option<i64>,
    pub created_at: i64,
}

// ---- series --------------------------------------------------------------------------------------

pub fn find_series(conn: &mut DbConnection, id: &str) -> Result<Option<SeriesRow>, DbError> {
    Ok(series::table
        .find(id)
        .select(SeriesRow::as_select())
        .first(conn)
        .optional()?)
}

/// Create the series row unless it exists.
pub fn insert_series(conn: &mut DbConnection, row: &SeriesRow) -> Result<(), DbError> {
    insert_or_ignore!(conn, series::table, row)?;
    Ok(())
}

/// Move the rule's start to an earlier task of the series, when one turns up late.
pub fn lower_series_start(
    conn: &mut DbConnection,
    id: &str,
    index: i64,
    start: i64,
    now: i64,
) -> Result<(), DbError> {
    use series::dsl as s;
    diesel::update(
        s::series
            .filter(s::series_id.eq(id))
            .filter(s::start_index.gt(index)),
    )
    .set((
        s::start_index.eq(index),
        s::series_start.eq(start),
        s::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

/// Take the rule and template from a task event that is newer by (index, version) than the
/// one they come from.
pub fn advance_head(
    conn: &mut DbConnection,
    id: &str,
    index: i64,
    version: i64,
    recurrence: Option<&str>,
    template: &str,
    now: i64,
) -> Result<(), DbError> {
    use series::dsl as s;
    diesel::update(
        s::series.filter(s::series_id.eq(id)).filter(
            s::head_index
                .lt(index)
                .or(s::head_index.eq(index).and(s::head_version.lt(version))),
        ),
    )
    .set((
        s::head_index.eq(index),
        s::head_version.eq(version),
        s::recurrence.eq(recurrence),
        s::template.eq(template),
        s::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

/// Record why the series has no further occurrence. A deletion is final and is never
/// overwritten by another reason.
pub fn end_series(
    conn: &mut DbConnection,
    id: &str,
    reason: &str,
    now: i64,
) -> Result<(), DbError> {
    use series::dsl as s;
    diesel::update(
        s::series
            .filter(s::series_id.eq(id))
            .filter(s::end_reason.is_null().or(s::end_reason.ne("deleted"))),
    )
    .set((
        s::ended_at.eq(now),
        s::end_reason.eq(reason),
        s::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

/// The series continues (a changed rule produced a further occurrence after all).
pub fn reopen_series(conn: &mut DbConnection, id: &str, now: i64) -> Result<(), DbError> {
    use series::dsl as s;
    diesel::update(
        s::series
            .filter(s::series_id.eq(id))
            .filter(s::end_reason.ne("deleted")),
    )
    .set((
        s::ended_at.eq(None::<i64>),
        s::end_reason.eq(None::<String>),
        s::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

// ---- occurrences -------------------------------------------------------------------------------

pub fn find_occurrence(
    conn: &mut DbConnection,
    task_id: &str,
) -> Result<Option<OccurrenceRow>, DbError> {
    Ok(occurrences::table
        .find(task_id)
        .select(OccurrenceRow::as_select())
        .first(conn)
        .optional()?)
}

/// Store a task's state unless a state of the same or a newer version is stored already.
pub fn merge_occurrence(conn: &mut DbConnection, row: &OccurrenceRow) -> Result<bool, DbError> {
    use occurrences::dsl as o;
    let updated = diesel::update(
        o::occurrences
            .filter(o::task_id.eq(&row.task_id))
            .filter(o::version.lt(row.version)),
    )
    .set(row)
    .execute(conn)?;
    if updated > 0 {
        return Ok(true);
    }
    Ok(insert_or_ignore!(conn, occurrences::table, row)? > 0)
}

/// Mark a task deleted at `version` unless a newer state is stored.
pub fn delete_occurrence(
    conn: &mut DbConnection,
    task_id: &str,
    version: i64,
    now: i64,
) -> Result<(), DbError> {
    use occurrences::dsl as o;
    diesel::update(
        o::occurrences
            .filter(o::task_id.eq(task_id))
            .filter(o::version.le(version)),
    )
    .set((
        o::status.eq("deleted"),
        o::version.eq(version),
        o::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

/// Every known task of a series, by index.
pub fn occurrences_of(
    conn: &mut DbConnection,
    series_id: &str,
) -> Result<Vec<OccurrenceRow>, DbError> {
    use occurrences::dsl as o;
    Ok(o::occurrences
        .filter(o::series_id.eq(series_id))
        .select(OccurrenceRow::as_select())
        .order((o::occurrence_index.asc(), o::task_id.asc()))
        .load(conn)?)
}

// ---- next occurrences (the ledger; their events go out through the shared outbox) --------------------------------------------------------

/// Record a next occurrence; `false` when that occurrence of the series exists already.
pub fn record_next_occurrence(
    conn: &mut DbConnection,
    row: &NextOccurrenceRow,
) -> Result<bool, DbError> {
    Ok(insert_or_ignore!(conn, next_occurrences::table, row)? > 0)
}

pub fn next_occurrence_exists(
    conn: &mut DbConnection,
    series_id: &str,
    index: i64,
) -> Result<bool, DbError> {
    use next_occurrences::dsl as n;
    Ok(n::next_occurrences
        .find((series_id, index))
        .select(n::task_id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// The ledger rows of a series, by index.
pub fn next_occurrences_of(
    conn: &mut DbConnection,
    series_id: &str,
) -> Result<Vec<NextOccurrenceRow>, DbError> {
    use next_occurrences::dsl as n;
    Ok(n::next_occurrences
        .filter(n::series_id.eq(series_id))
        .select(NextOccurrenceRow::as_select())
        .order(n::occurrence_index.asc())
        .load(conn)?)
}
