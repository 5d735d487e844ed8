//! The command-line client of task-api: `todoctl login`, `todoctl tasks add|ls|done|reopen|rm|
//! show`. Human output is a table; `--output json` prints the API's JSON (the task as REST and
//! MCP return it). A failure prints the problem's title and detail on one line and exits 1.

pub mod api;
pub mod when;

use std::io::{BufRead, IsTerminal};

use chrono::Utc;
use chrono_tz::Tz;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use api::{Api, CliError, CliResult, Credentials, fail};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Your email address.
    #[arg(long)]
    pub email: String,
    /// Read the password from standard input (one line) instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Add a task: todoctl tasks add "Water the plants" --due tomorrow 9:00 --priority high
    Add {
        title: String,
        /// Due time in your time zone: "tomorrow 9:00", "fri 17:30", "2026-12-07 09:00", RFC 3339.
        #[arg(long, num_args = 1..=2, value_name = "WHEN")]
        due: Vec<String>,
        /// critical, high, medium (default) or low.
        #[arg(long)]
        priority: Option<String>,
        /// A tag (repeat for more).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Repeat: an RRULE ("FREQ=WEEKLY;BYDAY=MO") or cron ("0 9 * * MON").
        #[arg(long)]
        every: Option<String>,
        /// Remind this many minutes before the due time, by email (repeat for more).
        #[arg(long = "remind", value_name = "MINUTES")]
        reminders: Vec<i64>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List tasks (filters combine with AND).
    Ls {
        /// open or completed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        priority: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        category_id: Option<String>,
        /// Due before this time ("fri", "2026-12-07 09:00", ...).
        #[arg(long, num_args = 1..=2, value_name = "WHEN")]
        due_before: Vec<String>,
        #[arg(long, num_args = 1..=2, value_name = "WHEN")]
        due_after: Vec<String>,
        /// Words in title or description.
        #[arg(long, short)]
        q: Option<String>,
        /// created_at, updated_at, due_at or priority; "-" in front for descending.
        #[arg(long, allow_hyphen_values = true)]
        sort: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
        /// me (your own tasks) or others (tasks shared with you).
        #[arg(long)]
        owner: Option<String>,
        /// me: only tasks assigned to you.
        #[arg(long)]
        assignee: Option<String>,
    },
    /// Share one of your tasks by email: todoctl tasks share <id> grace@example.com --role editor
    Share {
        id: String,
        email: String,
        /// viewer (reads) or editor (also edits, completes, reopens).
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// Stop sharing a task with someone (their email or user id); your own id leaves the task.
    Unshare { id: String, who: String },
    /// Who a task is shared with (and pending invitations).
    Shares { id: String },
    /// Assign a task: "me", a collaborator's email or user id, or "none".
    Assign { id: String, assignee: String },
    /// Mark a task done.
    Done { id: String },
    /// Mark a completed task open again.
    Reopen { id: String },
    /// Delete a task.
    Rm { id: String },
    /// A task with its history (from audit-service).
    Show {
        id: String,
        /// Base URL of audit-service.
        #[arg(long, env = "TODO_AUDIT_URL", default_value = "http://127.0.0.1:8004")]
        audit_url: String,
    },
}

/// `grace@example.com  editor  active`.
fn share_line(share: &Value) -> String {
    format!(
        "{}  {}  {}",
        share["email"].as_str().unwrap_or_default(),
        share["role"].as_str().unwrap_or_default(),
        share["status"].as_str().unwrap_or_default()
    )
}

/// A collaborator named by email becomes their user id (an invitation stays its email); an id
/// is used as given.
async fn resolve_share(api: &Api, task: &str, who: &str) -> CliResult<String> {
    if !who.contains('@') {
        return Ok(who.to_owned());
    }
    let email = who.trim().to_lowercase();
    let shares = api.get(&format!("/api/tasks/{task}/shares"), &[]).await?;
    shares
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["email"] == email.as_str())
        .map(|s| s["user_id"].as_str().unwrap_or(&email).to_owned())
        .map_or_else(
            || fail(format!("{email} is not among the task's shares")),
            Ok,
        )
}

