//! The web page (`web/` at the repository root, compiled into the binary so that it is
//! self-contained) and the settings it asks for.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use super::State;
use super::views::ClientConfig;

const INDEX_HTML: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/index.html"));
const APP_CSS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/app.css"));

macro_rules! modules {
    ($($name:literal),* $(,)?) => {
        &[$((
            concat!("/", $name),
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/", $name)),
        )),*]
    };
}

/// The page's script: ES modules (`web/*.js`), by the path the page loads each from. `app.js`
/// is the entry the page names; it imports the others.
pub const SCRIPTS: &[(&str, &str)] = modules![
    "app.js",
    "state.js",
    "api.js",
    "format.js",
    "toast.js",
    "auth.js",
    "tasks.js",
    "people.js",
    "editor.js",
    "live.js",
    "phone.js",
    "push.js",
    // The service worker (web push). At the root so that its scope is the whole page; served
    // as JavaScript like the modules (a worker must be, or the browser refuses to register it).
    "sw.js",
];

/// The page runs only its own script and style, talks only to this API and to the gateway's
/// WebSocket, and cannot be framed.
pub fn content_security_policy(ws_origin: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {ws_origin}; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

pub async fn index(state: State) -> HttpResponse {
    let csp = content_security_policy(&crate::config::ws_origin(&state.ws_public_url));
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(INDEX_HTML)
}

/// One of [`SCRIPTS`], by the request's path (the routes are made from the same table).
pub async fn script(req: HttpRequest) -> HttpResponse {
    match SCRIPTS.iter().find(|(path, _)| *path == req.path()) {
        Some((_, body)) => HttpResponse::Ok()
            .content_type("text/javascript; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(*body),
        None => HttpResponse::NotFound().finish(),
    }
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(APP_CSS)
}

/// Settings for the web page
///
/// Where the page opens its WebSocket.
#[utoipa::path(
    get,
    path = "/api/config",
    tag = "web",
    responses((status = 200, description = "Client settings", body = ClientConfig))
)]
pub async fn client_config(state: State) -> HttpResponse {
    HttpResponse::Ok().json(ClientConfig {
        ws_url: state.ws_public_url.clone(),
        vapid_public_key: state.vapid_public_key.clone(),
    })
}
