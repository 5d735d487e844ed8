//! The gateway's settings, from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `KAFKA_BOOTSTRAP_SERVERS` | required | brokers |
//! | `SCHEMA_REGISTRY_URL` | required | Confluent-compatible registry base URL |
//! | `JWT_PUBLIC_KEY` | required | task-api's Ed25519 public key (PEM or path) |
//! | `BIND_ADDR` | `127.0.0.1:8001` | listen address |
//! | `SHUTDOWN_TIMEOUT_MS` | 20000 | bound on the graceful stop |
//! | `WS_ALLOWED_ORIGINS` | `http://127.0.0.1:8000,http://localhost:8000` | browser origins allowed to connect (`*` = any); requests without `Origin` (non-browser clients) are allowed |
//! | `WS_SEND_QUEUE` | 2048 | messages queued per connection before the client counts as too slow and is closed (4008); large enough for the burst that follows a Kafka outage (entries share the rendered message, so a full queue costs little) |
//! | `WS_PING_INTERVAL_MS` | 20000 | how often the server pings each connection |
//! | `WS_CLIENT_TIMEOUT_MS` | 60000 | a connection silent for this long (no pong, no message) is closed (4002) |
//! | `WS_MAX_CONNECTIONS_PER_USER` | 32 | further upgrades of that user get 429 |
//! | `WS_REPLAY_PER_USER` | 500 | newest messages kept per user for resume |
//! | `WS_REPLAY_MAX_AGE_MS` | 600000 | messages older than this leave the buffer (a reconnect then reads them back from Kafka, within `WS_REPLAY_READ_BACK`) |
//! | `CONSUMER_GROUP` | `ws-gateway` | prefix of this instance's own group, `<prefix>-<uuid>` (every instance reads every partition, so a cursor is served by any instance) |
//! | `WS_REPLAY_TOTAL` | 100000 | messages kept for all users together (about 1 KiB each) |
//! | `WS_REPLAY_READ_BACK` | 50000 | a reconnect whose cursor is older than the buffer reads Kafka back from it, over at most this many messages (of all users); further back it gets resync; 0 turns reading back off |
//! | `WS_REPLAY_READ_BACK_TIMEOUT_MS` | 10000 | bound on one read-back |
//!
//! `DATABASE_URL` is not read: the gateway keeps no state beyond its memory.

use std::net::SocketAddr;
use std::time::Duration;

use events::registry::RegistryAccess;
use service_kit::auth::TokenVerifier;
use service_kit::config::{ConfigError, millis_or, optional, parsed_or};
use service_kit::kafka::KafkaAccess;

/// The contract's port of the service.
pub const PORT: u16 = 8001;

/// Origins of the page when task-api serves it locally.
pub const DEFAULT_ALLOWED_ORIGINS: &str = "http://127.0.0.1:8000,http://localhost:8000";

#[derive(Debug, Clone)]
pub struct Config {
    /// Brokers and security (`service_kit::kafka`).
    pub kafka: KafkaAccess,
    /// The schema registry, its credentials and CA (`service_kit::kafka`).
    pub registry: RegistryAccess,
    pub bind_addr: SocketAddr,
    pub shutdown_timeout: Duration,
    pub verifier: TokenVerifier,
    pub origins: AllowedOrigins,
    pub connection: ConnectionSettings,
    pub replay: ReplayLimits,
    /// Prefix of the per-instance consumer group (`<prefix>-<uuid>`).
    pub consumer_group_prefix: String,
}

/// How each WebSocket is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub send_queue: usize,
    pub ping_interval: Duration,
    pub client_timeout: Duration,
    pub max_per_user: usize,
    /// How long a closing handshake may wait for room in a stalled connection.
    pub close_timeout: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            send_queue: 2048,
            ping_interval: Duration::from_secs(20),
            client_timeout: Duration::from_secs(60),
            max_per_user: 32,
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// Bounds of the replay buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayLimits {
    pub per_user: usize,
    pub max_age: Duration,
    pub total: usize,
    /// Most messages a reconnect may read back from Kafka (all users' messages on the
    /// partitions between its cursor and what the buffer holds).
    pub read_back: usize,
    /// How long reading back may take.
    pub read_back_timeout: Duration,
}

