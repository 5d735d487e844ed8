//! HTTP basics every service serves: `/healthz`, `/readyz`, `/metrics`, RFC 9457 problem
//! documents for every error, extractor errors mapped to 400s, and a middleware that gives each
//! request a span with its trace id and records request metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use futures::future::BoxFuture;
use serde::Serialize;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::telemetry::{self, TraceContext};

/// Base of the stable `type` URIs of problem documents.
pub const PROBLEM_BASE: &str = "https://todo-platform.dev/problems/";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Per-field messages for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl Problem {
    /// `slug` becomes the stable type URI (`…/problems/<slug>`).
    pub fn new(status: StatusCode, slug: &str, title: &str) -> Self {
        Self {
            kind: format!("{PROBLEM_BASE}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "The request is malformed",
        )
        .detail(detail)
    }

    pub fn validation() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Some fields are invalid",
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
        )
        .detail(detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found")
            .detail(format!("{what} not found"))
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        )
        .detail("the error was logged; try again later")
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
        )
        .detail(detail)
        .retry_after(5)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.title)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("application/problem+json");
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if self.status == 401 {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(self)
    }
}

/// Extractor configuration so malformed JSON, query strings and paths get a 400 problem
/// document instead of actix's plain-text default. Add with `.configure(extractor_errors)`.
pub fn extractor_errors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(256 * 1024)
            .error_handler(|err, _| {
                let problem = match &err {
                    actix_web::error::JsonPayloadError::ContentType => Problem::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported-media-type",
                        "Expected application/json",
                    ),
                    actix_web::error::JsonPayloadError::Overflow { .. }
                    | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                        Problem::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "payload-too-large",
                            "Request body too large",
                        )
                    }
                    other => Problem::bad_request(format!("invalid JSON body: {other}")),
                };
                actix_web::Error::from(problem)
            }),
    )
    .app_data(web::QueryConfig::default().error_handler(|err, _| {
        Problem::bad_request(format!("invalid query string: {err}")).into()
    }))
    .app_data(web::PathConfig::default().error_handler(|err, _| {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found")
            .detail(format!("invalid path: {err}"))
            .into()
    }));
}

/// 404 problem for unknown routes: `App::default_service(web::to(not_found))`.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found")
        .detail(format!("no route for {} {}", req.method(), req.path()))
        .error_response()
}

/// One dependency `/readyz` checks.
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What `/readyz` checks, by name. A check either gates readiness (the service cannot do its
/// own work without it) or is only reported (shown in the body, its outage carried by metrics
/// and alerts instead: task-api keeps taking writes into its outbox while Kafka is down).
#[derive(Clone, Default)]
pub struct Readiness {
    probes: Vec<(&'static str, Probe, Gate)>,
}

/// Whether a failing check makes the service not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Gates,
    Reported,
}

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: &'static str,
    pub gate: Gate,
    pub result: Result<(), String>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// A check that gates readiness.
    pub fn with(mut self, name: &'static str, probe: Probe) -> Self {
        self.probes.push((name, probe, Gate::Gates));
        self
    }

    /// A check that is reported but does not gate readiness.
    pub fn reporting(mut self, name: &'static str, probe: Probe) -> Self {
        self.probes.push((name, probe, Gate::Reported));
        self
    }

    /// Run every probe concurrently, each bounded to 3 seconds.
    pub async fn check(&self) -> Vec<CheckResult> {
        let checks = self.probes.iter().map(|(name, probe, gate)| {
            let fut = probe();
            async move {
                let result = match tokio::time::timeout(Duration::from_secs(3), fut).await {
                    Ok(r) => r,
                    Err(_) => Err("timed out after 3 s".to_owned()),
                };
                CheckResult {
                    name,
                    gate: *gate,
                    result,
                }
            }
        });
        futures::future::join_all(checks).await
    }
}

/// Probe: the Kafka cluster answers a metadata request.
pub fn kafka_probe(kafka: &crate::kafka::KafkaAccess) -> Probe {
    let client = crate::kafka::AccessCheck::new(kafka, &[]).map(Arc::new);
    Arc::new(move || {
        let client = client.clone();
        Box::pin(async move {
            let client = client.map_err(|e| format!("cannot create a Kafka client: {e}"))?;
            tokio::task::spawn_blocking(move || client.reachable())
                .await
                .map_err(|e| e.to_string())?
        })
    })
}

