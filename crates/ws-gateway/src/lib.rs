//! ws-gateway: every user's task, reminder and notification events, live in their browsers
//! (SPEC section 7).
//!
//! ```text
//!  Kafka (task.*, reminder.triggered, notification.sent; every partition, own group)
//!    │
//!    ▼ consumer: decode, render the client JSON once per event
//!  Hub ── per user: open connections + a bounded replay log; the cursor is the Kafka
//!    │    position (offset per partition), the same on every instance
//!    │    try_send into each connection's bounded queue; a full queue evicts the client
//!    ▼
//!  one task per connection: [read-back from Kafka] ─▶ replay ─▶ queue ─▶ WebSocket;
//!  ping/pong, timeouts, close codes
//! ```
//!
//! A reconnect may land on any instance: the cursor is served from that instance's buffer,
//! or read back from Kafka where the buffer does not reach, or answered with `resync` past
//! the read-back bounds.
//!
//! * `config`: settings from the environment;
//! * `cursor`: the resume position carried by every message (a Kafka position, opaque to clients);
//! * `messages`: events as the JSON the browser receives;
//! * `replay`: the bounded per-user buffer behind `?after=<cursor>`;
//! * `read_back`: what the buffer does not hold, read back from Kafka;
//! * `hub`: who is connected, fan-out, eviction of slow clients;
//! * `consumer`: the Kafka side;
//! * `connection`: one WebSocket's life;
//! * `http`: the upgrade (origin, token, cursor checked before it) and `/ws/stats`;
//! * `metrics`, `startup`.

pub mod config;
pub mod connection;
pub mod consumer;
pub mod cursor;
pub mod http;
pub mod hub;
pub mod messages;
pub mod metrics;
pub mod read_back;
pub mod replay;
pub mod startup;