impl Default for ReplayLimits {
    fn default() -> Self {
        Self {
            per_user: 500,
            max_age: Duration::from_secs(600),
            total: 100_000,
            read_back: 50_000,
            read_back_timeout: Duration::from_secs(10),
        }
    }
}

/// Browser origins allowed to open a connection, normalised (`scheme://host[:port]`, lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let value = value.trim();
        if value == "*" {
            return Ok(Self::Any);
        }
        let list: Vec<String> = value
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect();
        if let Some(bad) = list
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(ConfigError::new(
                "WS_ALLOWED_ORIGINS",
                format!("{bad:?} is not an http(s) origin like http://localhost:8000"),
            ));
        }
        if list.is_empty() {
            return Err(ConfigError::new(
                "WS_ALLOWED_ORIGINS",
                "is empty; list origins or use *",
            ));
        }
        Ok(Self::List(list))
    }

    /// Whether a request's `Origin` header value may connect.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => {
                let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
                list.contains(&origin)
            }
        }
    }
}

fn positive(name: &'static str, default: usize) -> Result<usize, ConfigError> {
    match parsed_or(name, default)? {
        0 => Err(ConfigError::new(name, "must be at least 1")),
        n => Ok(n),
    }
}

fn positive_millis(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    match millis_or(name, default)? {
        d if d.is_zero() => Err(ConfigError::new(name, "must be at least 1 ms")),
        d => Ok(d),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let kafka = KafkaAccess::from_env()?;
        let registry = service_kit::kafka::registry_from_env()?;
        let defaults = ConnectionSettings::default();
        let connection = ConnectionSettings {
            send_queue: positive("WS_SEND_QUEUE", defaults.send_queue)?,
            ping_interval: positive_millis("WS_PING_INTERVAL_MS", defaults.ping_interval)?,
            client_timeout: positive_millis("WS_CLIENT_TIMEOUT_MS", defaults.client_timeout)?,
            max_per_user: positive("WS_MAX_CONNECTIONS_PER_USER", defaults.max_per_user)?,
            close_timeout: defaults.close_timeout,
        };
        if connection.client_timeout <= connection.ping_interval {
            return Err(ConfigError::new(
                "WS_CLIENT_TIMEOUT_MS",
                "must be longer than WS_PING_INTERVAL_MS, or live clients get dropped",
            ));
        }
        let limits = ReplayLimits::default();
        Ok(Self {
            kafka,
            registry,
            bind_addr: parsed_or("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], PORT)))?,
            shutdown_timeout: millis_or("SHUTDOWN_TIMEOUT_MS", Duration::from_secs(20))?,
            verifier: TokenVerifier::from_env()?,
            origins: AllowedOrigins::parse(
                &optional("WS_ALLOWED_ORIGINS").unwrap_or_else(|| DEFAULT_ALLOWED_ORIGINS.into()),
            )?,
            connection,
            replay: ReplayLimits {
                per_user: positive("WS_REPLAY_PER_USER", limits.per_user)?,
                max_age: positive_millis("WS_REPLAY_MAX_AGE_MS", limits.max_age)?,
                total: positive("WS_REPLAY_TOTAL", limits.total)?,
                read_back: parsed_or("WS_REPLAY_READ_BACK", limits.read_back)?,
                read_back_timeout: positive_millis(
                    "WS_REPLAY_READ_BACK_TIMEOUT_MS",
                    limits.read_back_timeout,
                )?,
            },
            consumer_group_prefix: optional("CONSUMER_GROUP")
                .unwrap_or_else(|| "ws-gateway".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_after_normalising() {
        let o = AllowedOrigins::parse(DEFAULT_ALLOWED_ORIGINS).unwrap();
        assert!(o.allows("http://localhost:8000"));
        assert!(o.allows("HTTP://LOCALHOST:8000/"));
        assert!(!o.allows("http://localhost:8001"));
        assert!(!o.allows("http://evil.example"));
        assert!(!o.allows("null"));
        assert!(
            AllowedOrigins::parse("*")
                .unwrap()
                .allows("http://anything")
        );
    }

    #[test]
    fn bad_origin_lists_are_refused() {
        assert_eq!(
            AllowedOrigins::parse("localhost:8000").unwrap_err().name,
            "WS_ALLOWED_ORIGINS"
        );
        assert!(AllowedOrigins::parse(" , ").is_err());
    }
}
