//! A push service stand-in (RFC 8030): a real HTTP server that takes push messages at
//! `/push/{id}`, records each (headers and encrypted body), and answers what the test scripted
//! for that subscription (`201 Created` unless told otherwise).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

#[derive(Debug, Clone)]
pub struct PushMessage {
    pub subscription: String,
    pub authorization: Option<String>,
    pub content_encoding: Option<String>,
    pub ttl: Option<String>,
    pub body: Vec<u8>,
    pub answered: u16,
}

#[derive(Default)]
struct State {
    messages: Vec<PushMessage>,
    /// Answers to give, in order, per subscription; then 201.
    script: HashMap<String, Vec<u16>>,
}

pub struct PushService {
    pub base: String,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let id = path.into_inner();
    let mut state = state.lock().unwrap();
    let answered = match state.script.get_mut(&id) {
        Some(answers) if !answers.is_empty() => answers.remove(0),
        _ => 201,
    };
    state.messages.push(PushMessage {
        subscription: id,
        authorization: header("authorization"),
        content_encoding: header("content-encoding"),
        ttl: header("ttl"),
        body: body.to_vec(),
        answered,
    });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(answered).unwrap()).finish()
}

impl PushService {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024))
                .route("/push/{id}", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base: format!("http://127.0.0.1:{port}"),
            state,
            handle,
        }
    }

    /// The endpoint of subscription `id`.
    pub fn endpoint(&self, id: &str) -> String {
        format!("{}/push/{id}", self.base)
    }

    /// Answer these statuses, in order, to the next messages for `id`.
    pub fn answer(&self, id: &str, statuses: &[u16]) {
        self.state
            .lock()
            .unwrap()
            .script
            .insert(id.to_owned(), statuses.to_vec());
    }

    pub fn messages(&self) -> Vec<PushMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    pub fn messages_for(&self, id: &str) -> Vec<PushMessage> {
        self.messages()
            .into_iter()
            .filter(|m| m.subscription == id)
            .collect()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
