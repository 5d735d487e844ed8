//! Web Push: a reminder or "assigned to you" sent to each browser the user subscribed, through
//! the browser's push service (RFC 8030), the message encrypted for that browser (RFC 8291,
//! `aes128gcm`, by web-push-native) and the request signed with the server's VAPID key
//! (RFC 8292, an ES256 JWT made with jsonwebtoken).
//!
//! One delivery row stands for one reminder on the push channel, whatever the number of
//! devices: an attempt sends to every live subscription at once, and the delivery is
//! delivered when at least one push service accepted the message. Once a device accepted, the
//! delivery is finished and never sent again, so a device that answered 5xx in that same
//! attempt misses this one message: retrying it would mean sending the accepted devices a
//! second copy, and "once per reminder and channel" wins. When no device accepted and one may
//! work later (5xx, 408, 429, network trouble), the whole attempt is retried with the
//! delivery's backoff.
//!
//! 404 and 410 mean the subscription is gone for good (RFC 8030 §7.3 and §8.3): it is deleted
//! here at once and its endpoint remembered (`storage::push::bury`), so a later profile that
//! still lists it does not bring it back. task-api, which owns subscriptions, is not told: a
//! gone endpoint is never used again by anyone (the browser's next subscription has another
//! endpoint), and the page drops the one it no longer has (see web/push.js).

use std::time::Duration;

use base64::Engine as _;
use futures::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use serde_json::json;
use service_kit::db::Database;
use service_kit::push::{BASE64URL, PushSealKey, vapid_public_key_text};
use web_push_native::{Auth, WebPushBuilder};

use super::AttemptError;
use crate::config::PushSettings;
use crate::domain::message::{Notice, local_time};
use crate::storage::push::{self as store, PushSubscriptionRow};

/// How long a push service keeps an undelivered message for an offline browser: a reminder a
/// day late is noise (the schedule's own expiry is the same).
const TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a VAPID token is valid (RFC 8292 §2: at most 24 hours).
const VAPID_VALIDITY_SECONDS: i64 = 12 * 60 * 60;
/// Most of a response body read (to reuse the connection); the rest is dropped.
const MAX_RESPONSE_BYTES: usize = 16 * 1024;

pub struct PushSender {
    client: super::HttpsClient,
    vapid: EncodingKey,
    /// The `k=` of the VAPID header: the public key, base64url.
    vapid_public: String,
    subject: String,
    seal: PushSealKey,
    db: Database,
    timeout: Duration,
}

/// What one push service answered for one subscription.
enum DeviceOutcome {
    Accepted,
    Gone(String),
    Transient(String),
    Refused(String),
}

#[derive(serde::Serialize)]
struct VapidClaims<'a> {
    aud: String,
    exp: i64,
    sub: &'a str,
}

impl PushSender {
    pub fn new(settings: &PushSettings, seal: PushSealKey, db: Database) -> Result<Self, String> {
        let der = settings
            .vapid_key
            .to_pkcs8_der()
            .map_err(|e| format!("VAPID_PRIVATE_KEY: cannot encode the key ({e})"))?;
        let client = super::https_client()?;
        Ok(Self {
            client,
            vapid: EncodingKey::from_ec_der(der.as_bytes()),
            vapid_public: vapid_public_key_text(&settings.vapid_key),
            subject: settings.subject.clone(),
            seal,
            db,
            timeout: settings.timeout,
        })
    }

    /// Send the notice to every live subscription of the user (see the module doc for what
    /// counts as delivered).
    pub async fn send(&self, user_id: &str, notice: &Notice) -> Result<(), AttemptError> {
        let owner = user_id.to_owned();
        let subscriptions = self
            .db
            .run(move |conn| store::of_user(conn, &owner))
            .await
            .map_err(|e| AttemptError::Transient(format!("cannot read push subscriptions: {e}")))?;
        if subscriptions.is_empty() {
            return Err(AttemptError::Permanent(
                "no live push subscription (subscribe in the app first)".to_owned(),
            ));
        }
        let body = serde_json::to_vec(&payload(notice))
            .map_err(|e| AttemptError::Permanent(format!("cannot encode the message: {e}")))?;
        let outcomes = join_all(subscriptions.iter().map(|s| self.send_one(s, &body))).await;
        let mut problems = Vec::new();
        let (mut accepted, mut transient) = (false, false);
        for (subscription, outcome) in subscriptions.iter().zip(outcomes) {
            match outcome {
                DeviceOutcome::Accepted => accepted = true,
                DeviceOutcome::Gone(why) => {
                    self.bury(subscription).await?;
                    problems.push(why);
                }
                DeviceOutcome::Transient(why) => {
                    transient = true;
                    problems.push(why);
                }
                DeviceOutcome::Refused(why) => problems.push(why),
            }
        }
        if accepted {
            if !problems.is_empty() {
                tracing::info!(problems = %problems.join("; "), "push delivered to some devices");
            }
            Ok(())
        } else if transient {
            Err(AttemptError::Transient(problems.join("; ")))
        } else {
            Err(AttemptError::Permanent(problems.join("; ")))
        }
    }

