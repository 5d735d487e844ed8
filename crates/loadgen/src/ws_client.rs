//! A WebSocket client of the gateway's `/ws/tasks` (tokio-tungstenite, no TLS).

use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open `/ws/tasks?token=…` on the gateway at `port` and wait for its `ready` message.
/// `small_buffers` keeps the client's read buffer at 4 KiB, for holding many connections.
pub async fn connect(port: u16, token: &str, small_buffers: bool) -> anyhow::Result<Ws> {
    let request = format!("ws://127.0.0.1:{port}/ws/tasks?token={token}").into_client_request()?;
    let config = small_buffers.then(|| WebSocketConfig::default().read_buffer_size(4096));
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, config, true)
        .await
        .context("WebSocket upgrade")?;
    let ready = next_json(&mut ws, Duration::from_secs(30)).await?;
    if ready["type"] != "ready" {
        bail!("expected `ready` first, got {ready}");
    }
    Ok(ws)
}

/// The next JSON text message, within `bound` (pings are answered by the library on the way).
pub async fn next_json(ws: &mut Ws, bound: Duration) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let message = tokio::time::timeout_at(deadline, ws.next())
            .await
            .with_context(|| format!("no message within {bound:?}"))?;
        match message {
            None => bail!("the connection closed"),
            Some(Err(e)) => bail!("the connection failed: {e}"),
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text)?),
            Some(Ok(Message::Close(frame))) => bail!("closed by the gateway: {frame:?}"),
            Some(Ok(_)) => continue,
        }
    }
}
