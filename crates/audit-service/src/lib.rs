//! audit-service: an append-only history of every event of the system, queryable per user and
//! per task over REST (SPEC section 7).

pub mod config;
pub mod consumer;
pub mod domain;
pub mod http;
pub mod startup;
pub mod storage;
