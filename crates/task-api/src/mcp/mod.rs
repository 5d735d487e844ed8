//! The chatbot's tools over the Model Context Protocol (contract section 6): streamable HTTP at
//! `/mcp`, on task-api's own port, behind the same bearer token as REST. A request without a
//! valid token gets the REST API's 401 problem before any MCP exchange; one with a token reaches
//! the tools ([`tools`]) as that user.
//!
//! The transport is the official Rust SDK's (rmcp) `StreamableHttpService`, mounted in actix-web
//! by rmcp-actix-web. It runs stateless (no MCP sessions): every POST is answered on its own,
//! so any task-api instance serves any request, and answers are plain JSON.
//!
//! * [`params`]: the tools' arguments and their JSON Schemas;
//! * [`local_time`]: local times in the user's time zone;
//! * [`tools`]: the tools.

pub mod local_time;
pub mod params;
pub mod tools;

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpMessage, ResponseError, web};
use rmcp_actix_web::transport::{LocalSessionManager, StreamableHttpService};
use serde_json::Value;
use service_kit::auth::{AuthError, TokenVerifier};
use service_kit::config::{ConfigError, optional};
use service_kit::http::{Problem, trace_of};

use crate::http::AppState;

pub use tools::TaskTools;

/// Where the MCP endpoint is mounted.
pub const PATH: &str = "/mcp";

/// The verified caller of one MCP request, handed from the HTTP layer to the tools.
#[derive(Debug, Clone)]
pub struct Authorized {
    pub user_id: String,
    /// The bearer token, for the calls the tools make to the audit and recurring-task services
    /// on the caller's behalf (they check it themselves).
    pub token: String,
    pub traceparent: String,
}

/// Settings of the MCP endpoint, from the environment.
#[derive(Debug, Clone)]
pub struct McpSettings {
    /// `AUDIT_API_URL` (default `http://127.0.0.1:8004`): audit-service, for `task_history`.
    pub audit_url: String,
    /// `RECURRENCE_API_URL` (default `http://127.0.0.1:8003`): recurring-task-service, for
    /// `preview_recurrence`.
    pub recurrence_url: String,
    /// `MCP_ALLOWED_HOSTS`: comma-separated `Host` values `/mcp` answers (a DNS-rebinding
    /// defence); default loopback names only (rmcp's default). Set it to the names the service
    /// is reached by when it is not reached on loopback.
    pub allowed_hosts: Option<Vec<String>>,
}

fn http_url(name: &'static str, default: &str) -> Result<String, ConfigError> {
    let value = optional(name).unwrap_or_else(|| default.to_owned());
    match url::Url::parse(&value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(value.trim_end_matches('/').to_owned())
        }
        _ => Err(ConfigError::new(
            name,
            format!("must be an http:// or https:// URL, e.g. {default}"),
        )),
    }
}

impl McpSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let allowed_hosts = optional("MCP_ALLOWED_HOSTS").map(|v| {
            v.split(',')
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect::<Vec<_>>()
        });
        if allowed_hosts.as_ref().is_some_and(Vec::is_empty) {
            return Err(ConfigError::new(
                "MCP_ALLOWED_HOSTS",
                "must name at least one host, e.g. tasks.example.com,localhost",
            ));
        }
        Ok(Self {
            audit_url: http_url("AUDIT_API_URL", "http://127.0.0.1:8004")?,
            recurrence_url: http_url("RECURRENCE_API_URL", "http://127.0.0.1:8003")?,
            allowed_hosts,
        })
    }
}

/// The other services the tools read from.
#[derive(Debug)]
pub struct Services {
    pub audit: String,
    pub recurrence: String,
    client: reqwest::Client,
}

impl Services {
    fn new(settings: &McpSettings) -> Self {
        Self {
            audit: settings.audit_url.clone(),
            recurrence: settings.recurrence_url.clone(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// GET `base` + `path` as the caller; their problem documents come back as problems.
    pub async fn get(
        &self,
        base: &str,
        path: &str,
        query: &[(&str, String)],
        who: &Authorized,
    ) -> Result<Value, Problem> {
        let url = format!("{base}{path}");
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::warn!(%url, error = %e, "MCP tool: service call failed");
            Problem::unavailable(format!("{base} does not answer; try again shortly"))
        };
        let response = self
            .client
            .get(&url)
            .query(query)
            .bearer_auth(&who.token)
            .header("traceparent", &who.traceparent)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| unavailable(&e))?;
        if status.is_success() {
            return Ok(body);
        }
        let text = |k: &str| body[k].as_str().map(str::to_owned);
        let mut problem = Problem::new(
            actix_web::http::StatusCode::from_u16(status.as_u16())
                .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
            "upstream",
            &text("title").unwrap_or_else(|| status.to_string()),
        );
        if let Some(kind) = text("type") {
            problem.kind = kind;
        }
        problem.detail = text("detail");
        for e in body["errors"].as_array().into_iter().flatten() {
            problem = problem.field(
                e["field"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default(),
            );
        }
        Err(problem)
    }
}

/// 401 (the REST API's problem) before any MCP exchange unless the bearer token is valid; the
/// caller travels on in the request's extensions.
async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let verified = match req.app_data::<web::Data<TokenVerifier>>() {
        None => Err(Problem::internal()),
        Some(verifier) => verifier
            .verify_bearer(header.as_deref())
            .map_err(|e| match e {
                AuthError::Missing => Problem::unauthorized(
                    "send Authorization: Bearer <token> (POST /api/auth/login)",
                ),
                AuthError::Expired => Problem::unauthorized("the token has expired; log in again"),
                AuthError::Invalid => Problem::unauthorized("the token is not valid"),
            }),
    };
    match verified {
        Err(problem) => {
            let response = problem.error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
        Ok(claims) => {
            let token = header
                .as_deref()
                .and_then(|h| h.get(7..))
                .unwrap_or_default()
                .trim()
                .to_owned();
            let traceparent = trace_of(req.request()).header();
            req.extensions_mut().insert(Authorized {
                user_id: claims.sub,
                token,
                traceparent,
            });
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
    }
}

/// The MCP endpoint, built once and mounted in every HTTP worker by [`routes`].
#[derive(Clone)]
pub struct McpEndpoint {
    service: StreamableHttpService<TaskTools, LocalSessionManager>,
}

impl McpEndpoint {
    pub fn new(state: web::Data<AppState>, settings: &McpSettings) -> Self {
        let services = Arc::new(Services::new(settings));
        let builder = StreamableHttpService::builder()
            .service_factory(Arc::new(move || {
                Ok(TaskTools::new(state.clone(), services.clone()))
            }))
            .session_manager(Arc::new(LocalSessionManager::default()))
            .stateful_mode(false)
            .json_response(true)
            .on_request_fn(|req, extensions| {
                if let Some(who) = req.extensions().get::<Authorized>() {
                    extensions.insert(who.clone());
                }
            });
        let service = match &settings.allowed_hosts {
            Some(hosts) => builder.allowed_hosts(hosts.clone()).build(),
            None => builder.build(),
        };
        Self { service }
    }

    /// Mount `/mcp` (POST for requests; GET and DELETE answer 405 in stateless mode).
    pub fn routes(&self, cfg: &mut web::ServiceConfig) {
        cfg.service(
            web::scope(PATH)
                .wrap(from_fn(authorize))
                .service(self.service.clone().scope()),
        );
    }
}
