//! The chatbot's MCP tools at `/mcp` (streamable HTTP), driven by the official Python SDK
//! (tests/mcp_client.py) against a real task-api: the tool list and schemas, a task's life
//! through tools, tool errors naming the field, isolation between users, idempotent add_task;
//! then every change read back from Kafka, one event each, with the same fields as the same
//! changes made over REST. And 401 before any MCP exchange without a valid token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use events::{AnyEvent, Topic};
use reqwest::Method;
use serde_json::{Value, json};
use service_kit::testing::Backend;
use support::*;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#;

pub fn python() -> String {
    std::env::var("TEST_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/todo-platform/venv/bin/python")
    })
}

/// Run the Python MCP session; its JSON summary.
fn run_client(envs: &[(&str, &str)]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py");
    let python = python();
    let output = Command::new(&python)
        .arg(script)
        .envs(envs.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running {python} (installed by scripts/install-deps.sh): {e}"));
    assert!(
        output.status.success(),
        "the MCP client failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON summary from the client")
}

/// An event without what differs between two runs of the same change (ids, times).
fn shape(event: &AnyEvent) -> (String, Value) {
    let (kind, mut value) = match event {
        AnyEvent::TaskCreated(e) => ("created", serde_json::to_value(e).unwrap()),
        AnyEvent::TaskUpdated(e) => ("updated", serde_json::to_value(e).unwrap()),
        AnyEvent::TaskCompleted(e) => ("completed", serde_json::to_value(e).unwrap()),
        AnyEvent::TaskDeleted(e) => ("deleted", serde_json::to_value(e).unwrap()),
        other => panic!("not a task event: {other:?}"),
    };
    for volatile in [
        "eventId",
        "eventTimestamp",
        "taskId",
        "createdAt",
        "completedAt",
        "timeToComplete",
    ] {
        value.as_object_mut().unwrap().remove(volatile);
    }
    (kind.to_owned(), value)
}

/// Every task event of `task_id` published since `from`, in version order (waits for `n`).
async fn task_events(task_id: &str, from: &[(Topic, Vec<i64>)], n: usize) -> Vec<AnyEvent> {
    let mut all = Vec::new();
    let keys = keys([task_id]);
    let counts = [
        (Topic::TaskUpdated, n.saturating_sub(3)),
        (Topic::TaskCompleted, 1),
        (Topic::TaskDeleted, 1),
    ];
    for (topic, count) in counts {
        let start = &from.iter().find(|(t, _)| *t == topic).unwrap().1;
        all.extend(
            wait_for_published(topic, start, &keys, count)
                .await
                .into_iter()
                .map(|p| p.event),
        );
    }
    let version = |e: &AnyEvent| match e {
        AnyEvent::TaskCreated(e) => e.version,
        AnyEvent::TaskUpdated(e) => e.version,
        AnyEvent::TaskCompleted(e) => e.version,
        AnyEvent::TaskDeleted(e) => e.version,
        _ => 0,
    };
    all.sort_by_key(version);
    all
}

/// task.created is keyed by user: the ones of `task_id`.
async fn created_events(user_id: &str, task_id: &str, from: &[(Topic, Vec<i64>)]) -> Vec<AnyEvent> {
    let start = &from
        .iter()
        .find(|(t, _)| *t == Topic::TaskCreated)
        .unwrap()
        .1;
    // Wait until the user's newest task is out, then pick this task's.
    tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let found: Vec<AnyEvent> =
                wait_for_published(Topic::TaskCreated, start, &keys([user_id]), 1)
                    .await
                    .into_iter()
                    .map(|p| p.event)
                    .filter(|e| matches!(e, AnyEvent::TaskCreated(c) if c.task_id == task_id))
                    .collect();
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("task.created within 90 s")
}

async fn all_offsets() -> Vec<(Topic, Vec<i64>)> {
    futures::future::join_all(
        Topic::TASKS
            .iter()
            .map(|&t| async move { (t, offsets(t).await) }),
    )
    .await
}

/// The same changes the Python session makes through tools, made over REST.
async fn rest_life(app: &TestApp, user: &TestUser, run: &str) -> String {
    let task = app
        .create_task(
            user,
            json!({
                "title": format!("Water the plants {run}"), "priority": "high",
                "due_at": "2026-12-07T09:00:00Z", "tags": ["home", "garden"],
                "reminders": [{"before_due": 30, "channel": "email"}],
            }),
        )
        .await;
    let id = task["id"].as_str().unwrap().to_owned();
    let send = |method: Method, path: String, body: Option<Value>| {
        let mut r = app.req(method, &path, Some(&user.token));
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let r = r.send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
        }
    };
    send(
        Method::PATCH,
        format!("/api/tasks/{id}"),
        Some(json!({"title": format!("Water the orchids {run}"), "priority": "low"})),
    )
    .await;
    send(Method::POST, format!("/api/tasks/{id}/complete"), None).await;
    send(Method::POST, format!("/api/tasks/{id}/reopen"), None).await;
    send(Method::DELETE, format!("/api/tasks/{id}"), None).await;
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assistant_changes_tasks_through_mcp_tools_as_rest_does() {
    let app = spawn_app(Backend::Sqlite).await;
    let (a, b) = (app.new_user().await, app.new_user().await);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let from = all_offsets().await;

    let url = app.url("/mcp");
    let summary = run_client(&[
        ("MCP_TRANSPORT", "http"),
        ("MCP_URL", &url),
        ("TOKEN_A", &a.token),
        ("TOKEN_B", &b.token),
        ("EMAIL_B", &b.email),
        ("RUN", &run),
    ]);
    eprintln!("MCP session over streamable HTTP: {summary}");
    assert_eq!(summary["tool_count"], 11);
    assert!(summary["shared_id"].is_string(), "the sharing session ran");

    // One event per change, each as the REST path makes it.
    let task_id = summary["task_id"].as_str().unwrap();
    let mut mcp = created_events(&a.id, task_id, &from).await;
    mcp.extend(task_events(task_id, &from, 5).await);
    let rest_from = all_offsets().await;
    let rest_id = rest_life(&app, &a, &run).await;
    let mut rest = created_events(&a.id, &rest_id, &rest_from).await;
    rest.extend(task_events(&rest_id, &rest_from, 5).await);
    let kinds: Vec<String> = mcp.iter().map(|e| shape(e).0).collect();
    assert_eq!(
        kinds,
        ["created", "updated", "completed", "updated", "deleted"]
    );
    assert_eq!(
        mcp.iter().map(shape).collect::<Vec<_>>(),
        rest.iter().map(shape).collect::<Vec<_>>(),
        "the events of the MCP changes differ from the REST ones"
    );

    // The retried add_task made one task and one event.
    let idem = summary["idempotent_id"].as_str().unwrap();
    assert_eq!(created_events(&a.id, idem, &from).await.len(), 1);
    let titled: Vec<Value> = app
        .all_tasks(&a, &format!("q=Call+mum+{run}"))
        .await
        .into_iter()
        .collect();
    assert_eq!(titled.len(), 1, "{titled:?}");

    // What B tried on A's task changed nothing.
    let kept = app
        .get_json(
            &a,
            &format!("/api/tasks/{}", summary["kept_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(kept["version"], 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_answers_401_before_any_exchange_without_a_valid_token() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let expired = app
        .signer
        .issue_at(
            &user.id,
            events::now_millis() / 1000 - 7200,
            events::now_millis() / 1000 - 3600,
        )
        .unwrap();
    let post = |token: Option<String>| {
        let mut r = app
            .http
            .post(app.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(INITIALIZE);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.unwrap() }
    };
    for (what, token) in [
        ("no token", None),
        ("a bad token", Some("not-a-jwt".to_owned())),
        ("an expired token", Some(expired)),
    ] {
        let r = post(token).await;
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer", "{what}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["status"], 401, "{what}");
    }
    let r = post(Some(user.token.clone())).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        answer["result"]["serverInfo"]["name"], "task-api",
        "{answer}"
    );
    app.stop().await;
}
