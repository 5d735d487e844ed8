//! Webhook signing, shared by task-api (which shows each user their secret) and the
//! notification-service (which signs deliveries). No secret ever travels on a topic: both
//! derive it from `WEBHOOK_SIGNING_KEY` and the user id.
//!
//! A delivery carries `X-Todo-Timestamp: <unix seconds>` and
//! `X-Todo-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. Receivers recompute
//! the signature and reject old timestamps (replays).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "X-Todo-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Todo-Timestamp";

type HmacSha256 = Hmac<Sha256>;

/// The server-side key from which every user's secret is derived.
#[derive(Clone)]
pub struct WebhookKey(Vec<u8>);

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey(***)")
    }
}

impl WebhookKey {
    /// From `WEBHOOK_SIGNING_KEY` (at least 32 characters).
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        let key = crate::config::required("WEBHOOK_SIGNING_KEY")?;
        if key.len() < 32 {
            return Err(crate::config::ConfigError::new(
                "WEBHOOK_SIGNING_KEY",
                "must be at least 32 characters",
            ));
        }
        Ok(Self(key.into_bytes()))
    }

    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self(key.into())
    }

    /// The key itself, for other keys derived from it (`crate::push`).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The user's webhook secret (hex).
    pub fn user_secret(&self, user_id: &str) -> String {
        hex::encode(hmac(&self.0, &[b"webhook-secret/", user_id.as_bytes()]))
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The `X-Todo-Signature` value for a body sent at `timestamp` (unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(hmac(
            secret.as_bytes(),
            &[timestamp.to_string().as_bytes(), b".", body]
        ))
    )
}

/// Check a received signature (constant-time comparison).
pub fn verify(secret: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("v1=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// An error and its causes on one line, for the outbound POSTs (webhooks, the SMS gateway):
/// the top-level error of hyper or reqwest says little. Neither names a request's body.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_differ_per_user() {
        let key = WebhookKey::new("k".repeat(32));
        let (a, b) = (key.user_secret("alice"), key.user_secret("bob"));
        assert_ne!(a, b);
        assert_eq!(a, key.user_secret("alice"));
        let sig = signature(&a, 1_764_000_000, b"{}");
        assert!(verify(&a, 1_764_000_000, b"{}", &sig));
        assert!(!verify(&b, 1_764_000_000, b"{}", &sig));
        assert!(!verify(&a, 1_764_000_001, b"{}", &sig));
        assert!(!verify(&a, 1_764_000_000, b"{ }", &sig));
    }
}
