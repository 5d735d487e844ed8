//! The transactional outbox every producing service uses: a change writes its events to the
//! `event_outbox` table in its own transaction ([`enqueue`]), and the [`OutboxRelay`] publishes
//! them in order with the idempotent producer, marking each sent only after the brokers
//! acknowledged it (or deleting it then, with no retention: [`RelaySettings::retention`]).
//! [`monitor`] keeps the backlog gauges and deletes what was sent longer ago than the retention.
//! A service starts both, and stops them last, with [`RunningOutbox`].
//!
//! One table (created by the kit's migrations in every service's database), one relay, one set
//! of metrics labelled with the service (`outbox_backlog_rows{service=…}`, …).

mod metrics;
mod relay;
mod running;
pub mod store;

use events::{AnyEvent, Event};

pub use metrics::OutboxMetrics;
pub use relay::{OutboxRelay, RelayError, RelaySettings, Round, monitor};
pub use running::RunningOutbox;
pub use store::{Backlog, NewOutboxRow, OutboxRow};

use crate::db::{DbConnection, DbError};

/// Write an event to the outbox, inside the caller's transaction. An event whose id was
/// written before (a retried or replayed cause) is not written twice while its row is kept
/// (pending, or sent within the relay's retention).
pub fn enqueue<E: Event>(
    conn: &mut DbConnection,
    event: &E,
    traceparent: Option<&str>,
) -> Result<(), DbError> {
    store::insert(conn, &[NewOutboxRow::of(event, traceparent)?])?;
    Ok(())
}

/// [`enqueue`] for events of any type, several at once; returns how many were new.
pub fn enqueue_all(
    conn: &mut DbConnection,
    events: &[AnyEvent],
    traceparent: Option<&str>,
) -> Result<usize, DbError> {
    let rows: Vec<NewOutboxRow> = events
        .iter()
        .map(|e| NewOutboxRow::of_any(e, traceparent))
        .collect();
    store::insert(conn, &rows)
}
