//! The service's own metrics, next to the runtime's (consumer lag, processing time, retries,
//! dead letters, HTTP).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use service_kit::metrics::{LATENCY_BUCKETS, Metrics};

#[derive(Clone)]
pub struct SeriesMetrics {
    /// Next occurrences recorded (each one once, whatever is replayed).
    pub next_occurrences_total: IntCounter,
    /// Next occurrences the brokers acknowledged.
    pub next_occurrences_published_total: IntCounter,
    /// Publish attempts that failed (retried by the relay).
    pub publish_failures_total: IntCounter,
    /// Completions that created nothing, by reason (already_created, series_ended, reopened, ...).
    pub completions_without_next_total: IntCounterVec,
    /// Series that ended, by reason.
    pub series_ended_total: IntCounterVec,
    /// Next occurrences recorded but not yet acknowledged by the brokers (the outbox backlog).
    pub outbox_pending: IntGauge,
    /// Time from recording a next occurrence to the brokers' acknowledgement.
    pub outbox_delay_seconds: Histogram,
}

impl SeriesMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let counter = |name: &str, help: &str| {
            metrics.register(&IntCounter::new(name, help).expect("valid metric"))
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            metrics
                .register(&IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        Self {
            next_occurrences_total: counter(
                "recurring_next_occurrences_total",
                "Next occurrences recorded",
            ),
            next_occurrences_published_total: counter(
                "recurring_next_occurrences_published_total",
                "Next occurrences acknowledged by the brokers",
            ),
            publish_failures_total: counter(
                "recurring_publish_failures_total",
                "Failed attempts to publish a next occurrence",
            ),
            completions_without_next_total: counter_vec(
                "recurring_completions_without_next_total",
                "Completions of series tasks that created no next occurrence, by reason",
                &["reason"],
            ),
            series_ended_total: counter_vec(
                "recurring_series_ended_total",
                "Series that ended, by reason",
                &["reason"],
            ),
            outbox_pending: metrics.register(
                &IntGauge::new(
                    "recurring_outbox_pending",
                    "Next occurrences recorded but not yet acknowledged by the brokers",
                )
                .expect("valid metric"),
            ),
            outbox_delay_seconds: metrics.register(
                &Histogram::with_opts(
                    HistogramOpts::new(
                        "recurring_outbox_delay_seconds",
                        "Time from recording a next occurrence to its acknowledgement",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .expect("valid metric"),
            ),
        }
    }
}
