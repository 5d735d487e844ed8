//! The MCP tools that ask other services, with every service a real process: `task_history`
//! reads audit-service (what the task's events left there, the caller's own only) and
//! `preview_recurrence` reads recurring-task-service. The client is the official Python SDK
//! (crates/task-api/tests/mcp_client.py, MCP_CHECK=services) over streamable HTTP.

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use service_kit::testing::{Backend, wait_for};
use system_tests::{Svc, System, UserClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assistant_reads_a_tasks_history_and_previews_a_rule_through_mcp() {
    let system = System::start(Backend::Sqlite).await;
    let alice = UserClient::register(&system, "alice").await;
    let bob = UserClient::register(&system, "bob").await;

    let task = alice
        .post("/api/tasks", json!({"title": "Water the plants"}))
        .await;
    let id = task["id"].as_str().unwrap().to_owned();
    alice
        .patch(&format!("/api/tasks/{id}"), json!({"priority": "high"}))
        .await;
    alice
        .post(&format!("/api/tasks/{id}/complete"), json!({}))
        .await;
    let history = format!("/api/audit/tasks/{id}/history");
    wait_for("three audit entries", Duration::from_secs(60), || async {
        let (status, body) = alice
            .call(reqwest::Method::GET, Svc::Audit, &history, None)
            .await;
        (status == 200 && body["items"].as_array().is_some_and(|i| i.len() >= 3)).then_some(())
    })
    .await;

    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/todo-platform/venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../task-api/tests/mcp_client.py"
    );
    let output = Command::new(&python)
        .arg(script)
        .env("MCP_TRANSPORT", "http")
        .env("MCP_CHECK", "services")
        .env("MCP_URL", format!("{}/mcp", system.url(Svc::TaskApi)))
        .env("TOKEN_A", &alice.token)
        .env("TOKEN_B", &bob.token)
        .env("TASK_ID", &id)
        .env("RUN", "services")
        .output()
        .unwrap_or_else(|e| panic!("running {python} (installed by scripts/install-deps.sh): {e}"));
    assert!(
        output.status.success(),
        "the MCP client failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        summary["history_types"],
        json!(["task_created", "task_updated", "task_completed"]),
        "{summary}"
    );

    // `todoctl tasks show` prints the same history beside the task.
    let bin_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .to_path_buf();
    let show = |output: &str| {
        Command::new(bin_dir.join("todoctl"))
            .args(["tasks", "show", &id, "--output", output])
            .env("TODO_API_URL", system.url(Svc::TaskApi))
            .env("TODO_AUDIT_URL", system.url(Svc::Audit))
            .env("TODO_TOKEN", &alice.token)
            .output()
            .unwrap()
    };
    let out = show("json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["task"]["status"], "completed");
    assert_eq!(shown["history"]["items"].as_array().unwrap().len(), 3);
    let out = show("table");
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("todoctl tasks show:\n{table}");
    assert!(table.contains("task_completed"), "{table}");
}
