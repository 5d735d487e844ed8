//! One service's outbox at work: the relay, on a database pool of its own, and the monitor that
//! keeps the backlog gauges and deletes old sent rows, started together and stopped together.
//!
//! A service stops its outbox last: whatever its other parts (requests, consumers, schedulers)
//! write while they stop is published by the relay's final turn.

use std::sync::Arc;

use anyhow::Context;
use events::{EventCodec, Service};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{OutboxMetrics, OutboxRelay, RelaySettings, monitor};
use crate::db::Database;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Connections of the relay's own pool: one for its turn, one for the monitor's reads while a
/// turn holds the first (under load its turns waited seconds for the service's shared pool).
const RELAY_CONNECTIONS: u32 = 2;

/// The running relay and monitor of one service's outbox.
pub struct RunningOutbox {
    wake: Arc<Notify>,
    stop: Shutdown,
    relay: JoinHandle<()>,
    monitor: JoinHandle<()>,
}

impl RunningOutbox {
    /// Register the outbox metrics (labelled with `service`), open the relay's own pool, create
    /// its idempotent producer and start the relay (its first turn publishes what a previous
    /// run left unsent) and the monitor.
    pub async fn start(
        db: &Database,
        service: Service,
        kafka: &crate::kafka::KafkaAccess,
        codec: Arc<EventCodec>,
        metrics: &Metrics,
        settings: RelaySettings,
    ) -> anyhow::Result<Self> {
        let outbox_metrics = OutboxMetrics::register(metrics, service);
        let relay_db = {
            let db = db.clone();
            tokio::task::spawn_blocking(move || db.dedicated(RELAY_CONNECTIONS))
                .await?
                .context("opening the outbox relay's connections")?
        };
        let retention = settings.retention;
        let relay = OutboxRelay::new(
            relay_db.clone(),
            kafka,
            codec,
            service,
            settings,
            outbox_metrics.clone(),
        )
        .context("creating the outbox relay's Kafka producer")?;
        let wake = relay.waker();
        let stop = Shutdown::new();
        Ok(Self {
            wake,
            relay: tokio::spawn(relay.run(stop.clone())),
            monitor: tokio::spawn(monitor(relay_db, outbox_metrics, retention, stop.clone())),
            stop,
        })
    }

    /// What a writer notifies after committing outbox rows, so they are published at once.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Stop: the relay runs one last bounded turn for what was written before, then returns.
    /// Call it after every part of the service that writes outbox rows has stopped.
    pub async fn stop(self) {
        self.stop.trigger();
        if let Err(e) = self.relay.await {
            tracing::warn!(error = %e, "the outbox relay ended abnormally");
        }
        if let Err(e) = self.monitor.await {
            tracing::warn!(error = %e, "the outbox monitor ended abnormally");
        }
    }
}