/// Probe: the brokers accept this service's credentials and show it every topic it uses
/// (a topic it has no ACL for is missing from its metadata). Unlike an outage, a refusal does
/// not end by itself: it gates readiness, so a rollout with wrong credentials or ACLs stops.
/// A cluster that does not answer passes here (the `kafka` check reports it).
pub fn kafka_access_probe(kafka: &crate::kafka::KafkaAccess, topics: &[events::Topic]) -> Probe {
    let client = crate::kafka::AccessCheck::new(kafka, topics).map(Arc::new);
    Arc::new(move || {
        let client = client.clone();
        Box::pin(async move {
            let client = client.map_err(|e| format!("cannot create a Kafka client: {e}"))?;
            tokio::task::spawn_blocking(move || client.not_refused())
                .await
                .map_err(|e| e.to_string())?
        })
    })
}

/// Probe: the brokers let this service's consumer in. A user with ACLs for its topics but none
/// for its group passes [`kafka_access_probe`]; only the consumer meets that refusal.
pub fn consumer_access_probe(access: crate::consumer::ConsumerAccess) -> Probe {
    Arc::new(move || {
        let result = access.check();
        Box::pin(async move { result })
    })
}

/// Probe: the schema registry answers.
pub fn registry_probe(registry: &events::registry::RegistryAccess) -> Probe {
    let admin = events::registry::RegistryAdmin::connect(registry).ok();
    Arc::new(move || {
        let admin = admin.clone();
        Box::pin(async move {
            let admin = admin.ok_or_else(|| "bad registry URL".to_owned())?;
            admin
                .subjects()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    })
}

/// Probe: the database runs a query.
pub fn database_probe(db: crate::db::Database) -> Probe {
    Arc::new(move || {
        let db = db.clone();
        Box::pin(async move {
            if db.ping().await {
                Ok(())
            } else {
                Err("database does not answer".to_owned())
            }
        })
    })
}

/// Register `/healthz`, `/readyz` and `/metrics`. Needs `web::Data<Metrics>` and
/// `web::Data<Readiness>` in the app.
pub fn operational_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let results = readiness.check().await;
    let ready = results
        .iter()
        .all(|c| c.result.is_ok() || c.gate == Gate::Reported);
    let checks: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|c| {
            let mut v = match c.result {
                Ok(()) => serde_json::json!({"status": "ok"}),
                Err(e) => serde_json::json!({"status": "failing", "error": e}),
            };
            if c.gate == Gate::Reported {
                v["gates_readiness"] = serde_json::Value::Bool(false);
            }
            (c.name.to_owned(), v)
        })
        .collect();
    let body =
        serde_json::json!({"status": if ready { "ready" } else { "not_ready" }, "checks": checks});
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}

/// Request span with the trace id (from `traceparent` or new), echoed back in `traceparent`;
/// request count and latency by matched route. Use with `middleware::from_fn(observe)`.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let parent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse);
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "request",
        trace_id = tracing::field::Empty,
        %method,
        path = %req.path(),
    );
    // The request's own span context: what its outbox rows and the response carry.
    let trace = telemetry::continue_trace(&span, parent);
    req.extensions_mut().insert(trace);
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let mut res = result?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status();
    if let Some(metrics) = metrics {
        metrics
            .http_requests_total
            .with_label_values(&[method.as_str(), route.as_str(), status.as_str()])
            .inc();
        metrics
            .http_request_duration_seconds
            .with_label_values(&[method.as_str(), route.as_str()])
            .observe(elapsed.as_secs_f64());
    }
    if status.is_server_error() {
        span.in_scope(|| {
            tracing::error!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                "request failed"
            )
        });
    } else {
        span.in_scope(|| {
            tracing::debug!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                "request"
            )
        });
    }
    if let Ok(v) = HeaderValue::from_str(&trace.header()) {
        res.headers_mut()
            .insert(header::HeaderName::from_static("traceparent"), v);
    }
    Ok(res)
}

/// The trace context the [`observe`] middleware attached to a request.
pub fn trace_of(req: &HttpRequest) -> TraceContext {
    req.extensions()
        .get::<TraceContext>()
        .copied()
        .unwrap_or_else(TraceContext::new_root)
}

/// The verified claims of the request's bearer token; a handler taking it answers 401 to a
/// missing, bad or expired token. Needs `web::Data<TokenVerifier>` in the app.
#[derive(Debug, Clone)]
pub struct Authenticated(pub crate::auth::Claims);

