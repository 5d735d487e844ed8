//! Responses remembered by `Idempotency-Key`, per user: a repeated request gets the first
//! response back instead of creating again.

use diesel::prelude::*;
use service_kit::db::{DbConnection, DbError};
use service_kit::insert_in_cached_chunks;

use super::schema::idempotency_keys;

/// `treat_none_as_default_value = false`: without it diesel writes a batch of these on SQLite
/// as one INSERT per row (the field types hold no `None` anyway).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys, treat_none_as_default_value = false)]
pub struct StoredResponse {
    pub user_id: String,
    pub idempotency_key: String,
    /// SHA-256 of the request, to tell a replay from a different request reusing the key.
    pub request_hash: String,
    pub response_status: i32,
    pub response_body: String,
    pub created_at: i64,
}

pub fn find(
    conn: &mut DbConnection,
    user_id: &str,
    key: &str,
) -> Result<Option<StoredResponse>, DbError> {
    Ok(idempotency_keys::table
        .filter(idempotency_keys::user_id.eq(user_id))
        .filter(idempotency_keys::idempotency_key.eq(key))
        .select(StoredResponse::as_select())
        .first(conn)
        .optional()?)
}

/// Remember a response; a concurrent request with the same key makes this a unique violation,
/// which rolls back that request's whole transaction (so it created nothing).
pub fn remember(conn: &mut DbConnection, response: &StoredResponse) -> Result<(), DbError> {
    diesel::insert_into(idempotency_keys::table)
        .values(response)
        .execute(conn)?;
    Ok(())
}

/// [`remember`] several responses (of a batch of creates, each key once) in a few multi-row
/// statements kept prepared ([`service_kit::per_cached_chunk!`]).
pub fn remember_all(conn: &mut DbConnection, responses: &[StoredResponse]) -> Result<(), DbError> {
    insert_in_cached_chunks!(conn, idempotency_keys::table, responses);
    Ok(())
}

/// Forget keys older than `before` (epoch ms); returns how many.
pub fn expire(conn: &mut DbConnection, before: i64) -> Result<usize, DbError> {
    Ok(
        diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(before)))
            .execute(conn)?,
    )
}

/// How long Idempotency-Key responses are remembered.
pub const RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// Deletes remembered responses older than [`RETENTION`] once a minute until `stop`.
pub async fn expire_periodically(
    db: service_kit::db::Database,
    stop: service_kit::shutdown::Shutdown,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = stop.wait() => return,
        }
        let before = events::now_millis() - RETENTION.as_millis() as i64;
        match db.transaction(move |conn| expire(conn, before)).await {
            Ok(n) if n > 0 => tracing::debug!(keys = n, "forgot old idempotency keys"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot expire idempotency keys"),
        }
    }
}
