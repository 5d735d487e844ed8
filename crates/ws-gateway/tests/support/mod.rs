//! Starts a real ws-gateway (in-process, or as its own process) against the real cluster and
//! registry, and talks to it with a real WebSocket client.

#![allow(dead_code, clippy::unwrap_used)]

pub mod services;

use std::sync::Arc;
use std::time::Duration;

use events::{Event, EventCodec, EventPublisher};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use service_kit::auth::TokenSigner;
use service_kit::shutdown::Shutdown;
use service_kit::testing;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ws_gateway::config::{
    AllowedOrigins, Config, ConnectionSettings, DEFAULT_ALLOWED_ORIGINS, ReplayLimits,
};
use ws_gateway::hub::{Hub, Stats};
use ws_gateway::startup::Application;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for something that should happen within milliseconds to seconds. The
/// first assignment of a new consumer group alone takes a few seconds.
pub const BOUND: Duration = Duration::from_secs(30);

pub struct TestGateway {
    pub address: String,
    pub ws_base: String,
    pub signer: TokenSigner,
    pub shutdown: Shutdown,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub publisher: EventPublisher,
    pub hub: Arc<Hub>,
    pub http: reqwest::Client,
}

pub fn base_config() -> (Config, TokenSigner) {
    let (signer, verifier, _) = testing::token_pair();
    let config = Config {
        kafka: service_kit::testing::kafka_access(),
        registry: service_kit::testing::registry_access(),
        bind_addr: "127.0.0.1:0".parse().unwrap(),
        shutdown_timeout: Duration::from_secs(10),
        verifier,
        origins: AllowedOrigins::parse(DEFAULT_ALLOWED_ORIGINS).unwrap(),
        connection: ConnectionSettings::default(),
        replay: ReplayLimits::default(),
        consumer_group_prefix: "ws-gateway-test".into(),
    };
    (config, signer)
}

pub async fn spawn_gateway() -> TestGateway {
    spawn_with(|_| {}).await
}

/// A gateway with settings changed by `adjust`.
pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestGateway {
    let (mut config, signer) = base_config();
    adjust(&mut config);
    let app = Application::build(config).await.expect("gateway builds");
    let port = app.port();
    let shutdown = app.shutdown_handle();
    let hub = app.hub();
    let handle = tokio::spawn(app.run_until_stopped());
    TestGateway {
        address: format!("http://127.0.0.1:{port}"),
        ws_base: format!("ws://127.0.0.1:{port}"),
        signer,
        shutdown,
        handle,
        publisher: publisher(),
        hub,
        http: reqwest::Client::new(),
    }
}

pub fn publisher() -> EventPublisher {
    let codec = Arc::new(EventCodec::connect(&service_kit::testing::registry_access()).unwrap());
    EventPublisher::connect(
        service_kit::testing::kafka_config(),
        codec,
        "ws-gateway-tests",
    )
    .unwrap()
}

/// Sample task events without recurrence or reminders: the other services consuming the same
/// topics (the recurring engine, the reminder scheduler) then have nothing to add for our
/// users, so a test sees exactly the events it published.
pub fn created(user: &str) -> events::TaskCreatedEvent {
    let mut e = events::sample::task_created(user);
    e.recurrence = None;
    e.reminders.clear();
    e.series_id = None;
    e.occurrence_index = None;
    e
}

pub fn updated(user: &str) -> events::TaskUpdatedEvent {
    let mut e = events::sample::task_updated(user);
    e.recurrence = None;
    e.reminders.clear();
    e.series_id = None;
    e.occurrence_index = None;
    e
}

pub fn completed(user: &str) -> events::TaskCompletedEvent {
    let mut e = events::sample::task_completed(user);
    e.recurrence = None;
    e.reminders.clear();
    e.series_id = None;
    e.occurrence_index = None;
    e
}

pub fn deleted(user: &str) -> events::TaskDeletedEvent {
    let mut e = events::sample::task_deleted(user);
    e.series_id = None;
    e
}

