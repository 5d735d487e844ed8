//! The database: diesel over SQLite (default) or PostgreSQL behind one r2d2 pool, chosen by
//! `DATABASE_URL`, with embedded migrations, and the inbox that makes consumers idempotent.
//!
//! Times are stored as BIGINT epoch milliseconds and ids as TEXT on both backends, so one
//! diesel schema serves both. Statements diesel cannot express for the multi-backend connection
//! (upserts) match on [`DbConnection`] and run per backend.
//!
//! Diesel is synchronous: [`Database::run`] moves the work onto tokio's blocking pool so the
//! async executor never waits on the database.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

pub type DbPool = Pool<ConnectionManager<DbConnection>>;
pub type PooledDb = PooledConnection<ConnectionManager<DbConnection>>;

/// Advisory lock key held while migrating (an arbitrary constant shared by every service).
const MIGRATION_LOCK_KEY: i64 = 0x0074_6173_6b6d_6967;

/// The kit's own tables (the inbox), migrated before the service's.
const KIT_SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const KIT_POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A service's migrations, one set per backend (their DDL differs in sequences and types).
pub struct Migrations {
    pub sqlite: &'static EmbeddedMigrations,
    pub postgres: &'static EmbeddedMigrations,
}

/// Only the kit's own tables (the inbox, the outbox): for tests and tools of the kit itself
/// (running the kit's set twice finds nothing pending the second time).
pub const KIT_ONLY: Migrations = Migrations {
    sqlite: &KIT_SQLITE,
    postgres: &KIT_POSTGRES,
};

/// Lets a `&'static EmbeddedMigrations` be run (the harness takes its source by value).
struct Source(&'static EmbeddedMigrations);

impl<DB: diesel::backend::Backend> diesel::migration::MigrationSource<DB> for Source {
    fn migrations(
        &self,
    ) -> diesel::migration::Result<Vec<Box<dyn diesel::migration::Migration<DB>>>> {
        diesel::migration::MigrationSource::<DB>::migrations(self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("migration failed: {0}")]
    Migration(String),
}

impl From<diesel::r2d2::PoolError> for DbError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

impl DbError {
    /// The database cannot be reached (or is busy): retry later, the event is not at fault.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            DbError::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                matches!(kind, diesel::result::DatabaseErrorKind::ClosedConnection)
                    || is_busy(info.message())
                    || info.message().contains("terminating connection")
                    || info.message().contains("server closed the connection")
                    || info.message().contains("connection") && info.message().contains("refused")
            }
            DbError::Query(diesel::result::Error::BrokenTransactionManager) => true,
            _ => false,
        }
    }

    /// SQLite refused a write because another connection holds (or changed) the database.
    pub fn is_busy(&self) -> bool {
        matches!(self, DbError::Query(diesel::result::Error::DatabaseError(_, info))
            if is_busy(info.message()))
    }
}

/// The error of work run in a transaction: the caller's own, built from a [`DbError`] by `?`.
/// The transaction only needs to see the storage error it may carry, to run the work again
/// when SQLite was busy.
pub trait TransactionError: From<DbError> {
    /// The storage failure this error is, if it is one.
    fn db_error(&self) -> Option<&DbError>;
}

impl TransactionError for DbError {
    fn db_error(&self) -> Option<&DbError> {
        Some(self)
    }
}

/// Run `f` in a transaction on `conn` (a savepoint when one is open), committed when `f`
/// returns `Ok`, rolled back on any error. Diesel's own wrapper wants an error it can build
/// from its own errors (a failed BEGIN or COMMIT); the caller's error need only come from a
/// [`DbError`].
pub fn within_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    E: From<DbError>,
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
{
    enum Failure<E> {
        Caller(E),
        Storage(diesel::result::Error),
    }
    impl<E> From<diesel::result::Error> for Failure<E> {
        fn from(e: diesel::result::Error) -> Self {
            Failure::Storage(e)
        }
    }
    conn.transaction::<T, Failure<E>, _>(|c| f(c).map_err(Failure::Caller))
        .map_err(|failure| match failure {
            Failure::Caller(e) => e,
            Failure::Storage(e) => E::from(DbError::Query(e)),
        })
}

