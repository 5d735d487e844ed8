//! Prometheus metrics: one registry per service, the families the runtime itself records, and
//! the text exposition served on `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets for processing and request latencies, in seconds (1 ms … 10 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The metrics every service has; services register their own on [`Metrics::registry`].
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Messages behind the partition's high watermark, from librdkafka statistics.
    pub consumer_lag: IntGaugeVec,
    /// Time from receiving an event to having committed its effects.
    pub event_processing_seconds: HistogramVec,
    /// Events handled, by outcome (applied, duplicate, dead_lettered).
    pub events_total: IntCounterVec,
    /// Events handled together in one batch (1 when the handler does not batch).
    pub batch_size: HistogramVec,
    /// Retries of events after a retryable failure.
    pub event_retries_total: IntCounterVec,
    /// Events sent to a dead-letter topic, by reason.
    pub dead_letters_total: IntCounterVec,
    /// Times a partition was paused because its queue reached its bound: the service is
    /// behind on it (catching up, or its handler is slow or failing).
    pub partition_pauses_total: IntCounterVec,
    pub http_requests_total: IntCounterVec,
    pub http_request_duration_seconds: HistogramVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "kafka_consumer_lag_messages",
                "Messages between the committed/consumed position and the high watermark",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        let event_processing_seconds = HistogramVec::new(
            HistogramOpts::new(
                "event_processing_seconds",
                "Time to process one consumed event, effects committed",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["topic"],
        )
        .expect("valid metric");
        let events_total = IntCounterVec::new(
            Opts::new("events_consumed_total", "Consumed events by outcome"),
            &["topic", "outcome"],
        )
        .expect("valid metric");
        let batch_size = HistogramVec::new(
            HistogramOpts::new("event_batch_size", "Events handled together in one batch").buckets(
                vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
            ),
            &["topic"],
        )
        .expect("valid metric");
        let event_retries_total = IntCounterVec::new(
            Opts::new("event_retries_total", "Retries after a retryable failure"),
            &["topic"],
        )
        .expect("valid metric");
        let dead_letters_total = IntCounterVec::new(
            Opts::new("dead_letters_total", "Events sent to a dead-letter topic"),
            &["topic", "reason"],
        )
        .expect("valid metric");
        let partition_pauses_total = IntCounterVec::new(
            Opts::new(
                "kafka_consumer_partition_pauses_total",
                "Partitions paused because their queue of unhandled events reached its bound",
            ),
            &["topic"],
        )
        .expect("valid metric");
        let http_requests_total = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_request_duration_seconds = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )
        .expect("valid metric");
        for c in [
            Box::new(consumer_lag.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(event_processing_seconds.clone()),
            Box::new(events_total.clone()),
            Box::new(batch_size.clone()),
            Box::new(event_retries_total.clone()),
            Box::new(dead_letters_total.clone()),
            Box::new(partition_pauses_total.clone()),
            Box::new(http_requests_total.clone()),
            Box::new(http_request_duration_seconds.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Self {
            registry,
            consumer_lag,
            event_processing_seconds,
            events_total,
            batch_size,
            event_retries_total,
            dead_letters_total,
            partition_pauses_total,
            http_requests_total,
            http_request_duration_seconds,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Register a service's own collector.
    pub fn register<C: prometheus::core::Collector + Clone + 'static>(&self, collector: &C) -> C {
        self.registry
            .register(Box::new(collector.clone()))
            .expect("metric names are unique");
        collector.clone()
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
