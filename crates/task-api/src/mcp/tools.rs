//! The tools (contract section 6): each one call of [`crate::http::task_operations`], the layer
//! the REST handlers' operations live in, so a tool validates, stores and announces exactly as
//! its REST route does. `task_history` and `preview_recurrence` ask the audit and
//! recurring-task services over their REST APIs, with the caller's own token.
//!
//! Results carry the task JSON (`events::TaskView`, as REST returns it) as structured content
//! plus a short text; problems become tool errors (`isError`) with the problem's title, detail
//! and each invalid field, so a model can correct its call.

use std::sync::Arc;

use actix_web::web;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde_json::Value;
use service_kit::http::Problem;

use super::params::{
    AddTaskArgs, AssignTaskArgs, FindTasksArgs, PreviewRecurrenceArgs, ShareTaskArgs,
    TaskChangeArgs, TaskHistoryArgs, TaskIdArgs, UpdateTaskArgs,
};
use super::{Authorized, Services, local_time};
use crate::changes::tasks::{Created, StatusChange};
use crate::domain::query::RawTaskQuery;
use crate::domain::share::ShareRequest;
use crate::domain::task::UpdateTaskRequest;
use crate::http::AppState;
use crate::http::task_operations::{self as ops, Caller};

const INSTRUCTIONS: &str = "Tools for the user's tasks. Times without an offset \
(\"2026-12-07T09:00\") are read in the user's time zone; results show times in UTC (RFC 3339). \
Find a task's id with find_tasks before changing it. Every change is recorded and announced \
to the user's other devices; task_history shows what happened to a task.";

/// The MCP server of one request (stateless: a new one per request, cheap to make).
#[derive(Clone)]
pub struct TaskTools {
    state: web::Data<AppState>,
    services: Arc<Services>,
}

type ToolResult = Result<CallToolResult, ErrorData>;

/// A problem as a tool error: the problem document as structured content, and as text its
/// title, detail and each invalid field.
pub fn problem_result(problem: &Problem) -> CallToolResult {
    let mut text = problem.title.clone();
    if let Some(detail) = &problem.detail {
        text.push_str(": ");
        text.push_str(detail);
    }
    for e in &problem.errors {
        text.push_str(&format!("\n- {}: {}", e.field, e.message));
    }
    let mut result =
        CallToolResult::structured_error(serde_json::to_value(problem).unwrap_or(Value::Null));
    result.content = vec![ContentBlock::text(text)];
    result
}

fn answer(outcome: Result<(String, Value), Problem>) -> ToolResult {
    Ok(match outcome {
        Ok((summary, value)) => {
            let json = value.to_string();
            let mut result = CallToolResult::structured(value);
            result.content = vec![ContentBlock::text(summary), ContentBlock::text(json)];
            result
        }
        Err(problem) => problem_result(&problem),
    })
}

fn task_json(task: &crate::domain::task::Task, reader: &str) -> Value {
    serde_json::to_value(task.view_for(reader)).unwrap_or(Value::Null)
}

fn describe(task: &Value) -> String {
    let title = task["title"].as_str().unwrap_or_default();
    let mut text = format!(
        "\"{title}\" (id {}, version {}, {}, {}",
        task["id"].as_str().unwrap_or_default(),
        task["version"],
        task["status"].as_str().unwrap_or_default(),
        task["priority"].as_str().unwrap_or_default(),
    );
    if let Some(due) = task["due_at"].as_str() {
        text.push_str(&format!(", due {due}"));
    }
    text.push(')');
    text
}

impl TaskTools {
    pub fn new(state: web::Data<AppState>, services: Arc<Services>) -> Self {
        Self { state, services }
    }

    /// The tools and their schemas, made once (a server is made per request).
    fn router() -> &'static ToolRouter<TaskTools> {
        static ROUTER: std::sync::OnceLock<ToolRouter<TaskTools>> = std::sync::OnceLock::new();
        ROUTER.get_or_init(Self::tool_router)
    }

    /// The caller's zone, asked for only when one of `values` is a local time.
    async fn zone_for(&self, user_id: &str, values: &[Option<&String>]) -> Result<String, Problem> {
        if values.iter().flatten().any(|v| local_time::is_local(v)) {
            ops::user_timezone(&self.state, user_id).await
        } else {
            Ok("UTC".to_owned())
        }
    }
}

