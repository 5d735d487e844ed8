//! The REST API (SPEC section 6), the web page, and the OpenAPI document. Handlers are thin:
//! parse at the edge, call a change or a query, map the outcome to a response.

pub mod auth;
pub mod categories;
pub mod channels;
pub mod client_address;
pub mod me;
pub mod openapi;
pub mod phone;
pub mod push;
pub mod shares;
pub mod task_operations;
pub mod tasks;
pub mod views;
pub mod web_page;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::web;
use service_kit::auth::TokenSigner;
use service_kit::db::{Database, DbError};
use service_kit::http::Problem;
use service_kit::webhook::WebhookKey;
use tokio::sync::Notify;

use crate::auth::rate_limit::LoginLimiter;
use crate::changes::ChangeError;
use crate::domain::Invalid;
use crate::domain::query::BadQuery;

/// What the handlers share.
pub struct AppState {
    pub db: Database,
    pub signer: TokenSigner,
    pub webhook_key: WebhookKey,
    /// The SMS gateway (verification codes); `None` when this server has none.
    pub sms: Option<service_kit::sms::SmsGateway>,
    pub limiter: LoginLimiter,
    /// Who a request comes from, behind trusted proxies too (login limits and records).
    pub client_address: client_address::ClientAddress,
    /// Wakes the outbox relay after a commit, so events leave at once rather than at the next
    /// poll.
    pub relay_wakeup: Arc<Notify>,
    /// Task changes, committed in groups (crate::changes::group_commit).
    pub writes: crate::changes::group_commit::GroupCommit,
    pub ws_public_url: String,
    /// `VAPID_PUBLIC_KEY`, handed to the page; `None`: push is not available here.
    pub vapid_public_key: Option<String>,
    /// Seals push subscriptions' auth secrets (derived from the webhook key).
    pub push_seal: service_kit::push::PushSealKey,
    /// The OpenAPI document, rendered once.
    pub openapi_json: String,
}

impl AppState {
    pub fn wake_relay(&self) {
        self.relay_wakeup.notify_one();
    }
}

pub type State = web::Data<AppState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/auth/register")
            .route(web::post().to(auth::register))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/auth/login")
            .route(web::post().to(auth::login))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/me")
            .route(web::get().to(me::get_me))
            .route(web::patch().to(me::update_me))
            .default_service(not_allowed("GET, PATCH")),
    )
    .service(
        web::resource("/api/me/webhook-secret")
            .route(web::get().to(me::webhook_secret))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/api/me/phone")
            .route(web::put().to(phone::enter_phone))
            .route(web::delete().to(phone::remove_phone))
            .default_service(not_allowed("PUT, DELETE")),
    )
    .service(
        web::resource("/api/me/phone/verify")
            .route(web::post().to(phone::verify_phone))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/tasks")
            .route(web::get().to(tasks::list_tasks))
            .route(web::post().to(tasks::create_task))
            .default_service(not_allowed("GET, POST")),
    )
    .service(
        web::resource("/api/tasks/{id}")
            .route(web::get().to(tasks::get_task))
            .route(web::patch().to(tasks::update_task))
            .route(web::delete().to(tasks::delete_task))
            .default_service(not_allowed("GET, PATCH, DELETE")),
    )
    .service(
        web::resource("/api/tasks/{id}/complete")
            .route(web::post().to(tasks::complete_task))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/tasks/{id}/reopen")
            .route(web::post().to(tasks::reopen_task))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/api/tasks/{id}/shares")
            .route(web::get().to(shares::list_shares))
            .route(web::post().to(shares::share_task))
            .default_service(not_allowed("GET, POST")),
    )
    .service(
        web::resource("/api/tasks/{id}/shares/{user_id}")
            .route(web::delete().to(shares::remove_share))
            .default_service(not_allowed("DELETE")),
    )
    .service(
        web::resource("/api/categories")
            .route(web::get().to(categories::list_categories))
            .route(web::post().to(categories::create_category))
            .default_service(not_allowed("GET, POST")),
    )
    .service(
        web::resource("/api/categories/{id}")
            .route(web::patch().to(categories::rename_category))
            .route(web::delete().to(categories::delete_category))
            .default_service(not_allowed("PATCH, DELETE")),
    )
    .service(
        web::resource("/api/me/push-subscriptions")
            .route(web::get().to(push::list))
            .route(web::post().to(push::subscribe))
            .default_service(not_allowed("GET, POST")),
    )
    .service(
        web::resource("/api/me/push-subscriptions/{id}")
            .route(web::delete().to(push::unsubscribe))
            .default_service(not_allowed("DELETE")),
    )
    .service(
        web::resource("/api/config")
            .route(web::get().to(web_page::client_config))
            .default_service(not_allowed("GET")),
    )
    .route("/openapi.json", web::get().to(openapi::document))
    .route("/", web::get().to(web_page::index))
    .route("/app.css", web::get().to(web_page::stylesheet));
    for (path, _) in web_page::SCRIPTS {
        cfg.route(path, web::get().to(web_page::script));
    }
}

