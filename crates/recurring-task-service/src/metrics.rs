//! The service's own metrics, next to the runtime's (consumer lag, processing time, retries,
//! dead letters, HTTP).

use prometheus::{IntCounter, IntCounterVec, Opts};
use service_kit::metrics::Metrics;

#[derive(Clone)]
pub struct SeriesMetrics {
    /// Next occurrences recorded (each one once, whatever is replayed).
    pub next_occurrences_total: IntCounter,
    /// Completions that created nothing, by reason (already_created, series_ended, reopened, ...).
    pub completions_without_next_total: IntCounterVec,
    /// Series that ended, by reason.
    pub series_ended_total: IntCounterVec,
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
        }
    }
}
