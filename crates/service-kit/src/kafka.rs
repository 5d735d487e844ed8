//! How every client of this system reaches Kafka and the schema registry: the one place that
//! reads the connection and security settings from the environment and turns them into an
//! rdkafka [`ClientConfig`] (producers, consumers, admin clients, in every service, todoctl and
//! the tests' helpers) and into the registry client's [`RegistryAccess`].
//!
//! | variable | meaning |
//! |---|---|
//! | `KAFKA_BOOTSTRAP_SERVERS` | `host:port,...` (required) |
//! | `KAFKA_SECURITY_PROTOCOL` | `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT`, `SASL_SSL` |
//! | `KAFKA_SASL_MECHANISM` | `SCRAM-SHA-512` (default), `SCRAM-SHA-256`, `PLAIN` |
//! | `KAFKA_SASL_USERNAME` / `KAFKA_SASL_USERNAME_FILE` | SASL user, inline or in a file |
//! | `KAFKA_SASL_PASSWORD` / `KAFKA_SASL_PASSWORD_FILE` | SASL password, inline or in a file |
//! | `KAFKA_SSL_CA_LOCATION` | PEM bundle of the CAs that sign the brokers' certificates |
//! | `KAFKA_SSL_CERTIFICATE_LOCATION`, `KAFKA_SSL_KEY_LOCATION` | client certificate and key (mTLS), PEM |
//! | `KAFKA_SSL_KEY_PASSWORD` / `KAFKA_SSL_KEY_PASSWORD_FILE` | passphrase of an encrypted key |
//! | `SCHEMA_REGISTRY_URL` | base URL of the Confluent-compatible API (required) |
//! | `SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO` / `..._FILE` | `user:password`, Confluent's form |
//! | `SCHEMA_REGISTRY_CA_LOCATION` | PEM bundle trusted for an `https://` registry |
//!
//! SASL needs OpenSSL in librdkafka (rdkafka's `ssl` feature), which brings SCRAM and PLAIN;
//! rdkafka's `sasl` feature is only GSSAPI (Kerberos, through Cyrus SASL), which this system
//! does not use. Every file is read at start, so a wrong path stops the service with one line
//! naming its variable instead of a librdkafka error later. Secrets never print: rdkafka's
//! `ClientConfig` redacts `sasl.password` and `ssl.key.password` in `Debug`, and the types here
//! print `***`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use events::registry::RegistryAccess;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::ConfigError;

/// `KAFKA_SECURITY_PROTOCOL`: librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl std::str::FromStr for SecurityProtocol {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(ConfigError::new(
                "KAFKA_SECURITY_PROTOCOL",
                format!("{s:?} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
            )),
        }
    }
}

/// `KAFKA_SASL_MECHANISM`: the mechanisms librdkafka has built in with OpenSSL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    ScramSha256,
    ScramSha512,
    Plain,
}

impl SaslMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::Plain => "PLAIN",
        }
    }
}

impl std::str::FromStr for SaslMechanism {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            "PLAIN" => Ok(SaslMechanism::Plain),
            _ => Err(ConfigError::new(
                "KAFKA_SASL_MECHANISM",
                format!("{s:?} is not one of SCRAM-SHA-256, SCRAM-SHA-512, PLAIN"),
            )),
        }
    }
}

/// A password or passphrase: shown as `***` by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// SASL user and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

/// TLS files (PEM) for the SSL and SASL_SSL protocols.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_location: Option<PathBuf>,
    pub certificate_location: Option<PathBuf>,
    pub key_location: Option<PathBuf>,
    pub key_password: Option<Secret>,
}

/// Where the brokers are and how to authenticate to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaAccess {
    pub bootstrap_servers: String,
    pub protocol: SecurityProtocol,
    pub sasl: Option<SaslCredentials>,
    pub tls: TlsFiles,
}

