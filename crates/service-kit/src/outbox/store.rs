//! The `event_outbox` table: what a change writes in its transaction, and the statements the
//! relay and the monitor run on it.
//!
//! Rows hold the event as JSON (its Avro field names), not as Avro: the Avro wire format embeds
//! a schema-registry id, so encoding at write time would make every write depend on the
//! registry (or on an id cached from it), and a row written before a registry migration would
//! carry a stale id forever. JSON rows are also readable when someone looks at a stuck backlog.

use diesel::prelude::*;
use events::{AnyEvent, Event};

use crate::db::{DbConnection, DbError};
use crate::telemetry::{self, TraceContext};
use crate::{insert_in_cached_chunks, per_cached_chunk};

diesel::table! {
    event_outbox (seq) {
        seq -> BigInt,
        event_id -> Text,
        topic -> Text,
        message_key -> Text,
        payload -> Text,
        traceparent -> Nullable<Text>,
        created_at -> BigInt,
        sent_at -> Nullable<BigInt>,
        dead_at -> Nullable<BigInt>,
        dead_reason -> Nullable<Text>,
    }
}

/// `None` is bound as NULL rather than written as `DEFAULT` (the column's default is NULL):
/// with no `DEFAULT` in its rows diesel writes a batch as one multi-row statement on SQLite too
/// (SQLite has no `DEFAULT` in `VALUES`; diesel otherwise inserts row by row there).
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = event_outbox)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewOutboxRow {
    pub event_id: String,
    pub topic: String,
    pub message_key: String,
    pub payload: String,
    pub traceparent: Option<String>,
    pub created_at: i64,
}

impl NewOutboxRow {
    /// The row of an event: its topic, key and id from the catalogue, its body as JSON.
    pub fn of<E: Event>(event: &E, traceparent: Option<&str>) -> Result<Self, DbError> {
        Ok(Self {
            event_id: event.event_id().to_owned(),
            topic: E::TOPIC.name().to_owned(),
            message_key: event.key().to_owned(),
            payload: serde_json::to_string(event).map_err(|e| {
                DbError::Query(diesel::result::Error::SerializationError(Box::new(e)))
            })?,
            traceparent: traceparent.map(str::to_owned),
            created_at: events::now_millis(),
        })
    }

