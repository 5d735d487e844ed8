//! The services a benchmark measures, started in-process against the real cluster, registry and
//! a fresh database, and the HTTP and WebSocket clients that talk to them.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, bail};
use events::{Service, Topic};
use service_kit::auth::{TokenSigner, TokenVerifier};
use service_kit::config::{CommonConfig, DatabaseUrl};
use service_kit::db::Database;
use service_kit::shutdown::Shutdown;
use service_kit::testing::{self, Backend};
use service_kit::webhook::WebhookKey;
use tokio::task::JoinHandle;

/// A service running in this process; [`Running::stop`] stops it gracefully.
pub struct Running {
    pub name: &'static str,
    pub port: u16,
    shutdown: Shutdown,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Run a service's `run_until_stopped` on the runtime.
    pub fn spawn(
        name: &'static str,
        port: u16,
        shutdown: Shutdown,
        run: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) -> Self {
        Self {
            name,
            port,
            shutdown,
            handle: tokio::spawn(run),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        match tokio::time::timeout(Duration::from_secs(40), self.handle).await {
            Ok(joined) => joined.with_context(|| format!("{} panicked", self.name))?,
            Err(_) => bail!("{} did not stop within 40 s", self.name),
        }
    }
}

/// A free port on 127.0.0.1 (for services that must know each other's port before binding).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(free_ports(1)?[0])
}

/// `n` different free ports: each listener is held until all are picked, since a port picked
/// and released at once can be the next pick too.
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?)
}

/// A consumer group of its own, positioned at the end of `topics`, so an in-process service
/// sees only what is published from now on.
pub async fn group_at_end(prefix: &str, topics: &[Topic]) -> anyhow::Result<String> {
    let group = testing::unique_group(prefix);
    let (g, topics) = (group.clone(), topics.to_vec());
    tokio::task::spawn_blocking(move || testing::position_group_at_end(&g, &topics)).await?;
    Ok(group)
}

/// The webhook signing key task-api and notification-service share in a benchmark.
pub const WEBHOOK_SIGNING_KEY: &str = "loadgen-webhook-signing-key-of-40-chars!";

/// A key pair as task-api holds it: (private PEM, public PEM).
pub fn key_pair() -> anyhow::Result<(String, String)> {
    service_kit::auth::generate_keypair()
        .map_err(|e| anyhow::anyhow!("generating an Ed25519 key pair: {e}"))
}

/// task-api on a fresh database of `backend` (`port` 0 = any), with its database handle.
pub async fn start_task_api(
    backend: Backend,
    port: u16,
    keys: &(String, String),
    gateway_port: u16,
) -> anyhow::Result<(Running, Database, DatabaseUrl)> {
    let database_url = testing::fresh_database(backend);
    let config = task_api::config::Config {
        common: CommonConfig {
            kafka: service_kit::testing::kafka_access(),
            registry: service_kit::testing::registry_access(),
            database_url: database_url.clone(),
            bind_addr: format!("127.0.0.1:{port}").parse()?,
            shutdown_timeout: Duration::from_secs(10),
        },
        signer: TokenSigner::from_pem(&keys.0, 3600)?,
        verifier: TokenVerifier::from_pem(&keys.1)?,
        webhook_key: WebhookKey::new(WEBHOOK_SIGNING_KEY),
        sms: None,
        ws_public_url: format!("ws://127.0.0.1:{gateway_port}"),
        vapid_public_key: None,
        consumer_group: group_at_end("loadgen-task-api", Service::TaskApi.consumes()).await?,
        login_limits: task_api::config::LoginLimits::default(),
        client_address: Default::default(),
        outbox: task_api::config::OutboxSettings::default(),
    };
    let app = task_api::startup::Application::build(config).await?;
    let db = app.database();
    let running = Running::spawn(
        "task-api",
        app.port(),
        app.shutdown_handle(),
        app.run_until_stopped(),
    );
    Ok((running, db, database_url))
}

/// ws-gateway on `port`, accepting tokens of `public_key`.
pub async fn start_gateway(port: u16, public_key: &str) -> anyhow::Result<Running> {
    use ws_gateway::config::{
        AllowedOrigins, Config, ConnectionSettings, DEFAULT_ALLOWED_ORIGINS, ReplayLimits,
    };
    let config = Config {
        kafka: service_kit::testing::kafka_access(),
        registry: service_kit::testing::registry_access(),
        bind_addr: format!("127.0.0.1:{port}").parse()?,
        shutdown_timeout: Duration::from_secs(10),
        verifier: TokenVerifier::from_pem(public_key)?,
        origins: AllowedOrigins::parse(DEFAULT_ALLOWED_ORIGINS)?,
        connection: ConnectionSettings::default(),
        replay: ReplayLimits::default(),
        consumer_group_prefix: "loadgen-ws-gateway".into(),
    };
    let app = ws_gateway::startup::Application::build(config).await?;
    Ok(Running::spawn(
        "ws-gateway",
        app.port(),
        app.shutdown_handle(),
        app.run_until_stopped(),
    ))
}

/// A user registered and logged in through task-api's REST API.
pub struct ApiUser {
    pub id: String,
    pub token: String,
}

pub async fn register_and_login(http: &reqwest::Client, base: &str) -> anyhow::Result<ApiUser> {
    let email = format!("loadgen-{}@example.com", uuid::Uuid::new_v4().simple());
    let password = "correct horse battery";
    let credentials = serde_json::json!({"email": email, "password": password});
    let registered = http
        .post(format!("{base}/api/auth/register"))
        .json(&credentials)
        .send()
        .await?;
    if registered.status() != 201 {
        bail!("register answered {}", registered.status());
    }
    let user: serde_json::Value = registered.json().await?;
    let login: serde_json::Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&credentials)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(ApiUser {
        id: user["id"]
            .as_str()
            .context("no id in the registered user")?
            .to_owned(),
        token: login["access_token"]
            .as_str()
            .context("no access_token in the login answer")?
            .to_owned(),
    })
}

/// `POST /api/tasks`: the new task's id and the instant its 201 arrived.
pub async fn create_task(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    title: &str,
) -> anyhow::Result<(String, std::time::Instant)> {
    let response = http
        .post(format!("{base}/api/tasks"))
        .bearer_auth(token)
        .json(&serde_json::json!({"title": title, "priority": "high", "tags": ["loadgen"]}))
        .send()
        .await?;
    let at = std::time::Instant::now();
    if response.status() != 201 {
        bail!("POST /api/tasks answered {}", response.status());
    }
    let task: serde_json::Value = response.json().await?;
    let id = task["id"].as_str().context("no id in the created task")?;
    Ok((id.to_owned(), at))
}

/// Drop a fresh database made for a benchmark.
pub fn drop_database(url: &DatabaseUrl) {
    match url {
        DatabaseUrl::Sqlite(path) => {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
        DatabaseUrl::Postgres(url) => {
            use diesel::{Connection, RunQueryDsl};
            let name = url.rsplit('/').next().unwrap_or_default().to_owned();
            match diesel::PgConnection::establish(&testing::postgres_server_url()) {
                Ok(mut conn) => {
                    if let Err(e) =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn)
                    {
                        eprintln!("warning: dropping database {name}: {e}");
                    }
                }
                Err(e) => eprintln!("warning: could not connect to drop database {name}: {e}"),
            }
        }
    }
}
