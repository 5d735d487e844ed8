//! Sharing and assignment as notification-service sees them (issue 20): "assigned to you"
//! reaches the assignee once per assignment version on their channels, and a task's reminders
//! go to its assignee when it has one. Real cluster, real Mailpit, both databases.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use events::NotificationChannel::{Email, InApp};
use events::{Collaborator, DeliveryStatus, ShareRole, TaskAssignedEvent, TaskCreatedEvent};
use service_kit::testing::{self, Backend};
use support::*;

const BOUND: Duration = Duration::from_secs(30);

/// `task` assigned to `assignee` by `actor` (None: the owner), at `version`, with `collaborator`
/// sharing it as editor.
fn assigned(
    task: &TaskCreatedEvent,
    collaborator: &str,
    assignee: Option<&str>,
    actor: Option<&str>,
    version: i64,
) -> TaskAssignedEvent {
    TaskAssignedEvent {
        event_id: new_id(),
        event_timestamp: events::now_millis(),
        user_id: task.user_id.clone(),
        task_id: task.task_id.clone(),
        title: task.title.clone(),
        description: None,
        priority: task.priority,
        due_date: task.due_date,
        category_id: None,
        tags: vec![],
        version,
        status: task.status,
        recurrence: None,
        reminders: task.reminders.clone(),
        series_id: None,
        occurrence_index: None,
        created_at: task.created_at,
        completed_at: None,
        collaborators: vec![Collaborator {
            user_id: collaborator.to_owned(),
            role: ShareRole::Editor,
        }],
        assignee_id: assignee.map(str::to_owned),
        actor_id: actor.map(str::to_owned),
        previous_assignee_id: None,
    }
}

fn assignment_notification(
    task: &TaskCreatedEvent,
    version: i64,
    channel: events::NotificationChannel,
) -> String {
    let assignment =
        events::ids::derived_event_id("assignment", &format!("{}:{version}", task.task_id));
    notification_id(&assignment.to_string(), channel)
}

async fn assigned_to_you_arrives_once_per_assignment(backend: Backend) {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let app = spawn_app(backend, &Options::default()).await;
    let mut owner = user(&[Email]);
    owner.name = Some("Ada".into());
    let helper = user(&[Email, InApp]);
    bus.publish(&owner).await;
    bus.publish(&helper).await;
    let t = task(&owner.user_id, "Fix the fence", None, vec![]);
    bus.publish(&t).await;
    // The mail names the owner: their profile must be known before the assignment arrives.
    app.wait_user(&owner.user_id).await;

    // The owner assigns it to the collaborator; the event is delivered twice (a replay).
    let a = assigned(&t, &helper.user_id, Some(&helper.user_id), None, 3);
    bus.publish(&a).await;
    bus.publish(&a).await;
    let (mail_id, in_app_id) = (
        assignment_notification(&t, 3, Email),
        assignment_notification(&t, 3, InApp),
    );
    let sent = bus.wait_sent(&[&mail_id, &in_app_id], 2, BOUND).await;
    assert!(
        sent.iter().all(|s| s.status == DeliveryStatus::Delivered),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .all(|s| s.user_id == helper.user_id && s.reminder_id.is_none())
    );

    let http = reqwest::Client::new();
    let mails = testing::wait_for("the mail in Mailpit", BOUND, || async {
        let mails = mailpit::mails_to(&http, &helper.email).await;
        (!mails.is_empty()).then_some(mails)
    })
    .await;
    assert_eq!(mails[0].subject, "Assigned to you: Fix the fence");
    assert!(
        mails[0].raw.contains("Ada assigned the task"),
        "names who assigned it"
    );

    // The collaborator gives it back and takes it again themself: no news for anyone.
    bus.publish(&assigned(
        &t,
        &helper.user_id,
        None,
        Some(&helper.user_id),
        4,
    ))
    .await;
    let taken = assigned(
        &t,
        &helper.user_id,
        Some(&helper.user_id),
        Some(&helper.user_id),
        5,
    );
    bus.publish(&taken).await;
    // A marker after them: once its notification is out, the two before were handled.
    let marker = assigned(
        &t,
        &helper.user_id,
        Some(&owner.user_id),
        Some(&helper.user_id),
        6,
    );
    bus.publish(&marker).await;
    bus.wait_sent(&[assignment_notification(&t, 6, Email)], 1, BOUND)
        .await;
    assert!(
        bus.sent(&[assignment_notification(&t, 5, Email)])
            .await
            .is_empty()
    );
    // The replayed assignment was sent once; the owner got the one made for them.
    assert_eq!(bus.sent(&[&mail_id]).await.len(), 1);
    assert_eq!(mailpit::mails_to(&http, &helper.email).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn assigned_to_you_arrives_once_per_assignment_on_sqlite() {
    assigned_to_you_arrives_once_per_assignment(Backend::Sqlite).await;
}

#[tokio::test]
async fn assigned_to_you_arrives_once_per_assignment_on_postgres() {
    assigned_to_you_arrives_once_per_assignment(Backend::Postgres).await;
}

#[tokio::test]
async fn a_tasks_reminders_go_to_its_assignee() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let app = spawn_app(Backend::Postgres, &Options::default()).await;
    let owner = user(&[Email]);
    let assignee = user(&[Email]);
    bus.publish(&owner).await;
    bus.publish(&assignee).await;
    let remind_at = events::now_millis() + 4_000;
    let t = task(
        &owner.user_id,
        "Water the plants",
        None,
        vec![at(remind_at, Email)],
    );
    bus.publish(&t).await;
    bus.publish(&assigned(
        &t,
        &assignee.user_id,
        Some(&assignee.user_id),
        None,
        2,
    ))
    .await;

    let rid = reminder_id(&t, remind_at, Email);
    let fired = bus.wait_triggered(&[&rid], 1, BOUND).await;
    assert_eq!(
        fired[0].user_id, assignee.user_id,
        "the reminder is the assignee's"
    );
    let sent = bus
        .wait_sent(&[notification_id(&rid, Email)], 1, BOUND)
        .await;
    assert_eq!(sent[0].user_id, assignee.user_id);
    let http = reqwest::Client::new();
    let mails = testing::wait_for("the reminder mail", BOUND, || async {
        let mails = mailpit::mails_to(&http, &assignee.email).await;
        mails
            .into_iter()
            .find(|m| m.subject == "Reminder: Water the plants")
    })
    .await;
    assert_eq!(mails.subject, "Reminder: Water the plants");
    assert!(
        mailpit::mails_to(&http, &owner.email)
            .await
            .iter()
            .all(|m| m.subject != "Reminder: Water the plants"),
        "the owner got no reminder"
    );
    app.stop().await;
}
