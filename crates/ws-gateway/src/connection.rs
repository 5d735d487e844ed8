//! One WebSocket's life: the opening (resync or replay, then `ready`), the live stream from
//! the connection's queue, keepalive, and a close with a code that says why.
//!
//! | code | when |
//! |---|---|
//! | 1000 | echo of the client's own close |
//! | 1001 going away | the gateway is shutting down; reconnect (with `after`) |
//! | 1002 | the client broke the protocol |
//! | 1009 | the client sent a frame over 4 KiB (it only ever needs to send `ping`) |
//! | 4001 | the token expired; log in again |
//! | 4002 | the client answered nothing (no pong, no message) for `WS_CLIENT_TIMEOUT_MS` |
//! | 4008 | the client did not keep up: its send queue (`WS_SEND_QUEUE`) overflowed |
//!
//! Every send can be interrupted by shutdown or eviction, so a client that stopped reading
//! never holds its task: the close is then attempted for at most `close_timeout`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::{CloseCode, CloseReason, Message, MessageStream, ProtocolError, Session};
use bytestring::ByteString;
use futures::FutureExt;
use futures::future::Fuse;
use service_kit::shutdown::Shutdown;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::config::ConnectionSettings;
use crate::cursor::{Layout, Position};
use crate::hub::{Eviction, Hub, Opening, Subscription};
use crate::messages::{self, Outbound};
use crate::metrics::GatewayMetrics;
use crate::read_back::ReadBack;
use crate::replay;

pub const TOKEN_EXPIRED: u16 = 4001;
pub const PING_TIMEOUT: u16 = 4002;
pub const SLOW_CONSUMER: u16 = 4008;

/// Largest frame a client may send: clients only ever send `ping`.
pub const MAX_CLIENT_FRAME: usize = 4 * 1024;

/// What the connection tasks share.
#[derive(Clone)]
pub struct ConnectionContext {
    pub hub: Arc<Hub>,
    pub read_back: Arc<ReadBack>,
    pub metrics: GatewayMetrics,
    pub settings: ConnectionSettings,
    pub shutdown: Shutdown,
}

/// Why a connection ends.
#[derive(Debug)]
enum End {
    ClientClosed(Option<CloseReason>),
    ClientGone,
    Protocol,
    TooBig,
    GoingAway,
    SlowConsumer,
    PingTimeout,
    TokenExpired,
}

impl End {
    fn label(&self) -> &'static str {
        match self {
            End::ClientClosed(_) => "client_closed",
            End::ClientGone => "client_gone",
            End::Protocol => "protocol_error",
            End::TooBig => "frame_too_big",
            End::GoingAway => "going_away",
            End::SlowConsumer => "slow_consumer",
            End::PingTimeout => "ping_timeout",
            End::TokenExpired => "token_expired",
        }
    }

    /// The close frame to send, if the peer can still receive one.
    fn close_reason(self) -> Option<CloseReason> {
        let (code, description) = match self {
            End::ClientGone => return None,
            End::ClientClosed(reason) => {
                return Some(reason.unwrap_or_else(|| CloseCode::Normal.into()));
            }
            End::Protocol => (CloseCode::Protocol, "protocol error"),
            End::TooBig => (CloseCode::Size, "frames are limited to 4 KiB"),
            End::GoingAway => (CloseCode::Away, "server shutting down; reconnect"),
            End::SlowConsumer => (
                CloseCode::Other(SLOW_CONSUMER),
                "too slow: send queue overflowed",
            ),
            End::PingTimeout => (CloseCode::Other(PING_TIMEOUT), "no answer to pings"),
            End::TokenExpired => (
                CloseCode::Other(TOKEN_EXPIRED),
                "token expired; log in again",
            ),
        };
        Some(CloseReason {
            code,
            description: Some(description.to_owned()),
        })
    }
}

/// What the client had already been sent when it reconnected, where this instance has not
/// yet caught up with it (another instance served it further): messages from before it are
/// skipped, later ones carry cursors no older than it. Gone once the instance has caught up.
struct Floor<'a> {
    layout: &'a Layout,
    seen: Option<Position>,
}

impl Floor<'_> {
    /// The message to send, or `None` when the client already has it.
    fn apply(&mut self, message: Outbound) -> Option<Outbound> {
        let (Some(seen), Some((slot, offset))) = (&self.seen, message.at) else {
            return Some(message);
        };
        if offset < seen.get(slot) {
            return None;
        }
        let Ok(at) = self.layout.parse(message.cursor()) else {
            return Some(message);
        };
        if at.covers(seen) {
            self.seen = None;
            return Some(message);
        }
        let cursor = self.layout.encode(&at.joined(seen));
        Some(message.with_cursor(&cursor))
    }
}

