//! recurring-task-service: follows every recurring task series on the task topics and, when a
//! task of a series is completed, publishes task.created for the series' next occurrence,
//! exactly once (SPEC sections 5, 7, 8). Also previews rules and shows a user's series.
//!
//! ```text
//!  task.* ──▶ consumer ──(one DB tx: inbox row, task state, series, ledger+outbox row)──▶ DB
//!                                                         │ notify
//!                                   OutboxRelay ◀─────────┘ ──▶ task.created (deterministic ids)
//! ```

pub mod config;
pub mod consumer;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod storage;
