//! For tests: a real HTTP server standing in for an SMS gateway adapter. It checks each
//! request's signature with the gateway key, records what it received and how it answered, and
//! can answer 503 to the first N requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use crate::sms::{IDEMPOTENCY_HEADER, SmsGatewaySettings};
use crate::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, verify};

/// The key tests sign with.
pub const TEST_KEY: &str = "test-sms-gateway-signing-key-0123456789abcdef";

/// One request as the sink saw it.
#[derive(Debug, Clone)]
pub struct ReceivedSms {
    pub to: String,
    pub body: String,
    pub idempotency_key: String,
    /// The `Idempotency-Key` header (the same as the body's, when the sender is right).
    pub idempotency_header: Option<String>,
    pub signature_valid: bool,
    /// The status the sink answered.
    pub answered: u16,
}

#[derive(Default)]
struct State {
    received: Vec<ReceivedSms>,
    fail_first: usize,
}

pub struct SmsSink {
    pub url: String,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |field: &str| json[field].as_str().unwrap_or_default().to_owned();
    let timestamp: i64 = header(TIMESTAMP_HEADER)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let signature_valid =
        header(SIGNATURE_HEADER).is_some_and(|sig| verify(TEST_KEY, timestamp, &body, &sig));
    let mut state = state.lock().unwrap();
    let fail = state.received.len() < state.fail_first;
    let answered = if !signature_valid {
        401
    } else if fail {
        503
    } else {
        202
    };
    state.received.push(ReceivedSms {
        to: text("to"),
        body: text("body"),
        idempotency_key: text("idempotency_key"),
        idempotency_header: header(IDEMPOTENCY_HEADER),
        signature_valid,
        answered,
    });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(answered).unwrap()).finish()
}

impl SmsSink {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/sms", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/sms"),
            state,
            handle,
        }
    }

    /// Settings that point a sender at this sink.
    pub fn settings(&self) -> SmsGatewaySettings {
        SmsGatewaySettings::new(&self.url, TEST_KEY, Duration::from_secs(2)).unwrap()
    }

    /// Answer 503 to the next `n` requests (counted from the first one received).
    pub fn fail_first(&self, n: usize) {
        self.state.lock().unwrap().fail_first = n;
    }

    pub fn received(&self) -> Vec<ReceivedSms> {
        self.state.lock().unwrap().received.clone()
    }

    /// What was sent to this number.
    pub fn received_by(&self, to: &str) -> Vec<ReceivedSms> {
        self.received().into_iter().filter(|m| m.to == to).collect()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
