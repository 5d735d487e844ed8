//! `GET /ws/tasks` (the upgrade) and `GET /ws/stats`.
//!
//! Everything is checked before the handshake, each with an RFC 9457 problem: the gateway is
//! not stopping (503), the browser's `Origin` is allowed (403), the token — `?token=` or an
//! `Authorization: Bearer` header — is valid (401), the `after` cursor is well-formed (400),
//! the request is a WebSocket upgrade (400), the gateway knows its place in Kafka (503 while
//! starting) and the user has room for another connection (429).
//! The token never reaches a log: request logs carry the path only.

use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use service_kit::auth::{AuthError, TokenVerifier};
use service_kit::http::Problem;

use crate::config::AllowedOrigins;
use crate::connection::{self, ConnectionContext};
use crate::cursor::MalformedCursor;
use crate::hub::Refusal;
use crate::replay::Gap;

/// What the upgrade handler needs.
pub struct Gate {
    pub verifier: TokenVerifier,
    pub origins: AllowedOrigins,
    pub ctx: ConnectionContext,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws/tasks", web::get().to(upgrade))
        .route("/ws/stats", web::get().to(stats));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpgradeQuery {
    token: Option<String>,
    after: Option<String>,
}

fn rejected(gate: &Gate, reason: &str, problem: Problem) -> Problem {
    gate.ctx
        .metrics
        .upgrades_rejected
        .with_label_values(&[reason])
        .inc();
    problem
}

async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<UpgradeQuery>,
    gate: web::Data<Arc<Gate>>,
) -> Result<HttpResponse, Problem> {
    if gate.ctx.shutdown.is_triggered() {
        return Err(rejected(
            &gate,
            "shutting_down",
            Problem::unavailable("the gateway is shutting down; reconnect in a moment"),
        ));
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| gate.origins.allows(o));
        if !allowed {
            return Err(rejected(
                &gate,
                "origin",
                Problem::new(
                    StatusCode::FORBIDDEN,
                    "origin-not-allowed",
                    "Origin not allowed",
                )
                .detail("this page's origin may not open the task stream (WS_ALLOWED_ORIGINS)"),
            ));
        }
    }
    let query = query.into_inner();
    let claims = match query.token.as_deref() {
        Some(token) => gate.verifier.verify(token.trim()),
        None => gate.verifier.verify_bearer(
            req.headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        ),
    }
    .map_err(|e| {
        let detail = match e {
            AuthError::Missing => "pass ?token=<access token> (POST /api/auth/login)",
            AuthError::Expired => "the token has expired; log in again",
            AuthError::Invalid => "the token is not valid",
        };
        rejected(&gate, "unauthorized", Problem::unauthorized(detail))
    })?;
    // A cursor from gateways that followed other topics (before an upgrade) is not an error
    // of the client's: it gets resync.
    let (after, foreign) = match query
        .after
        .as_deref()
        .map(|a| gate.ctx.hub.layout().parse(a))
    {
        None => (None, false),
        Some(Ok(position)) => (Some(position), false),
        Some(Err(MalformedCursor::OtherLayout)) => (None, true),
        Some(Err(e @ MalformedCursor::Garbled)) => {
            return Err(rejected(
                &gate,
                "bad_cursor",
                Problem::bad_request(e.to_string()),
            ));
        }
    };
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        rejected(
            &gate,
            "not_websocket",
            Problem::bad_request(format!("expected a WebSocket upgrade: {e}")),
        )
    })?;
    let mut subscription = gate
        .ctx
        .hub
        .subscribe(&claims.sub, after)
        .map_err(|e| match e {
            Refusal::TooManyConnections(_) => rejected(
                &gate,
                "too_many_connections",
                Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-connections",
                    "Too many connections",
                )
                .detail(format!("{e}; close another tab")),
            ),
            Refusal::NotReady => rejected(
                &gate,
                "not_ready",
                Problem::unavailable("the gateway is starting; reconnect in a moment"),
            ),
        })?;
    if foreign {
        subscription.opening.resync = Some(Gap::OtherLayout);
    }
    actix_web::rt::spawn(connection::serve(
        gate.ctx.clone(),
        session,
        stream,
        subscription,
        claims.exp,
    ));
    Ok(response)
}

async fn stats(gate: web::Data<Arc<Gate>>) -> HttpResponse {
    HttpResponse::Ok().json(gate.ctx.hub.stats())
}
