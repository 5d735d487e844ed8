//! The full story, end to end, on the real cluster and PostgreSQL, with every service a real
//! process: register, live updates, reminders by email and webhook, completion, the next
//! occurrence, the audit trail, and another user who sees none of it.

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

use std::time::Duration;

use serde_json::json;
use service_kit::testing::{Backend, wait_for};
use system_tests::client::task_of;
use system_tests::webhook::WebhookReceiver;
use system_tests::{Svc, System, UserClient, WsClient, mail};

const BOUND: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekly_task_with_reminders_lives_its_whole_life_and_another_user_sees_none_of_it() {
    let system = System::start(Backend::Postgres).await;
    let hooks = WebhookReceiver::start();

    // Two users; A receives reminders by email and webhook.
    let alice = UserClient::register(&system, "alice").await;
    let bob = UserClient::register(&system, "bob").await;
    alice
        .patch("/api/me", json!({"notification_channels": ["email", "webhook", "in_app"], "webhook_url": hooks.url}))
        .await;
    let secret = alice.get(Svc::TaskApi, "/api/me/webhook-secret").await;
    let secret = secret["secret"]
        .as_str()
        .or_else(|| secret["webhook_secret"].as_str())
        .expect("secret")
        .to_owned();

    let alice_ws = WsClient::connect(&system, &alice.token).await;
    let bob_ws = WsClient::connect(&system, &bob.token).await;

    // A weekly task due in a few seconds, reminded by email and by webhook at once.
    let now = chrono::Utc::now();
    // Whole seconds: recurrence rules (RFC 5545) have second resolution.
    let due = chrono::DateTime::from_timestamp(now.timestamp() + 8, 0).unwrap();
    let remind_at = now + chrono::Duration::seconds(3);
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let task = alice
        .post(
            "/api/tasks",
            json!({
                "title": "Water the plants",
                "priority": "high",
                "due_at": rfc(due),
                "recurrence": {"rrule": "FREQ=WEEKLY", "timezone": "Europe/Berlin", "mode": "fixed"},
                "reminders": [
                    {"at": rfc(remind_at), "channel": "email"},
                    {"at": rfc(remind_at), "channel": "webhook"}
                ]
            }),
        )
        .await;
    let task_id = task["id"].as_str().unwrap().to_owned();
    let series_id = task["series_id"]
        .as_str()
        .expect("a recurring task belongs to a series")
        .to_owned();

    alice_ws
        .wait_for("task_created on A's WebSocket", BOUND, |m| {
            m.iter()
                .any(|x| x["type"] == "task_created" && task_of(x) == Some(task_id.as_str()))
        })
        .await;

    // The reminder arrives once by email and once by webhook, signed.
    let mails = wait_for("the reminder email", BOUND, || async {
        let m = mail::messages_to(&alice.email).await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    let hook = wait_for("the reminder webhook", BOUND, || async {
        hooks.requests().first().cloned()
    })
    .await;
    let body = String::from_utf8(hook.body.clone()).unwrap();
    assert!(body.contains(&task_id), "webhook names the task: {body}");
    let timestamp: i64 = hook.timestamp.as_deref().unwrap().parse().unwrap();
    assert!(
        service_kit::webhook::verify(
            &secret,
            timestamp,
            &hook.body,
            hook.signature.as_deref().unwrap()
        ),
        "webhook signature verifies with the user's secret: {hook:?} body {body}"
    );
    assert!(
        mail::text_of(mails[0]["ID"].as_str().unwrap())
            .await
            .contains("Water the plants")
    );
    alice_ws
        .wait_for("reminder_triggered on A's WebSocket", BOUND, |m| {
            m.iter()
                .any(|x| x["type"] == "reminder_triggered" && task_of(x) == Some(task_id.as_str()))
        })
        .await;

    // A completes the task; the next occurrence appears once, through REST and the WebSocket.
    alice
        .post(&format!("/api/tasks/{task_id}/complete"), json!({}))
        .await;
    let next = wait_for("the next occurrence in A's task list", BOUND, || async {
        alice
            .tasks("status=open")
            .await
            .into_iter()
            .find(|t| t["series_id"] == series_id.as_str() && t["id"] != task_id.as_str())
    })
    .await;
    let next_id = next["id"].as_str().unwrap().to_owned();
    assert_eq!(next["occurrence_index"], 1);
    let next_due = chrono::DateTime::parse_from_rfc3339(next["due_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        next_due.with_timezone(&chrono::Utc) - due.with_timezone(&chrono::Utc),
        chrono::Duration::weeks(1)
    );
    alice_ws
        .wait_for(
            "the next occurrence's task_created on A's WebSocket",
            BOUND,
            |m| {
                m.iter()
                    .any(|x| x["type"] == "task_created" && task_of(x) == Some(next_id.as_str()))
            },
        )
        .await;

    // The audit history of the task shows the chain, oldest first.
    let history = wait_for("the whole chain in the audit history", BOUND, || async {
        let h = alice
            .get(Svc::Audit, &format!("/api/audit/tasks/{task_id}/history"))
            .await;
        let types: Vec<String> = h["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["event_type"].as_str().unwrap().to_owned())
            .collect();
        let sent = types.iter().filter(|t| *t == "notification_sent").count();
        (types.contains(&"task_completed".to_owned()) && sent >= 2).then_some(types)
    })
    .await;
    let position = |t: &str| {
        history
            .iter()
            .position(|x| x == t)
            .unwrap_or_else(|| panic!("{t} in {history:?}"))
    };
    assert_eq!(history[0], "task_created", "{history:?}");
    assert!(
        position("task_created") < position("reminder_triggered"),
        "{history:?}"
    );
    assert!(
        position("reminder_triggered") < position("notification_sent"),
        "{history:?}"
    );
    assert!(
        position("notification_sent") < position("task_completed"),
        "{history:?}"
    );
    let next_history = wait_for("the next occurrence in the audit", BOUND, || async {
        let (status, h) = alice
            .call(
                reqwest::Method::GET,
                Svc::Audit,
                &format!("/api/audit/tasks/{next_id}/history"),
                None,
            )
            .await;
        (status == 200).then_some(h)
    })
    .await;
    assert_eq!(
        next_history["items"][0]["producer"],
        "recurring-task-service"
    );

    // Exactly once, everywhere: settle, then count.
    let settled = tokio::time::Instant::now() + Duration::from_secs(3);
    tokio::time::sleep_until(settled).await;
    assert_eq!(mail::messages_to(&alice.email).await.len(), 1, "one email");
    assert_eq!(hooks.requests().len(), 1, "one webhook");
    let occurrences: Vec<_> = alice
        .tasks("")
        .await
        .into_iter()
        .filter(|t| t["series_id"] == series_id.as_str())
        .collect();
    assert_eq!(
        occurrences.len(),
        2,
        "the task and one next occurrence: {occurrences:?}"
    );
    assert_eq!(
        alice_ws.about("task_created", &next_id).len(),
        1,
        "the next occurrence pushed once"
    );
    let deliveries = alice.get(Svc::Notification, "/api/notifications").await;
    let delivered: Vec<_> = deliveries["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["task_id"] == task_id.as_str() && d["status"] == "delivered")
        .map(|d| d["channel"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        delivered.contains(&"email".to_owned()) && delivered.contains(&"webhook".to_owned()),
        "{deliveries}"
    );

    // Bob saw none of it, anywhere.
    assert!(
        bob_ws
            .messages()
            .iter()
            .all(|m| m["type"] != "task_created" && m["type"] != "reminder_triggered"),
        "{:?}",
        bob_ws.messages()
    );
    assert!(bob.tasks("").await.is_empty());
    assert_eq!(
        bob.call(
            reqwest::Method::GET,
            Svc::TaskApi,
            &format!("/api/tasks/{task_id}"),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        bob.call(
            reqwest::Method::GET,
            Svc::Audit,
            &format!("/api/audit/tasks/{task_id}/history"),
            None
        )
        .await
        .0,
        404
    );
    let bobs_audit = bob.get(Svc::Audit, "/api/audit/events").await;
    assert!(
        bobs_audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["task_id"].is_null()),
        "{bobs_audit}"
    );
    assert!(
        bob.get(Svc::Notification, "/api/notifications").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        bob.call(
            reqwest::Method::GET,
            Svc::Recurring,
            &format!("/api/series/{series_id}"),
            None
        )
        .await
        .0,
        404
    );
    assert!(mail::messages_to(&bob.email).await.is_empty());

    hooks.stop().await;
    system.stop().await;
}
