//! Builds the running service: database, consumer and HTTP server, and stops them in order.

use std::sync::Arc;

use actix_web::dev::Server;
use anyhow::Context;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use events::{EventCodec, Service};
use service_kit::consumer::{ConsumerRuntime, ConsumerSettings};
use service_kit::db::{Database, Migrations};
use service_kit::http as kit_http;
use service_kit::metrics::Metrics;
use service_kit::shutdown::Shutdown;

use crate::config::Config;
use crate::consumer::AuditRecorder;

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

        let mut settings =
            ConsumerSettings::for_service(Service::AuditService, &config.common.kafka);
        settings.group_id = config.consumer_group.clone();
        settings.drain_timeout = config.common.shutdown_timeout;
        let consumer = ConsumerRuntime::start(
            settings,
            AuditRecorder::new(db.clone()),
            codec,
            metrics.clone(),
            shutdown.clone(),
        )?;

        let (server, port) = kit_http::database_api_server(
            &config.common,
            &db,
            &config.verifier,
            metrics,
            crate::http::routes,
            Service::AuditService,
            &consumer.access(),
        )?;
        tracing::info!(port, "audit-service listening");
        Ok(Self {
            port,
            server,
            consumer,
            shutdown,
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

    /// Serve until SIGTERM/Ctrl-C (or [`Shutdown::trigger`]), then stop taking requests and
    /// events, finish and commit what is in flight, and return.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.shutdown.on_signals();
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        self.shutdown.wait().await;
        tracing::info!("stopping: HTTP server and consumer");
        handle.stop(true).await;
        self.consumer.join().await;
        let _ = server.await;
        tracing::info!("audit-service stopped");
        Ok(())
    }
}
