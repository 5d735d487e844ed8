//! The topic catalogue: the one place that names every topic of the system and its settings.
//!
//! Scripts, the compose file, the Kubernetes manifests and the admin tool all derive from (or are
//! tested against) this table, so a topic's name or retention is never repeated as a literal.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Replication factor of every topic (three brokers).
pub const REPLICATION_FACTOR: i32 = 3;
/// `min.insync.replicas` of every topic: with `acks=all` a write survives the loss of one broker.
pub const MIN_INSYNC_REPLICAS: i32 = 2;
/// `compression.type` of every topic.
pub const COMPRESSION_TYPE: &str = "snappy";
/// Retention of dead-letter topics: long enough to fix a bug and replay after a holiday.
pub const DLQ_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// A topic of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    TaskCreated,
    TaskUpdated,
    TaskCompleted,
    TaskDeleted,
    UserRegistered,
    UserAuthenticated,
    NotificationSent,
    ReminderTriggered,
    UserUpdated,
    TaskShared,
    TaskAssigned,
}

/// Settings of one topic, as the brokers must hold them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: &'static str,
    pub partitions: i32,
    pub retention: Duration,
    /// Name of the event field whose value is the message key.
    pub key_field: &'static str,
    /// Full name of the Avro record every value on the topic has.
    pub value_type: &'static str,
    /// The Avro schema (contents of `schemas/<topic>.avsc`).
    pub schema: &'static str,
}

macro_rules! avsc {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schemas/",
            $file
        ))
    };
}

impl Topic {
    /// Every topic, in the order of the contract's table.
    pub const ALL: [Topic; 11] = [
        Topic::TaskCreated,
        Topic::TaskUpdated,
        Topic::TaskCompleted,
        Topic::TaskDeleted,
        Topic::UserRegistered,
        Topic::UserAuthenticated,
        Topic::NotificationSent,
        Topic::ReminderTriggered,
        Topic::UserUpdated,
        Topic::TaskShared,
        Topic::TaskAssigned,
    ];

    /// The six topics that carry task changes; each event on them says who may see the task.
    pub const TASKS: [Topic; 6] = [
        Topic::TaskCreated,
        Topic::TaskUpdated,
        Topic::TaskCompleted,
        Topic::TaskDeleted,
        Topic::TaskShared,
        Topic::TaskAssigned,
    ];

    pub const fn spec(self) -> TopicSpec {
        match self {
            Topic::TaskCreated => TopicSpec {
                name: "task.created",
                partitions: 3,
                retention: DAY.saturating_mul(7),
                key_field: "userId",
                value_type: "com.todoapp.events.TaskCreatedEvent",
                schema: avsc!("task.created.avsc"),
            },
            Topic::TaskUpdated => TopicSpec {
                name: "task.updated",
                partitions: 3,
                retention: DAY.saturating_mul(7),
                key_field: "taskId",
                value_type: "com.todoapp.events.TaskUpdatedEvent",
                schema: avsc!("task.updated.avsc"),
            },
            Topic::TaskCompleted => TopicSpec {
                name: "task.completed",
                partitions: 3,
                retention: DAY.saturating_mul(7),
                key_field: "taskId",
                value_type: "com.todoapp.events.TaskCompletedEvent",
                schema: avsc!("task.completed.avsc"),
            },
            Topic::TaskDeleted => TopicSpec {
                name: "task.deleted",
                partitions: 3,
                retention: DAY.saturating_mul(7),
                key_field: "taskId",
                value_type: "com.todoapp.events.TaskDeletedEvent",
                schema: avsc!("task.deleted.avsc"),
            },
            Topic::UserRegistered => TopicSpec {
                name: "user.registered",
                partitions: 3,
                retention: DAY.saturating_mul(30),
                key_field: "userId",
                value_type: "com.todoapp.events.UserRegisteredEvent",
                schema: avsc!("user.registered.avsc"),
            },
            Topic::UserAuthenticated => TopicSpec {
                name: "user.authenticated",
                partitions: 1,
                retention: DAY,
                key_field: "userId",
                value_type: "com.todoapp.events.UserAuthenticatedEvent",
                schema: avsc!("user.authenticated.avsc"),
            },
            Topic::NotificationSent => TopicSpec {
                name: "notification.sent",
                partitions: 3,
                retention: DAY.saturating_mul(7),
                key_field: "notificationId",
                value_type: "com.todoapp.events.NotificationSentEvent",
                schema: avsc!("notification.sent.avsc"),
            },
            Topic::ReminderTriggered => TopicSpec {
                name: "reminder.triggered",
                partitions: 3,
                retention: DAY.saturating_mul(7),
                key_field: "reminderId",
                value_type: "com.todoapp.events.ReminderTriggeredEvent",
                schema: avsc!("reminder.triggered.avsc"),
            },
            Topic::UserUpdated => TopicSpec {
                name: "user.updated",
                partitions: 3,
                retention: DAY.saturating_mul(30),
                key_field: "userId",
                value_type: "com.todoapp.events.UserUpdatedEvent",
                schema: avsc!("user.updated.avsc"),
            },
            Topic::TaskShared => TopicSpec {
                name: "task.shared",
                partitions: 3,
                retention: DAY.saturating_mul(7),
                key_field: "taskId",
                value_type: "com.todoapp.events.TaskSharedEvent",
                schema: avsc!("task.shared.avsc"),
            },
            Topic::TaskAssigned => TopicSpec {
                name: "task.assigned",
                partitions: 3,
                retention: DAY.saturating_mul(7),
                key_field: "taskId",
                value_type: "com.todoapp.events.TaskAssignedEvent",
                schema: avsc!("task.assigned.avsc"),
            },
        }
    }

