//! A schema registry that asks for credentials: HTTP basic auth in front of the local
//! registry, as Confluent Cloud's or a secured Apicurio's would. Apicurio's own basic auth needs
//! an OIDC server, so the test puts this small reverse proxy before it instead: a request with
//! the right `Authorization` is forwarded unchanged, any other gets 401 and is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;

#[derive(Default)]
struct Tally {
    forwarded: AtomicUsize,
    refused: AtomicUsize,
}

struct Gate {
    /// The expected `Authorization` header value.
    authorization: String,
    /// The registry's origin (`http://host:port`): paths are forwarded as they came.
    upstream: String,
    client: reqwest::Client,
    tally: Arc<Tally>,
}

/// A running gate; stops when [`RegistryGate::stop`] is called.
pub struct RegistryGate {
    /// The registry URL a client uses through the gate (same path as the upstream's).
    pub url: String,
    /// `user:password`, the form of `SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO`.
    pub user_info: String,
    tally: Arc<Tally>,
    handle: actix_web::dev::ServerHandle,
}

async fn forward(req: HttpRequest, body: web::Bytes, gate: web::Data<Gate>) -> HttpResponse {
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(gate.authorization.as_str());
    if !authorized {
        gate.tally.refused.fetch_add(1, Ordering::Relaxed);
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Basic realm=\"registry\""))
            .finish();
    }
    gate.tally.forwarded.fetch_add(1, Ordering::Relaxed);
    let url = format!("{}{}", gate.upstream, req.uri());
    // actix and reqwest use different versions of the `http` crate: convert by name/number.
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut request = gate.client.request(method, url).body(body.to_vec());
    if let Some(ct) = req.headers().get("content-type") {
        request = request.header("content-type", ct.as_bytes());
    }
    match request.send().await {
        Ok(response) => {
            let status = actix_web::http::StatusCode::from_u16(response.status().as_u16()).unwrap();
            let mut out = HttpResponse::build(status);
            if let Some(ct) = response.headers().get("content-type") {
                out.insert_header(("content-type", ct.as_bytes()));
            }
            out.body(response.bytes().await.unwrap_or_default())
        }
        Err(e) => HttpResponse::BadGateway().body(e.to_string()),
    }
}

impl RegistryGate {
    /// A gate before `upstream_url` (e.g. `http://127.0.0.1:8081/apis/ccompat/v7`) asking for
    /// a fresh random password.
    pub fn start(upstream_url: &str) -> Self {
        let parsed = reqwest::Url::parse(upstream_url).unwrap();
        let upstream = parsed.origin().ascii_serialization();
        let user_info = format!("registry-client:{}", uuid::Uuid::new_v4().simple());
        let authorization = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(&user_info)
        );
        let tally = Arc::new(Tally::default());
        let gate = web::Data::new(Gate {
            authorization,
            upstream,
            client: reqwest::Client::new(),
            tally: tally.clone(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(gate.clone())
                .app_data(web::PayloadConfig::new(16 << 20))
                .default_service(web::to(forward))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}{}", parsed.path()),
            user_info,
            tally,
            handle,
        }
    }

    /// The settings a service reaches the registry with through the gate.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("SCHEMA_REGISTRY_URL".to_owned(), self.url.clone()),
            (
                "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO".to_owned(),
                self.user_info.clone(),
            ),
        ]
    }

    /// Requests forwarded (they carried the credentials) and refused (they did not).
    pub fn counts(&self) -> (usize, usize) {
        (
            self.tally.forwarded.load(Ordering::Relaxed),
            self.tally.refused.load(Ordering::Relaxed),
        )
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
