//! Ingest of tasks other producers announce on task.created (the recurring engine's next
//! occurrences, importers): each is stored once by its task id, so it appears in the API.
//!
//! task-api's own task.created events are skipped by their `producer` header (the task is
//! already stored). Ingesting publishes nothing: the event is already on the topic.

use events::{AnyEvent, Service};
use service_kit::consumer::{EventHandler, HandleError, Received};
use service_kit::db::{Database, claim_event};

use crate::domain::task::Task;
use crate::storage::tasks;

/// The inbox name of this consumer.
pub const CONSUMER: &str = "task-api.ingest";

pub struct TaskIngest {
    db: Database,
}

impl TaskIngest {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

impl EventHandler for TaskIngest {
    async fn handle(&self, received: &Received) -> Result<(), HandleError> {
        let AnyEvent::TaskCreated(event) = &received.event else {
            return Ok(());
        };
        let producer = received.meta.producer.as_deref().unwrap_or("unknown");
        if producer == Service::TaskApi.name() {
            return Ok(());
        }
        let task = Task::from_created_event(event, producer);
        let event_id = event.event_id.clone();
        let topic = received.meta.topic.name();
        let stored = self
            .db
            .transaction(move |conn| {
                // The inbox skips a replayed event; insert-if-absent skips the same task
                // announced again under another event id (deterministic occurrence ids).
                if !claim_event(conn, CONSUMER, &event_id, topic)? {
                    return Ok(false);
                }
                tasks::insert_if_absent(conn, &task)
            })
            .await?;
        tracing::info!(
            task_id = %event.task_id,
            user_id = %event.user_id,
            producer,
            stored,
            "ingested task.created"
        );
        Ok(())
    }
}