/// How settings are looked up: the process environment in services, a map in unit tests.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A variable, empty counting as unset.
fn value(env: Lookup<'_>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

/// A secret given inline (`NAME`) or in a file (`NAME_FILE`, e.g. a mounted Kubernetes
/// secret); both at once is an error, a file's trailing newline is dropped.
fn secret(
    env: Lookup<'_>,
    name: &'static str,
    file_name: &'static str,
) -> Result<Option<String>, ConfigError> {
    match (value(env, name), value(env, file_name)) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            name,
            format!("set both {name} and {file_name}; keep one"),
        )),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::new(file_name, format!("cannot read {path}: {e}")))?;
            let text = text.trim_end_matches(['\n', '\r']).to_owned();
            if text.is_empty() {
                return Err(ConfigError::new(file_name, format!("{path} is empty")));
            }
            Ok(Some(text))
        }
        (None, None) => Ok(None),
    }
}

/// A PEM file that must exist and hold at least one PEM block.
fn pem_file(env: Lookup<'_>, name: &'static str) -> Result<Option<PathBuf>, ConfigError> {
    let Some(path) = value(env, name) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError::new(name, format!("cannot read {path}: {e}")))?;
    if !text.contains("-----BEGIN ") {
        return Err(ConfigError::new(
            name,
            format!("{path} holds no PEM block (-----BEGIN ...)"),
        ));
    }
    Ok(Some(PathBuf::from(path)))
}

