//! The audit table: batched idempotent appends and the two read paths.
//!
//! Idempotence comes from the table itself: `event_id` is unique and appends are
//! `INSERT … ON CONFLICT DO NOTHING`, so the audit entry is its own inbox row and a replayed
//! event leaves nothing behind. A batch of events is one statement in one transaction.

use diesel::prelude::*;
use service_kit::db::{DbConnection, DbError};
use service_kit::per_cached_chunk;

use crate::domain::{EventQuery, HistoryQuery};

diesel::table! {
    audit_events (seq) {
        seq -> BigInt,
        event_id -> Text,
        topic -> Text,
        kafka_partition -> Integer,
        kafka_offset -> BigInt,
        message_key -> Nullable<Text>,
        event_type -> Text,
        user_id -> Nullable<Text>,
        task_id -> Nullable<Text>,
        event_time -> BigInt,
        recorded_at -> BigInt,
        schema_id -> Nullable<BigInt>,
        producer -> Nullable<Text>,
        trace_id -> Nullable<Text>,
        payload -> Text,
    }
}

diesel::table! {
    task_access (task_id) {
        task_id -> Text,
        version -> BigInt,
        collaborators -> Text,
    }
}

/// Who may read a task's history besides its owner, as of a task event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskAccess {
    pub task_id: String,
    pub version: i64,
    /// The collaborators' user ids.
    pub collaborators: Vec<String>,
}

impl TaskAccess {
    /// What a task event says about who may read the task; `None` for events that cannot
    /// change it (a task never shared: nothing to record, so most events cost nothing here).
    pub fn of(event: &events::AnyEvent) -> Option<Self> {
        use events::AnyEvent as E;
        let (task_id, version, collaborators, shared) = match event {
            E::TaskCreated(e) => (&e.task_id, e.version, &e.collaborators, false),
            E::TaskUpdated(e) => (&e.task_id, e.version, &e.collaborators, false),
            E::TaskCompleted(e) => (&e.task_id, e.version, &e.collaborators, false),
            E::TaskDeleted(e) => (&e.task_id, e.version, &e.collaborators, false),
            E::TaskAssigned(e) => (&e.task_id, e.version, &e.collaborators, false),
            E::TaskShared(e) => (&e.task_id, e.version, &e.collaborators, true),
            _ => return None,
        };
        (shared || !collaborators.is_empty()).then(|| Self {
            task_id: task_id.clone(),
            version,
            collaborators: collaborators.iter().map(|c| c.user_id.clone()).collect(),
        })
    }
}

