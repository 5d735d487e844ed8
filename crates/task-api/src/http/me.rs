//! `GET /api/me`, `PATCH /api/me`, `GET /api/me/webhook-secret`.

use actix_web::{HttpRequest, HttpResponse, web};
use service_kit::http::{Authenticated, Problem, trace_of};
use service_kit::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER};

use super::views::{ProblemDocument, UserView, WebhookSecretView};
use super::{State, storage_problem};
use crate::changes::users as user_changes;
use crate::domain::user::UpdateMeRequest;
use crate::storage::users;

/// The signed-in user
#[utoipa::path(
    get,
    path = "/api/me",
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "The token's user does not exist", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn get_me(auth: Authenticated, state: State) -> Result<HttpResponse, Problem> {
    let id = auth.user_id().to_owned();
    let user = state
        .db
        .run(move |conn| users::by_id(conn, &id))
        .await
        .map_err(storage_problem)?
        .ok_or_else(|| Problem::not_found("user"))?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

/// Change the profile
///
/// Name, time zone, notification channels, webhook URL; announced on `user.updated`.
#[utoipa::path(
    patch,
    path = "/api/me",
    tag = "me",
    security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "The updated user", body = UserView),
        (status = 400, description = "Malformed JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "The token's user does not exist", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn update_me(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
    body: web::Json<UpdateMeRequest>,
) -> Result<HttpResponse, Problem> {
    super::channels::refuse_in_profile(&state, body.notification_channels.as_deref())?;
    let user = user_changes::update_profile(
        &state.db,
        auth.user_id().to_owned(),
        body.into_inner(),
        trace_of(&req).header(),
    )
    .await?;
    state.wake_relay();
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

/// The webhook signing secret
///
/// Webhook deliveries carry `X-Todo-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
/// and `X-Todo-Timestamp`.
#[utoipa::path(
    get,
    path = "/api/me/webhook-secret",
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The secret", body = WebhookSecretView),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn webhook_secret(auth: Authenticated, state: State) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(WebhookSecretView {
            secret: state.webhook_key.user_secret(auth.user_id()),
            signature_header: SIGNATURE_HEADER.to_owned(),
            timestamp_header: TIMESTAMP_HEADER.to_owned(),
        })
}
