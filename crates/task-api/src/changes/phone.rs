//! Phone number changes: enter a number (stored unverified, a code sent by SMS), verify it with
//! the code, remove it. Every change of the profile is a new version announced on user.updated,
//! which carries the number only once verified.
//!
//! The sms channel needs a verified number (crate::domain::user::Profile::apply): entering a
//! new number or removing it drops the channel in the same version, so the rule holds whatever
//! is changed later.

use events::NotificationChannel;
use service_kit::db::{Database, DbConnection};
use service_kit::sms::{SmsError, SmsGateway, SmsMessage};

use super::users::announce;
use super::{ChangeError, retrying};
use crate::domain::phone::{
    CODE_TTL_MS, MAX_FAILED_ATTEMPTS, PhoneNumber, RESEND_INTERVAL_MS, code_hash, code_matches,
    code_text, new_code,
};
use crate::storage::phones::{self, PendingCode};
use crate::storage::users::{self, User};

/// What entering a number came to.
#[derive(Debug)]
pub enum CodeRequest {
    /// The code went out; the user has the number, unverified.
    Sent(Box<User>),
    /// The user's verified number already: nothing to send.
    AlreadyVerified(Box<User>),
    /// A code was sent less than the resend interval ago: retry after these seconds.
    TooSoon { retry_after_s: i64 },
    /// The gateway did not take the message; nothing is pending, the user may try again.
    NotSent(SmsError),
}

/// What entering a code came to.
#[derive(Debug)]
pub enum Verification {
    Verified(Box<User>),
    /// Wrong; `left` tries remain for this code.
    WrongCode {
        left: i32,
    },
    /// No code is pending for the user's number.
    NoCode,
    Expired,
    /// Too many wrong codes: this one is void.
    TooManyAttempts,
}

/// The next version of `user` with `change` applied to the profile, stored with its
/// user.updated; `None` when nothing changed.
fn store_change(
    conn: &mut DbConnection,
    user: &User,
    change: impl FnOnce(&mut crate::domain::user::Profile),
    traceparent: &str,
) -> Result<Option<User>, ChangeError> {
    let mut profile = user.profile.clone();
    change(&mut profile);
    if profile == user.profile {
        return Ok(None);
    }
    let next = User {
        profile,
        version: user.version + 1,
        updated_at: events::now_millis(),
        ..user.clone()
    };
    if !phones::store_phone(conn, &next, user.version)? {
        return Err(ChangeError::Raced);
    }
    announce(conn, &next, traceparent)?;
    Ok(Some(next))
}

fn drop_sms(channels: &mut Vec<NotificationChannel>) {
    channels.retain(|c| *c != NotificationChannel::Sms);
}