pub fn new_user() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Open `/ws/tasks` with the given query string and optional `Origin`.
pub async fn open(
    ws_base: &str,
    query: &str,
    origin: Option<&str>,
) -> Result<Ws, tungstenite::Error> {
    let mut request = format!("{ws_base}/ws/tasks?{query}")
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

/// The HTTP status of a refused upgrade.
pub async fn refused_status(ws_base: &str, query: &str, origin: Option<&str>) -> u16 {
    match open(ws_base, query, origin).await {
        Ok(_) => panic!("upgrade with {query:?} was accepted"),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

impl TestGateway {
    pub fn token(&self, user: &str) -> String {
        self.signer.issue(user).unwrap()
    }

    /// A connection of `user`, opened and past its `ready` message (returned).
    pub async fn connect(&self, user: &str) -> (Ws, Value) {
        self.connect_after(user, None).await
    }

    pub async fn connect_after(&self, user: &str, after: Option<&str>) -> (Ws, Value) {
        let mut query = format!("token={}", self.token(user));
        if let Some(after) = after {
            query.push_str(&format!("&after={after}"));
        }
        let mut ws = open(&self.ws_base, &query, None).await.expect("upgrade");
        let ready = next_json(&mut ws).await;
        assert_eq!(ready["type"], "ready", "{ready}");
        (ws, ready)
    }

    pub async fn publish<E: Event>(&self, event: &E) {
        self.publisher.publish(event, None).await.expect("publish");
    }

    pub fn stats(&self) -> Stats {
        self.hub.stats()
    }

    pub async fn stats_over_http(&self) -> Stats {
        self.http
            .get(format!("{}/ws/stats", self.address))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn wait_for_stats(&self, total: usize, users: usize) {
        testing::wait_for(
            &format!("{total} connections of {users} users"),
            BOUND,
            || async {
                let s = self.stats_over_http().await;
                (s.total_connections == total && s.user_connections == users).then_some(())
            },
        )
        .await;
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("stops within 30 s")
            .unwrap()
            .unwrap();
    }
}

/// What arrives on a connection.
#[derive(Debug)]
pub enum Received {
    Json(Value),
    Text(String),
    Closed(Option<CloseFrame>),
}

/// The next text or close, answering pings (the client library does) on the way.
pub async fn next(ws: &mut Ws) -> Received {
    loop {
        let message = tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("a message within the bound");
        match message {
            None => return Received::Closed(None),
            Some(Err(e)) => panic!("connection failed: {e}"),
            Some(Ok(Message::Text(text))) => {
                return match serde_json::from_str::<Value>(&text) {
                    Ok(v) if v.is_object() => Received::Json(v),
                    _ => Received::Text(text.to_string()),
                };
            }
            Some(Ok(Message::Close(frame))) => return Received::Closed(frame),
            Some(Ok(_)) => continue,
        }
    }
}

pub async fn next_json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Received::Json(v) => v,
        other => panic!("expected a JSON message, got {other:?}"),
    }
}

/// The next `n` JSON messages.
pub async fn take(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(next_json(ws).await);
    }
    out
}

/// Connect with `?after=<cursor>` and read the opening: the replayed messages and `ready`.
/// Panics on `resync`.
pub async fn resume(ws_base: &str, token: &str, cursor: &str) -> (Ws, Vec<Value>, Value) {
    let mut ws = open(ws_base, &format!("token={token}&after={cursor}"), None)
        .await
        .unwrap();
    let mut replay = Vec::new();
    loop {
        let m = next_json(&mut ws).await;
        match m["type"].as_str().unwrap_or_default() {
            "ready" => return (ws, replay, m),
            "resync" => panic!("resync instead of a replay: {m}"),
            _ => replay.push(m),
        }
    }
}

/// Read until the connection closes; the close frame's code and reason.
pub async fn close_code(ws: &mut Ws) -> (u16, String) {
    loop {
        if let Received::Closed(frame) = next(ws).await {
            let frame = frame.expect("a close frame");
            return (u16::from(frame.code), frame.reason.to_string());
        }
    }
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}
