//! The service's tables (diesel), one module per table. Times are epoch ms, ids text, on both
//! backends. Statements diesel cannot express for the multi-backend connection (insert-or-ignore,
//! `FOR UPDATE SKIP LOCKED`) match on the connection and run per backend.

pub mod deliveries;
pub mod push;
pub mod reminders;
pub mod schema;
pub mod tasks;
pub mod users;

/// Rows per multi-row INSERT: far below SQLite's bound on variables (about 20 a row).
pub(crate) const ROWS_PER_STATEMENT: usize = 500;
