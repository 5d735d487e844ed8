//! Phone numbers on the users table, and the pending verification codes.

use diesel::prelude::*;
use service_kit::db::{DbConnection, DbError};

use super::schema::{phone_verifications, users};
use super::users::{User, UserRow};

/// A code sent and not yet entered.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = phone_verifications)]
pub struct PendingCode {
    pub user_id: String,
    pub phone_number: String,
    pub code_hash: String,
    pub failed_attempts: i32,
    pub sent_at: i64,
    pub expires_at: i64,
}

/// Store the user's phone fields and channels if the user is still at `expected_version`.
pub fn store_phone(
    conn: &mut DbConnection,
    next: &User,
    expected_version: i64,
) -> Result<bool, DbError> {
    let row = UserRow::from(next);
    let changed = diesel::update(
        users::table
            .filter(users::id.eq(&next.id))
            .filter(users::version.eq(expected_version)),
    )
    .set((
        users::phone_number.eq(row.phone_number),
        users::phone_verified_at.eq(row.phone_verified_at),
        users::notification_channels.eq(row.notification_channels),
        users::version.eq(row.version),
        users::updated_at.eq(row.updated_at),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

pub fn pending(conn: &mut DbConnection, user_id: &str) -> Result<Option<PendingCode>, DbError> {
    Ok(phone_verifications::table
        .find(user_id)
        .select(PendingCode::as_select())
        .first(conn)
        .optional()?)
}

/// Replace the user's pending code (one at a time: a new code voids the last).
pub fn replace_pending(conn: &mut DbConnection, code: &PendingCode) -> Result<(), DbError> {
    forget_pending(conn, &code.user_id)?;
    diesel::insert_into(phone_verifications::table)
        .values(code)
        .execute(conn)?;
    Ok(())
}

pub fn forget_pending(conn: &mut DbConnection, user_id: &str) -> Result<(), DbError> {
    diesel::delete(phone_verifications::table.find(user_id)).execute(conn)?;
    Ok(())
}

/// Count a wrong code.
pub fn count_failure(conn: &mut DbConnection, user_id: &str) -> Result<(), DbError> {
    diesel::update(phone_verifications::table.find(user_id))
        .set(phone_verifications::failed_attempts.eq(phone_verifications::failed_attempts + 1))
        .execute(conn)?;
    Ok(())
}