/// 405 with the `Allow` header RFC 9110 requires, as a problem document.
fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |req: actix_web::HttpRequest| async move {
        use actix_web::ResponseError;
        let mut response = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
        )
        .detail(format!(
            "{} is not supported on {}; use {allow}",
            req.method(),
            req.path()
        ))
        .error_response();
        response.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static(allow),
        );
        response
    })
}

/// A storage failure as the client sees it: 503 when the database is away, else 500 (logged).
pub fn storage_problem(e: DbError) -> Problem {
    if e.is_unavailable() {
        Problem::unavailable("the database is unavailable; try again shortly")
    } else {
        tracing::error!(error = %e, "storage failure");
        Problem::internal()
    }
}

impl From<ChangeError> for Problem {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::NotFound(what) => Problem::not_found(what),
            ChangeError::PreconditionFailed { current } => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "The task was changed meanwhile",
            )
            .detail(format!(
                "If-Match does not name the current version ({current}); GET the task again \
                 and retry with If-Match: \"{current}\""
            )),
            ChangeError::Conflict { slug, detail } => {
                let status = if slug == "idempotency-key-reused" {
                    StatusCode::UNPROCESSABLE_ENTITY
                } else {
                    StatusCode::CONFLICT
                };
                Problem::new(status, slug, "Conflict").detail(detail)
            }
            ChangeError::Invalid(invalid) => invalid.into(),
            ChangeError::Raced => Problem::new(
                StatusCode::CONFLICT,
                "concurrent-change",
                "Changed concurrently",
            )
            .detail("the item kept changing while this request ran; try again"),
            ChangeError::Storage(e) => storage_problem(e),
        }
    }
}

/// The domain's validation error as a 422 problem listing every invalid field.
impl From<Invalid> for Problem {
    fn from(invalid: Invalid) -> Self {
        invalid
            .fields()
            .iter()
            .fold(Problem::validation(), |problem, f| {
                problem.field(f.field.clone(), f.message.clone())
            })
    }
}

/// A query parameter that cannot be used, as a 400 problem naming it.
impl From<BadQuery> for Problem {
    fn from(e: BadQuery) -> Self {
        Problem::bad_request(e.to_string()).field(e.parameter, e.message)
    }
}

/// `If-Match`: a version, quoted or bare (`"3"`, `3`, `W/"3"`); `*` or no header matches any.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, Problem> {
    let Some(value) = headers.get(actix_web::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Problem::bad_request("If-Match must be ASCII"))?
        .trim();
    if text == "*" || text.is_empty() {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text);
    let tag = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag);
    tag.parse::<i64>().map(Some).map_err(|_| {
        Problem::bad_request("If-Match must be the task's version, e.g. \"3\" (its ETag)")
    })
}

/// The strong ETag of a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A path id: anything but a UUID cannot name a stored item, so it is simply not found.
pub fn path_id(value: &str, what: &str) -> Result<String, Problem> {
    crate::domain::parse_uuid(value).map_err(|_| Problem::not_found(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderValue, IF_MATCH};

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(IF_MATCH, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn if_match_takes_quoted_bare_and_weak_versions() {
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
        assert_eq!(if_match(&with("\"3\"")).unwrap(), Some(3));
        assert_eq!(if_match(&with("3")).unwrap(), Some(3));
        assert_eq!(if_match(&with("W/\"3\"")).unwrap(), Some(3));
        assert_eq!(if_match(&with("*")).unwrap(), None);
        assert_eq!(if_match(&with("\"abc\"")).unwrap_err().status, 400);
    }
}
