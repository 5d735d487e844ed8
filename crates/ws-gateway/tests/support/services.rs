//! Real services for the tests that need more than the gateway: an in-process task-api (the
//! page and the REST API) beside an in-process gateway on fixed ports.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::time::Duration;

use events::Topic;
use service_kit::auth::{TokenSigner, TokenVerifier};
use service_kit::config::CommonConfig;
use service_kit::shutdown::Shutdown;
use service_kit::testing::{self, Backend};
use ws_gateway::config::{AllowedOrigins, Config, ConnectionSettings, ReplayLimits};
use ws_gateway::startup::Application;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct RunningGateway {
    pub shutdown: Shutdown,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// An in-process gateway on `port` that lets the page served on `api_port` connect.
pub async fn start_gateway(port: u16, api_port: u16, public_key: &str) -> RunningGateway {
    start_gateway_for(port, &[api_port], public_key).await
}

/// An in-process gateway on `port` that lets the pages served on each of `api_ports` connect.
pub async fn start_gateway_for(port: u16, api_ports: &[u16], public_key: &str) -> RunningGateway {
    let origins = api_ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p},http://localhost:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let config = Config {
        kafka: service_kit::testing::kafka_access(),
        registry: service_kit::testing::registry_access(),
        bind_addr: format!("127.0.0.1:{port}").parse().unwrap(),
        shutdown_timeout: Duration::from_secs(10),
        verifier: TokenVerifier::from_pem(public_key).unwrap(),
        origins: AllowedOrigins::parse(&origins).unwrap(),
        connection: ConnectionSettings::default(),
        replay: ReplayLimits::default(),
        consumer_group_prefix: "ws-gateway-test".into(),
    };
    let app = Application::build(config).await.expect("gateway builds");
    RunningGateway {
        shutdown: app.shutdown_handle(),
        handle: tokio::spawn(app.run_until_stopped()),
    }
}

impl RunningGateway {
    pub async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("gateway stops")
            .unwrap()
            .unwrap();
    }
}

/// An in-process task-api on `port` with a fresh SQLite database, whose page connects to the
/// gateway on `gateway_port`.
pub async fn start_task_api(
    port: u16,
    gateway_port: u16,
    keys: &(String, String),
) -> (Shutdown, tokio::task::JoinHandle<anyhow::Result<()>>) {
    start_task_api_on(Backend::Sqlite, port, gateway_port, keys).await
}

/// An in-process task-api on `port` with a fresh database of `backend`, whose page connects to
/// the gateway on `gateway_port`.
pub async fn start_task_api_on(
    backend: Backend,
    port: u16,
    gateway_port: u16,
    keys: &(String, String),
) -> (Shutdown, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let group = testing::unique_group("task-api-for-ws-gateway");
    let g = group.clone();
    tokio::task::spawn_blocking(move || testing::position_group_at_end(&g, &[Topic::TaskCreated]))
        .await
        .unwrap();
    let config = task_api::config::Config {
        common: CommonConfig {
            kafka: service_kit::testing::kafka_access(),
            registry: service_kit::testing::registry_access(),
            database_url: testing::fresh_database(backend),
            bind_addr: format!("127.0.0.1:{port}").parse().unwrap(),
            shutdown_timeout: Duration::from_secs(10),
        },
        signer: TokenSigner::from_pem(&keys.0, 3600).unwrap(),
        verifier: TokenVerifier::from_pem(&keys.1).unwrap(),
        webhook_key: service_kit::webhook::WebhookKey::new(
            "browser-test-webhook-signing-key-0123456789",
        ),
        sms: None,
        ws_public_url: format!("ws://127.0.0.1:{gateway_port}"),
        vapid_public_key: None,
        consumer_group: group,
        login_limits: task_api::config::LoginLimits {
            per_email: 50,
            per_ip: 10_000,
            window: Duration::from_secs(60),
        },
        client_address: Default::default(),
        outbox: task_api::config::OutboxSettings {
            poll_interval: Duration::from_millis(200),
            ..Default::default()
        },
    };
    let app = task_api::startup::Application::build(config)
        .await
        .expect("task-api builds");
    let shutdown = app.shutdown_handle();
    (shutdown, tokio::spawn(app.run_until_stopped()))
}
