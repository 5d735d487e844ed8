//! Group commit: concurrent changes share one database transaction.
//!
//! Every change goes through a channel to the writers (one on SQLite, whose writes are serial
//! anyway; a few on PostgreSQL, which runs them in parallel). A free writer takes what is queued
//! (never waiting for more: a lone request is a batch of one and goes at once), runs each
//! change in a savepoint of one transaction, commits once, then answers each request with its
//! own outcome. Under load requests queue while the previous batch commits, so batches grow
//! with the load and one commit (one fsync, one round trip) serves many writes, which is how
//! the create rate beats the one-row-per-transaction ceiling instead of approaching it.
//!
//! * Creates of one batch are checked one by one but written together: multi-row INSERTs for
//!   their tasks, their outbox rows and their Idempotency-Keys, in chunks of power-of-two
//!   sizes that stay prepared on the connection (`service_kit::per_cached_chunk!`). Should that
//!   fail, it is rolled back and each create runs alone in a savepoint.
//! * One bad request fails alone: its savepoint is rolled back, the others commit.
//! * A request is answered only after its batch committed; if the commit fails (the database
//!   went away), every request of the batch gets the storage error (503) and nothing of the
//!   batch was acknowledged to anyone.
//! * SQLite may refuse a transaction that read before writing while another connection wrote
//!   (busy): the whole batch is rolled back and run again, a bounded number of times.
//! * After each commit the outbox relay is woken, so the batch's events leave at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::Connection;
use service_kit::db::{Backend, Database, DbConnection, DbError, within_transaction};
use tokio::sync::{Notify, mpsc, oneshot};

use super::ChangeError;
use super::tasks::{BatchedCreate, CreateTask, Created, create_batch, create_in};

/// Most changes in one transaction: bounds the time a batch holds the write lock.
const MAX_BATCH: usize = 256;
/// Writers on PostgreSQL (each holds one pool connection while its batch runs).
const POSTGRES_WRITERS: usize = 4;
/// Requests waiting for the writers before new ones wait for room (back-pressure).
const QUEUE: usize = 4096;
/// Times a change that lost a deadlock is run again.
const CONFLICT_RETRIES: u32 = 5;
/// Whole-batch retries when SQLite reports the database busy.
const BUSY_RETRIES: u32 = 20;

/// What a change's run leaves once the batch's fate is known: answering its request.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

/// A change run in the batch's transaction: its answer-to-be, and whether it failed because the
/// database was busy.
type Run = Box<dyn Fn(&mut DbConnection) -> (Answer, bool) + Send + Sync>;

/// Where a request waits for its outcome; shared with every answer a run leaves, so a batch
/// run again does not drop it.
type Reply<T> = Arc<Mutex<Option<oneshot::Sender<Result<T, ChangeError>>>>>;

/// One change waiting for its batch.
struct Job {
    /// Runs the change in a savepoint of the batch's transaction; `true` beside the answer
    /// when it failed because the database was busy (the batch is then run again).
    run: Run,
    /// Answers the request when its batch could not even start (no connection).
    fail: Box<dyn Fn(&str) + Send + Sync>,
    /// A create, which the batch writes together with its other creates (`run` is then how it
    /// runs alone).
    create: Option<CreateJob>,
}

struct CreateJob {
    cmd: CreateTask,
    reply: Reply<Created>,
}

