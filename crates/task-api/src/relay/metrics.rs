//! Metrics of the outbox: backlog, age of the oldest unsent row, what was published.

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use service_kit::metrics::Metrics;

#[derive(Clone)]
pub struct OutboxMetrics {
    /// Rows written but not yet acknowledged by the brokers.
    pub backlog_rows: IntGauge,
    /// Age of the oldest unsent row (0 when none).
    pub oldest_unsent_age_seconds: Gauge,
    pub published_total: IntCounterVec,
    pub publish_failures_total: IntCounter,
    /// Rows that can never be published (unreadable JSON, refused by the schema): set aside.
    pub dead_rows_total: IntCounter,
    /// From the row's commit to the brokers' acknowledgement.
    pub delivery_delay_seconds: Histogram,
}

impl OutboxMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        // Names are fixed and registered once per registry: a failure is a programming error.
        #[allow(clippy::expect_used)]
        let m = Self {
            backlog_rows: IntGauge::new("outbox_backlog_rows", "Outbox rows not yet published")
                .expect("metric"),
            oldest_unsent_age_seconds: Gauge::new(
                "outbox_oldest_unsent_age_seconds",
                "Age of the oldest unpublished outbox row",
            )
            .expect("metric"),
            published_total: IntCounterVec::new(
                Opts::new("outbox_published_total", "Outbox rows published, by topic"),
                &["topic"],
            )
            .expect("metric"),
            publish_failures_total: IntCounter::new(
                "outbox_publish_failures_total",
                "Outbox rows whose publication failed (retried later)",
            )
            .expect("metric"),
            dead_rows_total: IntCounter::new(
                "outbox_dead_rows_total",
                "Outbox rows that can never be published and were set aside",
            )
            .expect("metric"),
            delivery_delay_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "outbox_delivery_delay_seconds",
                    "Time from writing an outbox row to the brokers' acknowledgement",
                )
                .buckets(service_kit::metrics::LATENCY_BUCKETS.to_vec()),
            )
            .expect("metric"),
        };
        metrics.register(&m.backlog_rows);
        metrics.register(&m.oldest_unsent_age_seconds);
        metrics.register(&m.published_total);
        metrics.register(&m.publish_failures_total);
        metrics.register(&m.dead_rows_total);
        metrics.register(&m.delivery_delay_seconds);
        m
    }
}
