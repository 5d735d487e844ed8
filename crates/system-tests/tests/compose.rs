//! The end-to-end story against the whole system in containers: `make compose-test`
//! (scripts/compose-test.sh) brings docker-compose.yml up and runs this test with the ports it
//! published; plain `cargo test` skips it (ignored), since no stack runs then.
//!
//! Two users, a live WebSocket each, a weekly task reminded by email and by webhook, the next
//! occurrence after completion, the audit trail, and the other user who sees none of it.
//!
//! Environment (set by scripts/compose-test.sh): TASK_API_PORT, WS_GATEWAY_PORT,
//! NOTIFICATION_PORT, RECURRING_PORT, AUDIT_PORT (the compose variables of the same names),
//! TEST_MAILPIT_API (Mailpit's API), COMPOSE_HOST_GATEWAY (this machine's address on the
//! stack's network, where the containers deliver webhooks to the test).

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use service_kit::testing::wait_for;
use system_tests::client::task_of;
use system_tests::webhook::WebhookReceiver;
use system_tests::{Svc, System, UserClient, WsClient, mail};

/// Containers on two shared cores: a little more room than the story on local processes.
const BOUND: Duration = Duration::from_secs(90);

fn port(variable: &str) -> u16 {
    std::env::var(variable)
        .unwrap_or_else(|_| panic!("{variable} is not set: run this test with make compose-test"))
        .parse()
        .unwrap_or_else(|e| panic!("{variable}: {e}"))
}

fn deployment() -> System {
    System::attach(HashMap::from([
        (Svc::TaskApi, port("TASK_API_PORT")),
        (Svc::WsGateway, port("WS_GATEWAY_PORT")),
        (Svc::Notification, port("NOTIFICATION_PORT")),
        (Svc::Recurring, port("RECURRING_PORT")),
        (Svc::Audit, port("AUDIT_PORT")),
    ]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the compose stack: make compose-test"]
async fn the_compose_stack_runs_the_whole_story_for_two_users() {
    let system = deployment();
    let gateway: std::net::IpAddr = std::env::var("COMPOSE_HOST_GATEWAY")
        .expect("COMPOSE_HOST_GATEWAY (set by scripts/compose-test.sh)")
        .parse()
        .unwrap();
    let hooks = WebhookReceiver::start_on(gateway);

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

    let now = chrono::Utc::now();
    // Whole seconds: recurrence rules (RFC 5545) have second resolution.
    let due = chrono::DateTime::from_timestamp(now.timestamp() + 10, 0).unwrap();
    let remind_at = now + chrono::Duration::seconds(4);
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let task = alice
        .post(
            "/api/tasks",
            json!({
                "title": "Water the plants in the container",
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
    let series_id = task["series_id"].as_str().expect("a series").to_owned();
    alice_ws
        .wait_for("task_created on A's WebSocket", BOUND, |m| {
            m.iter()
                .any(|x| x["type"] == "task_created" && task_of(x) == Some(task_id.as_str()))
        })
        .await;

    // Reminders: one email through the containers' Mailpit, one signed webhook to this test.
    let mails = wait_for("the reminder email", BOUND, || async {
        let m = mail::messages_to(&alice.email).await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert!(
        mail::text_of(mails[0]["ID"].as_str().unwrap())
            .await
            .contains("Water the plants in the container")
    );
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
        "webhook signature verifies with the user's secret: {hook:?}"
    );
    alice_ws
        .wait_for("reminder_triggered on A's WebSocket", BOUND, |m| {
            m.iter()
                .any(|x| x["type"] == "reminder_triggered" && task_of(x) == Some(task_id.as_str()))
        })
        .await;

    // Completion: the recurring-task-service container creates the next occurrence.
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
    let next_due = chrono::DateTime::parse_from_rfc3339(next["due_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        next_due.with_timezone(&chrono::Utc) - due,
        chrono::Duration::weeks(1)
    );
    alice_ws
        .wait_for("the next occurrence on A's WebSocket", BOUND, |m| {
            m.iter()
                .any(|x| x["type"] == "task_created" && task_of(x) == Some(next_id.as_str()))
        })
        .await;

    // The audit-service container recorded the chain, in order.
    let history = wait_for("the chain in the audit history", BOUND, || async {
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
        position("reminder_triggered") < position("notification_sent")
            && position("notification_sent") < position("task_completed"),
        "{history:?}"
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
    assert_eq!(hooks.requests().len(), 1, "one webhook");
    assert_eq!(mail::messages_to(&alice.email).await.len(), 1, "one email");

    // Bob saw none of it.
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
            Svc::Audit,
            &format!("/api/audit/tasks/{task_id}/history"),
            None
        )
        .await
        .0,
        404
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
}
