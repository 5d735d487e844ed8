//! task-api's settings, read from the environment once at start.

use std::time::Duration;

use service_kit::auth::{TokenSigner, TokenVerifier, read_pem};
use service_kit::config::{CommonConfig, ConfigError, millis_or, optional, parsed_or, required};
use service_kit::sms::SmsGatewaySettings;
use service_kit::webhook::WebhookKey;

use crate::http::client_address::ClientAddress;

/// The contract's port of the service.
pub const PORT: u16 = 8000;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// Signs access tokens (`JWT_PRIVATE_KEY`, `JWT_TTL_SECONDS`).
    pub signer: TokenSigner,
    /// Verifies them (`JWT_PUBLIC_KEY`, the key every other service holds).
    pub verifier: TokenVerifier,
    /// `WEBHOOK_SIGNING_KEY`: from it each user's webhook secret is derived.
    pub webhook_key: WebhookKey,
    /// `SMS_GATEWAY_URL`, `SMS_GATEWAY_SIGNING_KEY`: sends phone verification codes; `None`
    /// (unset URL): no SMS on this server, the sms channel is refused.
    pub sms: Option<SmsGatewaySettings>,
    /// `WS_PUBLIC_URL`: where browsers reach the ws-gateway (served by `GET /api/config`).
    pub ws_public_url: String,
    /// `VAPID_PUBLIC_KEY` (optional): base64url of the 65-byte P-256 public key matching
    /// notification-service's `VAPID_PRIVATE_KEY`. Unset: push is not offered (the page hides
    /// it; subscribing or choosing the channel is refused with 409).
    pub vapid_public_key: Option<String>,
    /// `CONSUMER_GROUP`, default `task-api` (tests give each instance its own).
    pub consumer_group: String,
    pub login_limits: LoginLimits,
    /// `TRUSTED_PROXIES`: whose `X-Forwarded-For` says who the client is.
    pub client_address: ClientAddress,
    pub outbox: OutboxSettings,
}

/// How many login attempts are allowed per window (`LOGIN_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// `LOGIN_MAX_ATTEMPTS_PER_EMAIL`, default 5.
    pub per_email: u32,
    /// `LOGIN_MAX_ATTEMPTS_PER_IP`, default 50.
    pub per_ip: u32,
    /// `LOGIN_WINDOW_SECONDS`, default 60.
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_email: 5,
            per_ip: 50,
            window: Duration::from_secs(60),
        }
    }
}

/// How the outbox relay works (`OUTBOX_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxSettings {
    /// `OUTBOX_BATCH_SIZE`, default 500: rows published per round.
    pub batch_size: i64,
    /// `OUTBOX_POLL_INTERVAL_MS`, default 500: how often to look for rows written by other
    /// instances (own writes wake the relay at once).
    pub poll_interval: Duration,
    /// `OUTBOX_PUBLISH_TIMEOUT_MS`, default 30 000: how long a message may wait for the brokers
    /// before the round is given up and retried. Longer than a leader failover (a dead broker
    /// is noticed after the 10 s session timeout, then a new leader is elected): a send given up
    /// during a failover may still have been written, and its retry is then a second copy of
    /// the event on the topic (consumers drop it by event id, but fewer is better).
    pub publish_timeout: Duration,
    /// `OUTBOX_RETENTION_MS`, default 0: how long sent rows are kept (for inspection). With 0
    /// a row is deleted as soon as the brokers acknowledged it: task-api's events have fresh
    /// ids, so no later write needs the sent rows to recognise a repeat, and one delete per
    /// row instead of an update and a later purge measured +7% creates on SQLite (whole
    /// system, three alternating pairs; PostgreSQL within its noise).
    pub retention: Duration,
}

impl OutboxSettings {
    /// The shared relay's settings (service_kit::outbox).
    pub fn relay_settings(&self) -> service_kit::outbox::RelaySettings {
        service_kit::outbox::RelaySettings {
            batch_size: self.batch_size,
            poll_interval: self.poll_interval,
            publish_timeout: self.publish_timeout,
            retention: self.retention,
            ..Default::default()
        }
    }
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(500),
            publish_timeout: Duration::from_secs(30),
            retention: Duration::ZERO,
        }
    }
}