fn caller(context: &RequestContext<RoleServer>) -> Result<Authorized, ErrorData> {
    rmcp_actix_web::transport::on_request_extensions(&context.extensions)
        .and_then(|e| e.get::<Authorized>())
        .cloned()
        // The /mcp scope lets no request through without a valid token; reaching this is a
        // wiring mistake, not the caller's.
        .ok_or_else(|| ErrorData::internal_error("the request carries no verified token", None))
}

fn localize(value: &mut Option<String>, zone: &str) {
    if let Some(v) = value {
        *v = local_time::in_zone(v, zone);
    }
}

#[tool_router]
impl TaskTools {
    #[tool(
        name = "add_task",
        description = "Create a task for the user. Only `title` is required. Priority names: \
critical, high, medium (default), low. `due_at` in the user's local time (\"2026-12-07T09:00\") \
or RFC 3339 with an offset. Repeat with `recurrence` as an RRULE (\"FREQ=WEEKLY;BYDAY=MO\") or \
cron (\"0 9 * * MON\"); remind with `reminders` ([{\"before_due\": 30, \"channel\": \"email\"}]). \
Pass an `idempotency_key` to make a retried call create one task. Returns the task."
    )]
    async fn add_task(
        &self,
        Parameters(args): Parameters<AddTaskArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let who = caller(&context)?;
        let outcome = async {
            let (mut request, key) = args.into_request();
            let mut times = vec![request.due_at.as_ref()];
            if let Some(r) = &request.recurrence {
                times.push(r.until.as_ref());
            }
            for r in request.reminders.iter().flatten() {
                times.push(r.at.as_ref());
            }
            let zone = self.zone_for(&who.user_id, &times).await?;
            localize(&mut request.due_at, &zone);
            if let Some(r) = &mut request.recurrence {
                localize(&mut r.until, &zone);
            }
            for r in request.reminders.iter_mut().flatten() {
                localize(&mut r.at, &zone);
            }
            let key = key
                .map(|k| ops::idempotency_key(&k, "idempotency_key"))
                .transpose()?;
            match ops::create(&self.state, &who.caller(), &request, key).await? {
                Created::New { task, .. } => {
                    let value = task_json(&task, &who.user_id);
                    Ok((format!("Created {}", describe(&value)), value))
                }
                Created::Replayed { body, .. } => {
                    let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    Ok((
                        format!(
                            "Already created by an earlier call with this idempotency key: {}",
                            describe(&value)
                        ),
                        value,
                    ))
                }
            }
        }
        .await;
        answer(outcome)
    }

    #[tool(
        name = "update_task",
        description = "Change fields of one of the user's tasks; fields left out stay as they \
are, null clears description, due_at, category_id or recurrence. `tags` and `reminders` replace \
the whole list. Times as in add_task. Give `expected_version` (the version last seen) to avoid \
overwriting a change made meanwhile. Returns the task."
    )]
    async fn update_task(
        &self,
        Parameters(args): Parameters<UpdateTaskArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let who = caller(&context)?;
        let outcome = async {
            let mut request = args.to_request();
            let mut times = Vec::new();
            if let Some(Some(d)) = &request.due_at {
                times.push(Some(d));
            }
            if let Some(Some(r)) = &request.recurrence {
                times.push(r.until.as_ref());
            }
            for r in request.reminders.iter().flatten() {
                times.push(r.at.as_ref());
            }
            let zone = self.zone_for(&who.user_id, &times).await?;
            if let Some(d) = &mut request.due_at {
                localize(d, &zone);
            }
            if let Some(Some(r)) = &mut request.recurrence {
                localize(&mut r.until, &zone);
            }
            for r in request.reminders.iter_mut().flatten() {
                localize(&mut r.at, &zone);
            }
            let task = ops::edit(
                &self.state,
                &who.caller(),
                &args.id,
                args.expected_version,
                request,
            )
            .await?;
            let value = task_json(&task, &who.user_id);
            Ok((format!("Updated {}", describe(&value)), value))
        }
        .await;
        answer(outcome)
    }

    #[tool(
        name = "complete_task",
        description = "Mark one of the user's tasks done. Completing a recurring task makes \
the next one in its series. Completing a completed task changes nothing. Returns the task."
    )]
    async fn complete_task(
        &self,
        Parameters(args): Parameters<TaskChangeArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        self.set_status(args, context, StatusChange::Complete).await
    }

    #[tool(
        name = "reopen_task",
        description = "Mark one of the user's completed tasks open again. Returns the task."
    )]
    async fn reopen_task(
        &self,
        Parameters(args): Parameters<TaskChangeArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        self.set_status(args, context, StatusChange::Reopen).await
    }

    #[tool(
        name = "delete_task",
        description = "Delete one of the user's tasks for good (its history stays readable \
with task_history). Ask the user first."
    )]
    async fn delete_task(
        &self,
        Parameters(args): Parameters<TaskChangeArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let who = caller(&context)?;
        let outcome = ops::delete(&self.state, &who.caller(), &args.id, args.expected_version)
            .await
            .map(|()| {
                (
                    format!("Deleted task {}", args.id.trim()),
                    serde_json::json!({ "id": args.id.trim(), "deleted": true }),
                )
            });
        answer(outcome)
    }

    #[tool(
        name = "share_task",
        description = "Share one of the user's own tasks with someone by email: role \"viewer\" \
(reads it) or \"editor\" (also edits, completes and reopens it); \"none\" stops sharing with \
them. Someone without an account is invited and sees the task once they register. Returns the \
share (status active or pending)."
    )]
    async fn share_task(
        &self,
        Parameters(args): Parameters<ShareTaskArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let who = caller(&context)?;
        let outcome = async {
            if args.role.trim().eq_ignore_ascii_case("none") {
                // Stop sharing: find that email among the task's shares.
                let share = ops::share_of(&self.state, &who.user_id, &args.id, &args.email)
                    .await?
                    .ok_or_else(|| Problem::not_found("share"))?;
                let email = share.email.clone();
                let target = share.user_id.unwrap_or(email.clone());
                ops::unshare(
                    &self.state,
                    &who.caller(),
                    &args.id,
                    &target,
                    args.expected_version,
                )
                .await?;
                let value = serde_json::json!({ "email": email, "role": "none" });
                return Ok((
                    format!("Task {} is no longer shared with {email}", args.id.trim()),
                    value,
                ));
            }
            let request = ShareRequest {
                email: args.email.clone(),
                role: args.role.clone(),
            };
            let shared = ops::share(
                &self.state,
                &who.caller(),
                &args.id,
                args.expected_version,
                &request,
            )
            .await?;
            let s = &shared.share;
            let summary = match s.status.as_str() {
                "pending" => format!(
                    "{} has no account yet: invited as {}; they see the task once they register",
                    s.email, s.role
                ),
                _ => format!("Shared with {} as {}", s.email, s.role),
            };
            Ok((summary, serde_json::to_value(s).unwrap_or(Value::Null)))
        }
        .await;
        answer(outcome)
    }

    #[tool(
        name = "assign_task",
        description = "Assign a task to someone who may see it: \"me\", a collaborator's email \
(or user id), or null to unassign. The owner assigns anyone the task is shared with; a \
collaborator only themself. Returns the task."
    )]
    async fn assign_task(
        &self,
        Parameters(args): Parameters<AssignTaskArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let who = caller(&context)?;
        let outcome = async {
            let assignee = match args.assignee.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(me) if me.eq_ignore_ascii_case("me") => Some(who.user_id.clone()),
                Some(email) if email.contains('@') => {
                    let id = ops::share_of(&self.state, &who.user_id, &args.id, email)
                        .await?
                        .and_then(|s| s.user_id)
                        .ok_or_else(|| {
                            Problem::validation().field(
                                "assignee",
                                format!(
                                    "{email} is not a collaborator of this task with an account"
                                ),
                            )
                        })?;
                    Some(id)
                }
                Some(id) => Some(id.to_owned()),
            };
            let request = UpdateTaskRequest {
                assignee_id: Some(assignee),
                ..UpdateTaskRequest::default()
            };
            let task = ops::edit(
                &self.state,
                &who.caller(),
                &args.id,
                args.expected_version,
                request,
            )
            .await?;
            let value = task_json(&task, &who.user_id);
            let summary = match task.assignee_id.as_deref() {
                Some(a) if a == who.user_id => format!("Assigned to you: {}", describe(&value)),
                Some(a) => format!("Assigned to {a}: {}", describe(&value)),
                None => format!("Unassigned: {}", describe(&value)),
            };
            Ok((summary, value))
        }
        .await;
        answer(outcome)
    }

    #[tool(
        name = "find_tasks",
        description = "List the user's tasks, newest first unless `sort` says otherwise. \
Filters combine with AND: status (open|completed), priority, tag, category_id, due_before, \
due_after (times as in add_task), q (words in title or description). Returns `items` and \
`next_cursor` (pass it as `cursor` for the next page; null on the last page)."
    )]
    async fn find_tasks(
        &self,
        Parameters(args): Parameters<FindTasksArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let who = caller(&context)?;
        let outcome = async {
            let mut query = RawTaskQuery::from(args);
            let zone = self
                .zone_for(
                    &who.user_id,
                    &[query.due_before.as_ref(), query.due_after.as_ref()],
                )
                .await?;
            localize(&mut query.due_before, &zone);
            localize(&mut query.due_after, &zone);
            let page = ops::list(&self.state, &who.user_id, query).await?;
            let mut text = format!("{} task(s)", page.items.len());
            for t in &page.items {
                text.push_str(&format!(
                    "\n- {} [{}] {} (id {}{})",
                    t.title,
                    t.priority,
                    t.status,
                    t.id,
                    t.due_at
                        .as_deref()
                        .map(|d| format!(", due {d}"))
                        .unwrap_or_default()
                ));
            }
            if page.next_cursor.is_some() {
                text.push_str("\nMore: call again with cursor = next_cursor.");
            }
            let value = serde_json::to_value(&page).unwrap_or(Value::Null);
            Ok((text, value))
        }
        .await;
        answer(outcome)
    }

    #[tool(
        name = "get_task",
        description = "One of the user's tasks by id, with every field."
    )]
    async fn read_task(
        &self,
        Parameters(args): Parameters<TaskIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let who = caller(&context)?;
        let outcome = ops::get(&self.state, &who.user_id, &args.id)
            .await
            .map(|task| {
                let value = task_json(&task, &who.user_id);
                (describe(&value), value)
            });
        answer(outcome)
    }

    #[tool(
        name = "task_history",
        description = "What happened to one of the user's tasks, oldest first: each event \
(created, updated with the changed fields, completed, deleted) with its time. Works for deleted \
tasks too. Returns `items` and `next_cursor`."
    )]
    async fn task_history(
        &self,
        Parameters(args): Parameters<TaskHistoryArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let who = caller(&context)?;
        let outcome = async {
            let id = crate::http::path_id(&args.id, "task history")?;
            let mut query = Vec::new();
            if let Some(l) = args.limit {
                query.push(("limit", l.to_string()));
            }
            if let Some(c) = args.cursor {
                query.push(("cursor", c));
            }
            let path = format!("/api/audit/tasks/{id}/history");
            let value = self
                .services
                .get(&self.services.audit, &path, &query, &who)
                .await?;
            let count = value["items"].as_array().map_or(0, Vec::len);
            Ok((
                format!("{count} event(s) in the history of task {id}"),
                value,
            ))
        }
        .await;
        answer(outcome)
    }

    #[tool(
        name = "preview_recurrence",
        description = "The next dates a recurrence rule gives, to check a rule before using \
it in add_task or update_task. Give `rrule` (\"FREQ=WEEKLY;BYDAY=MO,WE\") or `cron` (\"0 9 * * \
MON\"); `timezone` defaults to the user's. Returns each occurrence in UTC and in local time."
    )]
    async fn preview_recurrence(
        &self,
        Parameters(args): Parameters<PreviewRecurrenceArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let who = caller(&context)?;
        let outcome = async {
            let zone = match &args.timezone {
                Some(z) => z.clone(),
                None => ops::user_timezone(&self.state, &who.user_id).await?,
            };
            let mut query = vec![("timezone", zone.clone())];
            if let Some(r) = args.rrule {
                query.push(("rrule", r));
            }
            if let Some(c) = args.cron {
                query.push(("cron", c));
            }
            if let Some(n) = args.count {
                query.push(("count", n.to_string()));
            }
            if let Some(s) = args.start {
                query.push(("start", local_time::in_zone(&s, &zone)));
            }
            let value = self
                .services
                .get(
                    &self.services.recurrence,
                    "/api/recurrence/preview",
                    &query,
                    &who,
                )
                .await?;
            let mut text = format!("Next occurrences ({zone}):");
            for o in value["occurrences"].as_array().into_iter().flatten() {
                text.push_str(&format!("\n- {}", o["local"].as_str().unwrap_or_default()));
            }
            Ok((text, value))
        }
        .await;
        answer(outcome)
    }
}