impl Authenticated {
    pub fn user_id(&self) -> &str {
        &self.0.sub
    }

    pub fn is_admin(&self) -> bool {
        self.0.is_admin()
    }
}

impl actix_web::FromRequest for Authenticated {
    type Error = Problem;
    type Future = std::future::Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let result = match req.app_data::<web::Data<crate::auth::TokenVerifier>>() {
            None => {
                tracing::error!("TokenVerifier missing from app data");
                Err(Problem::internal())
            }
            Some(verifier) => {
                let header = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                verifier
                    .verify_bearer(header)
                    .map(Authenticated)
                    .map_err(|e| match e {
                        crate::auth::AuthError::Missing => Problem::unauthorized(
                            "send Authorization: Bearer <token> (POST /api/auth/login)",
                        ),
                        crate::auth::AuthError::Expired => {
                            Problem::unauthorized("the token has expired; log in again")
                        }
                        crate::auth::AuthError::Invalid => {
                            Problem::unauthorized("the token is not valid")
                        }
                    })
            }
        };
        std::future::ready(result)
    }
}

impl Readiness {
    /// The readiness of a service that keeps its own database (docs/contract.md §5): ready
    /// when the database answers and Kafka does not refuse the service's credentials or any
    /// of `topics`; Kafka's and the registry's reachability are reported, not gating (an
    /// outage is carried by the lag and outbox metrics and their alerts, and the service's
    /// API goes on answering from its database meanwhile).
    pub fn standard(
        config: &crate::config::CommonConfig,
        db: crate::db::Database,
        topics: &[events::Topic],
    ) -> Self {
        Self::new()
            .with("database", database_probe(db))
            .with("kafka_access", kafka_access_probe(&config.kafka, topics))
            .reporting("kafka", kafka_probe(&config.kafka))
            .reporting("schema_registry", registry_probe(&config.registry))
    }
}

/// Bind the service's listener; returns it with the port it got (port 0 in tests).
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<(std::net::TcpListener, u16)> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// The HTTP server of a service whose API reads its own database behind JWT (the audit,
/// notification and recurring-task services): [`server`] on the configured address with the
/// pool and the token verifier as app data, ready as [`Readiness::standard`] says and while
/// the brokers let its consumer in. Returns the server and the port it got.
pub fn database_api_server(
    config: &crate::config::CommonConfig,
    db: &crate::db::Database,
    verifier: &crate::auth::TokenVerifier,
    metrics: Metrics,
    routes: fn(&mut web::ServiceConfig),
    service: events::Service,
    consumer: &crate::consumer::ConsumerAccess,
) -> std::io::Result<(actix_web::dev::Server, u16)> {
    let (listener, port) = bind(config.bind_addr)?;
    let readiness = Readiness::standard(config, db.clone(), &service.uses())
        .with("kafka_consumer", consumer_access_probe(consumer.clone()));
    let (db, verifier) = (web::Data::new(db.clone()), web::Data::new(verifier.clone()));
    let server = server(
        listener,
        config.shutdown_timeout,
        metrics,
        readiness,
        move |cfg| {
            cfg.app_data(db.clone()).app_data(verifier.clone());
            routes(cfg);
        },
    )?;
    Ok((server, port))
}

/// The HTTP server every service runs: the tracing/metrics middleware, `nosniff`, problem
/// documents for extractor errors and unknown routes, `/healthz`, `/readyz`, `/metrics`, and
/// whatever `configure` adds (the service's app data and routes). Signals are the service's
/// own [`crate::shutdown::Shutdown`]'s business, not actix's.
pub fn server<F>(
    listener: std::net::TcpListener,
    shutdown_timeout: Duration,
    metrics: Metrics,
    readiness: Readiness,
    configure: F,
) -> std::io::Result<actix_web::dev::Server>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let metrics = web::Data::new(metrics);
    let readiness = web::Data::new(readiness);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Ok(actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .wrap(actix_web::middleware::from_fn(observe))
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add(("X-Content-Type-Options", "nosniff")),
            )
            .app_data(metrics.clone())
            .app_data(readiness.clone())
            .configure(extractor_errors)
            .configure(operational_routes)
            .configure(configure.clone())
            .default_service(web::to(not_found))
    })
    .disable_signals()
    .shutdown_timeout(shutdown_timeout.as_secs())
    .workers(workers)
    .listen(listener)?
    .run())
}