/// `PUT /api/me/phone`: store the number unverified and text it a code (signed with the
/// gateway's key; the code's hash uses the same key).
pub async fn request_code(
    db: &Database,
    gateway: &SmsGateway,
    user_id: String,
    phone: PhoneNumber,
    traceparent: String,
) -> Result<CodeRequest, ChangeError> {
    let code = new_code().map_err(|e| {
        ChangeError::Storage(service_kit::db::DbError::Unavailable(format!(
            "no randomness for a code: {e}"
        )))
    })?;
    let key = gateway.settings().signing_key().to_owned();
    let outcome = retrying(|| {
        let (user_id, phone, code, key, tp) = (
            user_id.clone(),
            phone.clone(),
            code.clone(),
            key.clone(),
            traceparent.clone(),
        );
        db.transaction(move |conn| {
            let Some(user) = users::by_id(conn, &user_id)? else {
                return Err(ChangeError::NotFound("user"));
            };
            if user.profile.verified_phone() == Some(phone.as_str()) {
                return Ok((CodeRequest::AlreadyVerified(Box::new(user)), None));
            }
            let now = events::now_millis();
            if let Some(p) = phones::pending(conn, &user_id)?
                && now - p.sent_at < RESEND_INTERVAL_MS
            {
                let retry_after_s = (p.sent_at + RESEND_INTERVAL_MS - now + 999) / 1000;
                return Ok((CodeRequest::TooSoon { retry_after_s }, None));
            }
            let next = store_change(
                conn,
                &user,
                |p| {
                    p.phone_number = Some(phone.as_str().to_owned());
                    p.phone_verified = false;
                    drop_sms(&mut p.notification_channels);
                },
                &tp,
            )?
            .unwrap_or(user);
            let expires_at = now + CODE_TTL_MS;
            phones::replace_pending(
                conn,
                &PendingCode {
                    user_id: user_id.clone(),
                    phone_number: phone.as_str().to_owned(),
                    code_hash: code_hash(&key, &user_id, phone.as_str(), &code, expires_at),
                    failed_attempts: 0,
                    sent_at: now,
                    expires_at,
                },
            )?;
            Ok((CodeRequest::Sent(Box::new(next)), Some(code.clone())))
        })
    })
    .await?;
    let (result, Some(code)) = outcome else {
        return Ok(outcome.0);
    };
    // Sent after the commit: a text whose code was never stored would be worse than a code
    // stored and not sent (that one is simply requested again).
    let body = code_text(&code);
    let key = uuid::Uuid::new_v4().to_string();
    let message = SmsMessage {
        to: phone.as_str(),
        body: &body,
        idempotency_key: &key,
    };
    if let Err(e) = gateway.send(&message).await {
        tracing::warn!(error = %e, "the verification code was not sent");
        let id = user_id.clone();
        db.run(move |conn| phones::forget_pending(conn, &id))
            .await?;
        return Ok(CodeRequest::NotSent(e));
    }
    Ok(result)
}

/// `POST /api/me/phone/verify`.
pub async fn verify(
    db: &Database,
    key: &str,
    user_id: String,
    code: String,
    traceparent: String,
) -> Result<Verification, ChangeError> {
    let key = key.to_owned();
    retrying(|| {
        let (user_id, code, key, tp) = (
            user_id.clone(),
            code.clone(),
            key.clone(),
            traceparent.clone(),
        );
        db.transaction(move |conn| {
            let Some(user) = users::by_id(conn, &user_id)? else {
                return Err(ChangeError::NotFound("user"));
            };
            let Some(p) = phones::pending(conn, &user_id)?
                .filter(|p| user.profile.phone_number.as_deref() == Some(p.phone_number.as_str()))
            else {
                return Ok(Verification::NoCode);
            };
            if events::now_millis() > p.expires_at {
                phones::forget_pending(conn, &user_id)?;
                return Ok(Verification::Expired);
            }
            if p.failed_attempts >= MAX_FAILED_ATTEMPTS {
                return Ok(Verification::TooManyAttempts);
            }
            if !code_matches(
                &key,
                &user_id,
                &p.phone_number,
                &code,
                p.expires_at,
                &p.code_hash,
            ) {
                phones::count_failure(conn, &user_id)?;
                return Ok(Verification::WrongCode {
                    left: MAX_FAILED_ATTEMPTS - p.failed_attempts - 1,
                });
            }
            phones::forget_pending(conn, &user_id)?;
            let next = store_change(conn, &user, |p| p.phone_verified = true, &tp)?.unwrap_or(user);
            Ok(Verification::Verified(Box::new(next)))
        })
    })
    .await
}

/// `DELETE /api/me/phone`: no number, no pending code, no sms channel.
pub async fn remove(
    db: &Database,
    user_id: String,
    traceparent: String,
) -> Result<(), ChangeError> {
    retrying(|| {
        let (user_id, tp) = (user_id.clone(), traceparent.clone());
        db.transaction(move |conn| {
            let Some(user) = users::by_id(conn, &user_id)? else {
                return Err(ChangeError::NotFound("user"));
            };
            phones::forget_pending(conn, &user_id)?;
            store_change(
                conn,
                &user,
                |p| {
                    p.phone_number = None;
                    p.phone_verified = false;
                    drop_sms(&mut p.notification_channels);
                },
                &tp,
            )?;
            Ok(())
        })
    })
    .await
}
