//! The users table.

use diesel::prelude::*;
use events::NotificationChannel;
use service_kit::db::{DbConnection, DbError};

use super::corrupt;
use super::schema::users;
use crate::domain::user::Profile;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub name: Option<String>,
    pub timezone: String,
    pub notification_channels: String,
    pub webhook_url: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub phone_number: Option<String>,
    pub phone_verified_at: Option<i64>,
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub profile: Profile,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = DbError;

    fn try_from(r: UserRow) -> Result<Self, DbError> {
        let channels: Vec<NotificationChannel> = serde_json::from_str(&r.notification_channels)
            .map_err(|e| corrupt("notification channels", e))?;
        Ok(User {
            id: r.id,
            email: r.email,
            password_hash: r.password_hash,
            profile: Profile {
                name: r.name,
                timezone: r.timezone,
                notification_channels: channels,
                webhook_url: r.webhook_url,
                phone_verified: r.phone_number.is_some() && r.phone_verified_at.is_some(),
                phone_number: r.phone_number,
            },
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl From<&User> for UserRow {
    fn from(u: &User) -> Self {
        UserRow {
            id: u.id.clone(),
            email: u.email.clone(),
            password_hash: u.password_hash.clone(),
            name: u.profile.name.clone(),
            timezone: u.profile.timezone.clone(),
            notification_channels: serde_json::to_string(&u.profile.notification_channels)
                .unwrap_or_else(|_| "[]".to_owned()),
            webhook_url: u.profile.webhook_url.clone(),
            version: u.version,
            created_at: u.created_at,
            updated_at: u.updated_at,
            phone_number: u.profile.phone_number.clone(),
            // The time itself lives in the table only (crate::storage::phones sets it).
            phone_verified_at: u.profile.phone_verified.then_some(u.updated_at),
        }
    }
}

/// Insert a new user; a taken email is a unique violation (see `is_unique_violation`).
pub fn insert(conn: &mut DbConnection, user: &User) -> Result<(), DbError> {
    diesel::insert_into(users::table)
        .values(UserRow::from(user))
        .execute(conn)?;
    Ok(())
}

pub fn by_email(conn: &mut DbConnection, email: &str) -> Result<Option<User>, DbError> {
    users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .map(User::try_from)
        .transpose()
}

pub fn by_id(conn: &mut DbConnection, id: &str) -> Result<Option<User>, DbError> {
    users::table
        .filter(users::id.eq(id))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .map(User::try_from)
        .transpose()
}

/// The emails of these users (those that exist), by id.
pub fn emails(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, DbError> {
    Ok(users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::email))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect())
}

/// The user's time zone, `UTC` when the user is unknown here.
pub fn timezone(conn: &mut DbConnection, id: &str) -> Result<String, DbError> {
    Ok(users::table
        .filter(users::id.eq(id))
        .select(users::timezone)
        .first::<String>(conn)
        .optional()?
        .unwrap_or_else(|| "UTC".to_owned()))
}

/// Store a new profile if the user is still at `expected_version`.
pub fn update_profile(
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
        users::name.eq(row.name),
        users::timezone.eq(row.timezone),
        users::notification_channels.eq(row.notification_channels),
        users::webhook_url.eq(row.webhook_url),
        users::version.eq(row.version),
        users::updated_at.eq(row.updated_at),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}
