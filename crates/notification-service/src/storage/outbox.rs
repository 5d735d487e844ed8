//! The outbox: events written in the same transaction as their cause (a reminder marked fired, a
//! delivery finished) and published afterwards by the relay, marked sent only after the brokers
//! acknowledged them.

use diesel::prelude::*;
use service_kit::db::{DbConnection, DbError};

use super::schema::outbox;

#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = outbox)]
pub struct NewOutboxEntry {
    pub event_id: String,
    pub topic: String,
    pub message_key: String,
    /// The event as JSON (its Avro field names); encoded to Avro when published.
    pub payload: String,
    pub traceparent: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub seq: i64,
    pub event_id: String,
    pub topic: String,
    pub message_key: String,
    pub payload: String,
    pub traceparent: Option<String>,
    pub created_at: i64,
    pub lease_until: Option<i64>,
    pub sent_at: Option<i64>,
}

/// Add events; an event id already present is skipped (its cause was applied already).
pub fn insert(conn: &mut DbConnection, entries: &[NewOutboxEntry]) -> Result<usize, DbError> {
    let mut inserted = 0;
    for chunk in entries.chunks(super::ROWS_PER_STATEMENT) {
        inserted += match conn {
            DbConnection::Sqlite(c) => {
                let mut n = 0;
                for row in chunk {
                    n += diesel::insert_into(outbox::table)
                        .values(row)
                        .on_conflict(outbox::event_id)
                        .do_nothing()
                        .execute(c)?;
                }
                n
            }
            DbConnection::Postgresql(c) => diesel::insert_into(outbox::table)
                .values(chunk)
                .on_conflict(outbox::event_id)
                .do_nothing()
                .execute(c)?,
        };
    }
    Ok(inserted)
}

/// Claim up to `limit` unsent events (oldest first) that no relay holds, leasing them until
/// `lease_until`. Several relays (instances) never publish the same row at the same time; a
/// relay that dies leaves its rows to the others once the lease ends.
pub fn claim(
    conn: &mut DbConnection,
    now: i64,
    limit: i64,
    lease_until: i64,
) -> Result<Vec<OutboxRow>, DbError> {
    // Built per arm: the select clause is typed by the backend.
    macro_rules! query {
        () => {
            outbox::table
                .filter(outbox::sent_at.is_null())
                .filter(
                    outbox::lease_until
                        .is_null()
                        .or(outbox::lease_until.le(now)),
                )
                .order(outbox::seq.asc())
                .limit(limit)
                .select(OutboxRow::as_select())
        };
    }
    let rows: Vec<OutboxRow> = match conn {
        DbConnection::Postgresql(c) => query!().for_update().skip_locked().load(c)?,
        DbConnection::Sqlite(c) => query!().load(c)?,
    };
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    if !seqs.is_empty() {
        diesel::update(outbox::table.filter(outbox::seq.eq_any(&seqs)))
            .set(outbox::lease_until.eq(Some(lease_until)))
            .execute(conn)?;
    }
    Ok(rows)
}

pub fn mark_sent(conn: &mut DbConnection, seqs: &[i64], now: i64) -> Result<usize, DbError> {
    Ok(
        diesel::update(outbox::table.filter(outbox::seq.eq_any(seqs)))
            .set(outbox::sent_at.eq(Some(now)))
            .execute(conn)?,
    )
}

/// Let rows be claimed again from `at` on (after a failed publish).
pub fn release(conn: &mut DbConnection, seqs: &[i64], at: i64) -> Result<usize, DbError> {
    Ok(
        diesel::update(outbox::table.filter(outbox::seq.eq_any(seqs)))
            .set(outbox::lease_until.eq(Some(at)))
            .execute(conn)?,
    )
}

/// Events not yet published.
pub fn backlog(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(outbox::table
        .filter(outbox::sent_at.is_null())
        .count()
        .get_result(conn)?)
}

/// When a leased unsent row becomes claimable again, if any (a peer's or a failed publish).
pub fn next_release(conn: &mut DbConnection) -> Result<Option<i64>, DbError> {
    Ok(outbox::table
        .filter(outbox::sent_at.is_null())
        .select(diesel::dsl::min(outbox::lease_until))
        .first::<Option<i64>>(conn)?)
}

/// Delete events published before `before`: the topic holds them now.
pub fn purge_sent(conn: &mut DbConnection, before: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(outbox::table.filter(outbox::sent_at.lt(before))).execute(conn)?)
}

/// Every outbox row of one event id (tests and diagnostics).
pub fn by_event_id(conn: &mut DbConnection, event_id: &str) -> Result<Vec<OutboxRow>, DbError> {
    Ok(outbox::table
        .filter(outbox::event_id.eq(event_id))
        .select(OutboxRow::as_select())
        .load(conn)?)
}