impl KafkaAccess {
    /// Read the Kafka settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&process_env)
    }

    /// The security settings from the process environment, the brokers given (a tool's
    /// `--bootstrap-servers`).
    pub fn from_env_with_bootstrap(bootstrap_servers: &str) -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| match name {
            "KAFKA_BOOTSTRAP_SERVERS" => Some(bootstrap_servers.to_owned()),
            other => process_env(other),
        })
    }

    /// The settings given as `NAME=value` pairs (what `scripts/kafka-security.sh env USER`
    /// prints), not the process environment.
    pub fn from_settings(settings: &[(String, String)]) -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| {
            settings
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    /// An unauthenticated cluster (the local one of `make dev` and the tests).
    pub fn plaintext(bootstrap_servers: &str) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.to_owned(),
            protocol: SecurityProtocol::Plaintext,
            sasl: None,
            tls: TlsFiles::default(),
        }
    }

    fn from_lookup(env: Lookup<'_>) -> Result<Self, ConfigError> {
        let bootstrap_servers = value(env, "KAFKA_BOOTSTRAP_SERVERS")
            .ok_or_else(|| ConfigError::new("KAFKA_BOOTSTRAP_SERVERS", "is not set"))?;
        if bootstrap_servers.split(',').any(|s| !s.contains(':')) {
            return Err(ConfigError::new(
                "KAFKA_BOOTSTRAP_SERVERS",
                "must be a comma-separated list of host:port",
            ));
        }
        let protocol: SecurityProtocol = match value(env, "KAFKA_SECURITY_PROTOCOL") {
            Some(p) => p.parse()?,
            None => SecurityProtocol::Plaintext,
        };
        let sasl = Self::sasl(env, protocol)?;
        let tls = Self::tls(env, protocol)?;
        Ok(Self {
            bootstrap_servers,
            protocol,
            sasl,
            tls,
        })
    }

    fn sasl(
        env: Lookup<'_>,
        protocol: SecurityProtocol,
    ) -> Result<Option<SaslCredentials>, ConfigError> {
        let username = secret(env, "KAFKA_SASL_USERNAME", "KAFKA_SASL_USERNAME_FILE")?;
        let password = secret(env, "KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD_FILE")?;
        let mechanism = value(env, "KAFKA_SASL_MECHANISM");
        if !protocol.uses_sasl() {
            // A credential meant for SASL under another protocol would be silently unused.
            let set = [
                ("KAFKA_SASL_USERNAME", username.is_some()),
                ("KAFKA_SASL_PASSWORD", password.is_some()),
                ("KAFKA_SASL_MECHANISM", mechanism.is_some()),
            ];
            if let Some((name, _)) = set.iter().find(|(_, is_set)| *is_set) {
                return Err(ConfigError::new(
                    name,
                    format!(
                        "is set, but KAFKA_SECURITY_PROTOCOL is {} (SASL needs SASL_SSL or SASL_PLAINTEXT)",
                        protocol.as_str()
                    ),
                ));
            }
            return Ok(None);
        }
        let mechanism = match mechanism {
            Some(m) => m.parse()?,
            None => SaslMechanism::ScramSha512,
        };
        let username = username.ok_or_else(|| {
            ConfigError::new(
                "KAFKA_SASL_USERNAME",
                format!(
                    "is not set (nor KAFKA_SASL_USERNAME_FILE); {} needs it",
                    protocol.as_str()
                ),
            )
        })?;
        let password = password.ok_or_else(|| {
            ConfigError::new(
                "KAFKA_SASL_PASSWORD",
                format!(
                    "is not set (nor KAFKA_SASL_PASSWORD_FILE); {} needs it",
                    protocol.as_str()
                ),
            )
        })?;
        Ok(Some(SaslCredentials {
            mechanism,
            username,
            password: Secret(password),
        }))
    }

    fn tls(env: Lookup<'_>, protocol: SecurityProtocol) -> Result<TlsFiles, ConfigError> {
        let tls = TlsFiles {
            ca_location: pem_file(env, "KAFKA_SSL_CA_LOCATION")?,
            certificate_location: pem_file(env, "KAFKA_SSL_CERTIFICATE_LOCATION")?,
            key_location: pem_file(env, "KAFKA_SSL_KEY_LOCATION")?,
            key_password: secret(env, "KAFKA_SSL_KEY_PASSWORD", "KAFKA_SSL_KEY_PASSWORD_FILE")?
                .map(Secret),
        };
        if !protocol.uses_tls() {
            let set = [
                ("KAFKA_SSL_CA_LOCATION", tls.ca_location.is_some()),
                (
                    "KAFKA_SSL_CERTIFICATE_LOCATION",
                    tls.certificate_location.is_some(),
                ),
                ("KAFKA_SSL_KEY_LOCATION", tls.key_location.is_some()),
                ("KAFKA_SSL_KEY_PASSWORD", tls.key_password.is_some()),
            ];
            if let Some((name, _)) = set.iter().find(|(_, is_set)| *is_set) {
                return Err(ConfigError::new(
                    name,
                    format!(
                        "is set, but KAFKA_SECURITY_PROTOCOL is {} (TLS needs SSL or SASL_SSL)",
                        protocol.as_str()
                    ),
                ));
            }
        }
        match (&tls.certificate_location, &tls.key_location) {
            (Some(_), None) => Err(ConfigError::new(
                "KAFKA_SSL_KEY_LOCATION",
                "is not set, but KAFKA_SSL_CERTIFICATE_LOCATION is (mTLS needs both)",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                "KAFKA_SSL_CERTIFICATE_LOCATION",
                "is not set, but KAFKA_SSL_KEY_LOCATION is (mTLS needs both)",
            )),
            _ => Ok(tls),
        }
    }

    /// The client settings every producer, consumer and admin client starts from: the brokers
    /// and the security settings. Callers add their own (`group.id`, `client.id`, ...).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("security.protocol", self.protocol.as_str());
        if let Some(sasl) = &self.sasl {
            config
                .set("sasl.mechanism", sasl.mechanism.as_str())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", sasl.password.expose());
        }
        let set_path = |config: &mut ClientConfig, key: &str, path: &Option<PathBuf>| {
            if let Some(path) = path.as_deref().map(Path::to_string_lossy) {
                config.set(key, path);
            }
        };
        set_path(&mut config, "ssl.ca.location", &self.tls.ca_location);
        set_path(
            &mut config,
            "ssl.certificate.location",
            &self.tls.certificate_location,
        );
        set_path(&mut config, "ssl.key.location", &self.tls.key_location);
        if let Some(password) = &self.tls.key_password {
            config.set("ssl.key.password", password.expose());
        }
        config
    }

    /// [`KafkaAccess::client_config`] with a `client.id`.
    pub fn client_config_for(&self, client_id: &str) -> ClientConfig {
        let mut config = self.client_config();
        config.set("client.id", client_id);
        config
    }

    /// Who this client is, for logs: protocol and user, never a secret.
    pub fn describe(&self) -> String {
        match &self.sasl {
            Some(sasl) => format!(
                "{} {} as {}",
                self.protocol.as_str(),
                sasl.mechanism.as_str(),
                sasl.username
            ),
            None => self.protocol.as_str().to_owned(),
        }
    }
}

