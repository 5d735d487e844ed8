//! Builds the running gateway (hub, consumer, HTTP server) and stops it in order: connections
//! are closed with 1001 going away first, then the server and the consumer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Server;
use actix_web::web;
use events::{EventCodec, Service};
use service_kit::consumer::{ConsumerRuntime, ConsumerSettings};
use service_kit::http::{self as kit_http, Readiness};
use service_kit::metrics::Metrics;
use service_kit::shutdown::Shutdown;

use crate::config::Config;
use crate::connection::ConnectionContext;
use crate::consumer::{self, EventRouter};
use crate::cursor::InstanceId;
use crate::http::Gate;
use crate::hub::Hub;
use crate::metrics::GatewayMetrics;

/// How often the replay buffer is aged and idle users forgotten.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

pub struct Application {
    port: u16,
    server: Server,
    consumer: ConsumerRuntime,
    shutdown: Shutdown,
    hub: Arc<Hub>,
    shutdown_timeout: Duration,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let gateway_metrics = GatewayMetrics::register(&metrics);
        let instance = InstanceId::random();
        let hub = Arc::new(Hub::new(
            instance,
            config.connection,
            config.replay,
            gateway_metrics.clone(),
        ));
        let codec = Arc::new(EventCodec::connect(&config.registry)?);
        let shutdown = Shutdown::new();

        let group = consumer::instance_group(&config.consumer_group_prefix);
        let topics = Service::WsGateway.consumes().to_vec();
        let (kafka, g) = (config.kafka.clone(), group.clone());
        match tokio::task::spawn_blocking(move || consumer::start_at_end(&kafka, &g, &topics))
            .await?
        {
            Ok(()) => tracing::info!(group, "consumer group positioned at the end"),
            Err(e) => tracing::warn!(
                group,
                error = %e,
                "could not position the consumer group; starting from the latest offsets when assigned"
            ),
        }
        let mut settings = ConsumerSettings::for_service(Service::WsGateway, &config.kafka)
            .with_override("auto.offset.reset", "latest");
        // The group is this process's alone, but it still commits: after a rebalance (a broker
        // or the coordinator lost) consumption resumes from the last commit rather than from
        // where the process started, and the hub drops what is redelivered.
        settings.group_id = group;
        settings.drain_timeout = config.shutdown_timeout;
        let consumer = ConsumerRuntime::start(
            settings,
            EventRouter::new(hub.clone()),
            codec,
            metrics.clone(),
            shutdown.clone(),
        )?;

        let sweeper_hub = hub.clone();
        let sweeper_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            loop {
                tokio::select! {
                    _ = sweeper_shutdown.wait() => return,
                    _ = tick.tick() => sweeper_hub.sweep(),
                }
            }
        });

        // Kafka is the gateway's only source: without it there is nothing to push, so it gates
        // (docs/contract.md §5); the registry is needed only for schema ids not yet cached.
        let readiness = Readiness::new()
            .with("kafka", kit_http::kafka_probe(&config.kafka))
            .with(
                "kafka_access",
                kit_http::kafka_access_probe(&config.kafka, Service::WsGateway.consumes()),
            )
            .reporting(
                "schema_registry",
                kit_http::registry_probe(&config.registry),
            );
        let gate = web::Data::new(Arc::new(Gate {
            verifier: config.verifier.clone(),
            origins: config.origins.clone(),
            ctx: ConnectionContext {
                hub: hub.clone(),
                metrics: gateway_metrics,
                settings: config.connection,
                shutdown: shutdown.clone(),
            },
        }));
        let (listener, port) = kit_http::bind(config.bind_addr)?;
        let server = kit_http::server(
            listener,
            config.shutdown_timeout,
            metrics,
            readiness,
            move |cfg| {
                cfg.app_data(gate.clone());
                crate::http::routes(cfg);
            },
        )?;
        tracing::info!(port, instance = %hub.cursor(), "ws-gateway listening");
        Ok(Self {
            port,
            server,
            consumer,
            shutdown,
            hub,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// Serve until SIGTERM/Ctrl-C (or [`Shutdown::trigger`]); then close every connection with
    /// 1001 going away, stop the server and the consumer, and return.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.shutdown.on_signals();
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        self.shutdown.wait().await;
        let open = self.hub.stats().total_connections;
        tracing::info!(open, "stopping: closing connections with 1001 going away");
        // Each connection task sees the same signal and closes itself; wait for them, bounded.
        let deadline = Instant::now() + self.shutdown_timeout;
        while self.hub.stats().total_connections > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handle.stop(true).await;
        self.consumer.join().await;
        let _ = server.await;
        tracing::info!("ws-gateway stopped");
        Ok(())
    }
}
