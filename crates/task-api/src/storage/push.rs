//! The users' Web Push subscriptions (one per browser that subscribed).

use diesel::prelude::*;
use service_kit::db::{DbConnection, DbError};

use super::schema::push_subscriptions;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = push_subscriptions)]
pub struct PushSubscriptionRow {
    pub id: String,
    pub user_id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth_sealed: String,
    pub created_at: i64,
}

pub fn of_user(
    conn: &mut DbConnection,
    user_id: &str,
) -> Result<Vec<PushSubscriptionRow>, DbError> {
    Ok(push_subscriptions::table
        .filter(push_subscriptions::user_id.eq(user_id))
        .order((push_subscriptions::created_at, push_subscriptions::id))
        .select(PushSubscriptionRow::as_select())
        .load(conn)?)
}

pub fn by_endpoint(
    conn: &mut DbConnection,
    user_id: &str,
    endpoint: &str,
) -> Result<Option<PushSubscriptionRow>, DbError> {
    Ok(push_subscriptions::table
        .filter(push_subscriptions::user_id.eq(user_id))
        .filter(push_subscriptions::endpoint.eq(endpoint))
        .select(PushSubscriptionRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert(conn: &mut DbConnection, row: &PushSubscriptionRow) -> Result<(), DbError> {
    diesel::insert_into(push_subscriptions::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Replace the keys of a subscription (the browser subscribed again at the same endpoint).
pub fn rekey(
    conn: &mut DbConnection,
    id: &str,
    p256dh: &str,
    auth_sealed: &str,
) -> Result<(), DbError> {
    diesel::update(push_subscriptions::table.find(id))
        .set((
            push_subscriptions::p256dh.eq(p256dh),
            push_subscriptions::auth_sealed.eq(auth_sealed),
        ))
        .execute(conn)?;
    Ok(())
}

/// `true` when the user had it.
pub fn delete(conn: &mut DbConnection, user_id: &str, id: &str) -> Result<bool, DbError> {
    let n = diesel::delete(
        push_subscriptions::table
            .filter(push_subscriptions::id.eq(id))
            .filter(push_subscriptions::user_id.eq(user_id)),
    )
    .execute(conn)?;
    Ok(n == 1)
}

/// As user.updated carries them.
pub fn as_event(rows: &[PushSubscriptionRow]) -> Vec<events::PushSubscription> {
    rows.iter()
        .map(|r| events::PushSubscription {
            id: r.id.clone(),
            endpoint: r.endpoint.clone(),
            p256dh: r.p256dh.clone(),
            auth_sealed: r.auth_sealed.clone(),
        })
        .collect()
}
