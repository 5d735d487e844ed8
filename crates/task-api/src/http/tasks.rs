//! `/api/tasks`: create, list, read, update, complete, reopen, delete.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use service_kit::http::{Authenticated, Problem, trace_of};

use super::task_operations::{self as ops, Caller, MAX_IDEMPOTENCY_KEY_LEN};
use super::views::{ProblemDocument, TaskPage, TaskView};
use super::{State, etag, if_match};
use crate::changes::tasks::{Created, StatusChange};
use crate::domain::query::RawTaskQuery;
use crate::domain::task::{CreateTaskRequest, Task, UpdateTaskRequest};

pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

fn task_response(status: actix_web::http::StatusCode, task: &Task, reader: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, etag(task.version)))
        .json(task.view_for(reader))
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, Problem> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        Problem::bad_request(format!(
            "{IDEMPOTENCY_KEY} must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
        ))
    })?;
    ops::idempotency_key(text, IDEMPOTENCY_KEY).map(Some)
}

/// Who asks, from the token, and the trace their request's events carry.
pub(super) fn caller(req: &HttpRequest, auth: &Authenticated) -> Caller {
    Caller {
        user_id: auth.user_id().to_owned(),
        traceparent: trace_of(req).header(),
    }
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
    match ops::create(&state, &caller(&req, &auth), &body, key).await? {
        Created::New { task, body } => Ok(HttpResponse::Created()
            .insert_header((header::ETAG, etag(task.version)))
            .insert_header((header::LOCATION, format!("/api/tasks/{}", task.id)))
            .content_type("application/json")
            .body(body)),
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
    let page = ops::list(&state, auth.user_id(), query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(page))
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
    let task = ops::get(&state, auth.user_id(), &path).await?;
    Ok(task_response(
        actix_web::http::StatusCode::OK,
        &task,
        auth.user_id(),
    ))
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
    let if_match = if_match(req.headers())?;
    let task = ops::edit(
        &state,
        &caller(&req, &auth),
        &path,
        if_match,
        body.into_inner(),
    )
    .await?;
    Ok(task_response(
        actix_web::http::StatusCode::OK,
        &task,
        auth.user_id(),
    ))
}

async fn set_status(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
    id: &str,
    change: StatusChange,
) -> Result<HttpResponse, Problem> {
    let if_match = if_match(req.headers())?;
    let task = ops::set_status(&state, &caller(&req, &auth), id, if_match, change).await?;
    Ok(task_response(
        actix_web::http::StatusCode::OK,
        &task,
        auth.user_id(),
    ))
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
    set_status(req, auth, state, &path, StatusChange::Complete).await
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
    set_status(req, auth, state, &path, StatusChange::Reopen).await
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
    let if_match = if_match(req.headers())?;
    ops::delete(&state, &caller(&req, &auth), &path, if_match).await?;
    Ok(HttpResponse::NoContent().finish())
}
