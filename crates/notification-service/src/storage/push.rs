//! The users' Web Push subscriptions, as user.updated lists them, less the endpoints found gone.

use diesel::prelude::*;
use service_kit::db::{DbConnection, DbError};

use super::schema::{push_gone, push_subscriptions};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = push_subscriptions)]
pub struct PushSubscriptionRow {
    pub user_id: String,
    pub endpoint: String,
    pub subscription_id: String,
    pub p256dh: String,
    pub auth_sealed: String,
}

/// The user's subscriptions become `rows` (a newer profile was applied), less any endpoint a
/// push service has already said is gone: that deletion sticks whatever profile comes later.
pub fn replace(
    conn: &mut DbConnection,
    user_id: &str,
    rows: &[PushSubscriptionRow],
) -> Result<(), DbError> {
    diesel::delete(push_subscriptions::table.filter(push_subscriptions::user_id.eq(user_id)))
        .execute(conn)?;
    let endpoints: Vec<&str> = rows.iter().map(|r| r.endpoint.as_str()).collect();
    let gone: Vec<String> = push_gone::table
        .filter(push_gone::endpoint.eq_any(&endpoints))
        .select(push_gone::endpoint)
        .load(conn)?;
    let mut seen = std::collections::HashSet::new();
    let live: Vec<&PushSubscriptionRow> = rows
        .iter()
        .filter(|r| !gone.contains(&r.endpoint) && seen.insert(r.endpoint.as_str()))
        .collect();
    // One statement per row: a user has a few browsers, and a multi-row insert is not
    // expressible for the two-backend connection.
    for row in live {
        diesel::insert_into(push_subscriptions::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

pub fn of_user(
    conn: &mut DbConnection,
    user_id: &str,
) -> Result<Vec<PushSubscriptionRow>, DbError> {
    Ok(push_subscriptions::table
        .filter(push_subscriptions::user_id.eq(user_id))
        .order(push_subscriptions::subscription_id)
        .select(PushSubscriptionRow::as_select())
        .load(conn)?)
}

/// A push service answered 404 or 410 for `endpoint`: delete the subscription and remember the
/// endpoint as gone.
pub fn bury(
    conn: &mut DbConnection,
    user_id: &str,
    endpoint: &str,
    now: i64,
) -> Result<(), DbError> {
    diesel::delete(
        push_subscriptions::table
            .filter(push_subscriptions::user_id.eq(user_id))
            .filter(push_subscriptions::endpoint.eq(endpoint)),
    )
    .execute(conn)?;
    let known = push_gone::table
        .find(endpoint)
        .select(push_gone::endpoint)
        .first::<String>(conn)
        .optional()?;
    if known.is_none() {
        diesel::insert_into(push_gone::table)
            .values((
                push_gone::endpoint.eq(endpoint),
                push_gone::user_id.eq(user_id),
                push_gone::gone_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The rows a user.updated lists.
pub fn rows_of(e: &events::UserUpdatedEvent) -> Vec<PushSubscriptionRow> {
    e.push_subscriptions
        .iter()
        .map(|s| PushSubscriptionRow {
            user_id: e.user_id.clone(),
            endpoint: s.endpoint.clone(),
            subscription_id: s.id.clone(),
            p256dh: s.p256dh.clone(),
            auth_sealed: s.auth_sealed.clone(),
        })
        .collect()
}
