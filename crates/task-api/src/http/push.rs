//! Web Push subscriptions of the signed-in user: `GET`/`POST /api/me/push-subscriptions`,
//! `DELETE /api/me/push-subscriptions/{id}`. The page subscribes with the VAPID public key it
//! reads from `GET /api/config` (`vapid_public_key`, null when push is not configured here:
//! then adding a subscription, or choosing the push channel, is refused with 409).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use service_kit::http::{Authenticated, Problem, trace_of};
use service_kit::push::BASE64URL;
use utoipa::ToSchema;

use super::views::ProblemDocument;
use super::{State, storage_problem};
use crate::changes::push as push_changes;
use crate::domain::push::PushSubscriptionRequest;
use crate::domain::time;
use crate::storage::push::{self as store, PushSubscriptionRow};

/// A stored subscription, in the shape the browser gave it (`PushSubscription.toJSON()`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PushSubscriptionView {
    pub id: String,
    pub endpoint: String,
    pub keys: PushKeysView,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PushKeysView {
    pub p256dh: String,
    pub auth: String,
}

/// The refusal when this deployment has no VAPID key.
pub fn push_unavailable() -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "push-unavailable",
        "Push is not available",
    )
    .detail("this server has no VAPID key configured (VAPID_PUBLIC_KEY); use another channel")
}

fn view(state: &State, row: &PushSubscriptionRow) -> Result<PushSubscriptionView, Problem> {
    let auth = state
        .push_seal
        .open(&row.user_id, &row.endpoint, &row.auth_sealed)
        .map_err(|e| {
            tracing::error!(error = %e, subscription = %row.id, "stored push subscription unreadable");
            Problem::internal()
        })?;
    Ok(PushSubscriptionView {
        id: row.id.clone(),
        endpoint: row.endpoint.clone(),
        keys: PushKeysView {
            p256dh: row.p256dh.clone(),
            auth: BASE64URL.encode(auth),
        },
        created_at: time::format(row.created_at),
    })
}

/// The user's push subscriptions
#[utoipa::path(
    get,
    path = "/api/me/push-subscriptions",
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One per subscribed browser", body = Vec<PushSubscriptionView>),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn list(auth: Authenticated, state: State) -> Result<HttpResponse, Problem> {
    let id = auth.user_id().to_owned();
    let rows = state
        .db
        .run(move |conn| store::of_user(conn, &id))
        .await
        .map_err(storage_problem)?;
    let views = rows
        .iter()
        .map(|r| view(&state, r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(views))
}

/// Add a browser's push subscription
///
/// The body is the browser's `PushSubscription.toJSON()`. The same endpoint again answers 200
/// (its keys replaced if they changed). Announced on `user.updated`, the auth secret sealed.
#[utoipa::path(
    post,
    path = "/api/me/push-subscriptions",
    tag = "me",
    security(("bearer" = [])),
    request_body = PushSubscriptionRequest,
    responses(
        (status = 201, description = "Stored", body = PushSubscriptionView),
        (status = 200, description = "Already stored", body = PushSubscriptionView),
        (status = 400, description = "Malformed JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Push is not configured on this server", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn subscribe(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
    body: web::Json<PushSubscriptionRequest>,
) -> Result<HttpResponse, Problem> {
    if state.vapid_public_key.is_none() {
        return Err(push_unavailable());
    }
    let new = body.parse()?;
    let subscribed = push_changes::subscribe(
        &state.db,
        &state.push_seal,
        auth.user_id().to_owned(),
        new,
        trace_of(&req).header(),
    )
    .await?;
    state.wake_relay();
    let body = view(&state, &subscribed.row)?;
    Ok(if subscribed.created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// Remove a push subscription
#[utoipa::path(
    delete,
    path = "/api/me/push-subscriptions/{id}",
    tag = "me",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The subscription's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription of the user", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn unsubscribe(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    push_changes::unsubscribe(
        &state.db,
        auth.user_id().to_owned(),
        path.into_inner(),
        trace_of(&req).header(),
    )
    .await?;
    state.wake_relay();
    Ok(HttpResponse::NoContent().finish())
}
