//! The recurring-task-service's settings.

use std::time::Duration;

use service_kit::auth::TokenVerifier;
use service_kit::config::{CommonConfig, ConfigError, millis_or, optional};

/// The contract's port of the service.
pub const PORT: u16 = 8003;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub verifier: TokenVerifier,
    /// `CONSUMER_GROUP`, default `recurring-task-service` (tests give each instance its own).
    pub consumer_group: String,
    /// `RECURRING_RELAY_INTERVAL_MS`, default 1000: how often the outbox relay looks for
    /// next occurrences still to publish when nothing woke it (after a crash or a Kafka outage).
    pub relay_interval: Duration,
    /// `RECURRING_USER_ID_PREFIX`, default none (every user): follow only the series of users
    /// whose id starts with this prefix. Lets several instances share one cluster without
    /// acting on each other's users (integration tests, a canary next to the real service).
    pub user_id_prefix: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let relay_interval = millis_or("RECURRING_RELAY_INTERVAL_MS", Duration::from_secs(1))?;
        if relay_interval.is_zero() {
            return Err(ConfigError::new(
                "RECURRING_RELAY_INTERVAL_MS",
                "must be at least 1",
            ));
        }
        Ok(Self {
            common: CommonConfig::from_env("recurring-task-service", PORT)?,
            verifier: TokenVerifier::from_env()?,
            consumer_group: optional("CONSUMER_GROUP")
                .unwrap_or_else(|| "recurring-task-service".into()),
            relay_interval,
            user_id_prefix: optional("RECURRING_USER_ID_PREFIX").map(|p| p.trim().to_lowercase()),
        })
    }
}