/// Whether an error means the brokers refused this client (wrong credentials, no ACL) rather
/// than being unreachable: a refusal does not end by itself.
pub fn is_refusal(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
        )
    )
}

/// Remembers the last refusal librdkafka reported on its error callback (a wrong password
/// shows only there: the metadata request itself just times out).
#[derive(Default)]
struct RefusalRecorder {
    last: Mutex<Option<(Instant, String)>>,
}

impl ClientContext for RefusalRecorder {
    fn error(&self, error: KafkaError, reason: &str) {
        if is_refusal(&error) {
            tracing::error!(%error, reason, "kafka refused this service's credentials");
            if let Ok(mut last) = self.last.lock() {
                *last = Some((Instant::now(), format!("{error}: {reason}")));
            }
        } else {
            tracing::warn!(%error, reason, "kafka client error");
        }
    }
}

impl ConsumerContext for RefusalRecorder {}

/// A group-less client that asks the brokers what this service may see: behind `/readyz`.
pub struct AccessCheck {
    client: BaseConsumer<RefusalRecorder>,
    topics: Vec<&'static str>,
}

/// How long a reported authentication failure keeps the check failing after the last one.
const REFUSAL_MEMORY: Duration = Duration::from_secs(30);

impl AccessCheck {
    pub fn new(kafka: &KafkaAccess, topics: &[events::Topic]) -> Result<Self, KafkaError> {
        Ok(Self {
            client: kafka
                .client_config_for("readiness")
                .create_with_context(RefusalRecorder::default())?,
            topics: topics.iter().map(|t| t.name()).collect(),
        })
    }

    fn metadata(&self) -> Result<rdkafka::metadata::Metadata, KafkaError> {
        self.client.fetch_metadata(None, Duration::from_secs(2))
    }

    /// The cluster answers a metadata request with at least one broker.
    pub fn reachable(&self) -> Result<(), String> {
        match self.metadata() {
            Ok(m) if m.brokers().is_empty() => Err("no brokers".to_owned()),
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// No refusal: the credentials were accepted (or the cluster is unreachable, which is not
    /// a refusal) and every topic of this service is visible to it.
    pub fn not_refused(&self) -> Result<(), String> {
        let recent_refusal = self.client.context().last.lock().ok().and_then(|last| {
            last.as_ref()
                .filter(|(at, _)| at.elapsed() < REFUSAL_MEMORY)
                .map(|(_, what)| what.clone())
        });
        let metadata = match self.metadata() {
            Ok(m) => m,
            Err(e) if is_refusal(&e) => return Err(format!("kafka refused this service: {e}")),
            Err(_) => {
                return match recent_refusal {
                    Some(what) => Err(format!("kafka refused this service: {what}")),
                    None => Ok(()),
                };
            }
        };
        let refused: Vec<&str> = self
            .topics
            .iter()
            .copied()
            .filter(|name| {
                !metadata
                    .topics()
                    .iter()
                    .any(|t| t.name() == *name && t.error().is_none())
            })
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "topics not visible to this service (no ACL for its user, or not created): {}",
                refused.join(", ")
            ))
        }
    }
}

/// Read the registry settings (`SCHEMA_REGISTRY_URL`, `SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO`
/// or `..._FILE`, `SCHEMA_REGISTRY_CA_LOCATION`) from the process environment.
pub fn registry_from_env() -> Result<RegistryAccess, ConfigError> {
    registry_from_lookup(&process_env)
}

/// The registry's credentials and CA from the process environment, its URL given (a tool's
/// `--schema-registry-url`).
pub fn registry_from_env_with_url(url: &str) -> Result<RegistryAccess, ConfigError> {
    registry_from_lookup(&|name| match name {
        "SCHEMA_REGISTRY_URL" => Some(url.to_owned()),
        other => process_env(other),
    })
}

