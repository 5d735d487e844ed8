//! `/api/tasks`: create, list, read, update, complete, reopen, delete.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use service_kit::http::{Authenticated, Problem, trace_of};
use sha2::{Digest, Sha256};

use super::views::{ProblemDocument, TaskPage, TaskView};
use super::{State, etag, if_match, path_id, storage_problem};
use crate::changes::tasks::{
    self as task_changes, CreateTask, Created, EditTask, StatusChange, TaskAction,
};
use crate::domain::query::{Cursor, RawTaskQuery, TaskQuery};
use crate::domain::task::{CreateTaskRequest, Task, TaskFields, UpdateTaskRequest};
use crate::storage::{tasks, users};

pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

fn task_response(status: actix_web::http::StatusCode, task: &Task) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, etag(task.version)))
        .json(task.view())
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, Problem> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(k) if !k.trim().is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN => {
            Ok(Some(k.trim().to_owned()))
        }
        _ => Err(Problem::bad_request(format!(
            "{IDEMPOTENCY_KEY} must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
        ))),
    }
}

/// The user's time zone, read only when a recurrence needs it (it names no zone of its own).
async fn default_timezone(state: &State, user_id: &str, needed: bool) -> Result<String, Problem> {
    if !needed {
        return Ok("UTC".to_owned());
    }
    let id = user_id.to_owned();
    state
        .db
        .run(move |conn| users::timezone(conn, &id))
        .await
        .map_err(storage_problem)
}

/// Create a task
///
/// Announced on `task.created`. With an `Idempotency-Key` header, repeating the request (same
/// key, same body) returns the first response and creates nothing; the same key with another
/// body is refused with 422.
#[utoipa::path(
    post,
    path = "/api/tasks",
    tag = "tasks",
    security(("bearer" = [])),
    request_body = CreateTaskRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Makes retries safe: the first response is replayed")),
    responses(
        (status = 201, description = "Created (or the replayed first response)", body = TaskView,
            headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "Malformed JSON or header", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or Idempotency-Key reused with another body", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn create_task(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
    body: web::Json<CreateTaskRequest>,
) -> Result<HttpResponse, Problem> {
    let key = idempotency_key(&req)?;
    let needs_zone = body
        .recurrence
        .as_ref()
        .is_some_and(|r| r.timezone.is_none());
    let zone = default_timezone(&state, auth.user_id(), needs_zone).await?;
    let fields = TaskFields::parse_new(&body, &zone)?;
    let idempotency = key.map(|k| {
        let hash = hex::encode(Sha256::digest(
            serde_json::to_vec(&*body).unwrap_or_default(),
        ));
        (k, hash)
    });
    let created = task_changes::create(
        &state.writes,
        CreateTask {
            user_id: auth.user_id().to_owned(),
            fields,
            idempotency,
            traceparent: trace_of(&req).header(),
        },
    )
    .await?;
    match created {
        Created::New { task, body } => {
            state.wake_relay();
            Ok(HttpResponse::Created()
                .insert_header((header::ETAG, etag(task.version)))
                .insert_header((header::LOCATION, format!("/api/tasks/{}", task.id)))
                .content_type("application/json")
                .body(body))
        }
        Created::Replayed { status, body } => Ok(HttpResponse::build(
            actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::CREATED),
        )
        .insert_header(("Idempotent-Replayed", "true"))
        .content_type("application/json")
        .body(body)),
    }
}

