//! Follows the task topics: keeps each series and the state of its tasks, and on the completion
//! of a series task records its next occurrence, once.
//!
//! Each event is applied in one transaction with its inbox row. A completion's next occurrence
//! is recorded in that same transaction (ledger + outbox row); the [`crate::relay`] publishes it
//! after the commit, so a crash between the two loses nothing and duplicates nothing.

use std::sync::Arc;

use events::{AnyEvent, Recurrence};
use recurrence::RecurrenceRule;
use service_kit::consumer::{EventHandler, HandleError, Received};
use service_kit::db::{self, Database, DbConnection, DbError};
use tokio::sync::Notify;

use crate::domain::{
    self, CompletedOccurrence, EndReason, OccurrenceStatus, SeriesEvent, TaskSnapshot, Template,
};
use crate::metrics::SeriesMetrics;
use crate::storage::{self, NextOccurrenceRow, OccurrenceRow, SeriesRow};

/// The inbox consumer name.
pub const CONSUMER: &str = "recurring-task-service";

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The event was applied before (same event id).
    Duplicate,
    /// Series state updated; nothing else to do.
    Tracked,
    /// A completion recorded the next occurrence.
    NextRecorded { task_id: String, due: i64 },
    /// A completion created nothing, for this reason.
    NoNext(&'static str),
    /// The series has no further occurrence.
    Ended(EndReason),
    /// The event contradicts what is known (another user's series): dead-letter it.
    Rejected(String),
}

/// The consumer's event handler.
pub struct SeriesFollower {
    db: Database,
    relay: Arc<Notify>,
    metrics: SeriesMetrics,
    user_id_prefix: Option<String>,
}

impl SeriesFollower {
    pub fn new(
        db: Database,
        relay: Arc<Notify>,
        metrics: SeriesMetrics,
        user_id_prefix: Option<String>,
    ) -> Self {
        Self {
            db,
            relay,
            metrics,
            user_id_prefix,
        }
    }

    fn in_scope(&self, event: &AnyEvent) -> bool {
        match (&self.user_id_prefix, event.user_id()) {
            (None, _) => true,
            (Some(prefix), Some(user)) => user.starts_with(prefix.as_str()),
            (Some(_), None) => false,
        }
    }
}

impl EventHandler for SeriesFollower {
    async fn handle(&self, received: &Received) -> Result<(), HandleError> {
        if !self.in_scope(&received.event) {
            return Ok(());
        }
        let event = match SeriesEvent::from_event(&received.event) {
            Ok(None) => return Ok(()),
            Ok(Some(event)) => event,
            Err(e) => return Err(HandleError::Permanent(e.to_string())),
        };
        let source = Source::of(received);
        let applied = self
            .db
            .transaction(move |conn| apply(conn, &event, &source, events::now_millis()))
            .await?;
        match applied {
            Applied::NextRecorded { task_id, due } => {
                tracing::info!(%task_id, due, trace_id = %received.meta.trace.trace_id(), "next occurrence recorded");
                self.metrics.next_occurrences_total.inc();
                self.relay.notify_one();
            }
            Applied::NoNext(reason) => self
                .metrics
                .completions_without_next_total
                .with_label_values(&[reason])
                .inc(),
            Applied::Ended(reason) => self
                .metrics
                .series_ended_total
                .with_label_values(&[reason.as_str()])
                .inc(),
            Applied::Rejected(reason) => return Err(HandleError::Permanent(reason)),
            Applied::Duplicate | Applied::Tracked => {}
        }
        Ok(())
    }
}

/// Where an event came from, as the ledger records it.
#[derive(Debug, Clone)]
pub struct Source {
    pub event_id: String,
    pub topic: &'static str,
    /// The trace the next occurrence continues.
    pub traceparent: Option<String>,
}

impl Source {
    pub fn of(received: &Received) -> Self {
        Self {
            event_id: received.event.event_id().to_owned(),
            topic: received.meta.topic.name(),
            traceparent: Some(received.meta.trace.child().header()),
        }
    }

    pub fn of_event(event: &AnyEvent) -> Self {
        Self {
            event_id: event.event_id().to_owned(),
            topic: event.topic().name(),
            traceparent: None,
        }
    }
}

