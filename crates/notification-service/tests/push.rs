//! Web Push deliveries against a push service stand-in (a real HTTP server): the test holds each
//! subscription's private key, decrypts what the stand-in received (RFC 8291) and checks the
//! VAPID token (RFC 8292); 404/410 delete the subscription for good, 5xx is retried and the
//! reminder delivered once.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use base64::Engine as _;
use events::NotificationChannel::{InApp, Push};
use events::{DeliveryStatus, PushSubscription, UserUpdatedEvent};
use notification_service::storage::push as push_store;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use service_kit::push::{BASE64URL, PushSealKey};
use service_kit::testing::{self, Backend};
use support::push_service::{PushMessage, PushService};
use support::*;

const BOUND: Duration = Duration::from_secs(30);

/// A browser's side of a subscription: its key pair and auth secret.
struct Browser {
    id: String,
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new(id: &str) -> Self {
        let mut auth = [0u8; 16];
        auth.iter_mut().for_each(|b| *b = fastrand::u8(..));
        Self {
            id: id.to_owned(),
            // Test keys need no cryptographic randomness; a scalar out of range is drawn again.
            secret: std::iter::repeat_with(|| {
                let bytes: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
                p256::SecretKey::from_slice(&bytes).ok()
            })
            .flatten()
            .next()
            .unwrap(),
            auth,
        }
    }

    /// The subscription as task-api puts it on user.updated: the auth secret sealed.
    fn subscription(&self, user_id: &str, push: &PushService) -> PushSubscription {
        let endpoint = push.endpoint(&self.id);
        PushSubscription {
            id: new_id(),
            auth_sealed: PushSealKey::derive(&webhook_key()).seal(user_id, &endpoint, &self.auth),
            p256dh: BASE64URL.encode(self.secret.public_key().to_encoded_point(false).as_bytes()),
            endpoint,
        }
    }

    /// What the service worker would get: the message decrypted with this browser's keys.
    fn decrypt(&self, message: &PushMessage) -> serde_json::Value {
        let auth = web_push_native::Auth::from(self.auth);
        let plain = web_push_native::decrypt(message.body.clone(), &self.secret, &auth)
            .expect("the message decrypts with the subscription's keys");
        serde_json::from_slice(&plain).unwrap()
    }
}

fn profile(user_id: &str, version: i64, subscriptions: Vec<PushSubscription>) -> UserUpdatedEvent {
    UserUpdatedEvent {
        event_id: new_id(),
        event_timestamp: events::now_millis(),
        user_id: user_id.to_owned(),
        version,
        email: format!("{user_id}@example.com"),
        name: Some("Ada".into()),
        timezone: "Europe/Berlin".into(),
        notification_channels: vec![Push, InApp],
        webhook_url: None,
        verified_phone_number: None,
        push_subscriptions: subscriptions,
    }
}

async fn wait_profile(app: &TestApp, user_id: &str, version: i64) {
    let id = user_id.to_owned();
    testing::wait_for(&format!("profile version {version}"), BOUND, || async {
        let id = id.clone();
        let user = app
            .db
            .run(move |conn| notification_service::storage::users::get(conn, &id))
            .await
            .unwrap()?;
        (user.profile_version >= version).then_some(())
    })
    .await
}

async fn subscriptions_of(app: &TestApp, user_id: &str) -> Vec<String> {
    let id = user_id.to_owned();
    app.db
        .run(move |conn| push_store::of_user(conn, &id))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.endpoint)
        .collect()
}

/// Fire one push reminder for the user's task titled `title`; its notification id.
async fn push_reminder(bus: &Bus, user_id: &str, title: &str) -> String {
    let remind_at = events::now_millis() + 2_000;
    let t = task(user_id, title, None, vec![at(remind_at, Push)]);
    bus.publish(&t).await;
    notification_id(&reminder_id(&t, remind_at, Push), Push)
}

