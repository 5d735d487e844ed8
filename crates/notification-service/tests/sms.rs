//! SMS deliveries to a real HTTP sink standing in for the gateway adapter: signed, keyed by the
//! notification id, retried on 5xx, sent once per reminder whatever is replayed, and never to a
//! user without a verified number.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use events::NotificationChannel::{InApp, Sms};
use events::{
    Collaborator, DeliveryStatus, NotificationChannel, ShareRole, TaskAssignedEvent,
    UserRegisteredEvent, UserUpdatedEvent,
};
use notification_service::delivery::sms::{NO_VERIFIED_NUMBER, SMS_OFF};
use notification_service::storage::users;
use service_kit::sms_sink::SmsSink;
use service_kit::testing::{self, Backend};
use support::*;

const BOUND: Duration = Duration::from_secs(30);

/// A number no other test uses: +1 555 and seven random digits.
fn phone_number() -> String {
    format!("+1555{:07}", fastrand::u32(0..10_000_000))
}

/// The profile change task-api publishes once the user verified `phone` (or with `None`: no
/// verified number).
fn profile(
    u: &UserRegisteredEvent,
    channels: &[NotificationChannel],
    phone: Option<&str>,
) -> UserUpdatedEvent {
    UserUpdatedEvent {
        event_id: new_id(),
        event_timestamp: events::now_millis(),
        user_id: u.user_id.clone(),
        version: 2,
        email: u.email.clone(),
        name: u.name.clone(),
        timezone: u.timezone.clone(),
        notification_channels: channels.to_vec(),
        webhook_url: None,
        verified_phone_number: phone.map(str::to_owned),
        push_subscriptions: vec![],
    }
}

/// Wait until the service stored the user's profile at version 2 (user and task events travel
/// on different topics).
async fn wait_profile(app: &TestApp, user_id: &str) -> users::UserRow {
    testing::wait_for("the updated profile", BOUND, || async {
        let id = user_id.to_owned();
        app.db
            .run(move |conn| users::get(conn, &id))
            .await
            .unwrap()
            .filter(|u| u.profile_version == 2)
    })
    .await
}

#[tokio::test]
async fn an_sms_reminder_is_signed_retried_on_5xx_and_sent_once_whatever_is_replayed() {
    let _one = exclusive().await;
    let sink = SmsSink::start().await;
    sink.fail_first(2);
    let bus = Bus::new().await;
    let app = spawn_app(
        Backend::Postgres,
        &Options {
            sms: Some(sink.settings()),
            ..Options::default()
        },
    )
    .await;
    let phone = phone_number();
    let u = user(&[InApp]);
    bus.publish(&u).await;
    bus.publish(&profile(&u, &[Sms, InApp], Some(&phone))).await;
    let stored = wait_profile(&app, &u.user_id).await;
    assert_eq!(stored.phone_number.as_deref(), Some(phone.as_str()));

    let remind_at = events::now_millis() + 2_000;
    let t = task(
        &u.user_id,
        "Call the plumber",
        None,
        vec![at(remind_at, Sms)],
    );
    bus.publish(&t).await;
    let rid = reminder_id(&t, remind_at, Sms);
    let nid = notification_id(&rid, Sms);
    let sent = bus.wait_sent(&[&nid], 1, BOUND).await;
    assert_eq!(
        sent[0].status,
        DeliveryStatus::Delivered,
        "{:?}",
        sent[0].error
    );
    assert_eq!(sent[0].channel, Sms);
    assert_eq!(sent[0].attempts, 3, "two 503s, then accepted");

    let received = sink.received_by(&phone);
    assert_eq!(
        received.iter().map(|m| m.answered).collect::<Vec<_>>(),
        [503, 503, 202]
    );
    for m in &received {
        assert!(m.signature_valid, "every attempt is signed");
        assert_eq!(m.idempotency_key, nid, "the notification id is the key");
        assert_eq!(m.idempotency_header.as_deref(), Some(nid.as_str()));
        assert_eq!(
            m.body,
            format!(
                "Reminder: \"Call the plumber\". http://127.0.0.1:8000/#/tasks/{}",
                t.task_id
            )
        );
    }

    // The same reminder.triggered again, as a producer retry or a replay would bring it.
    let fired = bus.triggered(&[&rid]).await;
    bus.publish(&fired[0]).await;
    testing::wait_for("the replayed event consumed", BOUND, || async {
        let m = app.metrics().await;
        (testing::metric_sum(
            &m,
            "notification_events_ignored_total",
            &[
                "topic=\"reminder.triggered\"",
                "reason=\"already_recorded\"",
            ],
        ) >= 1.0)
            .then_some(())
    })
    .await;
    // Wait out what a wrongly made second delivery would take, then count.
    app.wait_finished(&t.task_id, 1, BOUND).await;
    assert_eq!(sink.received_by(&phone).len(), 3, "no fourth request");
    assert_eq!(bus.sent(&[&nid]).await.len(), 1, "one notification.sent");
    app.stop().await;
    sink.stop().await;
}