/// Apply one series event inside the caller's transaction.
pub fn apply(
    conn: &mut DbConnection,
    event: &SeriesEvent,
    source: &Source,
    now: i64,
) -> Result<Applied, DbError> {
    match event {
        SeriesEvent::Changed(task) => {
            if let Some(reason) = foreign(conn, task)? {
                return Ok(Applied::Rejected(reason));
            }
            if !db::claim_event(conn, CONSUMER, &source.event_id, source.topic)? {
                return Ok(Applied::Duplicate);
            }
            track(conn, task, now)?;
            Ok(Applied::Tracked)
        }
        SeriesEvent::Completed(task) => {
            if let Some(reason) = foreign(conn, task)? {
                return Ok(Applied::Rejected(reason));
            }
            if !db::claim_event(conn, CONSUMER, &source.event_id, source.topic)? {
                return Ok(Applied::Duplicate);
            }
            track(conn, task, now)?;
            record_next(conn, task, source, now)
        }
        SeriesEvent::Deleted {
            task_id,
            user_id,
            series_id,
            version,
        } => {
            let known = storage::find_occurrence(conn, task_id)?;
            let Some(series_id) = series_id
                .clone()
                .or_else(|| known.as_ref().map(|o| o.series_id.clone()))
            else {
                return Ok(Applied::Tracked);
            };
            let series = storage::find_series(conn, &series_id)?;
            if series.as_ref().is_some_and(|s| s.user_id != *user_id)
                || known.as_ref().is_some_and(|o| o.user_id != *user_id)
            {
                return Ok(Applied::Rejected(format!(
                    "task {task_id} or series {series_id} belongs to another user"
                )));
            }
            if !db::claim_event(conn, CONSUMER, &source.event_id, source.topic)? {
                return Ok(Applied::Duplicate);
            }
            if series.is_none() {
                // Deleted before anything else of it arrived: remember the end, so a late
                // completion creates nothing.
                storage::insert_series(
                    conn,
                    &SeriesRow {
                        series_id: series_id.clone(),
                        user_id: user_id.clone(),
                        series_start: now,
                        start_index: i64::MAX,
                        head_index: -1,
                        head_version: 0,
                        recurrence: None,
                        template: json(&Template::unknown())?,
                        ended_at: None,
                        end_reason: None,
                        created_at: now,
                        updated_at: now,
                    },
                )?;
            }
            // Series row before task row, the order every path takes, so concurrent
            // transactions on PostgreSQL never wait on each other in a cycle.
            storage::end_series(conn, &series_id, EndReason::Deleted.as_str(), now)?;
            storage::delete_occurrence(conn, task_id, *version, now)?;
            Ok(Applied::Ended(EndReason::Deleted))
        }
    }
}

/// Why an event about `task` cannot be applied to what is stored, if it cannot: the series or
/// the task belongs to another user (or the task to another series).
fn foreign(conn: &mut DbConnection, task: &TaskSnapshot) -> Result<Option<String>, DbError> {
    if let Some(series) = storage::find_series(conn, &task.series_id)?
        && series.user_id != task.user_id
    {
        return Ok(Some(format!(
            "series {} belongs to another user",
            task.series_id
        )));
    }
    if let Some(known) = storage::find_occurrence(conn, &task.task_id)?
        && (known.user_id != task.user_id || known.series_id != task.series_id)
    {
        return Ok(Some(format!(
            "task {} belongs to another user or series",
            task.task_id
        )));
    }
    Ok(None)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, DbError> {
    serde_json::to_string(value)
        .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(Box::new(e))))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, DbError> {
    serde_json::from_str(text)
        .map_err(|e| DbError::Query(diesel::result::Error::DeserializationError(Box::new(e))))
}

/// Record a task's state and what it says about its series (last writer wins by version).
fn track(conn: &mut DbConnection, task: &TaskSnapshot, now: i64) -> Result<(), DbError> {
    let recurrence = task.recurrence.as_ref().map(json).transpose()?;
    let template = json(&task.template)?;
    let index = i64::from(task.occurrence_index);
    storage::insert_series(
        conn,
        &SeriesRow {
            series_id: task.series_id.clone(),
            user_id: task.user_id.clone(),
            series_start: task.series_start(),
            start_index: index,
            head_index: index,
            head_version: task.version,
            recurrence: recurrence.clone(),
            template: template.clone(),
            ended_at: None,
            end_reason: None,
            created_at: now,
            updated_at: now,
        },
    )?;
    storage::lower_series_start(conn, &task.series_id, index, task.series_start(), now)?;
    storage::advance_head(
        conn,
        &task.series_id,
        index,
        task.version,
        recurrence.as_deref(),
        &template,
        now,
    )?;
    storage::merge_occurrence(
        conn,
        &OccurrenceRow {
            task_id: task.task_id.clone(),
            series_id: task.series_id.clone(),
            user_id: task.user_id.clone(),
            occurrence_index: index,
            version: task.version,
            status: task.status.as_str().to_owned(),
            due_date: task.due_date,
            completed_at: task.completed_at,
            recurrence,
            template,
            updated_at: now,
        },
    )?;
    Ok(())
}

