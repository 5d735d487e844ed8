//! Configuration from the environment (SPEC section 5).
//!
//! A missing or malformed setting stops the service at start with one line naming it:
//! `configuration error: DATABASE_URL: must start with sqlite:// or postgres://`.

use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use events::registry::RegistryAccess;

use crate::kafka::KafkaAccess;

/// A setting that is missing or cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(name: &'static str, problem: impl Into<String>) -> Self {
        Self {
            name,
            problem: problem.into(),
        }
    }
}

/// Read a required variable; empty counts as missing.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => Err(ConfigError::new(name, "is empty")),
        Err(std::env::VarError::NotPresent) => Err(ConfigError::new(name, "is not set")),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::new(name, "is not valid UTF-8")),
    }
}

/// Read an optional variable; empty counts as unset.
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Read and parse a variable, with a default when unset.
pub fn parsed_or<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match optional(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| ConfigError::new(name, format!("cannot parse {v:?}: {e}"))),
    }
}

/// A duration given in milliseconds, with a default.
pub fn millis_or(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    parsed_or(name, default.as_millis() as u64).map(Duration::from_millis)
}

/// The settings every service reads.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `KAFKA_BOOTSTRAP_SERVERS` (required) and the Kafka security settings
    /// ([`crate::kafka`]).
    pub kafka: KafkaAccess,
    /// `SCHEMA_REGISTRY_URL` (required: base URL of the Confluent-compatible API), and its
    /// credentials and CA bundle where it needs them ([`crate::kafka`]).
    pub registry: RegistryAccess,
    /// `DATABASE_URL`, default `sqlite://<service>.db`.
    pub database_url: DatabaseUrl,
    /// `BIND_ADDR`, default `127.0.0.1:<service port>`.
    pub bind_addr: SocketAddr,
    /// `SHUTDOWN_TIMEOUT_MS`: how long in-flight work may take to finish on SIGTERM.
    pub shutdown_timeout: Duration,
}

impl CommonConfig {
    /// Read the common settings; `service` names the default SQLite file, `port` is the
    /// contract's port for the service.
    pub fn from_env(service: &str, port: u16) -> Result<Self, ConfigError> {
        let kafka = KafkaAccess::from_env()?;
        let registry = crate::kafka::registry_from_env()?;
        let database_url = match optional("DATABASE_URL") {
            Some(url) => url.parse()?,
            None => DatabaseUrl::Sqlite(format!("{service}.db")),
        };
        let bind_addr = parsed_or("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], port)))?;
        Ok(Self {
            kafka,
            registry,
            database_url,
            bind_addr,
            shutdown_timeout: millis_or("SHUTDOWN_TIMEOUT_MS", Duration::from_secs(20))?,
        })
    }
}

/// Where the service's database is.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A file path (or `:memory:`).
    Sqlite(String),
    /// A full `postgres://` URL.
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    // Never print the password of a PostgreSQL URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{path}"),
            DatabaseUrl::Postgres(url) => write!(f, "{}", redact_password(url)),
        }
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

impl FromStr for DatabaseUrl {
    type Err = ConfigError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "sqlite:// needs a file path",
                ));
            }
            Ok(DatabaseUrl::Sqlite(path.to_owned()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_owned()))
        } else {
            Err(ConfigError::new(
                "DATABASE_URL",
                "must start with sqlite:// or postgres://",
            ))
        }
    }
}

/// Print the one line naming the bad setting and exit; what `main` does with a [`ConfigError`].
pub fn exit_on_error<T>(result: Result<T, ConfigError>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("configuration error: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_parse_by_scheme() {
        assert_eq!(
            "sqlite://a.db".parse(),
            Ok(DatabaseUrl::Sqlite("a.db".into()))
        );
        assert!(matches!(
            "postgres://u@h/d".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Postgres(_))
        ));
        let err = "mysql://x".parse::<DatabaseUrl>().unwrap_err();
        assert_eq!(err.name, "DATABASE_URL");
    }

    #[test]
    fn passwords_never_print() {
        let url: DatabaseUrl = "postgres://app:hunter2@db:5432/tasks".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://app:***@db:5432/tasks");
        assert!(!format!("{url:?}").contains("hunter2"));
    }
}