impl TaskTools {
    async fn set_status(
        &self,
        args: TaskChangeArgs,
        context: RequestContext<RoleServer>,
        change: StatusChange,
    ) -> ToolResult {
        let who = caller(&context)?;
        let outcome = ops::set_status(
            &self.state,
            &who.caller(),
            &args.id,
            args.expected_version,
            change,
        )
        .await
        .map(|task| {
            let value = task_json(&task, &who.user_id);
            let verb = match change {
                StatusChange::Complete => "Completed",
                StatusChange::Reopen => "Reopened",
            };
            (format!("{verb} {}", describe(&value)), value)
        });
        answer(outcome)
    }
}

/// Arguments of the wrong shape (a number for a title, a missing title) as the same 422 problem
/// REST answers, naming the field; `None` when they deserialize.
fn malformed<T: serde::de::DeserializeOwned>(arguments: &Value) -> Option<Problem> {
    let error = serde_path_to_error::deserialize::<_, T>(arguments).err()?;
    let path = error.path().to_string();
    let message = error.inner().to_string();
    // A missing field is reported at its parent: name the field itself.
    let field = match message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        Some(name) if path == "." => name.to_owned(),
        Some(name) => format!("{path}.{name}"),
        None => path,
    };
    Some(Problem::validation().field(field, message))
}

