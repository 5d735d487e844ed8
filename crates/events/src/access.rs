//! Least privilege on Kafka: the ACLs each service's user needs, derived from the catalogue
//! (what it consumes, produces and dead-letters), and nothing else. `todoctl acls` prints them
//! for the secured local cluster (`scripts/kafka-security.sh`), and the Kubernetes `KafkaUser`
//! of each service must grant exactly these (`crates/events/tests/deployment.rs` checks).

use std::fmt;

use crate::catalogue::Service;

/// What an ACL applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// One topic, by its exact name.
    Topic(String),
    /// Every consumer group whose id starts with this prefix: the service's own group, the
    /// per-instance groups of ws-gateway and the groups tests give each service all start
    /// with the service's name.
    GroupPrefix(String),
}

/// The operations granted. Each implies `Describe` on its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Read,
    Write,
}

/// One `ALLOW` ACL for a service's user (host `*`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Acl {
    pub resource: Resource,
    pub operation: Operation,
}

impl fmt::Display for Acl {
    /// `topic literal task.created read` / `group prefixed audit-service read`: the form
    /// `todoctl acls` prints, one per line after the principal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, pattern, name) = match &self.resource {
            Resource::Topic(name) => ("topic", "literal", name),
            Resource::GroupPrefix(prefix) => ("group", "prefixed", prefix),
        };
        let operation = match self.operation {
            Operation::Read => "read",
            Operation::Write => "write",
        };
        write!(f, "{kind} {pattern} {name} {operation}")
    }
}

impl Service {
    /// Everything the service's Kafka user may do: read the topics it consumes (and commit in
    /// its groups), write the topics it produces and its own dead-letter topics. An idempotent
    /// producer needs only `Write` on its topics (Kafka 3.0 and later, KIP-679).
    pub fn acls(self) -> Vec<Acl> {
        let topic = |name: &str, operation| Acl {
            resource: Resource::Topic(name.to_owned()),
            operation,
        };
        let mut acls: Vec<Acl> = self
            .consumes()
            .iter()
            .map(|t| topic(t.name(), Operation::Read))
            .chain(
                self.produces()
                    .iter()
                    .map(|t| topic(t.name(), Operation::Write)),
            )
            .chain(
                self.dead_letter_topics()
                    .map(|d| topic(&d.name(), Operation::Write)),
            )
            .collect();
        if !self.consumes().is_empty() {
            acls.push(Acl {
                resource: Resource::GroupPrefix(self.name().to_owned()),
                operation: Operation::Read,
            });
        }
        acls.sort();
        acls
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Topic;

    #[test]
    fn the_recurring_engine_reads_task_events_and_writes_only_task_created_and_its_dead_letters() {
        let acls = Service::RecurringTaskService.acls();
        let writes: Vec<String> = acls
            .iter()
            .filter(|a| a.operation == Operation::Write)
            .map(|a| a.to_string())
            .collect();
        assert!(writes.contains(&"topic literal task.created write".to_owned()));
        assert!(
            writes.contains(
                &"topic literal task.deleted.dlq.recurring-task-service write".to_owned()
            )
        );
        assert_eq!(writes.len(), 1 + Topic::TASKS.len(), "{writes:?}");
        assert!(
            acls.iter()
                .any(|a| a.to_string() == "group prefixed recurring-task-service read")
        );
        assert!(!acls.iter().any(|a| a.to_string().contains("user.")));
    }

    #[test]
    fn no_service_may_write_what_another_produces_alone() {
        let notification = Service::NotificationService.acls();
        assert!(
            !notification
                .iter()
                .any(|a| a.to_string() == "topic literal task.created write")
        );
        let audit = Service::AuditService.acls();
        assert!(audit
            .iter()
            .filter(|a| matches!(a.resource, Resource::Topic(_)))
            .all(|a| a.operation == Operation::Read
                || matches!(&a.resource, Resource::Topic(n) if n.contains(".dlq.audit-service"))));
    }
}
