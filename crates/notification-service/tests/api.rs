//! `GET /api/notifications`: a user's deliveries, newest first, behind a token, own data only;
//! and the operational endpoints.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use events::NotificationChannel::InApp;
use service_kit::testing::Backend;
use support::*;

#[tokio::test]
async fn a_user_sees_only_their_own_notifications_newest_first() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let app = spawn_app(Backend::Postgres, &Options::default()).await;
    let (alice, bob) = (user(&[InApp]), user(&[InApp]));
    bus.publish(&alice).await;
    bus.publish(&bob).await;
    let first_at = events::now_millis() + 2_000;
    let second_at = first_at + 1_000;
    let t = task(
        &alice.user_id,
        "Alice's task",
        None,
        vec![at(first_at, InApp), at(second_at, InApp)],
    );
    bus.publish(&t).await;
    app.wait_finished(&t.task_id, 2, Duration::from_secs(30))
        .await;

    let items = app.notifications(&alice.user_id).await;
    assert_eq!(items.len(), 2);
    let first = &items[1];
    assert_eq!(
        items[0]["remind_at"],
        support_rfc3339(second_at),
        "newest first"
    );
    assert_eq!(first["status"], "delivered");
    assert_eq!(first["channel"], "in_app");
    assert_eq!(first["task_id"], t.task_id.as_str());
    assert_eq!(first["task_title"], "Alice's task");
    assert_eq!(first["attempts"], 1);
    assert_eq!(
        first["id"],
        notification_id(&reminder_id(&t, first_at, InApp), InApp).as_str()
    );
    assert!(first["finished_at"].as_str().unwrap().ends_with('Z'));

    assert!(
        app.notifications(&bob.user_id).await.is_empty(),
        "Bob sees none of Alice's"
    );

    // Pages and filters.
    let resp = app
        .get("/api/notifications?limit=1", Some(&alice.user_id))
        .await;
    let page: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let resp = app
        .get(
            &format!("/api/notifications?limit=1&cursor={cursor}"),
            Some(&alice.user_id),
        )
        .await;
    let next: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(next["items"][0]["id"], first["id"]);
    let resp = app
        .get(
            "/api/notifications?status=failed&channel=in_app",
            Some(&alice.user_id),
        )
        .await;
    let failed: serde_json::Value = resp.json().await.unwrap();
    assert!(failed["items"].as_array().unwrap().is_empty());
    app.stop().await;
}

fn support_rfc3339(ms: i64) -> String {
    notification_service::domain::message::rfc3339(ms)
}

#[tokio::test]
async fn bad_requests_get_problems_not_server_errors() {
    let _one = exclusive().await;
    let app = spawn_app(Backend::Sqlite, &Options::default()).await;
    let resp = app.get("/api/notifications", None).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let u = new_id();
    for query in [
        "limit=0",
        "cursor=zzz",
        "status=lost",
        "channel=pigeon",
        "colour=red",
    ] {
        let resp = app
            .get(&format!("/api/notifications?{query}"), Some(&u))
            .await;
        assert_eq!(resp.status(), 400, "{query}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(
            body["type"].as_str().unwrap().ends_with("/bad-request"),
            "{query}"
        );
    }
    let resp = app.get("/api/nothing-here", Some(&u)).await;
    assert_eq!(resp.status(), 404);

    for path in ["/healthz", "/readyz"] {
        assert_eq!(app.get(path, None).await.status(), 200, "{path}");
    }
    let metrics = app.metrics().await;
    for family in [
        "reminders_scheduled_total",
        "reminder_firing_delay_seconds",
        "reminders_expired_total",
        "outbox_backlog_rows",
    ] {
        assert!(metrics.contains(family), "{family} exported");
    }
    app.stop().await;
}
