//! User changes: registration, login attempts (each one announced) and profile edits.

use events::{
    AuthOutcome, UserAuthenticatedEvent, UserRegisteredEvent, UserUpdatedEvent, now_millis,
};
use service_kit::db::{Database, DbConnection, DbError};

use super::{ChangeError, retrying};
use crate::domain::user::{Profile, Registration, UpdateMeRequest, default_channels};
use crate::storage::is_unique_violation;
use crate::storage::users::{self, User};
use service_kit::outbox;

/// Store a new user (the password already hashed) and announce it.
pub async fn register(
    db: &Database,
    registration: Registration,
    password_hash: String,
    traceparent: String,
) -> Result<User, ChangeError> {
    let now = now_millis();
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        email: registration.email.as_str().to_owned(),
        password_hash,
        profile: Profile {
            name: registration.name,
            timezone: registration.timezone,
            notification_channels: default_channels(),
            webhook_url: None,
            phone_number: None,
            phone_verified: false,
        },
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let stored = user.clone();
    let result = db
        .transaction(move |conn| -> Result<(), DbError> {
            users::insert(conn, &stored)?;
            // Tasks shared with this address before it had an account are now shared with it.
            super::shares::accept_invitations(conn, &stored.id, &stored.email, &traceparent)?;
            let p = &stored.profile;
            outbox::enqueue(
                conn,
                &UserRegisteredEvent {
                    event_id: events::ids::new_event_id(),
                    event_timestamp: stored.created_at,
                    user_id: stored.id.clone(),
                    email: stored.email.clone(),
                    name: p.name.clone(),
                    timezone: p.timezone.clone(),
                    notification_channels: p.notification_channels.clone(),
                    webhook_url: p.webhook_url.clone(),
                },
                Some(&traceparent),
            )
        })
        .await;
    match result {
        Ok(()) => Ok(user),
        Err(e) if is_unique_violation(&e) => Err(ChangeError::Conflict {
            slug: "email-taken",
            detail: "an account with this email exists; log in instead".to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// A login attempt, as user.authenticated announces it.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    pub email: String,
    pub user_id: Option<String>,
    pub outcome: AuthOutcome,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub traceparent: String,
}

/// Announce a login attempt (every attempt, whatever its outcome).
pub async fn record_login(db: &Database, attempt: LoginAttempt) -> Result<(), ChangeError> {
    db.transaction(move |conn| -> Result<(), ChangeError> {
        outbox::enqueue(
            conn,
            &UserAuthenticatedEvent {
                event_id: events::ids::new_event_id(),
                event_timestamp: now_millis(),
                user_id: attempt.user_id.clone(),
                email: attempt.email.clone(),
                outcome: attempt.outcome,
                ip_address: attempt.ip_address.clone(),
                user_agent: attempt.user_agent.clone(),
            },
            Some(&attempt.traceparent),
        )?;
        Ok(())
    })
    .await
}

fn update_in(
    conn: &mut DbConnection,
    user_id: &str,
    req: &UpdateMeRequest,
    traceparent: &str,
) -> Result<User, ChangeError> {
    let Some(user) = users::by_id(conn, user_id)? else {
        return Err(ChangeError::NotFound("user"));
    };
    let profile = user.profile.apply(req)?;
    if profile == user.profile {
        return Ok(user);
    }
    let next = User {
        profile,
        version: user.version + 1,
        updated_at: now_millis(),
        ..user.clone()
    };
    if !users::update_profile(conn, &next, user.version)? {
        return Err(ChangeError::Raced);
    }
    announce(conn, &next, traceparent)?;
    Ok(next)
}

/// Enqueue the user.updated of a new profile version: the whole profile, push subscriptions
/// included (every user.updated lists them all, or a consumer would read "none left").
pub(crate) fn announce(
    conn: &mut DbConnection,
    next: &User,
    traceparent: &str,
) -> Result<(), DbError> {
    let subscriptions = crate::storage::push::of_user(conn, &next.id)?;
    let event = UserUpdatedEvent {
        push_subscriptions: crate::storage::push::as_event(&subscriptions),
        ..updated_event(next)
    };
    outbox::enqueue(conn, &event, Some(traceparent))
}

/// The user.updated of a stored profile version: the whole profile, the phone number only once
/// verified.
fn updated_event(user: &User) -> UserUpdatedEvent {
    let p = &user.profile;
    UserUpdatedEvent {
        event_id: events::ids::new_event_id(),
        event_timestamp: user.updated_at,
        user_id: user.id.clone(),
        version: user.version,
        email: user.email.clone(),
        name: p.name.clone(),
        timezone: p.timezone.clone(),
        notification_channels: p.notification_channels.clone(),
        webhook_url: p.webhook_url.clone(),
        verified_phone_number: p.verified_phone().map(str::to_owned),
        // Read from storage by `announce`, which every profile change goes through.
        push_subscriptions: Vec::new(),
    }
}

/// `PATCH /api/me`: a new profile version and its user.updated, or nothing when nothing changed.
pub async fn update_profile(
    db: &Database,
    user_id: String,
    req: UpdateMeRequest,
    traceparent: String,
) -> Result<User, ChangeError> {
    retrying(|| {
        let (user_id, req, tp) = (user_id.clone(), req.clone(), traceparent.clone());
        db.transaction(move |conn| update_in(conn, &user_id, &req, &tp))
    })
    .await
}
