//! Plumbing every service of the task platform shares.

pub mod auth;
pub mod batch;
pub mod config;
pub mod consumer;
pub mod db;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod outbox;
pub mod push;
pub mod shutdown;
pub mod sms;
pub mod telemetry;
pub mod webhook;

#[cfg(feature = "testing")]
pub mod sms_sink;
#[cfg(feature = "testing")]
pub mod testing;