/// The event ids this connection has sent (bounded, oldest forgotten first), and those the
/// client had before it reconnected as far as a read-back saw them. The same event can sit at
/// two offsets (published twice: a producer that crashed between the acknowledgement and
/// recording it); the hub drops the second copy of what it routed itself, but a replay read
/// back from Kafka, and what follows it live, are checked here.
struct Sent {
    ids: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl Sent {
    /// Ids remembered per connection: far more than one reconnect replays.
    const CAPACITY: usize = 20_000;

    fn new() -> Self {
        Self {
            ids: Default::default(),
            order: Default::default(),
        }
    }

    /// `false` when `id` was already sent (or known to the client).
    fn first_time(&mut self, id: &str) -> bool {
        if id.is_empty() || self.ids.contains(id) {
            return id.is_empty();
        }
        if self.order.len() == Self::CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        self.ids.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

/// What the client already has: by position (the floor) and by event id.
struct Known<'a> {
    floor: Floor<'a>,
    sent: Sent,
}

impl Known<'_> {
    /// The message to send, or `None` when the client already has it.
    fn pass(&mut self, message: Outbound) -> Option<Outbound> {
        let message = self.floor.apply(message)?;
        self.sent.first_time(message.event_id()).then_some(message)
    }
}

/// What may interrupt a send.
struct Interrupts<'a> {
    shutdown: &'a Shutdown,
    evicted: &'a mut Fuse<oneshot::Receiver<Eviction>>,
}

impl Interrupts<'_> {
    async fn send(&mut self, session: &mut Session, text: ByteString) -> Result<(), End> {
        tokio::select! {
            biased;
            _ = self.shutdown.wait() => Err(End::GoingAway),
            _ = &mut *self.evicted => Err(End::SlowConsumer),
            sent = session.text(text) => sent.map_err(|_| End::ClientGone),
        }
    }

    async fn control(&mut self, session: &mut Session, message: Message) -> Result<(), End> {
        let send = async {
            match message {
                Message::Ping(b) => session.ping(&b).await,
                Message::Pong(b) => session.pong(&b).await,
                _ => Ok(()),
            }
        };
        tokio::select! {
            biased;
            _ = self.shutdown.wait() => Err(End::GoingAway),
            _ = &mut *self.evicted => Err(End::SlowConsumer),
            sent = send => sent.map_err(|_| End::ClientGone),
        }
    }
}

/// Serve one upgraded connection until it ends; runs as its own task.
pub async fn serve(
    ctx: ConnectionContext,
    mut session: Session,
    stream: MessageStream,
    subscription: Subscription,
    token_expires_at: i64,
) {
    let span = tracing::info_span!(
        "ws",
        user_id = %subscription.user,
        connection = subscription.id
    );
    async move {
        let Subscription {
            id,
            user,
            mut queue,
            evicted,
            opening,
        } = subscription;
        let mut evicted = evicted.fuse();
        let mut stream = stream.max_frame_size(MAX_CLIENT_FRAME);
        let end = {
            let mut io = Interrupts {
                shutdown: &ctx.shutdown,
                evicted: &mut evicted,
            };
            let mut known = Known {
                floor: Floor {
                    layout: ctx.hub.layout(),
                    seen: None,
                },
                sent: Sent::new(),
            };
            let served = async {
                open(&ctx, &mut session, &mut io, &user, opening, &mut known).await?;
                live(
                    &ctx,
                    &mut session,
                    &mut stream,
                    &mut io,
                    &mut queue,
                    &mut known,
                    token_expires_at,
                )
                .await
            };
            match served.await {
                Ok(never) => match never {},
                Err(end) => end,
            }
        };
        // Leave the hub first: nothing more is queued to a connection that is closing.
        ctx.hub.unsubscribe(&user, id);
        drop(queue);
        let label = end.label();
        ctx.metrics
            .connections_closed
            .with_label_values(&[label])
            .inc();
        if let Some(reason) = end.close_reason()
            && tokio::time::timeout(ctx.settings.close_timeout, session.close(Some(reason)))
                .await
                .is_err()
        {
            tracing::debug!("close frame not accepted in time; dropping the connection");
        }
        tracing::debug!(reason = label, "connection closed");
    }
    .instrument(span)
    .await
}

/// Resync or replay (read back from Kafka, then from the buffer), then `ready`.
async fn open(
    ctx: &ConnectionContext,
    session: &mut Session,
    io: &mut Interrupts<'_>,
    user: &str,
    opening: Opening,
    known: &mut Known<'_>,
) -> Result<(), End> {
    let Known { floor, sent } = known;
    let layout = ctx.hub.layout();
    let position = layout.encode(&opening.position);
    floor.seen = opening.floor;
    let mut resync = opening.resync;
    if let Some(seen) = &floor.seen
        && ctx.read_back.is_ahead_of_kafka(seen, &opening.routed).await
    {
        floor.seen = None;
        resync = Some(crate::replay::Gap::AheadOfKafka);
    }
    let mut read = Vec::new();
    if let Some((from, to)) = &opening.read_back {
        match ctx.read_back.messages(user, from, to).await {
            Ok(back) => {
                read = back.messages;
                let reached = back.reached;
                for id in &back.known {
                    sent.first_time(id);
                }
                floor.seen = Some(
                    floor
                        .seen
                        .take()
                        .map_or(reached.clone(), |f| f.joined(&reached)),
                );
                ctx.metrics.read_backs.with_label_values(&["served"]).inc();
            }
            Err(gap) => {
                ctx.metrics
                    .read_backs
                    .with_label_values(&[gap.label()])
                    .inc();
                resync = Some(gap);
            }
        }
    }
    let mut replayed = 0;
    if let Some(gap) = resync {
        ctx.metrics.resyncs.inc();
        io.send(
            session,
            messages::resync(&position, &gap.to_string()).into(),
        )
        .await?;
    } else {
        // What the floor keeps of the buffer's messages (it drops what the client has); the
        // cursors are recomputed for the replay's order anyway.
        let buffered = opening.replay.into_iter().filter_map(|m| floor.apply(m));
        let replay = read.into_iter().chain(buffered).collect();
        for message in replay::in_event_order(layout, replay, &opening.position) {
            if !sent.first_time(message.event_id()) {
                continue;
            }
            io.send(session, message.frame).await?;
            ctx.metrics
                .messages_sent
                .with_label_values(&[message.kind.name()])
                .inc();
            replayed += 1;
        }
        ctx.metrics.messages_replayed.inc_by(replayed as u64);
    }
    io.send(session, messages::ready(&position, replayed).into())
        .await
}

