//! Diesel storage of users, categories, tasks, idempotency keys and the outbox. Functions take a
//! connection so that callers compose them into one transaction (a change and its event).

pub mod categories;
pub mod idempotency;
pub mod phones;
pub mod push;
pub mod schema;
pub mod shares;
pub mod tasks;
pub mod users;

use service_kit::db::DbError;

/// A stored value that cannot be read back (a bug or a hand-edited row), as a database error.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> DbError {
    DbError::Query(diesel::result::Error::DeserializationError(
        format!("stored {what} unreadable: {e}").into(),
    ))
}

/// Whether a failed statement hit a unique constraint (a concurrent insert of the same key).
pub fn is_unique_violation(e: &DbError) -> bool {
    matches!(
        e,
        DbError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}
