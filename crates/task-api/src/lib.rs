//! task-api: users, tasks and categories over REST (SPEC section 6), every change written with
//! its event in one transaction (an outbox) and relayed to Kafka in order (SPEC section 8), and
//! ingest of tasks that other producers announce on task.created.
//!
//! * [`domain`]: types and rules, parsed at the edge;
//! * [`changes`]: each change as one transaction (row + outbox event);
//! * [`storage`]: diesel tables on SQLite or PostgreSQL;
//! * [`ingest`]: the task.created consumer;
//! * [`http`]: handlers, the web page, the OpenAPI document;
//! * [`mcp`]: the same task operations as MCP tools at `/mcp`;
//! * [`startup`]: wiring and orderly shutdown.

pub mod auth;
pub mod changes;
pub mod config;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod mcp;
pub mod startup;
pub mod storage;
