//! `POST /api/auth/register` and `POST /api/auth/login`.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use events::AuthOutcome;
use service_kit::http::{Problem, trace_of};

use super::views::{ProblemDocument, TokenView, UserView};
use super::{State, storage_problem};
use crate::auth::passwords;
use crate::changes::users::{self as user_changes, LoginAttempt};
use crate::domain::user::{LoginRequest, Password, RegisterRequest, Registration};
use crate::storage::users;

const MAX_USER_AGENT_LEN: usize = 512;

/// Register a user
///
/// Creates the account and announces it on `user.registered`.
#[utoipa::path(
    post,
    path = "/api/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = UserView),
        (status = 400, description = "Malformed JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The email is taken", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    req: HttpRequest,
    state: State,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, Problem> {
    let registration = Registration::parse(&body)?;
    let hash = passwords::hash(registration.password.clone())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            Problem::internal()
        })?;
    let user =
        user_changes::register(&state.db, registration, hash, trace_of(&req).header()).await?;
    state.wake_relay();
    tracing::info!(user_id = %user.id, "user registered");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, "/api/me"))
        .json(UserView::from(&user)))
}

/// Log in
///
/// Returns a bearer token (EdDSA JWT). Every attempt is announced on `user.authenticated` with
/// its outcome. Attempts are limited per email and per client address (429 with Retry-After).
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenView),
        (status = 400, description = "Malformed JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Wrong email or password", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    req: HttpRequest,
    state: State,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, Problem> {
    let email = body.email.trim().to_lowercase();
    let ip = state.client_address.of(&req);
    let mut attempt = LoginAttempt {
        email: email.clone(),
        user_id: None,
        outcome: AuthOutcome::UnknownUser,
        ip_address: ip.map(|ip| ip.to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT_LEN).collect()),
        traceparent: trace_of(&req).header(),
    };
    let lookup = email.clone();
    let user = state
        .db
        .run(move |conn| users::by_email(conn, &lookup))
        .await
        .map_err(storage_problem)?;
    attempt.user_id = user.as_ref().map(|u| u.id.clone());

    if let Err(wait) = state.limiter.attempt(&email, ip) {
        attempt.outcome = AuthOutcome::RateLimited;
        user_changes::record_login(&state.db, attempt).await?;
        state.wake_relay();
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many login attempts",
        )
        .detail(format!("try again in {wait} s"))
        .retry_after(wait));
    }

    // Too long or too short to be anyone's password: still verified (against a decoy when
    // needed) so the answer takes the same time.
    let password = Password::parse(&body.password)
        .map(|p| p.expose().to_owned())
        .unwrap_or_default();
    let verified =
        passwords::verify(password, user.as_ref().map(|u| u.password_hash.clone())).await;
    attempt.outcome = match (&user, verified) {
        (None, _) => AuthOutcome::UnknownUser,
        (Some(_), false) => AuthOutcome::InvalidPassword,
        (Some(_), true) => AuthOutcome::Success,
    };
    let outcome = attempt.outcome;
    user_changes::record_login(&state.db, attempt).await?;
    state.wake_relay();
    match (user, outcome) {
        (Some(user), AuthOutcome::Success) => {
            state.limiter.succeeded(&email);
            let token = state.signer.issue(&user.id).map_err(|e| {
                tracing::error!(error = %e, "cannot sign a token");
                Problem::internal()
            })?;
            Ok(HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(TokenView {
                    access_token: token,
                    token_type: "bearer".to_owned(),
                    expires_in: state.signer.ttl_seconds(),
                }))
        }
        _ => Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
            "Wrong email or password",
        )
        .detail("check the email and password, or register first")),
    }
}
