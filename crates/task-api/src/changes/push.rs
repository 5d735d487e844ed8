//! Push subscriptions: adding or removing one is a new profile version, announced on
//! user.updated with the whole list (that is how notification-service learns them).

use events::now_millis;
use service_kit::db::{Database, DbConnection};
use service_kit::push::PushSealKey;

use super::users::announce;
use super::{ChangeError, retrying};
use crate::domain::push::NewPushSubscription;
use crate::storage::push::{self as store, PushSubscriptionRow};
use crate::storage::users::{self, User};

/// A subscription after `subscribe`, and whether it is new.
pub struct Subscribed {
    pub row: PushSubscriptionRow,
    pub created: bool,
}

/// Store the browser's subscription (the same endpoint again replaces its keys, or changes
/// nothing when they are the same) and announce the new list.
pub async fn subscribe(
    db: &Database,
    seal: &PushSealKey,
    user_id: String,
    new: NewPushSubscription,
    traceparent: String,
) -> Result<Subscribed, ChangeError> {
    retrying(|| {
        let (user_id, new, tp, seal) = (
            user_id.clone(),
            new.clone(),
            traceparent.clone(),
            seal.clone(),
        );
        db.transaction(move |conn| subscribe_in(conn, &seal, &user_id, &new, &tp))
    })
    .await
}

fn subscribe_in(
    conn: &mut DbConnection,
    seal: &PushSealKey,
    user_id: &str,
    new: &NewPushSubscription,
    traceparent: &str,
) -> Result<Subscribed, ChangeError> {
    let sealed = seal.seal(user_id, &new.endpoint, &new.auth);
    let (row, created) = match store::by_endpoint(conn, user_id, &new.endpoint)? {
        Some(old) => {
            let same_auth = seal
                .open(user_id, &old.endpoint, &old.auth_sealed)
                .is_ok_and(|auth| auth == new.auth);
            if old.p256dh == new.p256dh && same_auth {
                return Ok(Subscribed {
                    row: old,
                    created: false,
                });
            }
            store::rekey(conn, &old.id, &new.p256dh, &sealed)?;
            let row = PushSubscriptionRow {
                p256dh: new.p256dh.clone(),
                auth_sealed: sealed,
                ..old
            };
            (row, false)
        }
        None => {
            let row = PushSubscriptionRow {
                id: uuid::Uuid::new_v4().to_string(),
                user_id: user_id.to_owned(),
                endpoint: new.endpoint.clone(),
                p256dh: new.p256dh.clone(),
                auth_sealed: sealed,
                created_at: now_millis(),
            };
            store::insert(conn, &row)?;
            (row, true)
        }
    };
    new_version(conn, user_id, traceparent)?;
    Ok(Subscribed { row, created })
}

/// Forget one of the user's subscriptions and announce the new list.
pub async fn unsubscribe(
    db: &Database,
    user_id: String,
    id: String,
    traceparent: String,
) -> Result<(), ChangeError> {
    retrying(|| {
        let (user_id, id, tp) = (user_id.clone(), id.clone(), traceparent.clone());
        db.transaction(move |conn| {
            if !store::delete(conn, &user_id, &id)? {
                return Err(ChangeError::NotFound("push subscription"));
            }
            new_version(conn, &user_id, &tp)
        })
    })
    .await
}

/// The profile's next version (its fields unchanged) and its user.updated.
fn new_version(
    conn: &mut DbConnection,
    user_id: &str,
    traceparent: &str,
) -> Result<(), ChangeError> {
    let Some(user) = users::by_id(conn, user_id)? else {
        return Err(ChangeError::NotFound("user"));
    };
    let next = User {
        version: user.version + 1,
        updated_at: now_millis(),
        ..user.clone()
    };
    if !users::update_profile(conn, &next, user.version)? {
        return Err(ChangeError::Raced);
    }
    announce(conn, &next, traceparent)?;
    Ok(())
}