/// After a completion: record the next occurrence of the series unless it exists, the series
/// ended, or the task is no longer completed at its newest known version.
fn record_next(
    conn: &mut DbConnection,
    task: &TaskSnapshot,
    source: &Source,
    now: i64,
) -> Result<Applied, DbError> {
    let Some(series) = storage::find_series(conn, &task.series_id)? else {
        return Ok(Applied::Tracked);
    };
    if series.end_reason.as_deref() == Some(EndReason::Deleted.as_str()) {
        return Ok(Applied::NoNext("series_deleted"));
    }
    // The newest known state of the task, which may be newer than this completion.
    let Some(current) = storage::find_occurrence(conn, &task.task_id)? else {
        return Ok(Applied::Tracked);
    };
    if OccurrenceStatus::parse(&current.status) != Some(OccurrenceStatus::Completed) {
        return Ok(Applied::NoNext("no_longer_completed"));
    }
    let next_index = i64::from(task.occurrence_index) + 1;
    if storage::next_occurrence_exists(conn, &task.series_id, next_index)? {
        return Ok(Applied::NoNext("already_created"));
    }
    let Some(recurrence) = current
        .recurrence
        .as_deref()
        .map(from_json::<Recurrence>)
        .transpose()?
    else {
        storage::end_series(
            conn,
            &series.series_id,
            EndReason::RecurrenceRemoved.as_str(),
            now,
        )?;
        return Ok(Applied::Ended(EndReason::RecurrenceRemoved));
    };
    let rule = match RecurrenceRule::from_event(&recurrence) {
        Ok(rule) => rule,
        Err(e) => return Ok(Applied::Rejected(format!("stored rule: {e}"))),
    };
    let completed = CompletedOccurrence {
        user_id: current.user_id.clone(),
        series_id: current.series_id.clone(),
        task_id: current.task_id.clone(),
        occurrence_index: task.occurrence_index,
        due_date: current.due_date,
        completed_at: current
            .completed_at
            .or(task.completed_at)
            .unwrap_or(task.event_timestamp),
        recurrence,
        template: from_json(&current.template)?,
    };
    let Some(due) = domain::next_due(&rule, series.series_start, &completed) else {
        storage::end_series(conn, &series.series_id, EndReason::Finished.as_str(), now)?;
        return Ok(Applied::Ended(EndReason::Finished));
    };
    let event = domain::next_occurrence_event(&completed, due, now);
    let recorded = storage::record_next_occurrence(
        conn,
        &NextOccurrenceRow {
            series_id: completed.series_id.clone(),
            occurrence_index: next_index,
            task_id: event.task_id.clone(),
            user_id: event.user_id.clone(),
            event_id: event.event_id.clone(),
            source_task_id: completed.task_id.clone(),
            source_event_id: source.event_id.clone(),
            due_date: Some(due),
            created_at: now,
        },
    )?;
    if !recorded {
        return Ok(Applied::NoNext("already_created"));
    }
    // Its task.created leaves through the outbox, committed with the ledger row.
    service_kit::outbox::enqueue(conn, &event, source.traceparent.as_deref())?;
    // The new task is part of the series from now on, even before its task.created returns.
    let next = TaskSnapshot {
        task_id: event.task_id.clone(),
        user_id: event.user_id.clone(),
        series_id: completed.series_id.clone(),
        occurrence_index: task.occurrence_index + 1,
        version: event.version,
        status: OccurrenceStatus::Open,
        due_date: event.due_date,
        completed_at: None,
        created_at: event.created_at,
        event_timestamp: event.event_timestamp,
        recurrence: event.recurrence.clone(),
        template: completed.template.clone(),
    };
    track(conn, &next, now)?;
    storage::reopen_series(conn, &series.series_id, now)?;
    Ok(Applied::NextRecorded {
        task_id: event.task_id,
        due,
    })
}
