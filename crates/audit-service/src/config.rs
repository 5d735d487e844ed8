//! The audit-service's settings.

use service_kit::auth::TokenVerifier;
use service_kit::config::{CommonConfig, ConfigError, optional};

/// The contract's port of the service.
pub const PORT: u16 = 8004;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub verifier: TokenVerifier,
    /// `CONSUMER_GROUP`, default `audit-service` (tests give each instance its own).
    pub consumer_group: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            common: CommonConfig::from_env("audit-service", PORT)?,
            verifier: TokenVerifier::from_env()?,
            consumer_group: optional("CONSUMER_GROUP").unwrap_or_else(|| "audit-service".into()),
        })
    }
}