/// Check a call's arguments against its tool's argument type before the router does, so a
/// shape error is a tool error naming the field rather than the SDK's bare serde message.
fn check_arguments(tool: &str, arguments: &Value) -> Option<Problem> {
    match tool {
        "add_task" => malformed::<AddTaskArgs>(arguments),
        "update_task" => malformed::<UpdateTaskArgs>(arguments),
        "complete_task" | "reopen_task" | "delete_task" => malformed::<TaskChangeArgs>(arguments),
        "find_tasks" => malformed::<FindTasksArgs>(arguments),
        "get_task" => malformed::<TaskIdArgs>(arguments),
        "task_history" => malformed::<TaskHistoryArgs>(arguments),
        "preview_recurrence" => malformed::<PreviewRecurrenceArgs>(arguments),
        _ => None,
    }
}

#[tool_handler(router = Self::router())]
impl ServerHandler for TaskTools {
    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, ErrorData> {
        let arguments = Value::Object(request.arguments.clone().unwrap_or_default());
        if let Some(problem) = check_arguments(&request.name, &arguments) {
            return Ok(problem_result(&problem).into());
        }
        let call = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        Self::router().call(call).await
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("task-api", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

impl Authorized {
    fn caller(&self) -> Caller {
        Caller {
            user_id: self.user_id.clone(),
            traceparent: self.traceparent.clone(),
        }
    }
}
