//! Builds the running service (database, outbox relay, ingest consumer, HTTP server) and stops
//! it in order: requests first, then the relay's last round, then the consumer.

use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::web;
use anyhow::Context;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use events::{EventCodec, Service};
use service_kit::consumer::{ConsumerRuntime, ConsumerSettings};
use service_kit::db::{Database, Migrations};
use service_kit::http::{self as kit_http, Readiness};
use service_kit::metrics::Metrics;
use service_kit::outbox::RunningOutbox;
use service_kit::shutdown::Shutdown;
use tokio::task::JoinHandle;
use utoipa::OpenApi;
use utoipa_scalar::{Scalar, Servable};

use crate::auth::{passwords, rate_limit::LoginLimiter};
use crate::changes::group_commit::GroupCommit;
use crate::config::Config;
use crate::http::AppState;
use crate::http::openapi::ApiDoc;
use crate::ingest::TaskIngest;
use crate::mcp::{McpEndpoint, McpSettings};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
};

pub struct Application {
    port: u16,
    server: Server,
    consumer: ConsumerRuntime,
    shutdown: Shutdown,
    outbox: RunningOutbox,
    janitor_stop: Shutdown,
    janitor: JoinHandle<()>,
    db: Database,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let url = config.common.database_url.clone();
        tracing::info!(database = %url, "opening database");
        let db = tokio::task::spawn_blocking(move || Database::connect(&url, MIGRATIONS))
            .await?
            .context("opening the database")?;
        let codec = Arc::new(EventCodec::connect(&config.common.registry)?);
        let metrics = Metrics::new();
        let shutdown = Shutdown::new();
        let outbox = RunningOutbox::start(
            &db,
            Service::TaskApi,
            &config.common.kafka,
            codec.clone(),
            &metrics,
            config.outbox.relay_settings(),
        )
        .await?;
        let wakeup = outbox.waker();
        let janitor_stop = Shutdown::new();
        let janitor = tokio::spawn(crate::storage::idempotency::expire_periodically(
            db.clone(),
            janitor_stop.clone(),
        ));

        let mut settings = ConsumerSettings::for_service(Service::TaskApi, &config.common.kafka);
        settings.group_id = config.consumer_group.clone();
        settings.drain_timeout = config.common.shutdown_timeout;
        let consumer = ConsumerRuntime::start(
            settings,
            TaskIngest::new(db.clone()),
            codec,
            metrics.clone(),
            shutdown.clone(),
        )?;

        tokio::task::spawn_blocking(passwords::warm_up).await?;

        let (listener, port) = kit_http::bind(config.common.bind_addr)?;
        let address = listener.local_addr()?;
        // Kafka's and the registry's outages are reported, not gating (writes go on into the
        // outbox); a refusal of the service's credentials, topics or ingest group gates.
        let readiness = Readiness::standard(&config.common, db.clone(), &Service::TaskApi.uses())
            .with(
                "kafka_consumer",
                kit_http::consumer_access_probe(consumer.access()),
            );
        let openapi = ApiDoc::openapi();
        let state = web::Data::new(AppState {
            db: db.clone(),
            signer: config.signer.clone(),
            webhook_key: config.webhook_key.clone(),
            sms: config
                .sms
                .clone()
                .map(service_kit::sms::SmsGateway::new)
                .transpose()
                .map_err(anyhow::Error::msg)?,
            limiter: LoginLimiter::new(config.login_limits),
            client_address: config.client_address.clone(),
            writes: GroupCommit::start(db.clone(), wakeup.clone()),
            relay_wakeup: wakeup,
            ws_public_url: config.ws_public_url.clone(),
            vapid_public_key: config.vapid_public_key.clone(),
            push_seal: service_kit::push::PushSealKey::derive(&config.webhook_key),
            openapi_json: openapi.to_json().unwrap_or_else(|_| "{}".to_owned()),
        });
        let mcp = McpEndpoint::new(state.clone(), &McpSettings::from_env()?);
        let verifier = web::Data::new(config.verifier.clone());
        let server = kit_http::server(
            listener,
            config.common.shutdown_timeout,
            metrics,
            readiness,
            move |cfg| {
                cfg.app_data(state.clone()).app_data(verifier.clone());
                crate::http::routes(cfg);
                mcp.routes(cfg);
                cfg.service(Scalar::with_url("/docs", openapi.clone()));
            },
        )?;
        let shown = if address.ip().is_unspecified() {
            format!("127.0.0.1:{port}")
        } else {
            address.to_string()
        };
        tracing::info!(
            port,
            docs = %format!("http://{shown}/docs"),
            openapi = %format!("http://{shown}/openapi.json"),
            "task-api listening; API docs at http://{shown}/docs"
        );
        Ok(Self {
            port,
            server,
            consumer,
            shutdown,
            outbox,
            janitor_stop,
            janitor,
            db,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    pub fn database(&self) -> Database {
        self.db.clone()
    }

    /// Serve until SIGTERM/Ctrl-C (or [`Shutdown::trigger`]); then stop taking requests, let
    /// the relay publish what they wrote, finish and commit in-flight ingest, and return.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.shutdown.on_signals();
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        self.shutdown.wait().await;
        tracing::info!("stopping: HTTP server, outbox relay, consumer");
        handle.stop(true).await;
        self.outbox.stop().await;
        self.janitor_stop.trigger();
        let _ = self.janitor.await;
        self.consumer.join().await;
        let _ = server.await;
        tracing::info!("task-api stopped");
        Ok(())
    }
}
