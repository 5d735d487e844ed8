//! What the service knows of each user: where and how to reach them.

use diesel::prelude::*;
use service_kit::db::{DbConnection, DbError};

use super::schema::users;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = users, treat_none_as_null = true)]
pub struct UserRow {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub timezone: String,
    pub channels: String,
    pub webhook_url: Option<String>,
    pub profile_version: i64,
    pub updated_at: i64,
    /// E.164, verified: user.updated carries no other.
    pub phone_number: Option<String>,
}

pub fn get(conn: &mut DbConnection, user_id: &str) -> Result<Option<UserRow>, DbError> {
    Ok(users::table
        .find(user_id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// Store a profile unless a newer (or the same) version is already stored; `true` when stored.
/// A registration is version 0, so it never overwrites an update that arrived first.
pub fn record(conn: &mut DbConnection, row: &UserRow) -> Result<bool, DbError> {
    let stored: Option<i64> = users::table
        .find(&row.user_id)
        .select(users::profile_version)
        .first(conn)
        .optional()?;
    match stored {
        None => {
            diesel::insert_into(users::table)
                .values(row)
                .execute(conn)?;
            Ok(true)
        }
        Some(v) if v < row.profile_version => {
            diesel::update(users::table.find(&row.user_id))
                .set(row)
                .execute(conn)?;
            Ok(true)
        }
        Some(_) => Ok(false),
    }
}
