//! The whole system as real processes, for the end-to-end story and the reliability suite.
//!
//! [`System::start`] runs the five service binaries (built by `cargo test --workspace`) on the
//! real cluster, each with a fresh database and a consumer group of its own positioned at the
//! end of its topics, so a test sees only what it does. Clients speak real HTTP and WebSocket.

#![allow(clippy::unwrap_used)] // test support: a step that cannot go on should stop loudly

pub mod client;
pub mod faults;
pub mod live_view;
pub mod load;
pub mod mail;
pub mod proxy;
pub mod registry_gate;
pub mod system;
pub mod verify;
pub mod webhook;

pub use client::{UserClient, WsClient};
pub use live_view::LiveView;
pub use system::{Svc, System};
