//! The transactional outbox: each change writes its event here in the change's own
//! transaction; the relay publishes rows in `seq` order and marks them sent once acknowledged.
//!
//! Rows hold the event as JSON, not as Avro. Encoding happens at publish time because the Avro
//! wire format embeds a schema-registry id: encoding at write time would make every API write
//! depend on the registry being reachable (or on an id cached from it), and a row written before
//! a registry migration would carry a stale id forever. JSON rows are also readable when
//! someone has to look at a stuck backlog.

use diesel::prelude::*;
use events::Event;
use service_kit::db::{DbConnection, DbError};

use super::schema::outbox;

/// Key of the PostgreSQL advisory lock that makes one relay at a time publish (any constant
/// works; this one is "outbox" in ASCII).
pub const RELAY_LOCK_KEY: i64 = 0x6f75_7462_6f78;

diesel::define_sql_function! {
    fn pg_try_advisory_xact_lock(key: diesel::sql_types::BigInt) -> diesel::sql_types::Bool;
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub seq: i64,
    pub topic: String,
    pub message_key: String,
    pub event_id: String,
    pub payload: String,
    pub traceparent: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// Write an event to the outbox, inside the caller's transaction.
pub fn enqueue<E: Event>(
    conn: &mut DbConnection,
    event: &E,
    traceparent: Option<&str>,
) -> Result<(), DbError> {
    let payload = serde_json::to_string(event)
        .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(Box::new(e))))?;
    diesel::insert_into(outbox::table)
        .values((
            outbox::topic.eq(E::TOPIC.name()),
            outbox::message_key.eq(event.key()),
            outbox::event_id.eq(event.event_id()),
            outbox::payload.eq(payload),
            outbox::traceparent.eq(traceparent),
            outbox::created_at.eq(events::now_millis()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Take the relay lock for the current transaction: `false` when another instance's relay holds
/// it. On SQLite there is one instance (the file is local) and its writers are serialised anyway.
pub fn try_lock_relay(conn: &mut DbConnection) -> Result<bool, DbError> {
    match conn {
        DbConnection::Postgresql(c) => {
            Ok(diesel::select(pg_try_advisory_xact_lock(RELAY_LOCK_KEY)).get_result::<bool>(c)?)
        }
        DbConnection::Sqlite(_) => Ok(true),
    }
}

/// The oldest unsent rows, in the order they must be published.
pub fn pending(conn: &mut DbConnection, limit: i64) -> Result<Vec<OutboxRow>, DbError> {
    Ok(outbox::table
        .filter(outbox::sent_at.is_null())
        .order(outbox::seq.asc())
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)?)
}

pub fn mark_sent(conn: &mut DbConnection, seqs: &[i64], now: i64) -> Result<usize, DbError> {
    let mut n = 0;
    // Bounded statement size on both backends.
    for chunk in seqs.chunks(1000) {
        n += diesel::update(outbox::table.filter(outbox::seq.eq_any(chunk)))
            .set(outbox::sent_at.eq(now))
            .execute(conn)?;
    }
    Ok(n)
}

/// Unsent rows and the creation time of the oldest of them.
pub fn backlog(conn: &mut DbConnection) -> Result<(i64, Option<i64>), DbError> {
    Ok(outbox::table
        .filter(outbox::sent_at.is_null())
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(outbox::created_at),
        ))
        .first(conn)?)
}

/// Delete rows sent before `before` (epoch ms).
pub fn purge_sent(conn: &mut DbConnection, before: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(outbox::table.filter(outbox::sent_at.lt(before))).execute(conn)?)
}

/// Every row (tests and diagnostics).
pub fn all(conn: &mut DbConnection) -> Result<Vec<OutboxRow>, DbError> {
    Ok(outbox::table
        .order(outbox::seq.asc())
        .select(OutboxRow::as_select())
        .load(conn)?)
}