/// Print a failure as one line and exit 1.
pub fn exit_on_error(outcome: CliResult<()>) {
    if let Err(e) = outcome {
        eprintln!("todoctl: {e}");
        std::process::exit(1);
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn read_password(from_stdin: bool) -> CliResult<String> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError(format!("reading the password: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        rpassword::prompt_password("Password: ")
            .map_err(|e| CliError(format!("reading the password: {e}")))?
    };
    if password.is_empty() {
        return fail("no password given");
    }
    Ok(password)
}

pub async fn login(api_url: Option<&str>, args: LoginArgs, output: Output) -> CliResult<()> {
    let base = api::api_url(api_url);
    let password = read_password(args.password_stdin)?;
    let api = Api::new(&base, None);
    let token = api
        .post(
            "/api/auth/login",
            Some(&json!({ "email": args.email, "password": password })),
        )
        .await?;
    let Some(access_token) = token["access_token"].as_str() else {
        return fail("the login answer has no access_token");
    };
    let path = api::store_credentials(&Credentials {
        api_url: base.clone(),
        email: args.email.clone(),
        access_token: access_token.to_owned(),
    })?;
    match output {
        Output::Json => print_json(&json!({
            "email": args.email,
            "api_url": base,
            "expires_in": token["expires_in"],
            "credentials": path.display().to_string(),
        })),
        Output::Table => println!(
            "logged in as {} at {base}; token kept in {} (valid {} s)",
            args.email,
            path.display(),
            token["expires_in"]
        ),
    }
    Ok(())
}

/// The signed-in user's time zone (for reading and showing times).
async fn user_zone(api: &Api) -> CliResult<Tz> {
    let me = api.get("/api/me", &[]).await?;
    Ok(me["timezone"]
        .as_str()
        .and_then(|z| z.parse().ok())
        .unwrap_or(chrono_tz::UTC))
}

fn when(words: &[String], zone: Tz) -> CliResult<Option<String>> {
    if words.is_empty() {
        return Ok(None);
    }
    when::parse(&words.join(" "), zone, Utc::now())
        .map(Some)
        .map_err(CliError)
}

fn task_line(t: &Value, zone: Tz) -> [String; 6] {
    let s = |k: &str| t[k].as_str().unwrap_or_default().to_owned();
    let due = t["due_at"]
        .as_str()
        .map(|d| when::show(d, zone))
        .unwrap_or_else(|| "-".into());
    let tags: Vec<&str> = t["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut title = s("title");
    if t["recurrence"].is_object() {
        title.push_str(" ↻");
    }
    [
        s("id"),
        s("status"),
        s("priority"),
        due,
        title,
        tags.join(","),
    ]
}

fn print_table(rows: &[[String; 6]]) {
    let header = ["ID", "STATUS", "PRIORITY", "DUE", "TITLE", "TAGS"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

fn print_task(t: &Value, zone: Tz) {
    let line = task_line(t, zone);
    println!("{}  {}", line[4], line[0]);
    println!("  status    {} (version {})", line[1], t["version"]);
    println!("  priority  {}", line[2]);
    println!("  due       {line3} ({zone})", line3 = line[3]);
    if !line[5].is_empty() {
        println!("  tags      {}", line[5]);
    }
    if let Some(r) = t["recurrence"].as_object() {
        let rule = r.get("rrule").or(r.get("cron")).and_then(Value::as_str);
        println!("  repeats   {}", rule.unwrap_or("?"));
    }
    if let Some(d) = t["description"].as_str() {
        println!("  notes     {d}");
    }
}

pub async fn tasks(api_url: Option<&str>, command: TasksCommand, output: Output) -> CliResult<()> {
    let api = Api::new(&api::api_url(api_url), Some(api::token()?));
    match command {
        TasksCommand::Add {
            title,
            due,
            priority,
            tags,
            every,
            reminders,
            description,
        } => {
            let zone = user_zone(&api).await?;
            let mut body = json!({ "title": title });
            if let Some(d) = when(&due, zone)? {
                body["due_at"] = json!(d);
            }
            if let Some(p) = priority {
                body["priority"] = json!(p);
            }
            if !tags.is_empty() {
                body["tags"] = json!(tags);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(rule) = every {
                let key = if rule.to_ascii_uppercase().contains("FREQ=") {
                    "rrule"
                } else {
                    "cron"
                };
                body["recurrence"] = json!({ key: rule });
            }
            if !reminders.is_empty() {
                body["reminders"] = reminders
                    .iter()
                    .map(|m| json!({ "before_due": m, "channel": "email" }))
                    .collect();
            }
            let task = api.post("/api/tasks", Some(&body)).await?;
            match output {
                Output::Json => print_json(&task),
                Output::Table => print_table(&[task_line(&task, zone)]),
            }
        }
        TasksCommand::Ls {
            status,
            priority,
            tag,
            category_id,
            due_before,
            due_after,
            q,
            sort,
            limit,
            cursor,
            owner,
            assignee,
        } => {
            let zone = user_zone(&api).await?;
            let mut query: Vec<(&str, String)> = Vec::new();
            let mut add = |k, v: Option<String>| {
                if let Some(v) = v {
                    query.push((k, v));
                }
            };
            add("status", status);
            add("priority", priority);
            add("tag", tag);
            add("category_id", category_id);
            add("due_before", when(&due_before, zone)?);
            add("due_after", when(&due_after, zone)?);
            add("q", q);
            add("sort", sort);
            add("limit", limit.map(|l| l.to_string()));
            add("cursor", cursor);
            add("owner", owner);
            add("assignee", assignee);
            let page = api.get("/api/tasks", &query).await?;
            match output {
                Output::Json => print_json(&page),
                Output::Table => {
                    let rows: Vec<_> = page["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|t| task_line(t, zone))
                        .collect();
                    print_table(&rows);
                    if let Some(c) = page["next_cursor"].as_str() {
                        println!("more: todoctl tasks ls --cursor {c} (same filters)");
                    }
                }
            }
        }
        TasksCommand::Share { id, email, role } => {
            let share = api
                .post(
                    &format!("/api/tasks/{id}/shares"),
                    Some(&json!({ "email": email, "role": role })),
                )
                .await?;
            match output {
                Output::Json => print_json(&share),
                Output::Table => println!("{}", share_line(&share)),
            }
        }
        TasksCommand::Unshare { id, who } => {
            let who = resolve_share(&api, &id, &who).await?;
            api.delete(&format!("/api/tasks/{id}/shares/{who}")).await?;
            match output {
                Output::Json => print_json(&json!({ "id": id, "unshared": who })),
                Output::Table => println!("no longer shared with {who}"),
            }
        }
        TasksCommand::Shares { id } => {
            let shares = api.get(&format!("/api/tasks/{id}/shares"), &[]).await?;
            match output {
                Output::Json => print_json(&shares),
                Output::Table => {
                    for s in shares.as_array().into_iter().flatten() {
                        println!("{}", share_line(s));
                    }
                }
            }
        }
        TasksCommand::Assign { id, assignee } => {
            let assignee = match assignee.trim() {
                "none" | "" => Value::Null,
                "me" => json!(api.get("/api/me", &[]).await?["id"]),
                other => json!(resolve_share(&api, &id, other).await?),
            };
            let task = api
                .call(
                    reqwest::Method::PATCH,
                    &format!("/api/tasks/{id}"),
                    &[],
                    Some(&json!({ "assignee_id": assignee })),
                )
                .await?;
            done(&task, "assigned", output);
        }
        TasksCommand::Done { id } => {
            let task = api.post(&format!("/api/tasks/{id}/complete"), None).await?;
            done(&task, "completed", output);
        }
        TasksCommand::Reopen { id } => {
            let task = api.post(&format!("/api/tasks/{id}/reopen"), None).await?;
            done(&task, "reopened", output);
        }
        TasksCommand::Rm { id } => {
            api.delete(&format!("/api/tasks/{id}")).await?;
            match output {
                Output::Json => print_json(&json!({ "id": id, "deleted": true })),
                Output::Table => println!("deleted {id}"),
            }
        }
        TasksCommand::Show { id, audit_url } => {
            let task = api.get(&format!("/api/tasks/{id}"), &[]).await?;
            let audit = Api::new(&audit_url, Some(api::token()?));
            let history = audit
                .get(&format!("/api/audit/tasks/{id}/history"), &[])
                .await;
            match output {
                Output::Json => print_json(&json!({
                    "task": task,
                    "history": history.as_ref().ok(),
                    "history_error": history.as_ref().err().map(ToString::to_string),
                })),
                Output::Table => {
                    let zone = user_zone(&api).await?;
                    print_task(&task, zone);
                    match history {
                        Ok(h) => {
                            println!("history:");
                            for e in h["items"].as_array().into_iter().flatten() {
                                let at = e["event_time"]
                                    .as_str()
                                    .or(e["occurred_at"].as_str())
                                    .map(|t| when::show(t, zone))
                                    .unwrap_or_default();
                                let kind = e["event_type"]
                                    .as_str()
                                    .or(e["topic"].as_str())
                                    .unwrap_or_default();
                                let changed: Vec<&str> = e["data"]["changedFields"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(Value::as_str)
                                    .collect();
                                if changed.is_empty() {
                                    println!("  {at}  {kind}");
                                } else {
                                    println!("  {at}  {kind} ({})", changed.join(", "));
                                }
                            }
                        }
                        Err(e) => println!("history: unavailable ({e})"),
                    }
                }
            }
        }
    }
    Ok(())
}

fn done(task: &Value, what: &str, output: Output) {
    match output {
        Output::Json => print_json(task),
        Output::Table => println!(
            "{what} {} \"{}\" (version {})",
            task["id"].as_str().unwrap_or_default(),
            task["title"].as_str().unwrap_or_default(),
            task["version"]
        ),
    }
}
