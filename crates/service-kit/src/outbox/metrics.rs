//! One set of outbox metrics for every service, labelled with the service's name.

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

use crate::metrics::{LATENCY_BUCKETS, Metrics};

#[derive(Clone)]
pub struct OutboxMetrics {
    service: &'static str,
    /// Rows written but not yet acknowledged by the brokers.
    pub backlog_rows: IntGaugeVec,
    /// Age of the oldest of them (0 when none).
    pub oldest_unsent_age_seconds: GaugeVec,
    /// Rows set aside as never publishable (an alert fires while any exist).
    pub dead_rows: IntGaugeVec,
    pub published_total: IntCounterVec,
    /// Rows whose publication failed (retried later).
    pub publish_failures_total: IntCounterVec,
    /// Rows set aside, counted when it happens.
    pub dead_rows_total: IntCounterVec,
    /// From writing the row to the brokers' acknowledgement.
    pub publish_latency_seconds: HistogramVec,
}

impl OutboxMetrics {
    pub fn register(metrics: &Metrics, service: events::Service) -> Self {
        let gauge = |name: &str, help: &str| {
            metrics
                .register(&IntGaugeVec::new(Opts::new(name, help), &["service"]).expect("metric"))
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            metrics.register(&IntCounterVec::new(Opts::new(name, help), labels).expect("metric"))
        };
        // Names are fixed and registered once per registry: a failure is a programming error.
        let m = Self {
            service: service.name(),
            backlog_rows: gauge("outbox_backlog_rows", "Outbox rows not yet published"),
            oldest_unsent_age_seconds: metrics.register(
                &GaugeVec::new(
                    Opts::new(
                        "outbox_oldest_unsent_age_seconds",
                        "Age of the oldest unpublished outbox row",
                    ),
                    &["service"],
                )
                .expect("metric"),
            ),
            dead_rows: gauge(
                "outbox_dead_rows",
                "Outbox rows set aside as never publishable (see the event_outbox table)",
            ),
            published_total: counter(
                "outbox_published_total",
                "Outbox rows published, by topic",
                &["service", "topic"],
            ),
            publish_failures_total: counter(
                "outbox_publish_failures_total",
                "Outbox rows whose publication failed (retried later)",
                &["service"],
            ),
            dead_rows_total: counter(
                "outbox_dead_rows_total",
                "Outbox rows set aside as never publishable",
                &["service"],
            ),
            publish_latency_seconds: metrics.register(
                &HistogramVec::new(
                    HistogramOpts::new(
                        "outbox_publish_latency_seconds",
                        "Time from writing an outbox row to the brokers' acknowledgement",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["service"],
                )
                .expect("metric"),
            ),
        };
        // The service's series exist from the start (at 0), so dashboards and alerts see them
        // before the first row is written.
        let service = [m.service];
        m.backlog_rows.with_label_values(&service);
        m.oldest_unsent_age_seconds.with_label_values(&service);
        m.dead_rows.with_label_values(&service);
        m.publish_failures_total.with_label_values(&service);
        m.dead_rows_total.with_label_values(&service);
        m.publish_latency_seconds.with_label_values(&service);
        m
    }

    pub fn service(&self) -> &'static str {
        self.service
    }
}
