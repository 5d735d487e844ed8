//! Who is connected, and fan-out of each event to its user's connections.
//!
//! One mutex guards the connections, the sequence counter and the replay buffer together: an
//! event gets its sequence number, enters the replay log and is queued to the user's
//! connections in one step, and a new connection takes its replay and registers in one step.
//! So a reconnecting client sees every message exactly once, in order, with no gap between
//! the replay and the live stream. The work under the lock is a hash lookup, a string
//! concatenation (the cursor into the pre-rendered frame) and a `try_send` per connection; it
//! never waits.
//!
//! Each connection has a bounded queue. A full queue means the client does not keep up: the
//! connection is removed at once (it gets nothing more, so memory stays bounded) and told to
//! close with [`crate::connection::SLOW_CONSUMER`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::config::{ConnectionSettings, ReplayLimits};
use crate::cursor::{Cursor, InstanceId};
use crate::messages::{Outbound, RenderedEvent};
use crate::metrics::GatewayMetrics;
use crate::replay::{Gap, ReplayBuffer};

/// Identifies a connection within the process.
pub type ConnectionId = u64;

/// Why the hub let go of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Its send queue overflowed.
    SlowConsumer,
}

/// What a new connection sends before the live stream.
#[derive(Debug)]
pub struct Opening {
    /// Missed messages, oldest first.
    pub replay: Vec<Outbound>,
    /// Set when the requested cursor could not be served.
    pub resync: Option<Gap>,
    /// The position the live stream continues from.
    pub cursor: Cursor,
}

/// A registered connection's ends.
pub struct Subscription {
    pub id: ConnectionId,
    pub user: Arc<str>,
    pub queue: mpsc::Receiver<Outbound>,
    pub evicted: oneshot::Receiver<Eviction>,
    pub opening: Opening,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many open connections for this user (at most {0})")]
pub struct TooManyConnections(pub usize);

/// `GET /ws/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub total_connections: usize,
    pub user_connections: usize,
}

struct Subscriber {
    id: ConnectionId,
    tx: mpsc::Sender<Outbound>,
    evict: oneshot::Sender<Eviction>,
}

struct State {
    /// The newest sequence number issued.
    seq: u64,
    next_id: ConnectionId,
    users: HashMap<Arc<str>, Vec<Subscriber>>,
    total: usize,
    replay: ReplayBuffer,
    /// Event ids already forwarded, oldest first, bounded: Kafka delivers at least once (a
    /// rebalance after a broker loss redelivers from the last committed offset), clients must
    /// see each event once.
    recent: RecentIds,
}

/// A bounded set of the most recent event ids.
struct RecentIds {
    order: std::collections::VecDeque<Arc<str>>,
    set: std::collections::HashSet<Arc<str>>,
    capacity: usize,
}

impl RecentIds {
    fn new(capacity: usize) -> Self {
        Self {
            order: Default::default(),
            set: Default::default(),
            capacity: capacity.max(1),
        }
    }

    /// `false` when `id` was already seen.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        let id: Arc<str> = Arc::from(id);
        self.order.push_back(id.clone());
        self.set.insert(id);
        true
    }
}

/// Event ids remembered for deduplication: far more than can arrive between two commits.
const RECENT_IDS: usize = 200_000;

pub struct Hub {
    instance: InstanceId,
    settings: ConnectionSettings,
    metrics: GatewayMetrics,
    state: Mutex<State>,
}