fn registry_from_lookup(env: Lookup<'_>) -> Result<RegistryAccess, ConfigError> {
    let url = value(env, "SCHEMA_REGISTRY_URL")
        .ok_or_else(|| ConfigError::new("SCHEMA_REGISTRY_URL", "is not set"))?;
    let https = url.starts_with("https://");
    if !(https || url.starts_with("http://")) {
        return Err(ConfigError::new(
            "SCHEMA_REGISTRY_URL",
            "must be an http(s) URL",
        ));
    }
    let mut access = RegistryAccess::plain(&url);
    if let Some(user_info) = secret(
        env,
        "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
        "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO_FILE",
    )? {
        access = access
            .with_user_info(&user_info)
            .map_err(|e| ConfigError::new("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", e))?;
    }
    if let Some(path) = pem_file(env, "SCHEMA_REGISTRY_CA_LOCATION")? {
        if !https {
            return Err(ConfigError::new(
                "SCHEMA_REGISTRY_CA_LOCATION",
                "is set, but SCHEMA_REGISTRY_URL is not https://",
            ));
        }
        let pem = std::fs::read(&path).map_err(|e| {
            ConfigError::new(
                "SCHEMA_REGISTRY_CA_LOCATION",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        access = access.with_ca_bundle(&pem).map_err(|e| {
            ConfigError::new(
                "SCHEMA_REGISTRY_CA_LOCATION",
                format!("{}: {e}", path.display()),
            )
        })?;
    }
    Ok(access)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn kafka(vars: &[(&str, &str)]) -> Result<KafkaAccess, ConfigError> {
        KafkaAccess::from_lookup(&lookup(vars))
    }

    fn temp_file(content: &str) -> PathBuf {
        let dir = std::env::temp_dir().join("service-kit-kafka-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(uuid::Uuid::new_v4().to_string());
        std::fs::write(&path, content).unwrap();
        path
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn plaintext_is_the_default() {
        let access = kafka(&[("KAFKA_BOOTSTRAP_SERVERS", "k:9092")]).unwrap();
        assert_eq!(access, KafkaAccess::plaintext("k:9092"));
        let config = access.client_config();
        assert_eq!(config.get("security.protocol"), Some("PLAINTEXT"));
        assert_eq!(config.get("sasl.username"), None);
    }

    #[test]
    fn sasl_ssl_with_a_password_file_builds_the_librdkafka_settings() {
        let password = temp_file("s3cret-pass\n");
        let ca = temp_file(PEM);
        let access = kafka(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "k:9093"),
            ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("KAFKA_SASL_MECHANISM", "scram-sha-256"),
            ("KAFKA_SASL_USERNAME", "task-api"),
            ("KAFKA_SASL_PASSWORD_FILE", password.to_str().unwrap()),
            ("KAFKA_SSL_CA_LOCATION", ca.to_str().unwrap()),
        ])
        .unwrap();
        let config = access.client_config();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        assert_eq!(config.get("sasl.username"), Some("task-api"));
        assert_eq!(config.get("sasl.password"), Some("s3cret-pass"));
        assert_eq!(config.get("ssl.ca.location"), ca.to_str());
        assert_eq!(access.describe(), "SASL_SSL SCRAM-SHA-256 as task-api");
    }

    #[test]
    fn no_secret_reaches_a_debug_print() {
        let key_password = temp_file("key-pass-xyz");
        let access = kafka(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "k:9093"),
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_SASL_USERNAME", "audit"),
            ("KAFKA_SASL_PASSWORD", "hunter2-sasl"),
            (
                "KAFKA_SSL_KEY_PASSWORD_FILE",
                key_password.to_str().unwrap(),
            ),
        ])
        .unwrap();
        for printed in [
            format!("{access:?}"),
            format!("{:?}", access.client_config()),
        ] {
            assert!(!printed.contains("hunter2-sasl"), "{printed}");
            assert!(!printed.contains("key-pass-xyz"), "{printed}");
            assert!(printed.contains("audit"), "{printed}");
        }
        let registry = registry_from_lookup(&lookup(&[
            ("SCHEMA_REGISTRY_URL", "http://r:8081"),
            (
                "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
                "api-key:registry-pw",
            ),
        ]))
        .unwrap();
        let printed = format!("{registry:?}");
        assert!(!printed.contains("registry-pw"), "{printed}");
        assert!(printed.contains("api-key"), "{printed}");
    }

    /// Each misconfiguration names the one setting to fix.
    #[test]
    fn misconfigurations_name_their_setting() {
        let missing = temp_file(PEM).with_extension("missing");
        let not_pem = temp_file("not a certificate");
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![], "KAFKA_BOOTSTRAP_SERVERS"),
            (
                vec![("KAFKA_SECURITY_PROTOCOL", "SASL_TLS")],
                "KAFKA_SECURITY_PROTOCOL",
            ),
            (
                vec![("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")],
                "KAFKA_SASL_USERNAME",
            ),
            (
                vec![
                    ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                    ("KAFKA_SASL_USERNAME", "u"),
                ],
                "KAFKA_SASL_PASSWORD",
            ),
            (
                vec![
                    ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                    ("KAFKA_SASL_USERNAME", "u"),
                    ("KAFKA_SASL_PASSWORD", "p"),
                    ("KAFKA_SASL_MECHANISM", "GSSAPI"),
                ],
                "KAFKA_SASL_MECHANISM",
            ),
            (
                vec![
                    ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                    ("KAFKA_SASL_USERNAME", "u"),
                    ("KAFKA_SASL_PASSWORD", "p"),
                    ("KAFKA_SASL_PASSWORD_FILE", "/etc/hostname"),
                ],
                "KAFKA_SASL_PASSWORD",
            ),
            (
                vec![
                    ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                    ("KAFKA_SASL_USERNAME", "u"),
                    ("KAFKA_SASL_PASSWORD_FILE", missing.to_str().unwrap()),
                ],
                "KAFKA_SASL_PASSWORD_FILE",
            ),
            (vec![("KAFKA_SASL_USERNAME", "u")], "KAFKA_SASL_USERNAME"),
            (
                vec![("KAFKA_SSL_CA_LOCATION", not_pem.to_str().unwrap())],
                "KAFKA_SSL_CA_LOCATION",
            ),
            (
                vec![
                    ("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
                    ("KAFKA_SASL_USERNAME", "u"),
                    ("KAFKA_SASL_PASSWORD", "p"),
                    ("KAFKA_SSL_CA_LOCATION", missing.to_str().unwrap()),
                ],
                "KAFKA_SSL_CA_LOCATION",
            ),
        ];
        for (mut vars, setting) in cases {
            if setting != "KAFKA_BOOTSTRAP_SERVERS" {
                vars.push(("KAFKA_BOOTSTRAP_SERVERS", "k:9092"));
            }
            let err = kafka(&vars).expect_err(setting);
            assert_eq!(err.name, setting, "{vars:?}: {err}");
        }
        let cert = temp_file(PEM);
        let err = kafka(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "k:9092"),
            ("KAFKA_SECURITY_PROTOCOL", "SSL"),
            ("KAFKA_SSL_CERTIFICATE_LOCATION", cert.to_str().unwrap()),
        ])
        .unwrap_err();
        assert_eq!(err.name, "KAFKA_SSL_KEY_LOCATION");
    }

    #[test]
    fn registry_settings_are_checked() {
        let registry = |vars: &[(&str, &str)]| registry_from_lookup(&lookup(vars));
        let not_pem = temp_file("nope");
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![], "SCHEMA_REGISTRY_URL"),
            (
                vec![("SCHEMA_REGISTRY_URL", "ftp://r")],
                "SCHEMA_REGISTRY_URL",
            ),
            (
                vec![
                    ("SCHEMA_REGISTRY_URL", "https://r"),
                    ("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "no-colon"),
                ],
                "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
            ),
            (
                vec![
                    ("SCHEMA_REGISTRY_URL", "https://r"),
                    ("SCHEMA_REGISTRY_CA_LOCATION", not_pem.to_str().unwrap()),
                ],
                "SCHEMA_REGISTRY_CA_LOCATION",
            ),
        ];
        for (vars, setting) in cases {
            let err = registry(&vars).expect_err(setting);
            assert_eq!(err.name, setting, "{vars:?}: {err}");
        }
        let ok = registry(&[
            ("SCHEMA_REGISTRY_URL", "https://r.example/apis/ccompat/v7/"),
            (
                "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
                "key:secret:with:colons",
            ),
        ])
        .unwrap();
        assert_eq!(ok.url(), "https://r.example/apis/ccompat/v7");
    }
}