#[tokio::test]
async fn a_push_reminder_is_encrypted_for_the_browser_and_signed_with_the_vapid_key() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let push = PushService::start().await;
    let app = spawn_app(Backend::Postgres, &Options::default()).await;
    let user_id = new_id();
    let laptop = Browser::new("laptop");
    bus.publish(&profile(
        &user_id,
        1,
        vec![laptop.subscription(&user_id, &push)],
    ))
    .await;
    wait_profile(&app, &user_id, 1).await;

    let nid = push_reminder(&bus, &user_id, "Water the plants").await;
    let sent = bus.wait_sent(&[&nid], 1, BOUND).await;
    assert_eq!(
        sent[0].status,
        DeliveryStatus::Delivered,
        "{:?}",
        sent[0].error
    );
    assert_eq!((sent[0].channel, sent[0].attempts), (Push, 1));

    let messages = push.messages_for("laptop");
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.content_encoding.as_deref(), Some("aes128gcm"));
    assert!(
        message
            .ttl
            .as_deref()
            .is_some_and(|t| t.parse::<u64>().unwrap() > 0)
    );
    let shown = laptop.decrypt(message);
    assert_eq!(shown["title"], "Reminder: Water the plants", "{shown}");
    assert_eq!(shown["notification_id"], nid.as_str());

    // VAPID (RFC 8292): `vapid t=<ES256 JWT>, k=<public key>`, the token for this origin.
    let header = message
        .authorization
        .clone()
        .expect("an Authorization header");
    let (token, key) = header
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .expect("vapid t=…, k=…");
    let public = vapid_key().public_key().to_encoded_point(false);
    assert_eq!(key, BASE64URL.encode(public.as_bytes()));
    let decoding = jsonwebtoken::DecodingKey::from_ec_components(
        &BASE64URL.encode(public.x().unwrap()),
        &BASE64URL.encode(public.y().unwrap()),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[push.base.as_str()]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
        .expect("a valid VAPID token")
        .claims;
    assert_eq!(claims["sub"], VAPID_SUBJECT);
    app.stop().await;
    push.stop().await;
}

#[tokio::test]
async fn a_gone_subscription_is_deleted_for_good_while_a_live_device_gets_the_reminder() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let push = PushService::start().await;
    let app = spawn_app(Backend::Sqlite, &Options::default()).await;
    let user_id = new_id();
    let (old_phone, laptop) = (Browser::new("old-phone"), Browser::new("laptop2"));
    let subscriptions = vec![
        old_phone.subscription(&user_id, &push),
        laptop.subscription(&user_id, &push),
    ];
    bus.publish(&profile(&user_id, 1, subscriptions.clone()))
        .await;
    wait_profile(&app, &user_id, 1).await;
    push.answer("old-phone", &[410]);

    let nid = push_reminder(&bus, &user_id, "Call the bank").await;
    let sent = bus.wait_sent(&[&nid], 1, BOUND).await;
    assert_eq!(
        sent[0].status,
        DeliveryStatus::Delivered,
        "{:?}",
        sent[0].error
    );
    assert_eq!(push.messages_for("old-phone").len(), 1);
    assert_eq!(
        laptop.decrypt(&push.messages_for("laptop2")[0])["title"],
        "Reminder: Call the bank"
    );
    assert_eq!(
        subscriptions_of(&app, &user_id).await,
        [push.endpoint("laptop2")]
    );

    // A later profile that still lists it (task-api not told, or a replay) does not revive it.
    bus.publish(&profile(&user_id, 2, subscriptions)).await;
    wait_profile(&app, &user_id, 2).await;
    assert_eq!(
        subscriptions_of(&app, &user_id).await,
        [push.endpoint("laptop2")]
    );

    // The last device gone too: the delivery fails for good, saying why, and nothing is left.
    push.answer("laptop2", &[404]);
    let nid = push_reminder(&bus, &user_id, "Pay the rent").await;
    let sent = bus.wait_sent(&[&nid], 1, BOUND).await;
    assert_eq!(sent[0].status, DeliveryStatus::Failed);
    assert_eq!(sent[0].attempts, 1, "a gone subscription is not retried");
    assert!(
        sent[0].error.as_deref().unwrap().contains("404"),
        "{:?}",
        sent[0].error
    );
    assert!(subscriptions_of(&app, &user_id).await.is_empty());
    assert_eq!(
        push.messages_for("old-phone").len(),
        1,
        "never sent to again"
    );
    app.stop().await;
    push.stop().await;
}

