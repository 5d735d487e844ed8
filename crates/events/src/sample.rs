//! Example events with every field set, for tests, benchmarks and documentation.
//!
//! Each call makes fresh ids, so two samples never collide in a dedup table.

use uuid::Uuid;

use crate::model::*;
use crate::now_millis;

/// A fresh time-ordered id (UUIDv7), as the services make their event and task ids: an index
/// keyed by them grows at its end, which is what a benchmark filling one should see.
fn id() -> String {
    Uuid::now_v7().to_string()
}

pub fn recurrence() -> Recurrence {
    Recurrence {
        rrule: Some("FREQ=WEEKLY;BYDAY=MO,WE".into()),
        cron: None,
        timezone: "Europe/Berlin".into(),
        mode: RecurrenceMode::Fixed,
        until: None,
        count: Some(10),
    }
}

pub fn reminders() -> Vec<Reminder> {
    vec![
        Reminder {
            before_due_minutes: Some(30),
            at: None,
            channel: NotificationChannel::Email,
        },
        Reminder {
            before_due_minutes: None,
            at: Some(now_millis() + 60_000),
            channel: NotificationChannel::Webhook,
        },
    ]
}

pub fn task_created(user_id: &str) -> TaskCreatedEvent {
    let now = now_millis();
    TaskCreatedEvent {
        event_id: id(),
        event_timestamp: now,
        user_id: user_id.into(),
        task_id: id(),
        title: "Water the plants".into(),
        description: Some("Both balconies".into()),
        priority: Priority::High,
        due_date: Some(now + 3_600_000),
        category_id: Some(id()),
        tags: vec!["home".into(), "weekly".into()],
        version: 1,
        status: TaskStatus::Open,
        recurrence: Some(recurrence()),
        reminders: reminders(),
        series_id: Some(id()),
        occurrence_index: Some(0),
        created_at: Some(now),
        collaborators: Vec::new(),
        assignee_id: None,
        actor_id: None,
    }
}

pub fn task_updated(user_id: &str) -> TaskUpdatedEvent {
    let c = task_created(user_id);
    TaskUpdatedEvent {
        event_id: id(),
        event_timestamp: c.event_timestamp,
        user_id: c.user_id,
        task_id: c.task_id,
        title: "Water the plants (and the lawn)".into(),
        description: None,
        priority: Priority::Critical,
        due_date: c.due_date,
        category_id: None,
        tags: vec![],
        version: 2,
        status: TaskStatus::Open,
        recurrence: None,
        reminders: vec![],
        series_id: None,
        occurrence_index: None,
        created_at: c.created_at,
        changed_fields: vec!["title".into(), "priority".into()],
        completed_at: None,
        collaborators: Vec::new(),
        assignee_id: None,
        actor_id: None,
    }
}

pub fn task_completed(user_id: &str) -> TaskCompletedEvent {
    let c = task_created(user_id);
    TaskCompletedEvent {
        event_id: id(),
        event_timestamp: c.event_timestamp,
        user_id: c.user_id,
        task_id: c.task_id,
        completed_at: c.event_timestamp + 5_000,
        time_to_complete: Some(5_000),
        title: c.title,
        description: c.description,
        priority: c.priority,
        due_date: c.due_date,
        category_id: c.category_id,
        tags: c.tags,
        version: 3,
        recurrence: c.recurrence,
        reminders: c.reminders,
        series_id: c.series_id,
        occurrence_index: c.occurrence_index,
        created_at: c.created_at,
        collaborators: Vec::new(),
        assignee_id: None,
        actor_id: None,
    }
}

pub fn task_deleted(user_id: &str) -> TaskDeletedEvent {
    TaskDeletedEvent {
        event_id: id(),
        event_timestamp: now_millis(),
        user_id: user_id.into(),
        task_id: id(),
        version: 4,
        series_id: Some(id()),
        collaborators: Vec::new(),
        assignee_id: None,
        actor_id: None,
    }
}

/// `user_id`'s task shared with a new editor, beside a viewer already there; assigned to the
/// viewer.
pub fn task_shared(user_id: &str) -> TaskSharedEvent {
    let u = task_updated(user_id);
    let editor = id();
    TaskSharedEvent {
        event_id: id(),
        event_timestamp: now_millis(),
        user_id: u.user_id,
        task_id: u.task_id,
        title: u.title,
        description: u.description,
        priority: u.priority,
        due_date: u.due_date,
        category_id: u.category_id,
        tags: u.tags,
        version: u.version + 1,
        status: u.status,
        recurrence: u.recurrence,
        reminders: u.reminders,
        series_id: u.series_id,
        occurrence_index: u.occurrence_index,
        created_at: u.created_at,
        completed_at: u.completed_at,
        collaborators: vec![
            Collaborator {
                user_id: id(),
                role: ShareRole::Viewer,
            },
            Collaborator {
                user_id: editor.clone(),
                role: ShareRole::Editor,
            },
        ],
        assignee_id: None,
        actor_id: None,
        shared_with_user_id: editor,
        role: ShareRole::Editor,
    }
}

