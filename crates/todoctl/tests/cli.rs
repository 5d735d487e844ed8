//! The command-line client and `todoctl mcp` against a real task-api (in-process, with the
//! cluster): login keeps the token with mode 0600; tasks add, ls, done, show, rm with
//! `--output json` parsed here; a wrong password and an expired token each exit non-zero with
//! one clear line. And the Python MCP session of task-api's tests over stdio through
//! `todoctl mcp`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../task-api/tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use service_kit::testing::Backend;
use support::*;

struct Cli {
    api_url: String,
    config_home: PathBuf,
}

impl Cli {
    fn new(api_url: &str) -> Self {
        let config_home =
            std::env::temp_dir().join(format!("todoctl-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&config_home).unwrap();
        Self {
            api_url: api_url.to_owned(),
            config_home,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_todoctl"));
        c.args(args)
            .env("TODO_API_URL", &self.api_url)
            .env("XDG_CONFIG_HOME", &self.config_home)
            .env_remove("TODO_TOKEN")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// A command that must succeed, its `--output json` parsed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "todoctl {args:?}: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "todoctl {args:?} printed no JSON ({e}): {}",
                text(&out.stdout)
            )
        })
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A failure: non-zero exit and exactly one line on stderr.
fn one_line_failure(out: &Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} succeeded");
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err:?}");
    err.trim_end().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_logs_in_and_manages_tasks_against_the_real_api() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cli = Cli::new(&app.address);
    let run = uuid::Uuid::new_v4().simple().to_string();

    let out = cli.run_with_stdin(
        &["login", "--email", &user.email, "--password-stdin"],
        PASSWORD,
    );
    assert!(out.status.success(), "login: {}", text(&out.stderr));
    let stored = cli.config_home.join("todoctl/credentials.json");
    let mode = std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is the user's alone");

    let title = format!("Water the plants {run}");
    let task = cli.json(&[
        "tasks",
        "add",
        &title,
        "--due",
        "tomorrow",
        "9:00",
        "--priority",
        "high",
        "--tag",
        "x",
        "--every",
        "FREQ=WEEKLY;BYDAY=MO",
    ]);
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(task["priority"], "high");
    assert_eq!(task["tags"], serde_json::json!(["x"]));
    assert_eq!(task["recurrence"]["rrule"], "FREQ=WEEKLY;BYDAY=MO");
    // The new user's zone is UTC: tomorrow at 09:00 UTC.
    let tomorrow =
        (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%dT09:00:00.000Z");
    assert_eq!(task["due_at"], tomorrow.to_string());

    let page = cli.json(&["tasks", "ls", "-q", &run]);
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let table = cli.run(&["tasks", "ls", "--status", "open", "--sort", "-due_at"]);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains(&title) && table.contains(&id), "{table}");

