//! Every change a client can make, each as one database transaction that writes the change and
//! the event announcing it (the outbox). Nothing here publishes: the relay does, after commit.
//! Task changes share transactions with concurrent ones through [`group_commit`].

pub mod categories;
pub mod group_commit;
pub mod shares;
pub mod tasks;
pub mod users;

use service_kit::db::DbError;
use service_kit::http::Problem;

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
    /// The input is invalid (a 422 problem listing the fields).
    #[error("invalid input")]
    Invalid(Problem),
    /// A concurrent change of the same row won: the caller retries with fresh state.
    #[error("concurrent change")]
    Raced,
    #[error(transparent)]
    Storage(#[from] DbError),
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

/// Run `f` in one transaction whose domain outcome travels beside the storage result: a
/// refused change (not found, precondition failed) commits nothing because it wrote nothing.
pub async fn in_transaction<T, F>(db: &service_kit::db::Database, f: F) -> Result<T, ChangeError>
where
    T: Send + 'static,
    F: Fn(&mut service_kit::db::DbConnection) -> Result<Result<T, ChangeError>, DbError>
        + Send
        + 'static,
{
    db.transaction(move |conn| {
        let outcome = f(conn)?;
        // A storage error inside the domain outcome must roll back: surface it as the
        // transaction's own error.
        match outcome {
            Err(ChangeError::Storage(e)) => Err(e),
            other => Ok(other),
        }
    })
    .await
    .map_err(ChangeError::Storage)?
}
