//! The SMS gateway: one provider-neutral sender shared by task-api (verification codes) and the
//! notification-service (reminders, "assigned to you").
//!
//! A message is a JSON POST `{"to", "body", "idempotency_key"}` to `SMS_GATEWAY_URL`, signed
//! like a webhook (see [`crate::webhook`]: `X-Todo-Timestamp` and `X-Todo-Signature: v1=<hex
//! HMAC-SHA256(key, "<timestamp>.<body>")>`) with `SMS_GATEWAY_SIGNING_KEY` as the secret, and
//! carrying `Idempotency-Key` as a header too. Twilio, Vonage or any gateway sits behind a
//! small adapter that checks the signature, drops a key it has seen, and calls its provider: the
//! platform never learns a provider's API or holds its credentials.
//!
//! SMS is optional: without `SMS_GATEWAY_URL` the channel is unavailable (task-api refuses it
//! with a 4xx) and a deployment without SMS still starts. With it, the signing key is required.
//! Neither the key nor a message body (it may hold a verification code) is ever logged.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::Serialize;

use crate::config::{ConfigError, millis_or, optional};
use crate::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, error_chain, signature};

pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Shortest accepted signing key: as long as a webhook key, for the same reason (an HMAC key
/// a gateway can be brute-forced against must not be short).
pub const MIN_KEY_LEN: usize = 32;
const AGENT: &str = concat!("todo-platform-sms/", env!("CARGO_PKG_VERSION"));

/// Where and how to reach the gateway.
#[derive(Clone)]
pub struct SmsGatewaySettings {
    pub url: reqwest::Url,
    key: String,
    /// `SMS_GATEWAY_TIMEOUT_MS` (5 s): bound of one POST, connect included.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmsGatewaySettings {
    // The key never leaves this struct through formatting.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsGatewaySettings")
            .field("url", &self.url.as_str())
            .field("key", &"***")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SmsGatewaySettings {
    /// `SMS_GATEWAY_URL` (unset or empty: SMS is off), `SMS_GATEWAY_SIGNING_KEY` (required with
    /// the URL), `SMS_GATEWAY_TIMEOUT_MS`.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        let Some(url) = optional("SMS_GATEWAY_URL") else {
            return Ok(None);
        };
        let key = optional("SMS_GATEWAY_SIGNING_KEY").ok_or_else(|| {
            ConfigError::new(
                "SMS_GATEWAY_SIGNING_KEY",
                "is required when SMS_GATEWAY_URL is set",
            )
        })?;
        let timeout = millis_or("SMS_GATEWAY_TIMEOUT_MS", Duration::from_secs(5))?;
        Self::new(&url, key, timeout).map(Some)
    }

    pub fn new(url: &str, key: impl Into<String>, timeout: Duration) -> Result<Self, ConfigError> {
        let url = reqwest::Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                ConfigError::new(
                    "SMS_GATEWAY_URL",
                    "must be an http(s) URL with a host, e.g. https://sms-adapter.internal/send",
                )
            })?;
        let key = key.into();
        if key.len() < MIN_KEY_LEN {
            return Err(ConfigError::new(
                "SMS_GATEWAY_SIGNING_KEY",
                format!("must be at least {MIN_KEY_LEN} characters"),
            ));
        }
        Ok(Self { url, key, timeout })
    }

    /// The signing key, for a gateway (or a test's sink) that checks signatures.
    pub fn signing_key(&self) -> &str {
        &self.key
    }
}

/// One text message.
#[derive(Debug, Clone, Serialize)]
pub struct SmsMessage<'a> {
    /// E.164, e.g. `+4915112345678`.
    pub to: &'a str,
    pub body: &'a str,
    /// The same for every attempt at one message: the gateway sends it once.
    pub idempotency_key: &'a str,
}

/// Why a message did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    /// May work later: 408, 429, 5xx, network trouble, a timeout.
    #[error("{0}")]
    Transient(String),
    /// Will not work: any other answer.
    #[error("{0}")]
    Permanent(String),
}

pub struct SmsGateway {
    settings: SmsGatewaySettings,
    client: reqwest::Client,
}

impl SmsGateway {
    pub fn new(settings: SmsGatewaySettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .user_agent(AGENT)
            .timeout(settings.timeout)
            // A signed body goes where the settings say, nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("SMS gateway client: {e}"))?;
        Ok(Self { settings, client })
    }

    pub fn settings(&self) -> &SmsGatewaySettings {
        &self.settings
    }

    /// POST one message, signed; errors name the status or the network failure, never the body.
    pub async fn send(&self, message: &SmsMessage<'_>) -> Result<(), SmsError> {
        let bytes = serde_json::to_vec(message)
            .map_err(|e| SmsError::Permanent(format!("cannot encode the message: {e}")))?;
        let timestamp = chrono::Utc::now().timestamp();
        let sig = signature(&self.settings.key, timestamp, &bytes);
        let key = HeaderValue::from_str(message.idempotency_key)
            .map_err(|_| SmsError::Permanent("the idempotency key is not a header value".into()))?;
        let response = self
            .client
            .post(self.settings.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, sig)
            .header(IDEMPOTENCY_HEADER, key)
            .body(bytes)
            .send()
            .await
            .map_err(|e| {
                SmsError::Transient(format!("SMS gateway request failed: {}", error_chain(&e)))
            })?;
        classify(response.status())
    }
}

fn classify(status: StatusCode) -> Result<(), SmsError> {
    let text = format!("SMS gateway answered HTTP {status}");
    if status.is_success() {
        Ok(())
    } else if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Err(SmsError::Transient(text))
    } else {
        Err(SmsError::Permanent(text))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn settings_need_an_http_url_and_a_long_key() {
        let key = "k".repeat(32);
        assert!(SmsGatewaySettings::new("https://sms.example/send", &key, Duration::ZERO).is_ok());
        for bad in ["ftp://sms.example", "not a url", "http://"] {
            let e = SmsGatewaySettings::new(bad, &key, Duration::ZERO).unwrap_err();
            assert!(e.to_string().starts_with("SMS_GATEWAY_URL"), "{e}");
        }
        let e =
            SmsGatewaySettings::new("http://127.0.0.1:1/", "short", Duration::ZERO).unwrap_err();
        assert!(e.to_string().starts_with("SMS_GATEWAY_SIGNING_KEY"), "{e}");
        let s = SmsGatewaySettings::new("http://127.0.0.1:1/", &key, Duration::ZERO).unwrap();
        assert!(!format!("{s:?}").contains(&key), "the key is never printed");
    }

    #[test]
    fn answers_are_classified() {
        assert!(classify(StatusCode::ACCEPTED).is_ok());
        for transient in [500, 503, 408, 429] {
            let s = StatusCode::from_u16(transient).unwrap();
            assert!(matches!(classify(s), Err(SmsError::Transient(_))), "{s}");
        }
        for permanent in [301, 400, 401, 422] {
            let s = StatusCode::from_u16(permanent).unwrap();
            assert!(matches!(classify(s), Err(SmsError::Permanent(_))), "{s}");
        }
    }
}
