//! `/api/tasks/{id}/shares`: share a task, list its shares, remove one.

use actix_web::{HttpRequest, HttpResponse, web};
use service_kit::http::{Authenticated, Problem};

use super::task_operations as ops;
use super::tasks::caller;
use super::views::ProblemDocument;
use super::{State, if_match};
use crate::domain::share::{ShareRequest, ShareView};

/// Share a task
///
/// The owner shares the task with the user of `email` as `viewer` (reads) or `editor` (also
/// updates, completes and reopens); sharing again with another role changes the role. Announced
/// on `task.shared`. An email without an account becomes an invitation (`status: pending`) that
/// takes effect when that address registers. 201 when something changed, 200 when the share
/// already stood so. Anyone but the owner gets 404.
#[utoipa::path(
    post,
    path = "/api/tasks/{id}/shares",
    tag = "sharing",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Task id (UUID)"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"?[0-9]{1,18}"?)$"#, description = "Version the share applies to"),
    ),
    request_body = ShareRequest,
    responses(
        (status = 201, description = "Shared, or invited", body = ShareView),
        (status = 200, description = "Already shared so; nothing changed", body = ShareView),
        (status = 400, description = "Malformed JSON or If-Match", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such task of yours", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email or role, or the owner's own email", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn share_task(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
    path: web::Path<String>,
    body: web::Json<ShareRequest>,
) -> Result<HttpResponse, Problem> {
    let if_match = if_match(req.headers())?;
    let shared = ops::share(&state, &caller(&req, &auth), &path, if_match, &body).await?;
    Ok(if shared.changed {
        HttpResponse::Created().json(shared.share)
    } else {
        HttpResponse::Ok().json(shared.share)
    })
}

/// List a task's shares
///
/// Everyone who may see the task reads who else may: accounts first, then pending invitations.
#[utoipa::path(
    get,
    path = "/api/tasks/{id}/shares",
    tag = "sharing",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Task id (UUID)")),
    responses(
        (status = 200, description = "The shares", body = Vec<ShareView>),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such task you may see", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn list_shares(
    auth: Authenticated,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(ops::shares(&state, auth.user_id(), &path).await?))
}

/// Remove a share
///
/// `{user_id}` is a collaborator's id, or the email of a pending invitation. The owner removes
/// any share; a collaborator may remove their own (leave the task). Announced on `task.shared`
/// with role `none`; from then on that user receives nothing about the task. Removing the
/// assignee's share also unassigns the task.
#[utoipa::path(
    delete,
    path = "/api/tasks/{id}/shares/{user_id}",
    tag = "sharing",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Task id (UUID)"),
        ("user_id" = String, Path, description = "The collaborator's id (UUID) or the invited email"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"?[0-9]{1,18}"?)$"#, description = "Version the removal applies to"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Malformed If-Match", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such task or share", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "If-Match names an old version", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn remove_share(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let if_match = if_match(req.headers())?;
    let (id, who) = path.into_inner();
    ops::unshare(&state, &caller(&req, &auth), &id, &who, if_match).await?;
    Ok(HttpResponse::NoContent().finish())
}