fn is_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database table is locked")
}

/// SQLite: WAL for concurrent readers, a busy timeout instead of instant "database is locked",
/// foreign keys on, and a 32 MiB page cache plus memory-mapped reads (the default 2 MiB cache
/// made every batch re-read its index pages through the kernel). The pool's connections leave
/// checkpoints to the [`Checkpointer`]; they only checkpoint themselves should the WAL pass
/// [`WAL_PAGES_BOUND`] pages.
#[derive(Debug, Clone, Copy)]
struct SqlitePragmas;

/// WAL pages past which a committing connection checkpoints itself (SQLite's auto-checkpoint):
/// a bound on the WAL should the [`Checkpointer`] fall far behind or be missing, 200 MiB.
const WAL_PAGES_BOUND: u32 = 50_000;

/// How often the [`Checkpointer`] copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Checkpoints a SQLite database's WAL from a thread and connection of its own, so that no
/// writer pays for it.
///
/// With SQLite's auto-checkpoint (every 8,000 pages here before) the connection whose commit
/// took the WAL past the bound copied it back into the database and synced both files before
/// its commit returned: about 30 ms in which task-api's group-commit writer, and every request
/// queued behind it, waited. Measured under a create load (16 clients, 10 s, `loadgen
/// create-tasks --only sqlite`, each batch timed): with auto-checkpoints 34 and 36 batches took
/// over 15 ms, all of it inside their transaction, and create p99 was 27.8 and 29.2 ms; with
/// this thread 5 and 5 did, and p99 was 8.7 and 8.7 ms, at the same create rate. A passive
/// checkpoint blocks neither writers nor readers. The thread stops when the last clone of the
/// [`Database`] is dropped; SQLite checkpoints once more when the last connection closes.
struct Checkpointer {
    /// Dropped with the last clone of the database: the thread sees it and stops.
    _stop: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    fn start(path: &str) -> Option<Arc<Self>> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let path = path.to_owned();
        let spawned = std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || {
                let mut conn = match SqliteConnection::establish(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "no WAL checkpointer: writers checkpoint themselves past the bound");
                        return;
                    }
                };
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    if let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                        tracing::debug!(error = %e, "WAL checkpoint failed; trying again");
                    }
                }
            });
        match spawned {
            Ok(_) => Some(Arc::new(Self { _stop: stop })),
            Err(e) => {
                tracing::warn!(error = %e, "no WAL checkpointer thread: writers checkpoint themselves past the bound");
                None
            }
        }
    }
}

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        if let DbConnection::Sqlite(c) = conn {
            c.batch_execute(
                // busy_timeout first: switching to WAL takes a lock that another connection
                // of the pool may hold while it starts, and must wait for it, not fail.
                "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                 PRAGMA cache_size = -32768; PRAGMA mmap_size = 268435456; \
                 PRAGMA temp_store = MEMORY;",
            )
            .map_err(diesel::r2d2::Error::QueryError)?;
            c.batch_execute(&format!("PRAGMA wal_autocheckpoint = {WAL_PAGES_BOUND};"))
                .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// Wait for the exclusive lock on `<path>.migrate.lock`: one process at a time migrates a SQLite
/// file. The lock goes with the returned file.
fn sqlite_migration_lock(path: &str) -> Result<std::fs::File, DbError> {
    let lock = format!("{path}.migrate.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .and_then(|f| f.lock().map(|()| f))
        .map_err(|e| DbError::Migration(format!("locking {lock}: {e}")))?;
    Ok(file)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The service's database pool.
#[derive(Clone)]
pub struct Database {
    pool: DbPool,
    backend: Backend,
    url: DatabaseUrl,
    /// SQLite only: held by this process's write transactions, shared with the dedicated pools
    /// made from this one (see [`Database::write`]).
    writes: Option<Arc<Mutex<()>>>,
    /// SQLite only: the WAL's checkpoints, shared with the dedicated pools made from this one.
    _checkpointer: Option<Arc<Checkpointer>>,
}

/// Waits for this process's turn to write a SQLite database (nothing on PostgreSQL).
///
/// SQLite has one writer at a time. Without this, two of our own connections that both want to
/// write meet inside SQLite: the loser either sleeps in the busy handler (1 ms growing to
/// 100 ms between tries, whoever else is waiting) or, a deferred transaction that read first,
/// is refused outright and retried. Queued on a mutex, each writer starts the moment the
/// previous one commits. Other processes on the same file still meet the busy timeout.
fn write_turn(writes: &Option<Arc<Mutex<()>>>) -> Option<MutexGuard<'_, ()>> {
    writes
        .as_ref()
        .map(|m| m.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

fn build_pool(url: &DatabaseUrl, max_size: Option<u32>) -> Result<(DbPool, Backend), DbError> {
    // A size is given for dedicated pools only (Database::dedicated).
    let dedicated = max_size.is_some();
    let (manager, backend, default_size) = match url {
        DatabaseUrl::Sqlite(path) => (ConnectionManager::new(path.as_str()), Backend::Sqlite, 4),
        DatabaseUrl::Postgres(url) => (ConnectionManager::new(url.as_str()), Backend::Postgres, 10),
    };
    let max_size = max_size.unwrap_or_else(|| {
        std::env::var("DATABASE_POOL_SIZE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_size)
    });
    let builder = Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(5))
        .connection_customizer(Box::new(SqlitePragmas));
    // The service's own pool must connect at start (a bad DATABASE_URL stops it with one line);
    // a dedicated pool of a running service connects when first used, so a slow database at
    // start (a busy machine, a database still starting) delays its first round instead of
    // crashing the service (compose-test saw notification-service exit that way).
    let pool = if dedicated {
        builder.build_unchecked(manager)
    } else {
        builder.build(manager)?
    };
    Ok((pool, backend))
}

impl Database {
    /// Open the pool (connections are made lazily after the first) and run the migrations.
    pub fn connect(url: &DatabaseUrl, migrations: Migrations) -> Result<Self, DbError> {
        let (pool, backend) = build_pool(url, None)?;
        let db = Self {
            pool,
            backend,
            url: url.clone(),
            writes: (backend == Backend::Sqlite).then(Arc::default),
            _checkpointer: match url {
                DatabaseUrl::Sqlite(path) => Checkpointer::start(path),
                DatabaseUrl::Postgres(_) => None,
            },
        };
        let mut conn = db.pool.get()?;
        let (kit, own) = match backend {
            Backend::Sqlite => (&KIT_SQLITE, migrations.sqlite),
            Backend::Postgres => (&KIT_POSTGRES, migrations.postgres),
        };
        // Several instances may start at once on one database: they migrate one after the
        // other (the second finds nothing pending). PostgreSQL: a session advisory lock.
        // SQLite (processes on one host sharing the file): an exclusive lock on a file beside
        // it, which the kernel releases if the process dies; held until this function returns.
        if let DbConnection::Postgresql(c) = &mut *conn {
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
        }
        let _migrating = match url {
            DatabaseUrl::Sqlite(path) => Some(sqlite_migration_lock(path)?),
            DatabaseUrl::Postgres(_) => None,
        };
        let mut result = Ok(());
        for set in [kit, own] {
            result = match &mut *conn {
                DbConnection::Sqlite(c) => c.run_pending_migrations(Source(set)).map(|_| ()),
                DbConnection::Postgresql(c) => c.run_pending_migrations(Source(set)).map(|_| ()),
            }
            .map_err(|e| DbError::Migration(e.to_string()));
            if result.is_err() {
                break;
            }
        }
        if let DbConnection::Postgresql(c) = &mut *conn {
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
        }
        result?;
        Ok(db)
    }

    /// A pool of its own on the same database, of `size` connections, for background work that
    /// must not queue behind request handling for a connection (the outbox relay: under load
    /// its rounds waited up to seconds for the shared pool). No migrations: `connect` ran them.
    pub fn dedicated(&self, size: u32) -> Result<Self, DbError> {
        let (pool, backend) = build_pool(&self.url, Some(size))?;
        Ok(Self {
            pool,
            backend,
            url: self.url.clone(),
            writes: self.writes.clone(),
            _checkpointer: self._checkpointer.clone(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where the database is.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Run blocking database work on tokio's blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    {
        self.on_blocking_pool(None, f).await
    }

    /// [`Database::run`] for work that writes: on SQLite it waits for this process's other
    /// writers first (see [`write_turn`]).
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    {
        self.on_blocking_pool(self.writes.clone(), f).await
    }

    /// Run `f` on a pool connection on tokio's blocking pool, after taking `writes` (if any).
    async fn on_blocking_pool<T, F>(
        &self,
        writes: Option<Arc<Mutex<()>>>,
        f: F,
    ) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = write_turn(&writes);
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("database task failed: {e}")))?
    }

    /// Run `f` in a transaction, after this process's other SQLite writers (see
    /// [`write_turn`]), retrying a bounded number of times when SQLite still reports the
    /// database busy (another process writing).
    ///
    /// `f` ends with the caller's own error (a domain refusal beside storage failures, say), so
    /// a change function returns one `Result`; any error rolls the transaction back.
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: TransactionError + Send + 'static,
        F: Fn(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        let (pool, writes) = (self.pool.clone(), self.writes.clone());
        tokio::task::spawn_blocking(move || {
            let _turn = write_turn(&writes);
            let mut conn = pool.get().map_err(DbError::from)?;
            let mut attempt = 0;
            loop {
                match within_transaction(&mut conn, &f) {
                    Err(e) if e.db_error().is_some_and(DbError::is_busy) && attempt < 20 => {
                        attempt += 1;
                        std::thread::sleep(Duration::from_millis(5 * attempt));
                    }
                    other => return other,
                }
            }
        })
        .await
        .unwrap_or_else(|e| Err(DbError::Unavailable(format!("database task failed: {e}")).into()))
    }

    /// Whether a connection can run a trivial query (for `/readyz`).
    pub async fn ping(&self) -> bool {
        self.run(|conn| conn.batch_execute("SELECT 1").map_err(DbError::from))
            .await
            .is_ok()
    }
}

impl From<DbError> for diesel::result::Error {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Query(q) => q,
            other => diesel::result::Error::QueryBuilderError(other.to_string().into()),
        }
    }
}

diesel::table! {
    inbox (consumer, event_id) {
        consumer -> Text,
        event_id -> Text,
        topic -> Text,
        processed_at -> BigInt,
    }
}

/// Record that `consumer` applies `event_id`; `false` when it already had. Call inside the
/// transaction that applies the event's effects, and skip the effects on `false`.
pub fn claim_event(
    conn: &mut DbConnection,
    consumer: &str,
    event_id: &str,
    topic: &str,
) -> Result<bool, DbError> {
    let row = (
        inbox::consumer.eq(consumer),
        inbox::event_id.eq(event_id),
        inbox::topic.eq(topic),
        inbox::processed_at.eq(events::now_millis()),
    );
    let inserted = match conn {
        DbConnection::Sqlite(c) => diesel::insert_into(inbox::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c)?,
        DbConnection::Postgresql(c) => diesel::insert_into(inbox::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c)?,
    };
    Ok(inserted == 1)
}

/// Apply `effects` once per `(consumer, event_id)`: the inbox row and the effects commit in one
/// transaction. Returns `None` when the event had already been applied.
pub async fn apply_once<T, E, F>(
    db: &Database,
    consumer: &'static str,
    event_id: String,
    topic: &'static str,
    effects: F,
) -> Result<Option<T>, E>
where
    T: Send + 'static,
    E: TransactionError + Send + 'static,
    F: Fn(&mut DbConnection) -> Result<T, E> + Send + 'static,
{
    db.transaction(move |conn| {
        if claim_event(conn, consumer, &event_id, topic)? {
            effects(conn).map(Some)
        } else {
            Ok(None)
        }
    })
    .await
}
