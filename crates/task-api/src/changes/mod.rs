//! Every change a client can make, each as one database transaction that writes the change and
//! the event announcing it (the outbox). Nothing here publishes: the relay does, after commit.
//! Task changes share transactions with concurrent ones through [`group_commit`].
//!
//! A change returns one `Result<_, ChangeError>`: the domain's refusals and storage failures
//! alike roll its transaction back (a refusal wrote nothing anyway). Only the HTTP edge (and
//! MCP's) turns a `ChangeError` into a problem document.

pub mod categories;
pub mod group_commit;
pub mod phone;
pub mod push;
pub mod shares;
pub mod tasks;
pub mod users;

use service_kit::db::{DbError, TransactionError};

use crate::domain::Invalid;

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// `If-Match` named another version than the current one.
    #[error("version {current} is current, not the one in If-Match")]
    PreconditionFailed { current: i64 },
    /// The request conflicts with stored state (a taken email, a category in use).
    #[error("{slug}: {detail}")]
    Conflict { slug: &'static str, detail: String },
    /// The input is invalid (every invalid field, with what is wrong).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A concurrent change of the same row won: the caller retries with fresh state.
    #[error("concurrent change")]
    Raced,
    #[error(transparent)]
    Storage(#[from] DbError),
}

impl TransactionError for ChangeError {
    fn db_error(&self) -> Option<&DbError> {
        match self {
            ChangeError::Storage(e) => Some(e),
            _ => None,
        }
    }
}

impl From<diesel::result::Error> for ChangeError {
    fn from(e: diesel::result::Error) -> Self {
        ChangeError::Storage(DbError::Query(e))
    }
}

/// How often a change is retried after losing a race on the same row.
pub const RACE_RETRIES: usize = 5;

/// Run a change that reports `Raced` again (fresh state each time), a bounded number of times.
pub async fn retrying<T, F, Fut>(mut change: F) -> Result<T, ChangeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ChangeError>>,
{
    let mut attempt = 0;
    loop {
        match change().await {
            Err(ChangeError::Raced) if attempt < RACE_RETRIES => attempt += 1,
            other => return other,
        }
    }
}