#[tokio::test]
async fn a_push_service_error_is_retried_and_the_reminder_delivered_once() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let push = PushService::start().await;
    let app = spawn_app(Backend::Postgres, &Options::default()).await;
    let user_id = new_id();
    let tablet = Browser::new("tablet");
    bus.publish(&profile(
        &user_id,
        1,
        vec![tablet.subscription(&user_id, &push)],
    ))
    .await;
    wait_profile(&app, &user_id, 1).await;
    push.answer("tablet", &[500, 503]);

    let nid = push_reminder(&bus, &user_id, "Feed the cat").await;
    let sent = bus.wait_sent(&[&nid], 1, BOUND).await;
    assert_eq!(
        sent[0].status,
        DeliveryStatus::Delivered,
        "{:?}",
        sent[0].error
    );
    assert_eq!(sent[0].attempts, 3);
    let messages = push.messages_for("tablet");
    let answers: Vec<u16> = messages.iter().map(|m| m.answered).collect();
    assert_eq!(
        answers,
        [500, 503, 201],
        "retried until accepted, then never again"
    );
    assert_eq!(
        tablet.decrypt(&messages[2])["title"],
        "Reminder: Feed the cat"
    );
    assert_eq!(bus.sent(&[&nid]).await.len(), 1, "one notification.sent");
    app.stop().await;
    push.stop().await;
}

#[tokio::test]
async fn assigned_to_you_reaches_the_assignees_browser_by_push_once() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let push = PushService::start().await;
    let app = spawn_app(Backend::Sqlite, &Options::default()).await;
    let owner = user(&[events::NotificationChannel::Email]);
    bus.publish(&owner).await;
    let assignee = new_id();
    let desk = Browser::new("desk");
    bus.publish(&profile(
        &assignee,
        1,
        vec![desk.subscription(&assignee, &push)],
    ))
    .await;
    wait_profile(&app, &assignee, 1).await;
    app.wait_user(&owner.user_id).await;
    let t = task(&owner.user_id, "Fix the fence", None, vec![]);
    bus.publish(&t).await;

    // Assigned by the owner; the event arrives twice (a replay).
    let a = events::TaskAssignedEvent {
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
        collaborators: vec![events::Collaborator {
            user_id: assignee.clone(),
            role: events::ShareRole::Editor,
        }],
        assignee_id: Some(assignee.clone()),
        actor_id: None,
        previous_assignee_id: None,
    };
    bus.publish(&a).await;
    bus.publish(&a).await;
    let assignment = events::ids::derived_event_id("assignment", &format!("{}:2", t.task_id));
    let nid = notification_id(&assignment.to_string(), Push);
    let sent = bus.wait_sent(&[&nid], 1, BOUND).await;
    assert_eq!(
        sent[0].status,
        DeliveryStatus::Delivered,
        "{:?}",
        sent[0].error
    );
    let messages = push.messages_for("desk");
    assert_eq!(messages.len(), 1, "once, whatever is replayed");
    let shown = desk.decrypt(&messages[0]);
    assert_eq!(shown["title"], "Assigned to you: Fix the fence", "{shown}");
    assert_eq!(shown["type"], "assigned");
    assert_eq!(bus.sent(&[&nid]).await.len(), 1);
    app.stop().await;
    push.stop().await;
}
