//! The event contracts of the task platform.
//!
//! * [`catalogue`]: every topic and its settings, the services and their dead-letter topics;
//! * [`model`]: one Rust type per topic, identical to `schemas/<topic>.avsc`;
//! * [`codec`]: Confluent wire-format encoding/decoding through the schema registry;
//! * [`publish`]: typed publishing with the idempotent producer;
//! * [`registry`]: registry administration for tooling and tests;
//! * [`validate`]: the checks that reject well-typed but impossible events;
//! * [`names`]: the client-facing names of the enums (`as_str`, `FromStr`);
//! * [`task_view`]: the task as clients see it, read from any task event;
//! * [`audience`]: who sees an event (ws-gateway's readers, the reliability suite's ledger).

pub mod access;
pub mod admin;
pub mod audience;
pub mod catalogue;
pub mod codec;
pub mod ids;
pub mod model;
pub mod names;
pub mod publish;
pub mod registry;
pub mod sample;
pub mod task_view;
pub mod time;
pub mod validate;

pub use audience::{Sees, audience};
pub use catalogue::{DeadLetterTopic, Service, Topic, TopicSpec};
pub use codec::{DecodeError, EncodeError, EventCodec};
pub use model::*;
pub use names::UnknownName;
pub use publish::{Delivered, EventPublisher, PublishError, headers, producer_config};
pub use task_view::{
    CollaboratorView, DeletedTaskView, RecurrenceView, ReminderView, Role, TaskState, TaskView,
    role_in,
};
pub use validate::{InvalidEvent, Validate};

/// Now as epoch milliseconds, the unit of every time on the wire.
pub fn now_millis() -> EpochMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as EpochMillis)
        .unwrap_or(0)
}
