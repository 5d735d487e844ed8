//! Ids of the platform. Deterministic ones: the same inputs give the same id in every service
//! and on every replay, which is what makes "created once", "fired once" and "sent once" hold
//! without coordination. Fresh ones ([`new_event_id`]) are time-ordered.

use uuid::Uuid;

use crate::model::{EpochMillis, NotificationChannel};

/// Namespace of every UUIDv5 of the platform.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2d7e_93a4_4c0b_8e55_0d1f_7a3b_9c21);

fn v5(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&NAMESPACE, parts.join("/").as_bytes())
}

/// The task id of occurrence `index` (0-based) of a recurring series.
pub fn occurrence_task_id(series_id: &str, index: i64) -> Uuid {
    v5(&["occurrence", series_id, &index.to_string()])
}

/// The id of one scheduled reminder: task, remind-at time and channel.
pub fn reminder_id(task_id: &str, remind_at: EpochMillis, channel: NotificationChannel) -> Uuid {
    v5(&[
        "reminder",
        task_id,
        &remind_at.to_string(),
        channel.as_str(),
    ])
}

/// The id of the notification that delivers a reminder on a channel.
pub fn notification_id(reminder_id: &str, channel: NotificationChannel) -> Uuid {
    v5(&["notification", reminder_id, channel.as_str()])
}

/// A deterministic event id for an event derived from another one (e.g. the task.created of a
/// next occurrence, derived from the completion that caused it), so a replay re-derives the
/// same event id and consumers deduplicate it.
pub fn derived_event_id(kind: &str, source: &str) -> Uuid {
    v5(&["event", kind, source])
}

/// The id of a new event that derives from nothing: a UUIDv7, time-ordered, so every index on
/// event ids (the outbox's, each consumer's deduplication table, the audit log's) grows at its
/// end instead of writing into a random page of it per event.
pub fn new_event_id() -> String {
    Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let s = "0b6f2a8e-33c0-4c3b-9f5e-9a3f9e6f0a11";
        assert_eq!(occurrence_task_id(s, 1), occurrence_task_id(s, 1));
        assert_ne!(occurrence_task_id(s, 1), occurrence_task_id(s, 2));
        let r1 = reminder_id(s, 1_764_000_000_000, NotificationChannel::Email);
        assert_ne!(
            r1,
            reminder_id(s, 1_764_000_000_000, NotificationChannel::Webhook)
        );
        assert_eq!(
            notification_id(&r1.to_string(), NotificationChannel::Email).get_version_num(),
            5
        );
    }

    #[test]
    fn new_event_ids_are_version_7_and_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..10_000).map(|_| new_event_id()).collect();
        for id in &ids {
            assert_eq!(Uuid::parse_str(id).unwrap().get_version_num(), 7, "{id}");
        }
        // The text form sorts like the id (fixed-width lower-case hex), and that is what the
        // indexes order by; ids made within one millisecond keep their order too.
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
    }
}