/// The task of [`task_shared`] assigned to its viewer by the editor.
pub fn task_assigned(user_id: &str) -> TaskAssignedEvent {
    let s = task_shared(user_id);
    let viewer = s.collaborators[0].user_id.clone();
    let editor = s.collaborators[1].user_id.clone();
    TaskAssignedEvent {
        event_id: id(),
        event_timestamp: now_millis(),
        user_id: s.user_id,
        task_id: s.task_id,
        title: s.title,
        description: s.description,
        priority: s.priority,
        due_date: s.due_date,
        category_id: s.category_id,
        tags: s.tags,
        version: s.version + 1,
        status: s.status,
        recurrence: s.recurrence,
        reminders: s.reminders,
        series_id: s.series_id,
        occurrence_index: s.occurrence_index,
        created_at: s.created_at,
        completed_at: s.completed_at,
        collaborators: s.collaborators,
        assignee_id: Some(viewer),
        actor_id: Some(editor),
        previous_assignee_id: Some(id()),
    }
}

pub fn user_registered(user_id: &str) -> UserRegisteredEvent {
    UserRegisteredEvent {
        event_id: id(),
        event_timestamp: now_millis(),
        user_id: user_id.into(),
        email: format!("{user_id}@example.com"),
        name: Some("Ada".into()),
        timezone: "Europe/Berlin".into(),
        notification_channels: vec![NotificationChannel::Email, NotificationChannel::InApp],
        webhook_url: Some("https://example.com/hook".into()),
    }
}

pub fn user_updated(user_id: &str) -> UserUpdatedEvent {
    UserUpdatedEvent {
        event_id: id(),
        event_timestamp: now_millis(),
        user_id: user_id.into(),
        version: 2,
        email: format!("{user_id}@example.com"),
        name: None,
        timezone: "America/New_York".into(),
        notification_channels: vec![
            NotificationChannel::Webhook,
            NotificationChannel::Sms,
            NotificationChannel::Push,
        ],
        webhook_url: None,
        verified_phone_number: Some("+4915112345678".into()),
        push_subscriptions: vec![crate::model::PushSubscription {
            id: id(),
            endpoint: "https://push.example.com/send/abc".into(),
            p256dh: "BPublicKeyOfTheBrowser".into(),
            auth_sealed: "c2VhbGVk".into(),
        }],
    }
}

pub fn user_authenticated(user_id: &str) -> UserAuthenticatedEvent {
    UserAuthenticatedEvent {
        event_id: id(),
        event_timestamp: now_millis(),
        user_id: Some(user_id.into()),
        email: format!("{user_id}@example.com"),
        outcome: AuthOutcome::InvalidPassword,
        ip_address: Some("127.0.0.1".into()),
        user_agent: None,
    }
}

pub fn reminder_triggered(user_id: &str) -> ReminderTriggeredEvent {
    let now = now_millis();
    ReminderTriggeredEvent {
        event_id: id(),
        event_timestamp: now,
        reminder_id: id(),
        user_id: user_id.into(),
        task_id: id(),
        task_version: 1,
        task_title: "Water the plants".into(),
        due_date: Some(now + 1_800_000),
        remind_at: now,
        fired_at: now + 12,
        channel: NotificationChannel::InApp,
        late: false,
    }
}

pub fn notification_sent(user_id: &str) -> NotificationSentEvent {
    NotificationSentEvent {
        event_id: id(),
        event_timestamp: now_millis(),
        notification_id: id(),
        reminder_id: Some(id()),
        user_id: user_id.into(),
        task_id: Some(id()),
        channel: NotificationChannel::Email,
        status: DeliveryStatus::Failed,
        attempts: 3,
        sent_at: now_millis(),
        error: Some("550 mailbox unavailable".into()),
    }
}

/// One sample of every event type, in [`crate::Topic::ALL`] order.
pub fn one_of_each(user_id: &str) -> Vec<AnyEvent> {
    vec![
        task_created(user_id).into_any(),
        task_updated(user_id).into_any(),
        task_completed(user_id).into_any(),
        task_deleted(user_id).into_any(),
        user_registered(user_id).into_any(),
        user_authenticated(user_id).into_any(),
        notification_sent(user_id).into_any(),
        reminder_triggered(user_id).into_any(),
        user_updated(user_id).into_any(),
        task_shared(user_id).into_any(),
        task_assigned(user_id).into_any(),
    ]
}
