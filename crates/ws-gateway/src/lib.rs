//! ws-gateway: every user's task, reminder and notification events, live in their browsers
//! (SPEC section 7).
//!
//! ```text
//!  Kafka (task.*, reminder.triggered, notification.sent; every partition, own group)
//!    │
//!    ▼ consumer: decode, render the client JSON once per event
//!  Hub ── per user: open connections + a bounded replay log (cursor = instance.seq)
//!    │    try_send into each connection's bounded queue; a full queue evicts the client
//!    ▼
//!  one task per connection: queue ─▶ WebSocket; ping/pong, timeouts, close codes
//! ```
//!
//! * `config`: settings from the environment;
//! * `cursor`: the opaque resume position carried by every message;
//! * `messages`: events as the JSON the browser receives;
//! * `replay`: the bounded per-user buffer behind `?after=<cursor>`;
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
pub mod replay;
pub mod startup;
