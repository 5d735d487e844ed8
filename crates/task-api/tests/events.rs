//! Every REST mutation produces exactly one event on the right topic, with the right key,
//! version and headers, read back from Kafka; on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use events::{AnyEvent, AuthOutcome, NotificationChannel, RecurrenceMode, TaskStatus, Topic};
use reqwest::Method;
use serde_json::json;
use service_kit::testing::Backend;
use support::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn task_changes_each_emit_one_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let start: Vec<(Topic, Vec<i64>)> = futures::future::join_all(
        Topic::TASKS
            .iter()
            .map(|&t| async move { (t, offsets(t).await) }),
    )
    .await;
    let from = |topic: Topic| start.iter().find(|(t, _)| *t == topic).unwrap().1.clone();

    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    let r = app
        .req(Method::POST, "/api/tasks", Some(&user.token))
        .header("traceparent", &traceparent)
        .json(&json!({
            "title": "Water the plants",
            "description": "Both balconies",
            "priority": "High",
            "due_at": "2026-12-01T09:00:00+01:00",
            "tags": ["home", "weekly"],
            "recurrence": {"rrule": "FREQ=WEEKLY;BYDAY=MO,WE", "timezone": "Europe/Berlin", "count": 10},
            "reminders": [{"before_due": 30, "channel": "email"}, {"at": "2026-12-01T07:00:00Z", "channel": "in_app"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["etag"], "\"1\"");
    let task: serde_json::Value = r.json().await.unwrap();
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(task["priority"], "high");
    assert_eq!(task["status"], "open");
    assert_eq!(task["due_at"], "2026-12-01T08:00:00.000Z");
    assert_eq!(task["occurrence_index"], 0);
    assert_eq!(task["recurrence"]["mode"], "fixed");
    assert_eq!(task["reminders"][1]["channel"], "in_app");
    let series = task["series_id"].as_str().unwrap().to_owned();

    let path = format!("/api/tasks/{id}");
    let r = app
        .req(Method::GET, &path, Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["etag"], "\"1\"");

    // Update with the current version (quoted), then with a stale one (bare): 412.
    let r = app
        .req(Method::PATCH, &path, Some(&user.token))
        .header("If-Match", "\"1\"")
        .json(&json!({"title": "Water all the plants"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"2\"");
    let r = app
        .req(Method::PATCH, &path, Some(&user.token))
        .header("If-Match", "1")
        .json(&json!({"title": "Lost update"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // A PATCH that changes nothing keeps the version and announces nothing.
    let r = app
        .req(Method::PATCH, &path, Some(&user.token))
        .header("If-Match", "2")
        .json(&json!({"title": "Water all the plants"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"2\"");

    // Complete twice: one event. Reopen. Delete.
    for _ in 0..2 {
        let r = app
            .req(Method::POST, &format!("{path}/complete"), Some(&user.token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let t: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            (t["status"].as_str(), t["version"].as_i64()),
            (Some("completed"), Some(3))
        );
        assert!(t["completed_at"].is_string());
    }
    let r = app
        .req(Method::POST, &format!("{path}/reopen"), Some(&user.token))
        .send()
        .await
        .unwrap();
    let t: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (t["status"].as_str(), t["version"].as_i64()),
        (Some("open"), Some(4))
    );
    let r = app
        .req(Method::DELETE, &path, Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .req(Method::GET, &path, Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    app.wait_outbox_empty().await;
    let by_user = keys([user.id.clone()]);
    let by_task = keys([id.clone()]);

    let created =
        wait_for_published(Topic::TaskCreated, &from(Topic::TaskCreated), &by_user, 1).await;
    assert_eq!(created.len(), 1, "{created:?}");
    let p = &created[0];
    assert_eq!(p.key, user.id);
    assert_eq!(p.producer.as_deref(), Some("task-api"));
    let tp = p.traceparent.as_deref().unwrap();
    assert!(tp.contains(TRACE_ID), "trace continues: {tp}");
    let AnyEvent::TaskCreated(e) = &p.event else {
        panic!("{p:?}")
    };
    assert_eq!((e.task_id.as_str(), e.version), (id.as_str(), 1));
    assert_eq!(e.series_id.as_deref(), Some(series.as_str()));
    assert_eq!(e.occurrence_index, Some(0));
    assert_eq!(e.priority, events::Priority::High);
    assert_eq!(e.due_date, Some(1_796_112_000_000));
    let rec = e.recurrence.as_ref().unwrap();
    assert_eq!(
        (rec.timezone.as_str(), rec.mode, rec.count),
        ("Europe/Berlin", RecurrenceMode::Fixed, Some(10))
    );
    assert_eq!(e.reminders.len(), 2);
    assert_eq!(e.reminders[0].before_due_minutes, Some(30));
    assert_eq!(e.reminders[1].channel, NotificationChannel::InApp);
    assert!(e.created_at.is_some());

    let updated =
        wait_for_published(Topic::TaskUpdated, &from(Topic::TaskUpdated), &by_task, 2).await;
    assert_eq!(updated.len(), 2, "{updated:?}");
    let versions: Vec<(i64, TaskStatus, Vec<String>)> = updated
        .iter()
        .map(|p| match &p.event {
            AnyEvent::TaskUpdated(e) => (e.version, e.status, e.changed_fields.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(versions[0], (2, TaskStatus::Open, vec!["title".to_owned()]));
    assert_eq!(
        versions[1],
        (
            4,
            TaskStatus::Open,
            vec!["status".to_owned(), "completedAt".to_owned()]
        )
    );
    assert!(
        updated
            .iter()
            .all(|p| p.key == id && p.producer.as_deref() == Some("task-api"))
    );

    let completed = wait_for_published(
        Topic::TaskCompleted,
        &from(Topic::TaskCompleted),
        &by_task,
        1,
    )
    .await;
    assert_eq!(completed.len(), 1, "completing twice emits one event");
    let AnyEvent::TaskCompleted(c) = &completed[0].event else {
        panic!()
    };
    assert_eq!(c.version, 3);
    assert_eq!(
        c.time_to_complete,
        Some(c.completed_at - c.created_at.unwrap())
    );

    let deleted =
        wait_for_published(Topic::TaskDeleted, &from(Topic::TaskDeleted), &by_task, 1).await;
    assert_eq!(deleted.len(), 1);
    let AnyEvent::TaskDeleted(d) = &deleted[0].event else {
        panic!()
    };
    assert_eq!(
        (d.version, d.series_id.as_deref()),
        (5, Some(series.as_str()))
    );
    app.stop().await;
}

#[tokio::test]
async fn task_changes_each_emit_one_event_on_sqlite() {
    task_changes_each_emit_one_event(Backend::Sqlite).await;
}

#[tokio::test]
async fn task_changes_each_emit_one_event_on_postgres() {
    task_changes_each_emit_one_event(Backend::Postgres).await;
}

async fn user_changes_and_login_attempts_are_announced(backend: Backend) {
    let app = spawn_app(backend).await;
    let registered_from = offsets(Topic::UserRegistered).await;
    let auth_from = offsets(Topic::UserAuthenticated).await;
    let updated_from = offsets(Topic::UserUpdated).await;
    let email = unique_email();
    let r = app.register(&email).await;
    assert_eq!(r.status(), 201);
    let me: serde_json::Value = r.json().await.unwrap();
    let id = me["id"].as_str().unwrap().to_owned();
    assert_eq!(me["timezone"], "UTC");
    assert_eq!(me["notification_channels"], json!(["email", "in_app"]));
    assert_eq!(app.register(&email).await.status(), 409, "email taken");

    assert_eq!(app.login(&email, "wrong password").await.status(), 401);
    let unknown = unique_email();
    assert_eq!(app.login(&unknown, PASSWORD).await.status(), 401);
    let r = app.login(&email.to_uppercase(), PASSWORD).await;
    assert_eq!(r.status(), 200, "emails are case-insensitive");
    let token: serde_json::Value = r.json().await.unwrap();
    assert_eq!(token["token_type"], "bearer");
    assert_eq!(token["expires_in"], 3600);
    let token = token["access_token"].as_str().unwrap().to_owned();

    let me = app
        .req(Method::GET, "/api/me", Some(&token))
        .send()
        .await
        .unwrap();
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(
        (me["id"].as_str(), me["email"].as_str()),
        (Some(id.as_str()), Some(email.as_str()))
    );
    let r = app
        .req(Method::PATCH, "/api/me", Some(&token))
        .json(
            &json!({"timezone": "Europe/Berlin", "notification_channels": ["webhook", "email"],
                      "webhook_url": "https://example.com/hooks/todo", "name": "Ada"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (me["version"].as_i64(), me["timezone"].as_str()),
        (Some(2), Some("Europe/Berlin"))
    );
    let secret: serde_json::Value = app
        .req(Method::GET, "/api/me/webhook-secret", Some(&token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(secret["secret"].as_str().unwrap().len(), 64);

    app.wait_outbox_empty().await;
    let reg = wait_for_published(
        Topic::UserRegistered,
        &registered_from,
        &keys([id.clone()]),
        1,
    )
    .await;
    assert_eq!(reg.len(), 1);
    let AnyEvent::UserRegistered(e) = &reg[0].event else {
        panic!()
    };
    assert_eq!(
        (e.email.as_str(), e.timezone.as_str()),
        (email.as_str(), "UTC")
    );
    assert_eq!(
        e.notification_channels,
        vec![NotificationChannel::Email, NotificationChannel::InApp]
    );

    let auth = wait_for_published(
        Topic::UserAuthenticated,
        &auth_from,
        &keys([id.clone(), unknown.clone()]),
        3,
    )
    .await;
    let outcomes: Vec<(Option<String>, AuthOutcome)> = auth
        .iter()
        .map(|p| match &p.event {
            AnyEvent::UserAuthenticated(e) => (e.user_id.clone(), e.outcome),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (Some(id.clone()), AuthOutcome::InvalidPassword),
            (None, AuthOutcome::UnknownUser),
            (Some(id.clone()), AuthOutcome::Success),
        ]
    );
    let upd = wait_for_published(Topic::UserUpdated, &updated_from, &keys([id.clone()]), 1).await;
    assert_eq!(upd.len(), 1);
    let AnyEvent::UserUpdated(u) = &upd[0].event else {
        panic!()
    };
    assert_eq!(
        (u.version, u.webhook_url.as_deref()),
        (2, Some("https://example.com/hooks/todo"))
    );
    assert_eq!(
        u.notification_channels,
        vec![NotificationChannel::Webhook, NotificationChannel::Email]
    );
    app.stop().await;
}

#[tokio::test]
async fn user_changes_and_login_attempts_are_announced_on_sqlite() {
    user_changes_and_login_attempts_are_announced(Backend::Sqlite).await;
}

#[tokio::test]
async fn user_changes_and_login_attempts_are_announced_on_postgres() {
    user_changes_and_login_attempts_are_announced(Backend::Postgres).await;
}

#[tokio::test]
async fn logins_past_the_limit_get_429_with_retry_after_and_are_announced() {
    let app = spawn_app(Backend::Sqlite).await;
    let auth_from = offsets(Topic::UserAuthenticated).await;
    let user = app.new_user().await; // one successful login, which clears the count
    for _ in 0..5 {
        assert_eq!(app.login(&user.email, "wrong password").await.status(), 401);
    }
    let r = app.login(&user.email, PASSWORD).await;
    assert_eq!(r.status(), 429, "even the right password waits");
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "https://todo-platform.dev/problems/rate-limited"
    );
    // Another account from the same client is not limited by this one's count.
    let other = app.new_user().await;
    assert!(!other.token.is_empty());

    app.wait_outbox_empty().await;
    let auth = wait_for_published(
        Topic::UserAuthenticated,
        &auth_from,
        &keys([user.id.clone()]),
        7,
    )
    .await;
    let last = auth.last().unwrap();
    let AnyEvent::UserAuthenticated(e) = &last.event else {
        panic!()
    };
    assert_eq!(e.outcome, AuthOutcome::RateLimited);
    assert_eq!(e.user_id.as_deref(), Some(user.id.as_str()));
    assert_eq!(e.ip_address.as_deref(), Some("127.0.0.1"));
    app.stop().await;
}

/// A login from `forwarded_for` as a proxy would send it.
async fn login_via(app: &TestApp, email: &str, password: &str, forwarded_for: &str) -> u16 {
    app.http
        .post(app.url("/api/auth/login"))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_login_budget_and_address() {
    let mut opts = Options::new(Backend::Sqlite);
    opts.login_limits.per_ip = 3;
    opts.login_limits.per_email = 100;
    // The test connects from 127.0.0.1: it plays the ingress.
    opts.client_address =
        task_api::http::client_address::ClientAddress::parse("127.0.0.1/32").unwrap();
    let app = spawn_with(opts).await;
    let auth_from = offsets(Topic::UserAuthenticated).await;
    let user = app.new_user().await; // from 127.0.0.1 itself (no header): its own budget
    for _ in 0..3 {
        assert_eq!(
            login_via(&app, "nobody@example.com", "x", "198.51.100.1").await,
            401
        );
    }
    assert_eq!(
        login_via(&app, "nobody@example.com", "x", "198.51.100.1").await,
        429,
        "the fourth attempt of that client"
    );
    // The proxy appends the address it saw: what a client writes before it is not believed,
    // so the limited client cannot escape by naming another address...
    assert_eq!(
        login_via(
            &app,
            "nobody@example.com",
            "x",
            "198.51.100.9, 198.51.100.1"
        )
        .await,
        429,
        "198.51.100.1 is still who the proxy saw"
    );
    // ...and another client behind the same proxy is not limited by the first one's failures,
    // even when it (or anyone) writes the limited address at the left of its header.
    assert_eq!(
        login_via(&app, &user.email, PASSWORD, "198.51.100.1, 198.51.100.7").await,
        200,
        "the client the proxy saw is 198.51.100.7"
    );
    app.wait_outbox_empty().await;
    let auth = wait_for_published(
        Topic::UserAuthenticated,
        &auth_from,
        &keys([user.id.clone()]),
        2, // its first login, then this one
    )
    .await;
    let AnyEvent::UserAuthenticated(e) = &auth.last().unwrap().event else {
        panic!()
    };
    assert_eq!(e.outcome, AuthOutcome::Success);
    assert_eq!(e.ip_address.as_deref(), Some("198.51.100.7"));
    app.stop().await;

    // Without trusted proxies the header is nobody's word: a client cannot pick its address
    // to escape its budget.
    let mut opts = Options::new(Backend::Sqlite);
    opts.login_limits.per_ip = 3;
    opts.login_limits.per_email = 100;
    let app = spawn_with(opts).await;
    for i in 0..3 {
        assert_eq!(
            login_via(&app, "nobody@example.com", "x", &format!("198.51.100.{i}")).await,
            401
        );
    }
    assert_eq!(
        login_via(&app, "nobody@example.com", "x", "198.51.100.200").await,
        429
    );
    app.stop().await;
}