/// List tasks
///
/// Filters combine with AND. Pages are keyset pages: tasks added while paging never shift a
/// page, so nothing is skipped or repeated.
#[utoipa::path(
    get,
    path = "/api/tasks",
    tag = "tasks",
    security(("bearer" = [])),
    params(RawTaskQuery),
    responses(
        (status = 200, description = "A page of tasks", body = TaskPage),
        (status = 400, description = "A bad query parameter", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn list_tasks(
    auth: Authenticated,
    state: State,
    query: web::Query<RawTaskQuery>,
) -> Result<HttpResponse, Problem> {
    let query = TaskQuery::try_from(query.into_inner())?;
    let user = auth.user_id().to_owned();
    let (limit, sort) = (query.limit as usize, query.sort);
    let mut rows = state
        .db
        .run(move |conn| tasks::list(conn, &user, &query))
        .await
        .map_err(storage_problem)?;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|t| {
            Cursor {
                sort,
                key: tasks::sort_key(t, sort.field),
                id: t.id.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(TaskPage {
        items: rows.iter().map(Task::view).collect(),
        next_cursor,
    }))
}

async fn load(state: &State, user_id: &str, id: &str) -> Result<Task, Problem> {
    let (user, id) = (user_id.to_owned(), path_id(id, "task")?);
    state
        .db
        .run(move |conn| tasks::get(conn, &user, &id))
        .await
        .map_err(storage_problem)?
        .ok_or_else(|| Problem::not_found("task"))
}

/// Read a task
#[utoipa::path(
    get,
    path = "/api/tasks/{id}",
    tag = "tasks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Task id (UUID)")),
    responses(
        (status = 200, description = "The task", body = TaskView,
            headers(("ETag" = String, description = "The version, quoted"))),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such task of yours", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn get_task(
    auth: Authenticated,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let task = load(&state, auth.user_id(), &path).await?;
    Ok(task_response(actix_web::http::StatusCode::OK, &task))
}

/// Update a task
///
/// Only the fields present change; `null` clears a nullable field. With `If-Match` (the ETag,
/// quoted or bare) the update applies only to that version, else 412. Announced on
/// `task.updated` with the names of the changed fields; a request that changes nothing keeps
/// the version and announces nothing.
#[utoipa::path(
    patch,
    path = "/api/tasks/{id}",
    tag = "tasks",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Task id (UUID)"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"?[0-9]{1,18}"?)$"#, description = "Version the update applies to"),
    ),
    request_body = UpdateTaskRequest,
    responses(
        (status = 200, description = "The updated task", body = TaskView,
            headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "Malformed JSON or If-Match", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such task of yours", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn update_task(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
    path: web::Path<String>,
    body: web::Json<UpdateTaskRequest>,
) -> Result<HttpResponse, Problem> {
    let task_id = path_id(&path, "task")?;
    let if_match = if_match(req.headers())?;
    let needs_zone = matches!(&body.recurrence, Some(Some(r)) if r.timezone.is_none());
    let zone = default_timezone(&state, auth.user_id(), needs_zone).await?;
    let task = task_changes::edit(
        &state.writes,
        EditTask {
            user_id: auth.user_id().to_owned(),
            task_id,
            if_match,
            request: body.into_inner(),
            default_timezone: zone,
            traceparent: trace_of(&req).header(),
        },
    )
    .await?;
    state.wake_relay();
    Ok(task_response(actix_web::http::StatusCode::OK, &task))
}

fn action(req: &HttpRequest, auth: &Authenticated, id: &str) -> Result<TaskAction, Problem> {
    Ok(TaskAction {
        user_id: auth.user_id().to_owned(),
        task_id: path_id(id, "task")?,
        if_match: if_match(req.headers())?,
        traceparent: trace_of(req).header(),
    })
}

/// Complete a task
///
/// Announced on `task.completed`. Completing a completed task changes nothing and announces
/// nothing.
#[utoipa::path(
    post,
    path = "/api/tasks/{id}/complete",
    tag = "tasks",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Task id (UUID)"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"?[0-9]{1,18}"?)$"#, description = "Version the change applies to"),
    ),
    responses(
        (status = 200, description = "The completed task", body = TaskView),
        (status = 400, description = "Malformed If-Match", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such task of yours", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn complete_task(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let cmd = action(&req, &auth, &path)?;
    let task = task_changes::set_status(&state.writes, cmd, StatusChange::Complete).await?;
    state.wake_relay();
    Ok(task_response(actix_web::http::StatusCode::OK, &task))
}

/// Reopen a task
///
/// Announced on `task.updated` (status back to open). Reopening an open task changes nothing.
#[utoipa::path(
    post,
    path = "/api/tasks/{id}/reopen",
    tag = "tasks",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Task id (UUID)"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"?[0-9]{1,18}"?)$"#, description = "Version the change applies to"),
    ),
    responses(
        (status = 200, description = "The reopened task", body = TaskView),
        (status = 400, description = "Malformed If-Match", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such task of yours", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn reopen_task(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let cmd = action(&req, &auth, &path)?;
    let task = task_changes::set_status(&state.writes, cmd, StatusChange::Reopen).await?;
    state.wake_relay();
    Ok(task_response(actix_web::http::StatusCode::OK, &task))
}

/// Delete a task
///
/// Announced on `task.deleted`.
#[utoipa::path(
    delete,
    path = "/api/tasks/{id}",
    tag = "tasks",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Task id (UUID)"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"?[0-9]{1,18}"?)$"#, description = "Version the deletion applies to"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed If-Match", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such task of yours", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn delete_task(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let cmd = action(&req, &auth, &path)?;
    task_changes::delete(&state.writes, cmd).await?;
    state.wake_relay();
    Ok(HttpResponse::NoContent().finish())
}
