//! Turns consumed events into audit entries, in batches.

use service_kit::consumer::{EventHandler, HandleError, Received};
use service_kit::db::Database;

use crate::domain::event_type;
use crate::storage::{self, NewAuditEntry, TaskAccess};

/// Appends every consumed event to the audit table.
pub struct AuditRecorder {
    db: Database,
}

impl AuditRecorder {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    fn entry(received: &Received) -> NewAuditEntry {
        let event = &received.event;
        let meta = &received.meta;
        NewAuditEntry {
            event_id: event.event_id().to_owned(),
            topic: meta.topic.name().to_owned(),
            kafka_partition: meta.partition,
            kafka_offset: meta.offset,
            message_key: meta.key.clone(),
            event_type: event_type(meta.topic).to_owned(),
            user_id: event.user_id().map(str::to_owned),
            task_id: event.task_id().map(str::to_owned),
            event_time: event.event_timestamp(),
            recorded_at: events::now_millis(),
            schema_id: meta.schema_id.map(i64::from),
            producer: meta.producer.clone(),
            trace_id: Some(meta.trace.trace_id()),
            payload: event.to_json_string(),
        }
    }

    async fn append(
        &self,
        entries: Vec<NewAuditEntry>,
        access: Vec<TaskAccess>,
    ) -> Result<(), HandleError> {
        let count = entries.len();
        let inserted = self
            .db
            .transaction(move |conn| {
                for a in &access {
                    storage::record_access(conn, a)?;
                }
                storage::append(conn, &entries)
            })
            .await?;
        if inserted < count {
            tracing::debug!(duplicates = count - inserted, "replayed events skipped");
        }
        Ok(())
    }
}

impl EventHandler for AuditRecorder {
    async fn handle(&self, event: &Received) -> Result<(), HandleError> {
        let access = TaskAccess::of(&event.event).into_iter().collect();
        self.append(vec![Self::entry(event)], access).await
    }

    fn max_batch(&self) -> usize {
        500
    }

    async fn handle_batch(&self, events: &[Received]) -> Result<(), HandleError> {
        let access = events
            .iter()
            .filter_map(|r| TaskAccess::of(&r.event))
            .collect();
        self.append(events.iter().map(Self::entry).collect(), access)
            .await
    }
}