    async fn bury(&self, s: &PushSubscriptionRow) -> Result<(), AttemptError> {
        let (user_id, endpoint) = (s.user_id.clone(), s.endpoint.clone());
        self.db
            .run(move |conn| store::bury(conn, &user_id, &endpoint, events::now_millis()))
            .await
            .map_err(|e| {
                // Not buried: the next attempt meets the same answer and tries again.
                AttemptError::Transient(format!("cannot delete a gone push subscription: {e}"))
            })
    }

    async fn send_one(&self, s: &PushSubscriptionRow, body: &[u8]) -> DeviceOutcome {
        let request = match self.request(s, body) {
            Ok(r) => r,
            Err(why) => {
                return DeviceOutcome::Refused(format!(
                    "subscription {}: {why}",
                    s.subscription_id
                ));
            }
        };
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let _ = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await;
            Ok::<StatusCode, String>(status)
        };
        let id = &s.subscription_id;
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => DeviceOutcome::Transient(format!(
                "subscription {id}: push service timed out after {} ms",
                self.timeout.as_millis()
            )),
            Ok(Err(e)) => {
                DeviceOutcome::Transient(format!("subscription {id}: push request failed: {e}"))
            }
            Ok(Ok(status)) => classify(id, status),
        }
    }

    /// The encrypted, VAPID-signed POST for one subscription.
    fn request(
        &self,
        s: &PushSubscriptionRow,
        body: &[u8],
    ) -> Result<Request<Full<Bytes>>, String> {
        let endpoint = url::Url::parse(&s.endpoint).map_err(|e| format!("bad endpoint: {e}"))?;
        if endpoint.scheme() != "https" && endpoint.scheme() != "http" {
            return Err("the endpoint must be http(s)".to_owned());
        }
        let uri: hyper::Uri = s
            .endpoint
            .parse()
            .map_err(|e| format!("bad endpoint: {e}"))?;
        let auth = self
            .seal
            .open(&s.user_id, &s.endpoint, &s.auth_sealed)
            .map_err(|e| e.to_string())?;
        let auth: [u8; service_kit::push::AUTH_BYTES] = auth
            .as_slice()
            .try_into()
            .map_err(|_| "the auth secret is not 16 bytes".to_owned())?;
        let p256dh = BASE64URL
            .decode(&s.p256dh)
            .ok()
            .and_then(|b| p256::PublicKey::from_sec1_bytes(&b).ok())
            .ok_or("the p256dh key is not a P-256 public key")?;
        let request = WebPushBuilder::new(uri, p256dh, Auth::from(auth))
            .with_valid_duration(TTL)
            .build(body.to_vec())
            .map_err(|e| format!("cannot encrypt the message: {e}"))?;
        // The token's audience is the push resource's origin (RFC 8292 §2), port included.
        let claims = VapidClaims {
            aud: endpoint.origin().ascii_serialization(),
            exp: chrono::Utc::now().timestamp() + VAPID_VALIDITY_SECONDS,
            sub: &self.subject,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.vapid)
            .map_err(|e| format!("cannot sign the VAPID token: {e}"))?;
        let (mut parts, encrypted) = request.into_parts();
        let vapid = format!("vapid t={token}, k={}", self.vapid_public);
        parts.headers.insert(
            hyper::header::AUTHORIZATION,
            vapid.parse().map_err(|_| "bad VAPID header")?,
        );
        // Reminders are what the user asked to be interrupted for.
        parts
            .headers
            .insert("urgency", hyper::header::HeaderValue::from_static("high"));
        Ok(Request::from_parts(
            parts,
            Full::new(Bytes::from(encrypted)),
        ))
    }
}

fn classify(id: &str, status: StatusCode) -> DeviceOutcome {
    let text = format!("subscription {id}: push service answered HTTP {status}");
    if status.is_success() {
        DeviceOutcome::Accepted
    } else if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        DeviceOutcome::Gone(format!("{text} (subscription gone, deleted)"))
    } else if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        DeviceOutcome::Transient(text)
    } else {
        DeviceOutcome::Refused(text)
    }
}

/// What the service worker shows (web/sw.js): small, well under the 4 KB push services take.
pub fn payload(notice: &Notice) -> serde_json::Value {
    let email = notice.email();
    json!({
        "type": notice.kind.as_str(),
        "title": email.subject,
        "body": notice
            .due_date
            .map(|d| format!("Due {}", local_time(d, &notice.timezone)))
            .unwrap_or_default(),
        "url": notice.link,
        "tag": notice.notification_id,
        "notification_id": notice.notification_id,
        "task_id": notice.task_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        assert!(matches!(
            classify("s", StatusCode::CREATED),
            DeviceOutcome::Accepted
        ));
        for gone in [StatusCode::NOT_FOUND, StatusCode::GONE] {
            assert!(matches!(classify("s", gone), DeviceOutcome::Gone(_)));
        }
        for later in [500, 502, 503, 408, 429] {
            let s = StatusCode::from_u16(later).unwrap_or(StatusCode::OK);
            assert!(
                matches!(classify("s", s), DeviceOutcome::Transient(_)),
                "{s}"
            );
        }
        for refused in [400, 401, 403, 413] {
            let s = StatusCode::from_u16(refused).unwrap_or(StatusCode::OK);
            assert!(matches!(classify("s", s), DeviceOutcome::Refused(_)), "{s}");
        }
    }
}