/// Default lifetime of an access token.
pub const DEFAULT_TOKEN_TTL_SECONDS: i64 = 3600;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env("task-api", PORT)?;
        let ttl: i64 = parsed_or("JWT_TTL_SECONDS", DEFAULT_TOKEN_TTL_SECONDS)?;
        if !(60..=7 * 24 * 3600).contains(&ttl) {
            return Err(ConfigError::new(
                "JWT_TTL_SECONDS",
                "must be between 60 and 604800",
            ));
        }
        let private = read_pem("JWT_PRIVATE_KEY", &required("JWT_PRIVATE_KEY")?)?;
        let signer = TokenSigner::from_pem(&private, ttl).map_err(|e| {
            ConfigError::new(
                "JWT_PRIVATE_KEY",
                format!("not an Ed25519 private key in PKCS#8 PEM: {e}"),
            )
        })?;
        let verifier = TokenVerifier::from_env()?;
        check_key_pair(&signer, &verifier)?;
        let ws_public_url =
            optional("WS_PUBLIC_URL").unwrap_or_else(|| "ws://127.0.0.1:8001".to_owned());
        check_ws_url(&ws_public_url)?;
        let vapid_public_key = match optional("VAPID_PUBLIC_KEY") {
            Some(text) => {
                service_kit::push::parse_vapid_public_key("VAPID_PUBLIC_KEY", &text)?;
                Some(text.trim().to_owned())
            }
            None => None,
        };
        let login_limits = LoginLimits {
            per_email: parsed_or("LOGIN_MAX_ATTEMPTS_PER_EMAIL", 5)?,
            per_ip: parsed_or("LOGIN_MAX_ATTEMPTS_PER_IP", 50)?,
            window: Duration::from_secs(parsed_or("LOGIN_WINDOW_SECONDS", 60)?),
        };
        if login_limits.per_email == 0 || login_limits.per_ip == 0 {
            return Err(ConfigError::new(
                "LOGIN_MAX_ATTEMPTS_PER_EMAIL",
                "login limits must be at least 1",
            ));
        }
        let defaults = OutboxSettings::default();
        let outbox = OutboxSettings {
            batch_size: parsed_or("OUTBOX_BATCH_SIZE", defaults.batch_size)?,
            poll_interval: millis_or("OUTBOX_POLL_INTERVAL_MS", defaults.poll_interval)?,
            publish_timeout: millis_or("OUTBOX_PUBLISH_TIMEOUT_MS", defaults.publish_timeout)?,
            retention: millis_or("OUTBOX_RETENTION_MS", defaults.retention)?,
        };
        if !(1..=10_000).contains(&outbox.batch_size) {
            return Err(ConfigError::new(
                "OUTBOX_BATCH_SIZE",
                "must be between 1 and 10000",
            ));
        }
        Ok(Self {
            common,
            signer,
            verifier,
            webhook_key: WebhookKey::from_env()?,
            sms: SmsGatewaySettings::from_env()?,
            ws_public_url,
            vapid_public_key,
            consumer_group: optional("CONSUMER_GROUP").unwrap_or_else(|| "task-api".to_owned()),
            login_limits,
            client_address: ClientAddress::from_env()?,
            outbox,
        })
    }
}

/// The two keys must belong together, or every token issued would be refused: say so at start.
fn check_key_pair(signer: &TokenSigner, verifier: &TokenVerifier) -> Result<(), ConfigError> {
    let token = signer
        .issue("00000000-0000-0000-0000-000000000000")
        .map_err(|e| ConfigError::new("JWT_PRIVATE_KEY", format!("cannot sign: {e}")))?;
    verifier.verify(&token).map(|_| ()).map_err(|_| {
        ConfigError::new(
            "JWT_PUBLIC_KEY",
            "does not verify tokens signed with JWT_PRIVATE_KEY (keys of different pairs?)",
        )
    })
}

fn check_ws_url(value: &str) -> Result<(), ConfigError> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "ws" | "wss") && u.host().is_some() => Ok(()),
        _ => Err(ConfigError::new(
            "WS_PUBLIC_URL",
            "must be a ws:// or wss:// URL, e.g. ws://127.0.0.1:8001",
        )),
    }
}

/// The origin (`ws://host:port`) of the gateway, for the page's Content-Security-Policy.
pub fn ws_origin(ws_url: &str) -> String {
    match url::Url::parse(ws_url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => String::new(),
    }
}
