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
use crate::cursor::Layout;
use crate::http::Gate;
use crate::hub::Hub;
use crate::metrics::GatewayMetrics;
use crate::read_back::ReadBack;

/// How often the replay buffer is aged and idle users forgotten.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Pause between attempts to find the end of the topics while Kafka is away.
const POSITION_RETRY: Duration = Duration::from_secs(2);

/// The Kafka side: find where this instance starts, then consume from there.
struct Feed {
    kafka: service_kit::kafka::KafkaAccess,
    group: String,
    layout: Arc<Layout>,
    settings: ConsumerSettings,
    hub: Arc<Hub>,
    codec: Arc<EventCodec>,
    metrics: Metrics,
    shutdown: Shutdown,
}

impl Feed {
    /// Commit the group at the end of every partition and give the hub that start position.
    async fn position(&self) -> anyhow::Result<()> {
        let (kafka, group, layout) = (self.kafka.clone(), self.group.clone(), self.layout.clone());
        let start =
            tokio::task::spawn_blocking(move || consumer::start_at_end(&kafka, &group, &layout))
                .await??;
        self.hub.start_at(start);
        tracing::info!(group = %self.group, "consumer group positioned at the end of every partition");
        Ok(())
    }

    fn start(&self) -> anyhow::Result<ConsumerRuntime> {
        ConsumerRuntime::start(
            self.settings.clone(),
            EventRouter::new(self.hub.clone()),
            self.codec.clone(),
            self.metrics.clone(),
            self.shutdown.clone(),
        )
        .map_err(Into::into)
    }

    async fn run(self, started: Option<ConsumerRuntime>) {
        let consumer = match started {
            Some(c) => c,
            None => loop {
                tokio::select! {
                    _ = self.shutdown.wait() => return,
                    _ = tokio::time::sleep(POSITION_RETRY) => {}
                }
                match self.position().await {
                    Ok(()) => match self.start() {
                        Ok(c) => break c,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start the consumer; stopping");
                            self.shutdown.trigger();
                            return;
                        }
                    },
                    Err(e) => tracing::debug!(error = %e, "the end of the topics is still unknown"),
                }
            },
        };
        // Joining blocks a thread until the consumer ends: only once it has been told to.
        self.shutdown.wait().await;
        consumer.join().await;
    }
}

pub struct Application {
    port: u16,
    server: Server,
    /// Positions the consumer (retrying while Kafka is away), runs it, and ends once it has
    /// drained after shutdown.
    consumer: tokio::task::JoinHandle<()>,
    shutdown: Shutdown,
    hub: Arc<Hub>,
    shutdown_timeout: Duration,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let gateway_metrics = GatewayMetrics::register(&metrics);
        let layout = Arc::new(Layout::of(Service::WsGateway.consumes()));
        let hub = Arc::new(Hub::new(
            layout.clone(),
            config.connection,
            config.replay,
            gateway_metrics.clone(),
        ));
        let codec = Arc::new(EventCodec::connect(&config.registry)?);
        let read_back = Arc::new(ReadBack::new(
            config.kafka.clone(),
            codec.clone(),
            layout.clone(),
            &config.consumer_group_prefix,
            &config.replay,
        ));
        let shutdown = Shutdown::new();

        let group = consumer::instance_group(&config.consumer_group_prefix);
        let mut settings = ConsumerSettings::for_service(Service::WsGateway, &config.kafka)
            .with_override("auto.offset.reset", "latest");
        // The group is this process's alone, but it still commits: after a rebalance (a broker
        // or the coordinator lost) consumption resumes from the last commit rather than from
        // where the process started, and the hub drops what is redelivered.
        settings.group_id = group.clone();
        settings.drain_timeout = config.shutdown_timeout;
        let feed = Feed {
            kafka: config.kafka.clone(),
            group,
            layout,
            settings,
            hub: hub.clone(),
            codec,
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        };
        // The first attempt here, so that a gateway built while Kafka is up consumes from the
        // moment it is built; otherwise the feed keeps trying in the background.
        let consumer = match feed.position().await {
            Ok(()) => Some(feed.start()?),
            Err(e) => {
                tracing::warn!(error = %e, "cannot find the end of the topics yet; refusing connections and retrying");
                None
            }
        };
        let consumer = tokio::spawn(feed.run(consumer));

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
        let positioned = hub.clone();
        let readiness = Readiness::new()
            .with(
                "start_position",
                Arc::new(move || {
                    let ready = positioned.is_positioned();
                    Box::pin(async move {
                        ready
                            .then_some(())
                            .ok_or_else(|| "the end of the topics is not known yet".to_owned())
                    })
                }),
            )
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
                read_back,
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
        tracing::info!(port, "ws-gateway listening");
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
        let _ = self.consumer.await;
        let _ = server.await;
        tracing::info!("ws-gateway stopped");
        Ok(())
    }
}