/// The handle requests use; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Start the writer on `db`; it wakes `relay` after every commit and stops when every
    /// handle is dropped (after answering what was queued).
    pub fn start(db: Database, relay: Arc<Notify>) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        // SQLite has one writer at a time anyway: one batch at a time. PostgreSQL runs writes
        // in parallel: several writers, each batching what is queued when it is free, keep
        // its connections busy instead of serialising every change onto one.
        let writers = match db.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => POSTGRES_WRITERS,
        };
        for _ in 0..writers {
            tokio::spawn(writer(db.clone(), queue.clone(), relay.clone()));
        }
        Self { jobs }
    }

    /// Run a change in the next batch, in a savepoint of its own: any error (a refusal or a
    /// storage failure) rolls back that savepoint only.
    ///
    /// A change that lost a deadlock against another batch (PostgreSQL: two batches inserting
    /// the same Idempotency-Keys in opposite orders) is run again in a later batch, once the
    /// other one has committed.
    pub async fn run<T, F>(&self, change: F) -> Result<T, ChangeError>
    where
        T: Send + 'static,
        F: Fn(&mut DbConnection) -> Result<T, ChangeError> + Send + Sync + 'static,
    {
        let change = Arc::new(change);
        let mut attempt = 0;
        loop {
            match self.run_once(change.clone()).await {
                Err(ChangeError::Storage(e)) if is_conflict(&e) && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "change lost a conflict with another batch; running it again");
                }
                other => return other,
            }
        }
    }

    /// Create a task in the next batch, written together with the batch's other creates.
    /// Retried like [`Self::run`] after losing a deadlock.
    pub async fn create(&self, cmd: CreateTask) -> Result<Created, ChangeError> {
        let mut attempt = 0;
        loop {
            match self.create_once(cmd.clone()).await {
                Err(ChangeError::Storage(e)) if is_conflict(&e) && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "create lost a conflict with another batch; running it again");
                }
                other => return other,
            }
        }
    }

    async fn create_once(&self, cmd: CreateTask) -> Result<Created, ChangeError> {
        let alone = cmd.clone();
        let (NewJob { mut job, reply }, answer) = job(move |conn| create_in(conn, &alone));
        // The reply lives in the job only: should the writer drop a job unanswered, the
        // request gets an error rather than waiting forever.
        job.create = Some(CreateJob { cmd, reply });
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn run_once<T, F>(&self, change: Arc<F>) -> Result<T, ChangeError>
    where
        T: Send + 'static,
        F: Fn(&mut DbConnection) -> Result<T, ChangeError> + Send + Sync + 'static,
    {
        let (NewJob { job, reply }, answer) = job(move |conn| change(conn));
        // The job alone holds the reply (see create_once).
        drop(reply);
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// A job and where its outcome arrives.
struct NewJob<T> {
    job: Job,
    reply: Reply<T>,
}

/// The job of a change run alone in a savepoint.
fn job<T, F>(change: F) -> (NewJob<T>, oneshot::Receiver<Result<T, ChangeError>>)
where
    T: Send + 'static,
    F: Fn(&mut DbConnection) -> Result<T, ChangeError> + Send + Sync + 'static,
{
    let (reply, answer) = oneshot::channel();
    let reply: Reply<T> = Arc::new(Mutex::new(Some(reply)));
    let (fail_reply, run_reply) = (reply.clone(), reply.clone());
    let job = Job {
        fail: Box::new(move |reason: &str| {
            send(
                &fail_reply,
                Err(ChangeError::Storage(DbError::Unavailable(
                    reason.to_owned(),
                ))),
            );
        }),
        run: Box::new(move |conn| {
            // A savepoint of the batch's transaction: a failing change is rolled back alone.
            let outcome = within_transaction(conn, &change);
            let busy = matches!(&outcome, Err(ChangeError::Storage(e)) if is_busy(e));
            (answer_of(outcome, run_reply.clone()), busy)
        }),
        create: None,
    };
    (NewJob { job, reply }, answer)
}

/// The answer an outcome gives once the batch's fate is known: a change that succeeded in a
/// batch that did not commit did not happen.
fn answer_of<T: Send + 'static>(outcome: Result<T, ChangeError>, reply: Reply<T>) -> Answer {
    Box::new(move |commit_failed: Option<&str>| {
        let outcome = match (outcome, commit_failed) {
            (Ok(_), Some(reason)) => Err(ChangeError::Storage(DbError::Unavailable(format!(
                "the batch did not commit: {reason}"
            )))),
            (outcome, _) => outcome,
        };
        send(&reply, outcome);
    })
}

fn send<T>(reply: &Reply<T>, outcome: Result<T, ChangeError>) {
    if let Some(reply) = reply.lock().ok().and_then(|mut r| r.take()) {
        let _ = reply.send(outcome);
    }
}

fn stopped() -> ChangeError {
    ChangeError::Storage(DbError::Unavailable("the writer has stopped".to_owned()))
}

/// PostgreSQL gave up one of two transactions waiting for each other.
fn is_conflict(e: &DbError) -> bool {
    matches!(e, DbError::Query(diesel::result::Error::DatabaseError(kind, info))
        if matches!(kind, diesel::result::DatabaseErrorKind::SerializationFailure)
            || info.message().contains("deadlock detected"))
}

fn is_busy(e: &DbError) -> bool {
    e.is_busy()
        || matches!(e, DbError::Query(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("busy"))
}

/// Take the next batch: wait for one job, then whatever else is queued (never waiting for
/// more); `None` once every handle is gone and the queue is empty.
async fn next_batch(queue: &tokio::sync::Mutex<mpsc::Receiver<Job>>) -> Option<Vec<Job>> {
    let mut queue = queue.lock().await;
    let first = queue.recv().await?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}

async fn writer(
    db: Database,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    relay: Arc<Notify>,
) {
    while let Some(batch) = next_batch(&queue).await {
        let batch = Arc::new(batch);
        let answers = db
            .write({
                let batch = batch.clone();
                move |conn| Ok(commit(conn, &batch))
            })
            .await;
        match answers {
            Ok((answers, None)) => {
                relay.notify_one();
                for answer in answers {
                    answer(None);
                }
            }
            Ok((answers, Some(reason))) => {
                tracing::warn!(changes = batch.len(), %reason, "a batch of changes did not commit");
                for answer in answers {
                    answer(Some(&reason));
                }
                // The transaction may have failed before running some changes (BEGIN on a
                // connection the database had closed): they get the storage error too. (`fail`
                // does nothing to a request already answered.)
                for job in batch.iter() {
                    (job.fail)(&reason);
                }
            }
            Err(e) => {
                // No connection at all: nothing ran, every request gets the storage error.
                let reason = e.to_string();
                tracing::warn!(changes = batch.len(), %reason, "a batch of changes could not start");
                for job in batch.iter() {
                    (job.fail)(&reason);
                }
            }
        }
    }
}

/// Run a batch in one transaction, again while SQLite reports busy; the answers and, when the
/// transaction did not commit, why.
fn commit(conn: &mut DbConnection, batch: &[Job]) -> (Vec<Answer>, Option<String>) {
    let mut attempt = 0;
    loop {
        let mut answers = Vec::with_capacity(batch.len());
        let mut busy = false;
        let result = conn.transaction::<_, DbError, _>(|c| {
            let alone = create_together(c, batch, &mut answers, &mut busy);
            for (job, alone) in batch.iter().zip(alone) {
                if alone {
                    let (answer, job_busy) = (job.run)(c);
                    answers.push(answer);
                    busy |= job_busy;
                }
            }
            if busy {
                // Roll the whole batch back and run it again.
                return Err(DbError::Unavailable("database busy".to_owned()));
            }
            Ok(())
        });
        match result {
            Ok(()) => return (answers, None),
            Err(_) if busy && attempt < BUSY_RETRIES => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(5 * u64::from(attempt)));
            }
            Err(e) => return (answers, Some(e.to_string())),
        }
    }
}

