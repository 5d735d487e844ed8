//! Builds the running service: database, outbox relay, consumer and HTTP server, and stops them
//! in order (HTTP, then the consumer's in-flight events, then a last relay round).

use std::sync::Arc;

use actix_web::dev::Server;
use anyhow::Context;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use events::{EventCodec, Service};
use service_kit::consumer::{ConsumerRuntime, ConsumerSettings};
use service_kit::db::{Database, Migrations};
use service_kit::http as kit_http;
use service_kit::metrics::Metrics;
use service_kit::outbox::{self, OutboxMetrics, OutboxRelay, RelaySettings};
use service_kit::shutdown::Shutdown;

use crate::config::Config;
use crate::consumer::SeriesFollower;
use crate::metrics::SeriesMetrics;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
};

/// How long published outbox rows are kept (for inspection).
const OUTBOX_RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

pub struct Application {
    port: u16,
    server: Server,
    consumer: ConsumerRuntime,
    relay: tokio::task::JoinHandle<()>,
    monitor: tokio::task::JoinHandle<()>,
    relay_stop: Shutdown,
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
        let series_metrics = SeriesMetrics::register(&metrics);
        let outbox_metrics = OutboxMetrics::register(&metrics, Service::RecurringTaskService);
        let shutdown = Shutdown::new();

        let relay_db = {
            let db = db.clone();
            tokio::task::spawn_blocking(move || db.dedicated(2))
                .await?
                .context("opening the outbox relay's connections")?
        };
        let relay = OutboxRelay::new(
            relay_db,
            &config.common.kafka,
            codec.clone(),
            Service::RecurringTaskService,
            RelaySettings {
                poll_interval: config.relay_interval,
                ..RelaySettings::default()
            },
            outbox_metrics.clone(),
        )
        .context("creating the outbox relay's Kafka producer")?;
        // Whatever a previous run recorded but did not publish goes out first.
        let wake = relay.waker();
        wake.notify_one();
        let relay_stop = Shutdown::new();
        let relay = tokio::spawn(relay.run(relay_stop.clone()));
        let monitor = tokio::spawn(outbox::monitor(
            db.clone(),
            outbox_metrics,
            OUTBOX_RETENTION,
            relay_stop.clone(),
        ));

        let mut settings =
            ConsumerSettings::for_service(Service::RecurringTaskService, &config.common.kafka);
        settings.group_id = config.consumer_group.clone();
        settings.drain_timeout = config.common.shutdown_timeout;
        let consumer = ConsumerRuntime::start(
            settings,
            SeriesFollower::new(
                db.clone(),
                wake,
                series_metrics,
                config.user_id_prefix.clone(),
            ),
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
            Service::RecurringTaskService,
        )?;
        tracing::info!(port, "recurring-task-service listening");
        Ok(Self {
            port,
            server,
            consumer,
            relay,
            monitor,
            relay_stop,
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
    /// events, finish and commit what is in flight, publish what it recorded, and return.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.shutdown.on_signals();
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        self.shutdown.wait().await;
        tracing::info!("stopping: HTTP server and consumer");
        handle.stop(true).await;
        self.consumer.join().await;
        // Only now: the consumer's last completions may have recorded next occurrences.
        self.relay_stop.trigger();
        let _ = self.relay.await;
        let _ = self.monitor.await;
        let _ = server.await;
        tracing::info!("recurring-task-service stopped");
        Ok(())
    }
}