#[tokio::test]
async fn no_sms_goes_to_a_user_without_a_verified_number() {
    let _one = exclusive().await;
    let sink = SmsSink::start().await;
    let bus = Bus::new().await;
    let app = spawn_app(
        Backend::Sqlite,
        &Options {
            sms: Some(sink.settings()),
            ..Options::default()
        },
    )
    .await;
    // The user chose SMS, then changed their number: task-api publishes no number until the new
    // one is verified.
    let u = user(&[InApp]);
    bus.publish(&u).await;
    bus.publish(&profile(&u, &[Sms, InApp], None)).await;
    assert_eq!(wait_profile(&app, &u.user_id).await.phone_number, None);

    let remind_at = events::now_millis() + 2_000;
    let t = task(&u.user_id, "Unverified", None, vec![at(remind_at, Sms)]);
    bus.publish(&t).await;
    let nid = notification_id(&reminder_id(&t, remind_at, Sms), Sms);
    let sent = bus.wait_sent(&[&nid], 1, BOUND).await;
    assert_eq!(sent[0].status, DeliveryStatus::Failed);
    assert_eq!(sent[0].error.as_deref(), Some(NO_VERIFIED_NUMBER));
    assert_eq!(sent[0].attempts, 1, "a missing number is not retried");
    assert!(sink.received().is_empty(), "{:?}", sink.received());
    app.stop().await;
    sink.stop().await;
}

#[tokio::test]
async fn without_a_gateway_an_sms_delivery_fails_saying_so() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let app = spawn_app(Backend::Sqlite, &Options::default()).await;
    let u = user(&[InApp]);
    bus.publish(&u).await;
    bus.publish(&profile(&u, &[Sms, InApp], Some(&phone_number())))
        .await;
    wait_profile(&app, &u.user_id).await;

    let remind_at = events::now_millis() + 2_000;
    let t = task(&u.user_id, "No gateway", None, vec![at(remind_at, Sms)]);
    bus.publish(&t).await;
    let nid = notification_id(&reminder_id(&t, remind_at, Sms), Sms);
    let sent = bus.wait_sent(&[&nid], 1, BOUND).await;
    assert_eq!(sent[0].status, DeliveryStatus::Failed);
    assert_eq!(sent[0].error.as_deref(), Some(SMS_OFF));
    app.stop().await;
}

#[tokio::test]
async fn assigned_to_you_goes_out_by_sms_once_when_the_assignee_chose_it() {
    let _one = exclusive().await;
    let sink = SmsSink::start().await;
    let bus = Bus::new().await;
    let app = spawn_app(
        Backend::Sqlite,
        &Options {
            sms: Some(sink.settings()),
            ..Options::default()
        },
    )
    .await;
    let mut owner = user(&[InApp]);
    owner.name = Some("Ada".into());
    let helper = user(&[InApp]);
    let phone = phone_number();
    bus.publish(&owner).await;
    bus.publish(&helper).await;
    bus.publish(&profile(&helper, &[Sms], Some(&phone))).await;
    app.wait_user(&owner.user_id).await;
    wait_profile(&app, &helper.user_id).await;
    let t = task(&owner.user_id, "Fix the fence", None, vec![]);
    bus.publish(&t).await;

    let assignment = TaskAssignedEvent {
        event_id: new_id(),
        event_timestamp: events::now_millis(),
        user_id: t.user_id.clone(),
        task_id: t.task_id.clone(),
        title: t.title.clone(),
        description: None,
        priority: t.priority,
        due_date: None,
        category_id: None,
        tags: vec![],
        version: 2,
        status: t.status,
        recurrence: None,
        reminders: vec![],
        series_id: None,
        occurrence_index: None,
        created_at: t.created_at,
        completed_at: None,
        collaborators: vec![Collaborator {
            user_id: helper.user_id.clone(),
            role: ShareRole::Editor,
        }],
        assignee_id: Some(helper.user_id.clone()),
        actor_id: None,
        previous_assignee_id: None,
    };
    // Delivered twice, as a replay would.
    bus.publish(&assignment).await;
    bus.publish(&assignment).await;
    let id = events::ids::derived_event_id("assignment", &format!("{}:2", t.task_id));
    let nid = notification_id(&id.to_string(), Sms);
    let sent = bus.wait_sent(&[&nid], 1, BOUND).await;
    assert_eq!(
        sent[0].status,
        DeliveryStatus::Delivered,
        "{:?}",
        sent[0].error
    );
    // A marker after them on the task's partition: once it is out, the replay was handled.
    let marker = TaskAssignedEvent {
        event_id: new_id(),
        version: 3,
        assignee_id: Some(owner.user_id.clone()),
        actor_id: Some(helper.user_id.clone()),
        ..assignment.clone()
    };
    bus.publish(&marker).await;
    let marker_id = events::ids::derived_event_id("assignment", &format!("{}:3", t.task_id));
    bus.wait_sent(&[notification_id(&marker_id.to_string(), InApp)], 1, BOUND)
        .await;
    app.wait_finished(&t.task_id, 2, BOUND).await;
    assert_eq!(bus.sent(&[&nid]).await.len(), 1, "one notification.sent");
    let texts = sink.received_by(&phone);
    assert_eq!(texts.len(), 1, "one text: {texts:?}");
    assert!(texts[0].signature_valid);
    assert_eq!(texts[0].idempotency_key, nid);
    assert!(
        texts[0]
            .body
            .starts_with("Ada assigned \"Fix the fence\" to you."),
        "{}",
        texts[0].body
    );
    app.stop().await;
    sink.stop().await;
}