/// Record who may read a task, unless a newer version already said so (last writer wins by
/// version: events of one task travel on different topics).
pub fn record_access(conn: &mut DbConnection, access: &TaskAccess) -> Result<(), DbError> {
    use task_access::dsl as t;
    let stored: Option<i64> = t::task_access
        .find(&access.task_id)
        .select(t::version)
        .first(conn)
        .optional()?;
    let collaborators = serde_json::to_string(&access.collaborators).unwrap_or_default();
    match stored {
        Some(v) if v >= access.version => {}
        Some(_) => {
            diesel::update(t::task_access.find(&access.task_id))
                .set((
                    t::version.eq(access.version),
                    t::collaborators.eq(collaborators),
                ))
                .execute(conn)?;
        }
        None => {
            diesel::insert_into(t::task_access)
                .values((
                    t::task_id.eq(&access.task_id),
                    t::version.eq(access.version),
                    t::collaborators.eq(collaborators),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Whether `user` is a collaborator of the task now (its owner reads it through `user_id`).
pub fn is_collaborator(
    conn: &mut DbConnection,
    user: &str,
    task_id: &str,
) -> Result<bool, DbError> {
    use task_access::dsl as t;
    let stored: Option<String> = t::task_access
        .find(task_id)
        .select(t::collaborators)
        .first(conn)
        .optional()?;
    Ok(stored
        .and_then(|text| serde_json::from_str::<Vec<String>>(&text).ok())
        .is_some_and(|ids| ids.iter().any(|id| id == user)))
}

/// `None` is bound as NULL, not written as `DEFAULT` (the columns' default is NULL anyway): a
/// row with no `DEFAULT` in it is what lets diesel write a batch as one multi-row statement on
/// SQLite, which has no `DEFAULT` in `VALUES` (diesel otherwise inserts row by row there).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_events)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewAuditEntry {
    pub event_id: String,
    pub topic: String,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub message_key: Option<String>,
    pub event_type: String,
    pub user_id: Option<String>,
    pub task_id: Option<String>,
    pub event_time: i64,
    pub recorded_at: i64,
    pub schema_id: Option<i64>,
    pub producer: Option<String>,
    pub trace_id: Option<String>,
    pub payload: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
pub struct AuditEntry {
    pub seq: i64,
    pub event_id: String,
    pub topic: String,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub message_key: Option<String>,
    pub event_type: String,
    pub user_id: Option<String>,
    pub task_id: Option<String>,
    pub event_time: i64,
    pub recorded_at: i64,
    pub schema_id: Option<i64>,
    pub producer: Option<String>,
    pub trace_id: Option<String>,
    pub payload: String,
}

/// Append entries, skipping those already stored; returns how many were new.
pub fn append(conn: &mut DbConnection, entries: &[NewAuditEntry]) -> Result<usize, DbError> {
    match conn {
        // A few multi-row statements kept prepared ([`per_cached_chunk!`]). Diesel has no
        // multi-row `ON CONFLICT` for SQLite: `OR IGNORE` is its SQLite form here, where the
        // only constraint a well-formed entry can break is the unique event_id (the NOT NULL
        // columns are bound from non-optional fields, and there is no CHECK).
        DbConnection::Sqlite(c) => Ok(per_cached_chunk!(entries, |chunk| {
            diesel::insert_or_ignore_into(audit_events::table)
                .values(chunk)
                .execute(c)?
        })),
        DbConnection::Postgresql(c) => Ok(append_unnested(c, entries)?),
    }
}

/// The batch as one column array per parameter, unnested into rows by the server.
///
/// One statement of 14 parameters whatever the batch size: PostgreSQL parses and plans a few
/// hundred bytes instead of a `VALUES` list of 14 parameters a row (7,000 for 500 events),
/// which is what kept ingest at about 0.7 of the server's own `INSERT … SELECT` ceiling.
fn append_unnested(
    conn: &mut diesel::PgConnection,
    entries: &[NewAuditEntry],
) -> QueryResult<usize> {
    use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
    fn column<'a, T: 'a>(
        entries: &'a [NewAuditEntry],
        f: impl Fn(&'a NewAuditEntry) -> T,
    ) -> Vec<T> {
        entries.iter().map(f).collect()
    }
    diesel::sql_query(
        "INSERT INTO audit_events (event_id, topic, kafka_partition, kafka_offset, message_key, \
         event_type, user_id, task_id, event_time, recorded_at, schema_id, producer, trace_id, \
         payload) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::int8[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::text[], \
         $13::text[], $14::text[]) \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind::<Array<Text>, _>(column(entries, |e| e.event_id.as_str()))
    .bind::<Array<Text>, _>(column(entries, |e| e.topic.as_str()))
    .bind::<Array<Integer>, _>(column(entries, |e| e.kafka_partition))
    .bind::<Array<BigInt>, _>(column(entries, |e| e.kafka_offset))
    .bind::<Array<Nullable<Text>>, _>(column(entries, |e| e.message_key.as_deref()))
    .bind::<Array<Text>, _>(column(entries, |e| e.event_type.as_str()))
    .bind::<Array<Nullable<Text>>, _>(column(entries, |e| e.user_id.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(column(entries, |e| e.task_id.as_deref()))
    .bind::<Array<BigInt>, _>(column(entries, |e| e.event_time))
    .bind::<Array<BigInt>, _>(column(entries, |e| e.recorded_at))
    .bind::<Array<Nullable<BigInt>>, _>(column(entries, |e| e.schema_id))
    .bind::<Array<Nullable<Text>>, _>(column(entries, |e| e.producer.as_deref()))
    .bind::<Array<Nullable<Text>>, _>(column(entries, |e| e.trace_id.as_deref()))
    .bind::<Array<Text>, _>(column(entries, |e| e.payload.as_str()))
    .execute(conn)
}

/// A page of `GET /api/audit/events`, newest first. `user` restricts to one user's events
/// (`None` for admins).
pub fn list(
    conn: &mut DbConnection,
    user: Option<&str>,
    q: &EventQuery,
) -> Result<Vec<AuditEntry>, DbError> {
    use audit_events::dsl as a;
    let mut query = a::audit_events.select(AuditEntry::as_select()).into_boxed();
    if let Some(user) = user {
        query = query.filter(a::user_id.eq(user.to_owned()));
    }
    if let Some(topic) = q.topic {
        query = query.filter(a::topic.eq(topic.name()));
    }
    if let Some(task) = &q.task_id {
        query = query.filter(a::task_id.eq(task.clone()));
    }
    if let Some(from) = q.from {
        query = query.filter(a::event_time.ge(from));
    }
    if let Some(to) = q.to {
        query = query.filter(a::event_time.lt(to));
    }
    if let Some(before) = q.before_seq {
        query = query.filter(a::seq.lt(before));
    }
    Ok(query.order(a::seq.desc()).limit(q.limit).load(conn)?)
}

/// A page of one task's history, oldest first by event time.
pub fn history(
    conn: &mut DbConnection,
    user: Option<&str>,
    task_id: &str,
    q: &HistoryQuery,
) -> Result<Vec<AuditEntry>, DbError> {
    use audit_events::dsl as a;
    let mut query = a::audit_events
        .select(AuditEntry::as_select())
        .filter(a::task_id.eq(task_id.to_owned()))
        .into_boxed();
    if let Some(user) = user {
        query = query.filter(a::user_id.eq(user.to_owned()));
    }
    if let Some(after) = q.after {
        query = query.filter(
            a::event_time
                .gt(after.event_time)
                .or(a::event_time.eq(after.event_time).and(a::seq.gt(after.seq))),
        );
    }
    Ok(query
        .order((a::event_time.asc(), a::seq.asc()))
        .limit(q.limit)
        .load(conn)?)
}

/// How many entries there are (for tests and the benchmark).
pub fn count(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(audit_events::table.count().get_result(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch of entries is one multi-row statement on SQLite, not one INSERT per entry inside
    /// a savepoint (what diesel does when a row may hold `DEFAULT`).
    #[test]
    fn a_batch_of_entries_is_one_statement_on_sqlite() {
        let entry = |n: u32| NewAuditEntry {
            event_id: format!("e{n}"),
            topic: "task.created".to_owned(),
            kafka_partition: 0,
            kafka_offset: i64::from(n),
            message_key: None,
            event_type: "task.created".to_owned(),
            user_id: None,
            task_id: None,
            event_time: 1,
            recorded_at: 1,
            schema_id: None,
            producer: None,
            trace_id: None,
            payload: "{}".to_owned(),
        };
        let entries = vec![entry(1), entry(2), entry(3)];
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(
            &diesel::insert_or_ignore_into(audit_events::table).values(&entries),
        )
        .to_string();
        assert_eq!(sql.matches("INSERT").count(), 1, "{sql}");
        assert!(!sql.contains("BEGIN"), "{sql}");
    }
}