    pub fn of_any(event: &AnyEvent, traceparent: Option<&str>) -> Self {
        Self {
            event_id: event.event_id().to_owned(),
            topic: event.topic().name().to_owned(),
            message_key: event.key().to_owned(),
            payload: event.to_json_string(),
            traceparent: traceparent.map(str::to_owned),
            created_at: events::now_millis(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = event_outbox)]
pub struct OutboxRow {
    pub seq: i64,
    pub event_id: String,
    pub topic: String,
    pub message_key: String,
    pub payload: String,
    pub traceparent: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub dead_at: Option<i64>,
    pub dead_reason: Option<String>,
}

/// Write events to the outbox, inside the caller's transaction. An event id already present is
/// skipped (its cause was applied already: a replayed consumer, a retried request); returns how
/// many rows were written.
pub fn insert(conn: &mut DbConnection, rows: &[NewOutboxRow]) -> Result<usize, DbError> {
    let (_spans, traced) = write_spans(rows);
    let rows = traced.as_deref().unwrap_or(rows);
    let inserted = match conn {
        // diesel's SQLite backend has no multi-row upsert; inside the caller's transaction
        // one statement per row costs little.
        DbConnection::Sqlite(c) => {
            let mut n = 0;
            for row in rows {
                n += diesel::insert_into(event_outbox::table)
                    .values(row)
                    .on_conflict(event_outbox::event_id)
                    .do_nothing()
                    .execute(c)?;
            }
            n
        }
        DbConnection::Postgresql(c) => per_cached_chunk!(rows, |chunk| {
            diesel::insert_into(event_outbox::table)
                .values(chunk)
                .on_conflict(event_outbox::event_id)
                .do_nothing()
                .execute(c)?
        }),
    };
    Ok(inserted)
}

/// [`insert`] for events created in this transaction (fresh ids, so nothing to skip): a few
/// multi-row statements kept prepared ([`per_cached_chunk!`]) on both databases (SQLite has no
/// multi-row upsert in diesel, which makes [`insert`] one statement per row there).
pub fn insert_new(conn: &mut DbConnection, rows: &[NewOutboxRow]) -> Result<(), DbError> {
    let (_spans, traced) = write_spans(rows);
    let rows = traced.as_deref().unwrap_or(rows);
    insert_in_cached_chunks!(conn, event_outbox::table, rows);
    Ok(())
}

/// With traces on, an `outbox write` span per row, a step of the trace the row carries, open
/// until the statements ran (drop them after); and the rows carrying their span's context, so
/// the relay's publish is its child. Traces off: nothing, and the rows stay as they are.
fn write_spans(rows: &[NewOutboxRow]) -> (Vec<tracing::Span>, Option<Vec<NewOutboxRow>>) {
    if !telemetry::traces_enabled() {
        return (Vec::new(), None);
    }
    let (spans, rows) = rows
        .iter()
        .map(|row| {
            let span = tracing::info_span!(
                "outbox write",
                trace_id = tracing::field::Empty,
                topic = %row.topic,
                event_id = %row.event_id,
            );
            let parent = row.traceparent.as_deref().and_then(TraceContext::parse);
            let own = telemetry::continue_trace(&span, parent);
            let row = NewOutboxRow {
                traceparent: Some(own.header()),
                ..row.clone()
            };
            (span, row)
        })
        .unzip();
    (spans, Some(rows))
}

/// Which of the pending rows a relay's turn has not read yet.
#[derive(Debug, Clone)]
pub enum Unread {
    /// Those after the last row read (`None`: all). SQLite: writers take turns, so rows
    /// become visible in `seq` order, and a bound is all a read needs (a statement of one
    /// shape, prepared once, starting in the index where the turn left off).
    After(Option<i64>),
    /// Those not among these (the rows in flight). PostgreSQL: writers commit concurrently,
    /// so a row may become visible after rows with a higher `seq` were read.
    Except(Vec<i64>),
}

/// The oldest rows still to publish that the turn has not read, in the order they must be
/// published.
pub fn pending(
    conn: &mut DbConnection,
    limit: i64,
    unread: &Unread,
) -> Result<Vec<OutboxRow>, DbError> {
    let unpublished = event_outbox::table
        .filter(event_outbox::sent_at.is_null())
        .filter(event_outbox::dead_at.is_null())
        .order(event_outbox::seq.asc())
        .limit(limit)
        .select(OutboxRow::as_select());
    Ok(match unread {
        Unread::After(last) => unpublished
            .filter(event_outbox::seq.gt(last.unwrap_or(0)))
            .load(conn)?,
        Unread::Except(skip) => unpublished
            .filter(event_outbox::seq.ne_all(skip))
            .load(conn)?,
    })
}

/// Mark rows acknowledged by the brokers: one statement per thousand rows.
pub fn mark_sent(conn: &mut DbConnection, seqs: &[i64], now: i64) -> Result<usize, DbError> {
    per_thousand(seqs, |chunk| {
        diesel::update(event_outbox::table.filter(event_outbox::seq.eq_any(chunk)))
            .set(event_outbox::sent_at.eq(now))
            .execute(conn)
    })
}

/// Delete rows acknowledged by the brokers (a relay that keeps no sent rows): one statement per
/// thousand rows.
pub fn delete_sent(conn: &mut DbConnection, seqs: &[i64]) -> Result<usize, DbError> {
    per_thousand(seqs, |chunk| {
        diesel::delete(event_outbox::table.filter(event_outbox::seq.eq_any(chunk))).execute(conn)
    })
}

/// Run `statement` on each thousand of `seqs` (a bound on the statement's parameters); the rows
/// it affected in all.
fn per_thousand(
    seqs: &[i64],
    mut statement: impl FnMut(&[i64]) -> QueryResult<usize>,
) -> Result<usize, DbError> {
    let mut n = 0;
    for chunk in seqs.chunks(1000) {
        n += statement(chunk)?;
    }
    Ok(n)
}

/// Set a row aside that can never be published (its JSON unreadable, its schema refused): it
/// stays in the table with the reason, out of the relay's way, for an operator to look at.
pub fn set_aside(conn: &mut DbConnection, seq: i64, reason: &str, now: i64) -> Result<(), DbError> {
    diesel::update(event_outbox::table.filter(event_outbox::seq.eq(seq)))
        .set((
            event_outbox::dead_at.eq(now),
            event_outbox::dead_reason.eq(reason),
        ))
        .execute(conn)?;
    Ok(())
}

/// What the monitor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Rows not yet acknowledged (set-aside rows excluded).
    pub rows: i64,
    /// Creation time of the oldest of them.
    pub oldest: Option<i64>,
    /// Rows set aside as never publishable.
    pub dead: i64,
}

pub fn backlog(conn: &mut DbConnection) -> Result<Backlog, DbError> {
    let (rows, oldest) = event_outbox::table
        .filter(event_outbox::sent_at.is_null())
        .filter(event_outbox::dead_at.is_null())
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(event_outbox::created_at),
        ))
        .first::<(i64, Option<i64>)>(conn)?;
    let dead = count_set_aside().get_result(conn)?;
    Ok(Backlog { rows, oldest, dead })
}