impl Hub {
    pub fn new(
        instance: InstanceId,
        settings: ConnectionSettings,
        limits: ReplayLimits,
        metrics: GatewayMetrics,
    ) -> Self {
        Self {
            instance,
            settings,
            metrics,
            state: Mutex::new(State {
                seq: 0,
                next_id: 0,
                users: HashMap::new(),
                total: 0,
                replay: ReplayBuffer::new(limits),
                recent: RecentIds::new(RECENT_IDS),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing under the lock panics while leaving the state half-changed; keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cursor_at(&self, seq: u64) -> Cursor {
        Cursor {
            instance: self.instance,
            seq,
        }
    }

    fn update_gauges(&self, state: &State) {
        self.metrics.connections.set(state.total as i64);
        self.metrics.connected_users.set(state.users.len() as i64);
    }

    /// Register a connection of `user`, resuming after `after` if given.
    pub fn subscribe(
        &self,
        user: &str,
        after: Option<Cursor>,
    ) -> Result<Subscription, TooManyConnections> {
        let user: Arc<str> = Arc::from(user);
        let (tx, queue) = mpsc::channel(self.settings.send_queue);
        let (evict, evicted) = oneshot::channel();
        let now = Instant::now();
        let mut state = self.lock();
        let open = state.users.get(&user).map_or(0, Vec::len);
        if open >= self.settings.max_per_user {
            return Err(TooManyConnections(self.settings.max_per_user));
        }
        let last = state.seq;
        let (replay, resync) = match after {
            None => (Vec::new(), None),
            Some(c) if c.instance != self.instance => (Vec::new(), Some(Gap::Unknown)),
            Some(c) => match state.replay.since(&user, c.seq, last) {
                Ok(replay) => (replay, None),
                Err(gap) => (Vec::new(), Some(gap)),
            },
        };
        state.replay.touch(&user, now);
        state.next_id += 1;
        let id = state.next_id;
        state
            .users
            .entry(user.clone())
            .or_default()
            .push(Subscriber { id, tx, evict });
        state.total += 1;
        self.update_gauges(&state);
        drop(state);
        self.metrics.connections_opened.inc();
        self.metrics.messages_replayed.inc_by(replay.len() as u64);
        if resync.is_some() {
            self.metrics.resyncs.inc();
        }
        Ok(Subscription {
            id,
            user,
            queue,
            evicted,
            opening: Opening {
                replay,
                resync,
                cursor: self.cursor_at(last),
            },
        })
    }

    /// Remove a connection (it closed). Safe to call for one already evicted.
    pub fn unsubscribe(&self, user: &Arc<str>, id: ConnectionId) {
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(subs) = state.users.get_mut(user) {
            let before = subs.len();
            subs.retain(|s| s.id != id);
            state.total -= before - subs.len();
            if subs.is_empty() {
                state.users.remove(user);
            }
        }
        state.replay.touch(user, Instant::now());
        self.update_gauges(state);
    }

    /// Number the event, keep it for resume and queue it to every connection of its user.
    /// Returns how many connections it was queued to.
    pub fn publish(&self, event: &RenderedEvent) -> usize {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        // An event reaches each of its readers once: its id per reader.
        if !state
            .recent
            .insert(&format!("{}/{}", event.event_id, event.user_id))
        {
            self.metrics.duplicates_skipped.inc();
            return 0;
        }
        state.seq += 1;
        let cursor = self.cursor_at(state.seq);
        let message = Outbound {
            frame: event.frame(cursor).into(),
            kind: event.kind,
            event_time: event.event_time,
        };
        let user: Arc<str> = match state.users.get_key_value(event.user_id.as_str()) {
            Some((key, _)) => key.clone(),
            None => Arc::from(event.user_id.as_str()),
        };
        let mut queued = 0;
        let mut dropped = 0;
        if let Some(subs) = state.users.get_mut(&user) {
            let mut kept = Vec::with_capacity(subs.len());
            for sub in subs.drain(..) {
                match sub.tx.try_send(message.clone()) {
                    Ok(()) => {
                        queued += 1;
                        kept.push(sub);
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // Fails only when the connection task is already gone: not a slow
                        // client then, just one that has not unsubscribed yet.
                        if sub.evict.send(Eviction::SlowConsumer).is_ok() {
                            self.metrics.slow_clients_dropped.inc();
                        }
                        dropped += 1;
                    }
                    // Its task ended and is about to unsubscribe: forget it now.
                    Err(mpsc::error::TrySendError::Closed(_)) => dropped += 1,
                }
            }
            *subs = kept;
            state.total -= dropped;
            if subs.is_empty() {
                state.users.remove(&user);
            }
        }
        state.replay.record(&user, state.seq, message, now);
        self.metrics.replay_buffered.set(state.replay.len() as i64);
        if dropped > 0 {
            self.update_gauges(state);
        }
        drop(guard);
        queued
    }

    /// Periodic housekeeping: age out replay messages and forget idle users.
    pub fn sweep(&self) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let users = &state.users;
        state
            .replay
            .forget_idle(Instant::now(), |u| users.contains_key(u));
        self.metrics.replay_buffered.set(state.replay.len() as i64);
    }

    pub fn stats(&self) -> Stats {
        let state = self.lock();
        Stats {
            total_connections: state.total,
            user_connections: state.users.len(),
        }
    }

    /// The newest position issued.
    pub fn cursor(&self) -> Cursor {
        self.cursor_at(self.lock().seq)
    }

    pub fn instance(&self) -> InstanceId {
        self.instance
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{Event, sample};
    use service_kit::metrics::Metrics;

    fn hub(send_queue: usize) -> Hub {
        Hub::new(
            InstanceId::new(1),
            ConnectionSettings {
                send_queue,
                max_per_user: 3,
                ..Default::default()
            },
            ReplayLimits::default(),
            GatewayMetrics::register(&Metrics::new()),
        )
    }

    fn event(user: &str) -> RenderedEvent {
        crate::messages::render(&sample::task_created(user).into_any())
            .pop()
            .unwrap()
    }

    #[test]
    fn events_reach_every_connection_of_their_user_and_nobody_else() {
        let hub = hub(8);
        let mut a1 = hub.subscribe("a", None).unwrap();
        let mut a2 = hub.subscribe("a", None).unwrap();
        let mut b = hub.subscribe("b", None).unwrap();
        assert_eq!(
            hub.stats(),
            Stats {
                total_connections: 3,
                user_connections: 2
            }
        );
        assert_eq!(hub.publish(&event("a")), 2);
        let m1 = a1.queue.try_recv().unwrap();
        let m2 = a2.queue.try_recv().unwrap();
        assert_eq!(m1, m2);
        assert!(b.queue.try_recv().is_err());
        hub.unsubscribe(&a1.user, a1.id);
        assert_eq!(hub.stats().total_connections, 2);
    }

    #[test]
    fn a_full_queue_evicts_only_that_connection() {
        let hub = hub(2);
        let mut slow = hub.subscribe("a", None).unwrap();
        let mut fast = hub.subscribe("a", None).unwrap();
        for _ in 0..2 {
            hub.publish(&event("a"));
            fast.queue.try_recv().unwrap();
        }
        hub.publish(&event("a"));
        assert_eq!(slow.evicted.try_recv(), Ok(Eviction::SlowConsumer));
        assert!(fast.queue.try_recv().is_ok());
        assert_eq!(hub.stats().total_connections, 1);
        // Unsubscribing after the eviction changes nothing.
        hub.unsubscribe(&slow.user, slow.id);
        assert_eq!(hub.stats().total_connections, 1);
    }

    #[test]
    fn a_reconnect_replays_what_it_missed_then_continues_live() {
        let hub = hub(8);
        let mut first = hub.subscribe("a", None).unwrap();
        hub.publish(&event("a"));
        let seen = first.queue.try_recv().unwrap();
        hub.unsubscribe(&first.user, first.id);
        hub.publish(&event("b"));
        hub.publish(&event("a"));
        hub.publish(&event("a"));
        let v: serde_json::Value = serde_json::from_str(&seen.frame).unwrap();
        let cursor: Cursor = v["cursor"].as_str().unwrap().parse().unwrap();
        let mut again = hub.subscribe("a", Some(cursor)).unwrap();
        assert_eq!(again.opening.replay.len(), 2);
        assert!(again.opening.resync.is_none());
        assert_eq!(again.opening.cursor.seq, 4);
        hub.publish(&event("a"));
        let live: serde_json::Value =
            serde_json::from_str(&again.queue.try_recv().unwrap().frame).unwrap();
        assert_eq!(live["cursor"], "00000001.5");
    }

    #[test]
    fn cursors_of_another_instance_or_the_future_get_resync() {
        let hub = hub(8);
        let foreign = Cursor {
            instance: InstanceId::new(2),
            seq: 0,
        };
        let s = hub.subscribe("a", Some(foreign)).unwrap();
        assert_eq!(s.opening.resync, Some(Gap::Unknown));
        let future = Cursor {
            instance: InstanceId::new(1),
            seq: 99,
        };
        let s = hub.subscribe("a", Some(future)).unwrap();
        assert_eq!(s.opening.resync, Some(Gap::Unknown));
    }

    #[test]
    fn a_user_may_hold_only_so_many_connections() {
        let hub = hub(8);
        let _held: Vec<_> = (0..3).map(|_| hub.subscribe("a", None).unwrap()).collect();
        assert_eq!(hub.subscribe("a", None).err(), Some(TooManyConnections(3)));
        assert!(hub.subscribe("b", None).is_ok());
    }
}
