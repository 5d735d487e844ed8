//! A real HTTP server receiving webhooks: it records every request, checks its signature with
//! the user's secret, and can answer 503 to the first N requests (or to all).

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use service_kit::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookKey, verify};

#[derive(Debug, Clone)]
pub struct Hook {
    pub body: serde_json::Value,
    pub signature_valid: bool,
    pub timestamp: i64,
    pub notification_id: Option<String>,
    pub answered: u16,
}

#[derive(Default)]
struct State {
    hooks: Vec<Hook>,
    fail_first: usize,
    always_fail: bool,
}

pub struct WebhookReceiver {
    pub url: String,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<State>>,
    key: web::Data<WebhookKey>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let user = json["user_id"].as_str().unwrap_or_default().to_owned();
    let timestamp: i64 = header(TIMESTAMP_HEADER)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let signature_valid = header(SIGNATURE_HEADER)
        .is_some_and(|sig| verify(&key.user_secret(&user), timestamp, &body, &sig));
    let mut state = state.lock().unwrap();
    let fail = state.always_fail || state.hooks.len() < state.fail_first;
    let answered = if fail { 503 } else { 204 };
    state.hooks.push(Hook {
        body: json,
        signature_valid,
        timestamp,
        notification_id: header("X-Todo-Notification-Id"),
        answered,
    });
    if fail {
        HttpResponse::ServiceUnavailable().body("try later")
    } else {
        HttpResponse::NoContent().finish()
    }
}

impl WebhookReceiver {
    pub async fn start(key: WebhookKey) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::from(state.clone());
        let key = web::Data::new(key);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(key.clone())
                .route("/hook", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
            handle,
        }
    }

    pub fn fail_first(&self, n: usize) {
        self.state.lock().unwrap().fail_first = n;
    }

    pub fn always_fail(&self, on: bool) {
        self.state.lock().unwrap().always_fail = on;
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.state.lock().unwrap().hooks.clone()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