    pub const fn name(self) -> &'static str {
        self.spec().name
    }

    /// Registry subject of the topic's values (TopicNameStrategy).
    pub fn subject(self) -> String {
        format!("{}-value", self.name())
    }

    /// Retention in milliseconds, as the `retention.ms` topic config wants it.
    pub fn retention_ms(self) -> u64 {
        self.spec().retention.as_millis() as u64
    }

    /// The broker-side configuration the topic must carry.
    pub fn configs(self) -> [(&'static str, String); 3] {
        [
            ("min.insync.replicas", MIN_INSYNC_REPLICAS.to_string()),
            ("retention.ms", self.retention_ms().to_string()),
            ("compression.type", COMPRESSION_TYPE.to_string()),
        ]
    }

    /// Index in [`Topic::ALL`], for per-topic arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown topic `{0}`")]
pub struct UnknownTopic(pub String);

impl FromStr for Topic {
    type Err = UnknownTopic;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Topic::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| UnknownTopic(s.to_owned()))
    }
}

/// A service of the system, with the topics it consumes (SPEC section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    TaskApi,
    WsGateway,
    NotificationService,
    RecurringTaskService,
    AuditService,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::TaskApi,
        Service::WsGateway,
        Service::NotificationService,
        Service::RecurringTaskService,
        Service::AuditService,
    ];

    /// The service's name: its crate, its `producer` header, its consumer group (except the
    /// gateway, whose instances each read every partition) and the suffix of its dead-letter topics.
    pub const fn name(self) -> &'static str {
        match self {
            Service::TaskApi => "task-api",
            Service::WsGateway => "ws-gateway",
            Service::NotificationService => "notification-service",
            Service::RecurringTaskService => "recurring-task-service",
            Service::AuditService => "audit-service",
        }
    }

    /// The topics the service consumes.
    pub const fn consumes(self) -> &'static [Topic] {
        match self {
            Service::TaskApi => &[Topic::TaskCreated],
            Service::WsGateway => &[
                Topic::TaskCreated,
                Topic::TaskUpdated,
                Topic::TaskCompleted,
                Topic::TaskDeleted,
                Topic::TaskShared,
                Topic::TaskAssigned,
                Topic::ReminderTriggered,
                Topic::NotificationSent,
            ],
            Service::NotificationService => &[
                Topic::TaskCreated,
                Topic::TaskUpdated,
                Topic::TaskCompleted,
                Topic::TaskDeleted,
                Topic::TaskShared,
                Topic::TaskAssigned,
                Topic::UserRegistered,
                Topic::UserUpdated,
                Topic::ReminderTriggered,
            ],
            Service::RecurringTaskService => &Topic::TASKS,
            Service::AuditService => &Topic::ALL,
        }
    }

    /// The topics the service produces to (besides its dead-letter topics).
    pub const fn produces(self) -> &'static [Topic] {
        match self {
            Service::TaskApi => &[
                Topic::TaskCreated,
                Topic::TaskUpdated,
                Topic::TaskCompleted,
                Topic::TaskDeleted,
                Topic::UserRegistered,
                Topic::UserAuthenticated,
                Topic::UserUpdated,
                Topic::TaskShared,
                Topic::TaskAssigned,
            ],
            Service::NotificationService => &[Topic::ReminderTriggered, Topic::NotificationSent],
            Service::RecurringTaskService => &[Topic::TaskCreated],
            Service::WsGateway | Service::AuditService => &[],
        }
    }

    /// Every topic the service reads or writes, once each: what its Kafka user needs ACLs for
    /// (with its dead-letter topics and its consumer group).
    pub fn uses(self) -> Vec<Topic> {
        Topic::ALL
            .into_iter()
            .filter(|t| self.consumes().contains(t) || self.produces().contains(t))
            .collect()
    }

    /// Dead-letter topics of this service, one per consumed topic.
    pub fn dead_letter_topics(self) -> impl Iterator<Item = DeadLetterTopic> {
        self.consumes()
            .iter()
            .map(move |&source| DeadLetterTopic::new(source, self))
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `<topic>.dlq.<service>`: where a service parks what it could not process from `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeadLetterTopic {
    pub source: Topic,
    pub service: Service,
}

impl DeadLetterTopic {
    pub const fn new(source: Topic, service: Service) -> Self {
        Self { source, service }
    }

    pub fn name(&self) -> String {
        format!("{}.dlq.{}", self.source.name(), self.service.name())
    }

    /// Same partition count as the source, so a replay keeps per-key order.
    pub const fn partitions(&self) -> i32 {
        self.source.spec().partitions
    }

    pub fn configs(&self) -> [(&'static str, String); 3] {
        [
            ("min.insync.replicas", MIN_INSYNC_REPLICAS.to_string()),
            ("retention.ms", DLQ_RETENTION.as_millis().to_string()),
            ("compression.type", COMPRESSION_TYPE.to_string()),
        ]
    }

    /// Every dead-letter topic of the system.
    pub fn all() -> impl Iterator<Item = DeadLetterTopic> {
        Service::ALL
            .into_iter()
            .flat_map(Service::dead_letter_topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_parse_back() {
        for topic in Topic::ALL {
            assert_eq!(topic.name().parse::<Topic>(), Ok(topic));
        }
        assert!("task.exploded".parse::<Topic>().is_err());
    }

    #[test]
    fn all_is_in_index_order() {
        for (i, topic) in Topic::ALL.into_iter().enumerate() {
            assert_eq!(topic.index(), i);
        }
    }

    #[test]
    fn retention_matches_the_contract() {
        assert_eq!(Topic::TaskCreated.retention_ms(), 604_800_000);
        assert_eq!(Topic::UserRegistered.retention_ms(), 2_592_000_000);
        assert_eq!(Topic::UserAuthenticated.retention_ms(), 86_400_000);
        assert_eq!(Topic::UserAuthenticated.spec().partitions, 1);
    }

    #[test]
    fn dead_letter_topics_follow_the_naming_rule() {
        let dlq = DeadLetterTopic::new(Topic::TaskCompleted, Service::AuditService);
        assert_eq!(dlq.name(), "task.completed.dlq.audit-service");
        assert_eq!(Service::AuditService.dead_letter_topics().count(), 11);
        assert_eq!(DeadLetterTopic::all().count(), 1 + 8 + 9 + 6 + 11);
    }
}
