//! A user of the system: REST calls to task-api and the other services' APIs, and a
//! WebSocket that records every message it receives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::system::{Svc, System};

/// A registered, logged-in user.
#[derive(Clone)]
pub struct UserClient {
    pub id: String,
    pub email: String,
    pub token: String,
    http: reqwest::Client,
    urls: Arc<std::collections::HashMap<Svc, String>>,
}

impl UserClient {
    /// Register and log in through task-api.
    pub async fn register(system: &System, name: &str) -> Self {
        let http = system.http_client();
        let base = system.url(Svc::TaskApi);
        let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
        let password = "correct horse battery staple";
        let resp = http
            .post(format!("{base}/api/auth/register"))
            .json(&json!({"email": email, "password": password, "name": name, "timezone": "Europe/Berlin"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            201,
            "register: {}",
            resp.text().await.unwrap()
        );
        let user: Value = resp.json().await.unwrap();
        let login: Value = http
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let urls = Svc::ALL.iter().map(|s| (*s, system.url(*s))).collect();
        Self {
            id: user["id"].as_str().unwrap().to_owned(),
            email,
            token: login["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            http,
            urls: Arc::new(urls),
        }
    }

    /// The same user with an HTTP client that keeps its connections open (a browser's), whatever
    /// the system's default.
    pub fn keeping_connections(mut self) -> Self {
        self.http = reqwest::Client::new();
        self
    }

    /// One request; a transport failure (the service is down) is status 0, never a panic.
    pub async fn call(
        &self,
        method: reqwest::Method,
        svc: Svc,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.urls[&svc]))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return (0, Value::String(e.to_string())),
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, svc: Svc, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, svc, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, body) = self
            .call(reqwest::Method::POST, Svc::TaskApi, path, Some(body))
            .await;
        assert!((200..300).contains(&status), "POST {path}: {status} {body}");
        body
    }

    pub async fn patch(&self, path: &str, body: Value) -> Value {
        let (status, body) = self
            .call(reqwest::Method::PATCH, Svc::TaskApi, path, Some(body))
            .await;
        assert!(
            (200..300).contains(&status),
            "PATCH {path}: {status} {body}"
        );
        body
    }

    /// Every task of the user (all pages).
    pub async fn tasks(&self, query: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut path = format!("/api/tasks?limit=100&{query}");
        loop {
            let page = self.get(Svc::TaskApi, &path).await;
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/api/tasks?limit=100&{query}&cursor={c}"),
                None => return items,
            }
        }
    }
}

/// The task a gateway message is about: `data.id` for task events (data is the task),
/// `data.task_id` for reminders and notifications.
pub fn task_of(message: &Value) -> Option<&str> {
    let data = &message["data"];
    if message["type"]
        .as_str()
        .is_some_and(|t| t.starts_with("task_"))
    {
        data["id"].as_str()
    } else {
        data["task_id"].as_str()
    }
}

/// A WebSocket connection to the gateway that records what it receives.
pub struct WsClient {
    pub received: Arc<Mutex<Vec<Value>>>,
    /// The close code once the connection ended (1006 when it ended without a close frame).
    pub closed: Arc<Mutex<Option<u16>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WsClient {
    pub async fn connect(system: &System, token: &str) -> Self {
        let url = format!("{}/ws/tasks?token={token}", system.ws_url());
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket upgrade");
        let received = Arc::new(Mutex::new(Vec::new()));
        let closed: Arc<Mutex<Option<u16>>> = Arc::default();
        let sink = received.clone();
        let close_code = closed.clone();
        let task = tokio::spawn(async move {
            let (mut write, mut read) = stream.split();
            while let Some(Ok(msg)) = read.next().await {
                match msg {
                    Message::Text(text) => {
                        if let Ok(v) = serde_json::from_str::<Value>(&text) {
                            sink.lock().unwrap().push(v);
                        }
                    }
                    Message::Ping(p) => {
                        let _ = write.send(Message::Pong(p)).await;
                    }
                    Message::Close(frame) => {
                        *close_code.lock().unwrap() =
                            Some(frame.map_or(1005, |f| u16::from(f.code)));
                        return;
                    }
                    _ => {}
                }
            }
            *close_code.lock().unwrap() = Some(1006);
        });
        Self {
            received,
            closed,
            task,
        }
    }

    /// The close code, if the connection has ended.
    pub fn close_code(&self) -> Option<u16> {
        *self.closed.lock().unwrap()
    }

    pub fn messages(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// Messages of a type about a task.
    pub fn about(&self, kind: &str, task_id: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| m["type"] == kind && task_of(m) == Some(task_id))
            .collect()
    }

    /// Whether a message of this type about this task arrived.
    pub fn has(&self, kind: &str, task_id: &str) -> bool {
        !self.about(kind, task_id).is_empty()
    }

    /// Wait (bounded) until the messages satisfy `pred`; on timeout, show what did arrive.
    pub async fn wait_for(&self, what: &str, bound: Duration, pred: impl Fn(&[Value]) -> bool) {
        let deadline = tokio::time::Instant::now() + bound;
        while !pred(&self.messages()) {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out after {bound:?} waiting for {what}; received: {:#?}",
                    self.messages()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WsClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}
