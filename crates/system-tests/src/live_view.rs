//! A user's live view, kept as the web page keeps it: a WebSocket to one gateway instance that
//! records every message; when the connection is lost (its gateway died) it reconnects to the
//! next instance with the last cursor it saw (`?after=`), and when that instance answers
//! `resync` (it cannot replay what was missed) it reloads the user's tasks and notifications
//! over REST. Everything is recorded, reloads included, for the ledger's check
//! ([`crate::verify`]): a message missed while reconnecting must show in a reload made after.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::client::UserClient;
use crate::system::Svc;

/// How long the view keeps trying to reconnect (every gateway down, a restart in progress).
const RECONNECT_BOUND: Duration = Duration::from_secs(90);

/// What a reload over REST showed, after a `resync`.
#[derive(Debug, Clone, Default)]
pub struct Reload {
    /// When the reload began (epoch ms).
    pub at_ms: i64,
    /// Each task the user may see and its version.
    pub tasks: HashMap<String, i64>,
    /// Each of the user's deliveries (notification id) and its status.
    pub notifications: HashMap<String, String>,
    /// The reminders those deliveries came from.
    pub reminders: HashSet<String>,
}

/// One connection of the view.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Which gateway instance it was made to.
    pub gateway: usize,
    /// Whether it asked to resume (`?after=` with the last cursor seen).
    pub resumed: bool,
    /// The reload made because the gateway answered `resync`.
    pub resync: Option<Reload>,
    /// The close code once it ended (1006: it ended without a close frame, e.g. its gateway was
    /// killed).
    pub ended: Option<u16>,
}

/// Everything the view saw.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Event messages (those with an `event_id`), with the index of their connection and when
    /// they arrived.
    pub messages: Vec<(usize, Value, Instant)>,
    pub connections: Vec<Connection>,
    /// Why the view stopped trying, if it did.
    pub gave_up: Option<String>,
}

/// A live view; stops when dropped.
pub struct LiveView {
    pub user: String,
    record: Arc<Mutex<Record>>,
    task: tokio::task::JoinHandle<()>,
}

impl LiveView {
    /// Open the view on gateway `first` of `gateways` (WebSocket base URLs) and keep it open.
    /// Returns once the first connection is upgraded.
    pub async fn open(gateways: Vec<String>, first: usize, user: UserClient) -> Self {
        let record = Arc::new(Mutex::new(Record::default()));
        let stream = connect(&gateways[first], &user.token, None)
            .await
            .expect("WebSocket upgrade");
        record.lock().unwrap().connections.push(Connection {
            gateway: first,
            resumed: false,
            resync: None,
            ended: None,
        });
        let task = tokio::spawn(follow(
            gateways,
            first,
            stream,
            user.clone(),
            record.clone(),
        ));
        Self {
            user: user.id,
            record,
            task,
        }
    }

    pub fn record(&self) -> Record {
        self.record.lock().unwrap().clone()
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(base: &str, token: &str, after: Option<&str>) -> Result<Stream, String> {
    let after = after.map(|c| format!("&after={c}")).unwrap_or_default();
    let url = format!("{base}/ws/tasks?token={token}{after}");
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .map_err(|_| "upgrade timed out".to_owned())?
    .map(|(stream, _)| stream)
    .map_err(|e| e.to_string())
}

/// Read connection after connection until the view is dropped or cannot reconnect.
async fn follow(
    gateways: Vec<String>,
    mut gateway: usize,
    mut stream: Stream,
    user: UserClient,
    record: Arc<Mutex<Record>>,
) {
    let mut cursor: Option<String> = None;
    loop {
        let ended = read(&mut stream, &user, &record, &mut cursor).await;
        {
            let mut r = record.lock().unwrap();
            if let Some(c) = r.connections.last_mut() {
                c.ended = Some(ended);
            }
            if r.gave_up.is_some() {
                return;
            }
        }
        // As behind a balancer, the reconnect lands on another instance.
        let started = Instant::now();
        stream = loop {
            gateway = (gateway + 1) % gateways.len();
            match connect(&gateways[gateway], &user.token, cursor.as_deref()).await {
                Ok(s) => break s,
                Err(e) if started.elapsed() > RECONNECT_BOUND => {
                    record.lock().unwrap().gave_up = Some(format!(
                        "no gateway took the connection within {RECONNECT_BOUND:?}: {e}"
                    ));
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        record.lock().unwrap().connections.push(Connection {
            gateway,
            resumed: cursor.is_some(),
            resync: None,
            ended: None,
        });
    }
}

/// Read one connection to its end; returns its close code.
async fn read(
    stream: &mut Stream,
    user: &UserClient,
    record: &Mutex<Record>,
    cursor: &mut Option<String>,
) -> u16 {
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Text(text) => {
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if let Some(c) = v["cursor"].as_str() {
                    *cursor = Some(c.to_owned());
                }
                if v["type"] == "resync" {
                    // What was missed cannot be replayed: reload, as the page does.
                    let reload = match reload(user).await {
                        Ok(reload) => reload,
                        Err(e) => {
                            record.lock().unwrap().gave_up = Some(e);
                            return 1006;
                        }
                    };
                    if let Some(c) = record.lock().unwrap().connections.last_mut() {
                        c.resync = Some(reload);
                    }
                } else if v.get("event_id").is_some() {
                    let mut r = record.lock().unwrap();
                    let connection = r.connections.len() - 1;
                    r.messages.push((connection, v, Instant::now()));
                }
            }
            Message::Ping(p) => {
                let _ = stream.send(Message::Pong(p)).await;
            }
            Message::Close(frame) => return frame.map_or(1005, |f| u16::from(f.code)),
            _ => {}
        }
    }
    1006
}

/// Every page of a list endpoint (`items`, `next_cursor`), retried (bounded) while the service
/// does not answer: instances may be restarting.
async fn all_pages(user: &UserClient, svc: Svc, path: &str) -> Result<Vec<Value>, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut items = Vec::new();
    let mut next = path.to_owned();
    loop {
        let (status, page) = user.call(reqwest::Method::GET, svc, &next, None).await;
        if status != 200 {
            if Instant::now() > deadline {
                return Err(format!("reload: GET {next} answered {status}: {page}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => next = format!("{path}&cursor={c}"),
            None => return Ok(items),
        }
    }
}

/// What the user's REST view shows now: their tasks and deliveries.
pub async fn reload(user: &UserClient) -> Result<Reload, String> {
    let at_ms = events::now_millis();
    let tasks = all_pages(user, Svc::TaskApi, "/api/tasks?limit=100").await?;
    let notifications = all_pages(user, Svc::Notification, "/api/notifications?limit=200").await?;
    Ok(Reload {
        at_ms,
        tasks: tasks
            .iter()
            .filter_map(|t| Some((t["id"].as_str()?.to_owned(), t["version"].as_i64()?)))
            .collect(),
        reminders: notifications
            .iter()
            .filter_map(|n| n["reminder_id"].as_str().map(str::to_owned))
            .collect(),
        notifications: notifications
            .iter()
            .filter_map(|n| {
                Some((
                    n["id"].as_str()?.to_owned(),
                    n["status"].as_str()?.to_owned(),
                ))
            })
            .collect(),
    })
}
