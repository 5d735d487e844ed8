//! The gateway's own metrics, registered beside the runtime's on `/metrics`.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, exponential_buckets,
};
use service_kit::metrics::Metrics;

use crate::messages::MessageKind;

#[derive(Clone)]
pub struct GatewayMetrics {
    /// Open WebSocket connections.
    pub connections: IntGauge,
    /// Distinct users with at least one open connection.
    pub connected_users: IntGauge,
    pub connections_opened: IntCounter,
    /// Closed connections by reason (client, going_away, slow_consumer, ping_timeout, …).
    pub connections_closed: IntCounterVec,
    /// Upgrades refused before the handshake, by reason.
    pub upgrades_rejected: IntCounterVec,
    /// Event messages written to connections, by type (live and replayed).
    pub messages_sent: IntCounterVec,
    /// Connections closed because their send queue overflowed.
    pub slow_clients_dropped: IntCounter,
    /// Events Kafka delivered again that clients had already been sent.
    pub duplicates_skipped: IntCounter,
    /// Event time to the message being handed to the connection, live messages only.
    pub delivery_latency: Histogram,
    pub messages_replayed: IntCounter,
    pub resyncs: IntCounter,
    /// Reconnects served by reading Kafka back, by outcome (served, too_far, unavailable).
    pub read_backs: IntCounterVec,
    /// Messages held for resume, over all users.
    pub replay_buffered: IntGauge,
}

impl GatewayMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let connections_closed = IntCounterVec::new(
            Opts::new(
                "ws_connections_closed_total",
                "Closed WebSocket connections",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let upgrades_rejected = IntCounterVec::new(
            Opts::new(
                "ws_upgrades_rejected_total",
                "WebSocket upgrades refused before the handshake",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let messages_sent = IntCounterVec::new(
            Opts::new("ws_messages_sent_total", "Event messages sent to clients"),
            &["type"],
        )
        .expect("valid metric");
        // Initialise every series, so dashboards see zeros rather than nothing.
        for kind in MessageKind::ALL {
            messages_sent.with_label_values(&[kind.name()]);
        }
        let read_backs = IntCounterVec::new(
            Opts::new(
                "ws_read_backs_total",
                "Reconnects whose cursor was older than the buffer, read back from Kafka",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        for outcome in ["served", "too_old", "too_far", "unavailable"] {
            read_backs.with_label_values(&[outcome]);
        }
        // 0.5 ms … ~16 s: the interesting part is single-digit milliseconds on one machine.
        let latency_buckets = exponential_buckets(0.0005, 2.0, 16).expect("valid buckets");
        Self {
            connections: metrics.register(
                &IntGauge::new("ws_connections", "Open WebSocket connections")
                    .expect("valid metric"),
            ),
            connected_users: metrics.register(
                &IntGauge::new(
                    "ws_connected_users",
                    "Distinct users with an open connection",
                )
                .expect("valid metric"),
            ),
            connections_opened: metrics.register(
                &IntCounter::new(
                    "ws_connections_opened_total",
                    "WebSocket connections opened",
                )
                .expect("valid metric"),
            ),
            connections_closed: metrics.register(&connections_closed),
            upgrades_rejected: metrics.register(&upgrades_rejected),
            messages_sent: metrics.register(&messages_sent),
            slow_clients_dropped: metrics.register(
                &IntCounter::new(
                    "ws_slow_clients_dropped_total",
                    "Connections closed because their send queue overflowed",
                )
                .expect("valid metric"),
            ),
            duplicates_skipped: metrics.register(
                &IntCounter::new(
                    "ws_duplicate_events_skipped_total",
                    "Events redelivered by Kafka and not sent again",
                )
                .expect("valid metric"),
            ),
            delivery_latency: metrics.register(
                &Histogram::with_opts(
                    HistogramOpts::new(
                        "ws_delivery_latency_seconds",
                        "From the event's timestamp to its message being sent to a client",
                    )
                    .buckets(latency_buckets),
                )
                .expect("valid metric"),
            ),
            messages_replayed: metrics.register(
                &IntCounter::new(
                    "ws_messages_replayed_total",
                    "Messages replayed to reconnecting clients",
                )
                .expect("valid metric"),
            ),
            resyncs: metrics.register(
                &IntCounter::new(
                    "ws_resyncs_total",
                    "Reconnects whose cursor could not be served",
                )
                .expect("valid metric"),
            ),
            read_backs: metrics.register(&read_backs),
            replay_buffered: metrics.register(
                &IntGauge::new(
                    "ws_replay_buffer_messages",
                    "Messages held for resume, all users",
                )
                .expect("valid metric"),
            ),
        }
    }
}