/// The count of rows set aside that [`backlog`] runs every second; an index of them
/// (`event_outbox_dead`) keeps it from reading the whole table.
pub fn count_set_aside() -> diesel::helper_types::Count<
    diesel::helper_types::Filter<
        event_outbox::table,
        diesel::helper_types::IsNotNull<event_outbox::dead_at>,
    >,
> {
    event_outbox::table
        .filter(event_outbox::dead_at.is_not_null())
        .count()
}

/// Delete rows acknowledged before `before` (epoch ms): the topic holds them now.
pub fn purge_sent(conn: &mut DbConnection, before: i64) -> Result<usize, DbError> {
    Ok(
        diesel::delete(event_outbox::table.filter(event_outbox::sent_at.lt(before)))
            .execute(conn)?,
    )
}

/// Whether an event is still waiting to be published (written, neither sent nor set aside).
pub fn is_pending(conn: &mut DbConnection, event_id: &str) -> Result<bool, DbError> {
    Ok(diesel::select(diesel::dsl::exists(
        event_outbox::table
            .filter(event_outbox::event_id.eq(event_id))
            .filter(event_outbox::sent_at.is_null()),
    ))
    .get_result(conn)?)
}

/// Every row, oldest first (tests and diagnostics).
pub fn all(conn: &mut DbConnection) -> Result<Vec<OutboxRow>, DbError> {
    Ok(event_outbox::table
        .order(event_outbox::seq.asc())
        .select(OutboxRow::as_select())
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch of new rows is one multi-row statement on SQLite, not one INSERT per row inside
    /// a savepoint (what diesel does when a row may hold `DEFAULT`).
    #[test]
    fn a_batch_of_rows_is_one_statement_on_sqlite() {
        let row = |n: u32| NewOutboxRow {
            event_id: format!("e{n}"),
            topic: "task.created".to_owned(),
            message_key: "k".to_owned(),
            payload: "{}".to_owned(),
            traceparent: None,
            created_at: 1,
        };
        let rows = vec![row(1), row(2), row(3)];
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(
            &diesel::insert_into(event_outbox::table).values(&rows),
        )
        .to_string();
        assert_eq!(sql.matches("INSERT").count(), 1, "{sql}");
        assert!(!sql.contains("BEGIN"), "{sql}");
    }
}