/// Write the batch's creates together (in a savepoint: rolled back whole if that fails) and
/// answer those it settled; which jobs must still run alone, per job.
fn create_together(
    conn: &mut DbConnection,
    batch: &[Job],
    answers: &mut Vec<Answer>,
    busy: &mut bool,
) -> Vec<bool> {
    let mut alone: Vec<bool> = batch.iter().map(|j| j.create.is_none()).collect();
    let creates: Vec<(usize, &CreateJob)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, j)| j.create.as_ref().map(|c| (i, c)))
        .collect();
    if creates.is_empty() {
        return alone;
    }
    let cmds: Vec<&CreateTask> = creates.iter().map(|(_, c)| &c.cmd).collect();
    match within_transaction(conn, |c| create_batch(c, &cmds)) {
        Ok(outcomes) => {
            for ((i, create), outcome) in creates.into_iter().zip(outcomes) {
                match outcome {
                    BatchedCreate::Done(outcome) => {
                        answers.push(answer_of(outcome, create.reply.clone()));
                    }
                    BatchedCreate::After => alone[i] = true,
                }
            }
        }
        Err(e) => {
            *busy |= matches!(&e, ChangeError::Storage(e) if is_busy(e));
            tracing::debug!(error = %e, creates = creates.len(), "creates written together failed; each runs alone");
            for (i, _) in creates {
                alone[i] = true;
            }
        }
    }
    alone
}