fn until_expiry(token_expires_at: i64) -> Duration {
    let now = chrono::Utc::now().timestamp();
    Duration::from_secs(token_expires_at.saturating_sub(now).max(0) as u64)
}

async fn live(
    ctx: &ConnectionContext,
    session: &mut Session,
    stream: &mut MessageStream,
    io: &mut Interrupts<'_>,
    queue: &mut tokio::sync::mpsc::Receiver<Outbound>,
    known: &mut Known<'_>,
    token_expires_at: i64,
) -> Result<std::convert::Infallible, End> {
    let settings = ctx.settings;
    let expiry = tokio::time::sleep(until_expiry(token_expires_at));
    tokio::pin!(expiry);
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + settings.ping_interval,
        settings.ping_interval,
    );
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        // Biased: control first, and the client's frames before our queue, so a busy stream
        // can never starve the pongs that keep the connection alive.
        tokio::select! {
            biased;
            _ = io.shutdown.wait() => return Err(End::GoingAway),
            _ = &mut *io.evicted => return Err(End::SlowConsumer),
            _ = &mut expiry => return Err(End::TokenExpired),
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= settings.client_timeout {
                    return Err(End::PingTimeout);
                }
                io.control(session, Message::Ping(Default::default())).await?;
            }
            incoming = stream.recv() => {
                let message = match incoming {
                    None => return Err(End::ClientGone),
                    Some(Err(ProtocolError::Overflow)) => return Err(End::TooBig),
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "protocol error");
                        return Err(End::Protocol);
                    }
                    Some(Ok(m)) => m,
                };
                last_heard = Instant::now();
                match message {
                    Message::Text(text) if text.trim().eq_ignore_ascii_case("ping") => {
                        io.send(session, ByteString::from_static("pong")).await?;
                    }
                    Message::Ping(bytes) => io.control(session, Message::Pong(bytes)).await?,
                    Message::Close(reason) => return Err(End::ClientClosed(reason)),
                    // Pongs only prove liveness; clients have nothing else to say.
                    _ => {}
                }
            }
            next = queue.recv() => {
                // The hub dropped our sender: only after an eviction, which the branch above
                // reports; end quietly otherwise.
                let Some(message) = next else { return Err(End::SlowConsumer) };
                let Some(message) = known.pass(message) else { continue };
                io.send(session, message.frame).await?;
                ctx.metrics
                    .messages_sent
                    .with_label_values(&[message.kind.name()])
                    .inc();
                let latency_ms = events::now_millis().saturating_sub(message.event_time).max(0);
                ctx.metrics
                    .delivery_latency
                    .observe(latency_ms as f64 / 1000.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{Event, Topic, sample};

    #[test]
    fn a_floor_skips_what_the_client_has_and_keeps_cursors_from_going_back() {
        let layout = Layout::of(&[Topic::TaskCreated]);
        let rendered = messages::render(&sample::task_created("u").into_any()).remove(0);
        let at = |offsets: &[i64]| Position::from_offsets(offsets.to_vec());
        let message = |slot: usize, offset: i64, position: &[i64]| {
            rendered.outbound(&layout.encode(&at(position)), Some((slot, offset)))
        };
        // The client was sent up to offsets 10, 20, 30 by an instance further on than this one.
        let mut floor = Floor {
            layout: &layout,
            seen: Some(at(&[10, 20, 30])),
        };
        assert_eq!(
            floor.apply(message(0, 9, &[10, 5, 5])),
            None,
            "already sent"
        );
        let sent = floor.apply(message(1, 20, &[10, 21, 5])).unwrap();
        assert_eq!(layout.parse(sent.cursor()), Ok(at(&[10, 21, 30])));
        assert!(floor.seen.is_some());
        // Caught up: the floor goes, messages pass unchanged.
        let caught_up = message(2, 30, &[10, 21, 31]);
        assert_eq!(floor.apply(caught_up.clone()), Some(caught_up));
        assert!(floor.seen.is_none());
        let older = message(0, 3, &[10, 21, 31]);
        assert_eq!(floor.apply(older.clone()), Some(older));
    }
}
