//! Builds the running service (database, consumer, scheduler, delivery worker, outbox relay,
//! HTTP server) and stops it in order: stop taking requests and events, let in-flight
//! deliveries finish, publish what the outbox holds, exit.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use anyhow::Context;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use events::{EventCodec, Service, Topic};
use service_kit::consumer::{ConsumerRuntime, ConsumerSettings};
use service_kit::db::{Database, Migrations};
use service_kit::http as kit_http;
use service_kit::metrics::Metrics;
use service_kit::outbox::{RelaySettings, RunningOutbox};
use service_kit::shutdown::Shutdown;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::consumer::NotificationConsumer;
use crate::delivery::email::EmailSender;
use crate::delivery::push::PushSender;
use crate::delivery::sms::SmsSender;
use crate::delivery::webhook::WebhookSender;
use crate::delivery::{Channels, DeliveryWorker};
use crate::due_loop;
use crate::metrics::NotificationMetrics;
use crate::scheduler::ReminderScheduler;
use service_kit::push::PushSealKey;

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
    scheduler: JoinHandle<ReminderScheduler>,
    worker: JoinHandle<DeliveryWorker>,
    outbox: RunningOutbox,
    shutdown_timeout: Duration,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let url = config.common.database_url.clone();
        tracing::info!(database = %url, smtp = ?config.smtp, "starting notification-service");
        let db = tokio::task::spawn_blocking(move || Database::connect(&url, MIGRATIONS))
            .await?
            .context("opening the database")?;
        let codec = Arc::new(EventCodec::connect(&config.common.registry)?);
        // Registering now finds a registry problem at start; if the registry is away, the relay
        // registers on first publish and retries until it can.
        if let Err(e) = codec
            .register_all(&[Topic::ReminderTriggered, Topic::NotificationSent])
            .await
        {
            tracing::warn!(error = %e, "schemas not registered yet; retried when publishing");
        }
        let metrics = Metrics::new();
        let own = NotificationMetrics::register(&metrics);
        let shutdown = Shutdown::new();
        // The outbox stops after the scheduler and the deliveries, to publish what they wrote.
        let outbox = RunningOutbox::start(
            &db,
            Service::NotificationService,
            &config.common.kafka,
            codec.clone(),
            &metrics,
            RelaySettings::default(),
        )
        .await?;
        let (scheduler_wake, delivery_wake, relay_wake) = (
            Arc::new(Notify::new()),
            Arc::new(Notify::new()),
            outbox.waker(),
        );

        let channels = Channels {
            email: EmailSender::new(&config.smtp, config.delivery.concurrency as u32)
                .map_err(anyhow::Error::msg)?,
            webhook: WebhookSender::new(config.webhook.key.clone(), config.webhook.timeout)
                .map_err(anyhow::Error::msg)?,
            sms: SmsSender::new(config.sms.clone()).map_err(anyhow::Error::msg)?,
            push: match &config.push {
                Some(settings) => Some(
                    PushSender::new(
                        settings,
                        PushSealKey::derive(&config.webhook.key),
                        db.clone(),
                    )
                    .map_err(anyhow::Error::msg)?,
                ),
                None => None,
            },
            app_base_url: config.app_base_url.clone(),
        };
        let scheduler = tokio::spawn(due_loop::run(
            "scheduler",
            ReminderScheduler::new(
                db.clone(),
                config.schedule.clone(),
                own.clone(),
                relay_wake.clone(),
            ),
            scheduler_wake.clone(),
            shutdown.clone(),
            config.schedule.max_idle,
        ));
        let worker = tokio::spawn(due_loop::run(
            "delivery",
            DeliveryWorker::new(
                db.clone(),
                channels,
                config.delivery.clone(),
                own.clone(),
                relay_wake.clone(),
                delivery_wake.clone(),
            ),
            delivery_wake.clone(),
            shutdown.clone(),
            config.schedule.max_idle,
        ));

        let mut settings =
            ConsumerSettings::for_service(Service::NotificationService, &config.common.kafka);
        settings.group_id = config.consumer_group.clone();
        settings.drain_timeout = config.common.shutdown_timeout;
        let consumer = ConsumerRuntime::start(
            settings,
            NotificationConsumer::new(db.clone(), own, scheduler_wake, delivery_wake),
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
            Service::NotificationService,
            &consumer.access(),
        )?;
        tracing::info!(port, "notification-service listening");
        Ok(Self {
            port,
            server,
            consumer,
            shutdown,
            db,
            scheduler,
            worker,
            outbox,
            shutdown_timeout: config.common.shutdown_timeout,
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

    /// Serve until SIGTERM/Ctrl-C (or [`Shutdown::trigger`]); then stop taking requests and
    /// events, let deliveries in flight finish, publish what the outbox holds, and return.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.shutdown.on_signals();
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        self.shutdown.wait().await;
        tracing::info!("stopping: HTTP server, consumer, scheduler and deliveries");
        handle.stop(true).await;
        self.consumer.join().await;
        let _ = self.scheduler.await;
        if let Ok(worker) = self.worker.await {
            worker.finish_in_flight(self.shutdown_timeout).await;
        }
        self.outbox.stop().await;
        let _ = server.await;
        tracing::info!("notification-service stopped");
        Ok(())
    }
}
