//! The service's own metrics, registered next to the runtime's on the one registry.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};
use service_kit::metrics::{LATENCY_BUCKETS, Metrics};

/// Firing delay buckets, in seconds: on-time firing is milliseconds, a restart minutes.
const DELAY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

#[derive(Clone)]
pub struct NotificationMetrics {
    pub reminders_scheduled_total: IntCounter,
    pub reminders_cancelled_total: IntCounter,
    /// Fired reminders by `late` ("true"/"false").
    pub reminders_fired_total: IntCounterVec,
    pub reminders_expired_total: IntCounter,
    /// `fired_at - remind_at`.
    pub reminder_firing_delay_seconds: Histogram,
    /// Events that changed nothing, by reason (stale version, unknown reminder).
    pub events_ignored_total: IntCounterVec,
    /// Delivery attempts by channel and outcome (delivered, retry, failed).
    pub delivery_attempts_total: IntCounterVec,
    /// Final delivery outcomes by channel and status (delivered, failed).
    pub notifications_total: IntCounterVec,
    pub delivery_attempt_seconds: HistogramVec,
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"))
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"))
}

impl NotificationMetrics {
    /// Create the families and register them on `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let delay = Histogram::with_opts(
            HistogramOpts::new(
                "reminder_firing_delay_seconds",
                "Time from a reminder's remind-at to its firing",
            )
            .buckets(DELAY_BUCKETS.to_vec()),
        )
        .unwrap_or_else(|e| unreachable!("metric: {e}"));
        let attempt_seconds = HistogramVec::new(
            HistogramOpts::new(
                "notification_delivery_attempt_seconds",
                "Duration of one delivery attempt",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["channel"],
        )
        .unwrap_or_else(|e| unreachable!("metric: {e}"));
        Self {
            reminders_scheduled_total: metrics.register(&counter(
                "reminders_scheduled_total",
                "Reminders added to the schedule (or revived)",
            )),
            reminders_cancelled_total: metrics.register(&counter(
                "reminders_cancelled_total",
                "Scheduled reminders cancelled by a task change",
            )),
            reminders_fired_total: metrics.register(&counter_vec(
                "reminders_fired_total",
                "Reminders fired, by lateness",
                &["late"],
            )),
            reminders_expired_total: metrics.register(&counter(
                "reminders_expired_total",
                "Reminders missed by more than REMINDER_EXPIRE_AFTER_MS, not fired",
            )),
            reminder_firing_delay_seconds: metrics.register(&delay),
            events_ignored_total: metrics.register(&counter_vec(
                "notification_events_ignored_total",
                "Consumed events that changed nothing, by reason",
                &["topic", "reason"],
            )),
            delivery_attempts_total: metrics.register(&counter_vec(
                "notification_delivery_attempts_total",
                "Delivery attempts by channel and outcome",
                &["channel", "outcome"],
            )),
            notifications_total: metrics.register(&counter_vec(
                "notifications_total",
                "Finished deliveries by channel and status",
                &["channel", "status"],
            )),
            delivery_attempt_seconds: metrics.register(&attempt_seconds),
        }
    }
}