    let done = cli.json(&["tasks", "done", &id]);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["version"], 2);
    let shown = cli.json(&["tasks", "show", &id]);
    assert_eq!(shown["task"], done);

    let removed = cli.json(&["tasks", "rm", &id]);
    assert_eq!(removed["deleted"], true);
    let gone = one_line_failure(&cli.run(&["tasks", "show", &id]), "show a deleted task");
    assert!(gone.contains("Not found"), "{gone}");

    let bad = cli.run(&["tasks", "add", "x", "--due", "someday"]);
    let bad = one_line_failure(&bad, "an unreadable due date");
    assert!(bad.contains("someday"), "{bad}");

    let wrong = cli.run_with_stdin(
        &["login", "--email", &user.email, "--password-stdin"],
        "not the password",
    );
    let wrong = one_line_failure(&wrong, "a wrong password");
    assert!(wrong.starts_with("todoctl: "), "{wrong}");

    let now = chrono::Utc::now().timestamp();
    let expired = app
        .signer
        .issue_at(&user.id, now - 7200, now - 3600)
        .unwrap();
    let out = cli
        .command(&["tasks", "ls"])
        .env("TODO_TOKEN", expired)
        .output()
        .unwrap();
    let line = one_line_failure(&out, "an expired token");
    assert!(
        line.contains("expired") && line.contains("todoctl login"),
        "{line}"
    );
    let out = cli
        .command(&["mcp"])
        .env("TODO_TOKEN", "not-a-jwt")
        .output()
        .unwrap();
    let line = one_line_failure(&out, "todoctl mcp with a bad token");
    assert!(line.contains("/mcp"), "{line}");

    let completions = cli.run(&["completions", "bash"]);
    assert!(completions.status.success());
    assert!(text(&completions.stdout).contains("todoctl"));
    let _ = std::fs::remove_dir_all(&cli.config_home);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_shares_and_assigns_tasks() {
    let app = spawn_app(Backend::Sqlite).await;
    let (owner, friend) = (app.new_user().await, app.new_user().await);
    let (cli, theirs) = (Cli::new(&app.address), Cli::new(&app.address));
    for (c, u) in [(&cli, &owner), (&theirs, &friend)] {
        let out = c.run_with_stdin(
            &["login", "--email", &u.email, "--password-stdin"],
            PASSWORD,
        );
        assert!(out.status.success(), "login: {}", text(&out.stderr));
    }
    let task = cli.json(&["tasks", "add", "Fix the bike"]);
    let id = task["id"].as_str().unwrap().to_owned();

    let share = cli.json(&["tasks", "share", &id, &friend.email, "--role", "editor"]);
    assert_eq!(share["user_id"], friend.id.as_str());
    assert_eq!(share["status"], "active");
    let shares = cli.json(&["tasks", "shares", &id]);
    assert_eq!(shares.as_array().unwrap().len(), 1);
    let shared = theirs.json(&["tasks", "ls", "--owner", "others"]);
    assert_eq!(shared["items"][0]["id"], id.as_str());
    assert_eq!(shared["items"][0]["role"], "editor");

    // The owner assigns by email; the friend finds it under --assignee me.
    let assigned = cli.json(&["tasks", "assign", &id, &friend.email]);
    assert_eq!(assigned["assignee_id"], friend.id.as_str());
    let mine = theirs.json(&["tasks", "ls", "--assignee", "me"]);
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    // The friend may not share the owner's task: one line, exit 1.
    let out = theirs.run(&["tasks", "share", &id, "x@example.com"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Not found"),
        "{}",
        text(&out.stderr)
    );

    cli.json(&["tasks", "unshare", &id, &friend.email]);
    assert!(
        theirs.json(&["tasks", "ls"])["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let back = cli.json(&["tasks", "assign", &id, "me"]);
    assert_eq!(back["assignee_id"], owner.id.as_str());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_assistant_uses_the_tools_over_stdio_through_todoctl_mcp() {
    let app = spawn_app(Backend::Sqlite).await;
    let (a, b) = (app.new_user().await, app.new_user().await);
    let run = uuid::Uuid::new_v4().simple().to_string();
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
    let config_home = std::env::temp_dir().join(format!("todoctl-mcp-{run}"));
    let output = Command::new(&python)
        .arg(script)
        .env("MCP_TRANSPORT", "stdio")
        .env("TODOCTL", env!("CARGO_BIN_EXE_todoctl"))
        .env("TODO_API_URL", &app.address)
        .env("XDG_CONFIG_HOME", &config_home)
        .env("TOKEN_A", &a.token)
        .env("TOKEN_B", &b.token)
        .env("RUN", &run)
        .output()
        .unwrap_or_else(|e| panic!("running {python} (installed by scripts/install-deps.sh): {e}"));
    assert!(
        output.status.success(),
        "the MCP client over stdio failed:\n{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("MCP session over stdio (todoctl mcp): {summary}");
    assert_eq!(summary["tool_count"], 11);
    let kept = app
        .get_json(
            &a,
            &format!("/api/tasks/{}", summary["kept_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(kept["version"], 1);
    app.stop().await;
}
