//! Web Push subscriptions over the REST API: stored per browser, announced on user.updated with
//! the auth secret sealed (never in clear on the topic), removed; and refused with 409 where
//! the deployment has no VAPID key.

#![allow(clippy::unwrap_used)]

mod support;

use base64::Engine as _;
use events::{AnyEvent, NotificationChannel, Topic};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use reqwest::Method;
use serde_json::{Value, json};
use service_kit::push::{BASE64URL, PushSealKey};
use service_kit::testing::Backend;
use service_kit::webhook::WebhookKey;
use support::*;

/// The webhook key the test app runs with (support::spawn_with).
const WEBHOOK_KEY: &str = "test-webhook-signing-key-of-32-chars!!";

fn vapid_public_key() -> String {
    let key = p256::SecretKey::from_slice(&[0x42; 32]).unwrap();
    service_kit::push::vapid_public_key_text(&key)
}

/// What a browser's `PushSubscription.toJSON()` gives.
fn browser_subscription(endpoint: &str, seed: u8) -> Value {
    let key = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
    json!({
        "endpoint": endpoint,
        "expirationTime": null,
        "keys": {
            "p256dh": BASE64URL.encode(key.public_key().to_encoded_point(false).as_bytes()),
            "auth": BASE64URL.encode([seed; 16]),
        }
    })
}

async fn with_push(backend: Backend) -> TestApp {
    let mut opts = Options::new(backend);
    opts.vapid_public_key = Some(vapid_public_key());
    spawn_with(opts).await
}

async fn send(
    app: &TestApp,
    user: &TestUser,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = app.req(method, path, Some(&user.token));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn push_subscriptions_are_stored_per_browser_announced_sealed_and_removed() {
    let app = with_push(Backend::Postgres).await;
    let config: Value = app
        .http
        .get(app.url("/api/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["vapid_public_key"], vapid_public_key());

    let user = app.new_user().await;
    let updated_from = offsets(Topic::UserUpdated).await;
    let laptop = browser_subscription("https://push.example.com/send/laptop", 7);
    let phone = browser_subscription("https://push.example.com/send/phone", 9);
    let path = "/api/me/push-subscriptions";
    let (status, stored) = send(&app, &user, Method::POST, path, Some(laptop.clone())).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(
        (&stored["endpoint"], &stored["keys"]),
        (&laptop["endpoint"], &laptop["keys"])
    );
    let (status, again) = send(&app, &user, Method::POST, path, Some(laptop.clone())).await;
    assert_eq!(
        (status, &again["id"]),
        (200, &stored["id"]),
        "the same browser again"
    );
    assert_eq!(
        send(&app, &user, Method::POST, path, Some(phone.clone()))
            .await
            .0,
        201
    );
    let (_, list) = send(&app, &user, Method::GET, path, None).await;
    let endpoints: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["endpoint"])
        .collect();
    assert_eq!(endpoints, [&laptop["endpoint"], &phone["endpoint"]]);

    // Each change is a profile version on user.updated; the last lists both, auth sealed.
    let events = wait_for_published(
        Topic::UserUpdated,
        &updated_from,
        &keys([user.id.clone()]),
        2,
    )
    .await;
    let AnyEvent::UserUpdated(last) = &events.last().unwrap().event else {
        panic!("a user.updated")
    };
    assert_eq!(last.version, 3);
    assert_eq!(last.push_subscriptions.len(), 2);
    let seal = PushSealKey::derive(&WebhookKey::new(WEBHOOK_KEY));
    for (sent, browser) in last.push_subscriptions.iter().zip([&laptop, &phone]) {
        assert_eq!(sent.endpoint, browser["endpoint"].as_str().unwrap());
        assert_eq!(sent.p256dh, browser["keys"]["p256dh"].as_str().unwrap());
        let auth = browser["keys"]["auth"].as_str().unwrap();
        assert!(
            !sent.auth_sealed.contains(auth),
            "the auth secret is not on the topic in clear"
        );
        let opened = seal
            .open(&user.id, &sent.endpoint, &sent.auth_sealed)
            .unwrap();
        assert_eq!(BASE64URL.encode(opened), auth);
    }

    let (status, me) = send(
        &app,
        &user,
        Method::PATCH,
        "/api/me",
        Some(json!({"notification_channels": ["email", "push"]})),
    )
    .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["notification_channels"], json!(["email", "push"]));

    let id = stored["id"].as_str().unwrap();
    let one = format!("{path}/{id}");
    assert_eq!(send(&app, &user, Method::DELETE, &one, None).await.0, 204);
    assert_eq!(send(&app, &user, Method::DELETE, &one, None).await.0, 404);
    let other = app.new_user().await;
    let phone_id = list[1]["id"].as_str().unwrap();
    let (status, _) = send(
        &app,
        &other,
        Method::DELETE,
        &format!("{path}/{phone_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "another user's subscription is not found");
    let (_, list) = send(&app, &user, Method::GET, path, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let bad = json!({"endpoint": "ftp://x", "keys": {"p256dh": "AAAA", "auth": "short"}});
    let (status, problem) = send(&app, &user, Method::POST, path, Some(bad)).await;
    assert_eq!(status, 422, "{problem}");
    app.stop().await;
}

#[tokio::test]
async fn push_is_refused_with_409_where_no_vapid_key_is_configured() {
    let app = spawn_app(Backend::Sqlite).await;
    let config: Value = app
        .http
        .get(app.url("/api/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["vapid_public_key"], Value::Null);
    let user = app.new_user().await;
    let subscription = browser_subscription("https://push.example.com/send/x", 5);
    let (status, problem) = send(
        &app,
        &user,
        Method::POST,
        "/api/me/push-subscriptions",
        Some(subscription),
    )
    .await;
    assert_eq!(
        (
            status,
            problem["type"]
                .as_str()
                .unwrap()
                .ends_with("push-unavailable")
        ),
        (409, true),
        "{problem}"
    );
    let (status, _) = send(
        &app,
        &user,
        Method::PATCH,
        "/api/me",
        Some(json!({"notification_channels": ["push"]})),
    )
    .await;
    assert_eq!(status, 422, "choosing push where it is not configured");
    // A task's push reminder likewise, naming the entry.
    let (status, problem) = send(
        &app,
        &user,
        Method::POST,
        "/api/tasks",
        Some(json!({
            "title": "No push here",
            "due_at": "2030-01-01T09:00:00Z",
            "reminders": [{"before_due": 10, "channel": "email"}, {"before_due": 5, "channel": "push"}]
        })),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["errors"][0]["field"], "reminders[1].channel",
        "{problem}"
    );
    let (_, me) = send(&app, &user, Method::GET, "/api/me", None).await;
    assert!(
        !me["notification_channels"]
            .as_array()
            .unwrap()
            .contains(&json!(NotificationChannel::Push.as_str()))
    );
    app.stop().await;
}
