//! notification-service: keeps a durable reminder schedule built from task and user events,
//! fires each reminder once at its time (reminder.triggered), delivers it once on its channel
//! (email, webhook, in-app) and reports every delivery on notification.sent (SPEC sections 5, 7, 8).
//!
//! ```text
//!  task.* user.*  ──▶ consumer ──(tx: users, tasks, reminders)──▶ wake ──▶ scheduler
//!                                                                          │ tx: claim due rows,
//!                                                                          │ mark fired, outbox row
//!  reminder.triggered ◀──────────── outbox relay ◀───────────────────────────┘
//!        │
//!        └──▶ consumer ──(tx: deliveries row, pending)──▶ wake ──▶ delivery worker
//!                                                          email │ webhook │ in_app, retries
//!  notification.sent ◀──────────── outbox relay ◀── tx: delivered/failed + outbox row
//! ```

pub mod config;
pub mod consumer;
pub mod delivery;
pub mod domain;
pub mod due_loop;
pub mod http;
pub mod metrics;
pub mod scheduler;
pub mod startup;
pub mod storage;
