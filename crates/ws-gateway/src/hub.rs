//! Who is connected, and fan-out of each event to its user's connections.
//!
//! One mutex guards the connections, the gateway's Kafka position and the replay buffer
//! together: an event moves the position, enters the replay log and is queued to the user's
//! connections in one step, and a new connection takes its replay and registers in one step.
//! So a reconnecting client sees every message exactly once, with no gap between the replay
//! and the live stream. The work under the lock is a hash lookup, the cursor's encoding (once
//! per Kafka message), a string concatenation per reader and a `try_send` per connection; it
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
use crate::cursor::{Layout, Position};
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
    /// Read these back from Kafka first: from the client's cursor to where the buffer's
    /// coverage starts (the cursor is older than what this instance holds).
    pub read_back: Option<(Position, Position)>,
    /// Missed messages from the buffer, oldest first (after any read-back).
    pub replay: Vec<Outbound>,
    /// Set when the requested cursor cannot be served.
    pub resync: Option<Gap>,
    /// What the client has seen once the opening is sent: its cursor (if any) joined with the
    /// position the live stream continues from.
    pub position: Position,
    /// This instance's own position when the connection registered.
    pub routed: Position,
    /// Messages before this, per partition, were already sent to the client (its cursor):
    /// the connection skips them if they come (this instance was behind the one that sent
    /// them) and gives later messages cursors no older than it.
    pub floor: Option<Position>,
}

/// A registered connection's ends.
pub struct Subscription {
    pub id: ConnectionId,
    pub user: Arc<str>,
    pub queue: mpsc::Receiver<Outbound>,
    pub evicted: oneshot::Receiver<Eviction>,
    pub opening: Opening,
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many open connections for this user (at most {0})")]
    TooManyConnections(usize),
    #[error("the gateway has not yet found its place in Kafka")]
    NotReady,
}

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
    /// Per partition, the offset after the last event routed; `None` until the instance knows
    /// where in Kafka it starts.
    position: Option<Position>,
    /// `position` as a cursor: what each message routed at it carries.
    cursor: String,
    next_id: ConnectionId,
    users: HashMap<Arc<str>, Vec<Subscriber>>,
    total: usize,
    replay: ReplayBuffer,
    /// Event ids already forwarded, oldest first, bounded. Redeliveries of one Kafka message
    /// are recognised by their offset (`position`); this catches the same event published
    /// twice (a relay that crashed between the send and marking its row sent).
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
    layout: Arc<Layout>,
    settings: ConnectionSettings,
    limits: ReplayLimits,
    metrics: GatewayMetrics,
    state: Mutex<State>,
}

impl Hub {
    pub fn new(
        layout: Arc<Layout>,
        settings: ConnectionSettings,
        limits: ReplayLimits,
        metrics: GatewayMetrics,
    ) -> Self {
        Self {
            settings,
            limits,
            metrics,
            state: Mutex::new(State {
                position: None,
                cursor: String::new(),
                next_id: 0,
                users: HashMap::new(),
                total: 0,
                replay: ReplayBuffer::new(limits, layout.origin()),
                recent: RecentIds::new(RECENT_IDS),
            }),
            layout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing under the lock panics while leaving the state half-changed; keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update_gauges(&self, state: &State) {
        self.metrics.connections.set(state.total as i64);
        self.metrics.connected_users.set(state.users.len() as i64);
    }

    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    /// The instance reads every partition from `start` on: what a cursor is measured against.
    /// Called once, before the first event.
    pub fn start_at(&self, start: Position) {
        let mut state = self.lock();
        state.cursor = self.layout.encode(&start);
        state.replay = ReplayBuffer::new(self.limits, start.clone());
        state.position = Some(start);
    }

    /// Whether [`Hub::start_at`] was called.
    pub fn is_positioned(&self) -> bool {
        self.lock().position.is_some()
    }

    /// Register a connection of `user`, resuming after the cursor `after` if given.
    pub fn subscribe(&self, user: &str, after: Option<Position>) -> Result<Subscription, Refusal> {
        let user: Arc<str> = Arc::from(user);
        let (tx, queue) = mpsc::channel(self.settings.send_queue);
        let (evict, evicted) = oneshot::channel();
        let now = Instant::now();
        let mut state = self.lock();
        let Some(position) = state.position.clone() else {
            return Err(Refusal::NotReady);
        };
        let open = state.users.get(&user).map_or(0, Vec::len);
        if open >= self.settings.max_per_user {
            return Err(Refusal::TooManyConnections(self.settings.max_per_user));
        }
        let opening = match after {
            None => Opening {
                read_back: None,
                replay: Vec::new(),
                resync: None,
                routed: position.clone(),
                position,
                floor: None,
            },
            Some(seen) => {
                let covered = state.replay.coverage(&user).clone();
                let read_back = (!seen.covers(&covered)).then(|| (seen.clone(), covered.clone()));
                // From where the buffer covers on, which it always can.
                let replay = state
                    .replay
                    .since(&user, &seen.joined(&covered))
                    .unwrap_or_default();
                Opening {
                    read_back,
                    replay,
                    resync: None,
                    floor: (!position.covers(&seen)).then(|| seen.clone()),
                    position: position.joined(&seen),
                    routed: position,
                }
            }
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
        Ok(Subscription {
            id,
            user,
            queue,
            evicted,
            opening,
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

    /// Route one Kafka message: move the position past it, and give each of its readers'
    /// messages the new cursor, keep them for resume and queue them to the readers'
    /// connections. `at` is the message's slot and offset (`None`: a partition outside the
    /// layout, delivered live only). Returns how many connections messages were queued to.
    pub fn publish(&self, at: Option<(usize, i64)>, readers: &[RenderedEvent]) -> usize {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        if let (Some((slot, offset)), Some(position)) = (at, state.position.as_mut()) {
            if offset < position.get(slot) {
                // Kafka delivered it again (a rebalance resumes from the last commit).
                if !readers.is_empty() {
                    self.metrics.duplicates_skipped.inc();
                }
                return 0;
            }
            position.advance(slot, offset + 1);
            state.cursor = self.layout.encode(position);
        }
        let (mut queued, mut dropped) = (0, 0);
        for event in readers {
            // An event reaches each of its readers once: its id per reader.
            if !state
                .recent
                .insert(&format!("{}/{}", event.event_id, event.user_id))
            {
                self.metrics.duplicates_skipped.inc();
                continue;
            }
            let message = event.outbound(&state.cursor, at);
            let (q, d) = Self::queue(state, &self.metrics, &event.user_id, &message);
            (queued, dropped) = (queued + q, dropped + d);
            if message.at.is_some() {
                let user: Arc<str> = match state.replay_key(&event.user_id) {
                    Some(key) => key,
                    None => Arc::from(event.user_id.as_str()),
                };
                state.replay.record(&user, message, now);
            }
        }
        self.metrics.replay_buffered.set(state.replay.len() as i64);
        if dropped > 0 {
            self.update_gauges(state);
        }
        drop(guard);
        queued
    }

    /// Queue `message` to every connection of `user`, dropping those that cannot take it;
    /// how many took it and how many were dropped.
    fn queue(
        state: &mut State,
        metrics: &GatewayMetrics,
        user: &str,
        message: &Outbound,
    ) -> (usize, usize) {
        let Some(subs) = state.users.get_mut(user) else {
            return (0, 0);
        };
        let mut queued = 0;
        let mut dropped = 0;
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
                        metrics.slow_clients_dropped.inc();
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
            state.users.remove(user);
        }
        (queued, dropped)
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

    /// The cursor of the newest position, empty before [`Hub::start_at`].
    pub fn cursor(&self) -> String {
        self.lock().cursor.clone()
    }
}

impl State {
    /// The key of `user` in the connections map, to share its allocation with the replay log.
    fn replay_key(&self, user: &str) -> Option<Arc<str>> {
        self.users.get_key_value(user).map(|(k, _)| k.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{Event, Topic, sample};
    use service_kit::metrics::Metrics;

    fn hub(send_queue: usize) -> Hub {
        let hub = Hub::new(
            Arc::new(Layout::of(&[Topic::TaskCreated])),
            ConnectionSettings {
                send_queue,
                max_per_user: 3,
                ..Default::default()
            },
            ReplayLimits::default(),
            GatewayMetrics::register(&Metrics::new()),
        );
        hub.start_at(Position::from_offsets(vec![100, 200, 300]));
        hub
    }

    fn event(user: &str) -> Vec<RenderedEvent> {
        crate::messages::render(&sample::task_created(user).into_any())
    }

    fn position_of(hub: &Hub, message: &Outbound) -> Position {
        hub.layout().parse(message.cursor()).unwrap()
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
        assert_eq!(hub.publish(Some((0, 100)), &event("a")), 2);
        let m1 = a1.queue.try_recv().unwrap();
        let m2 = a2.queue.try_recv().unwrap();
        assert_eq!(m1, m2);
        assert_eq!(
            position_of(&hub, &m1),
            Position::from_offsets(vec![101, 200, 300])
        );
        assert!(b.queue.try_recv().is_err());
        hub.unsubscribe(&a1.user, a1.id);
        assert_eq!(hub.stats().total_connections, 2);
    }

    #[test]
    fn a_redelivered_offset_is_not_sent_again() {
        let hub = hub(8);
        let mut a = hub.subscribe("a", None).unwrap();
        assert_eq!(hub.publish(Some((1, 200)), &event("a")), 1);
        // The same offset again, and an older one: both already accounted for.
        assert_eq!(hub.publish(Some((1, 200)), &event("a")), 0);
        assert_eq!(hub.publish(Some((1, 150)), &event("a")), 0);
        assert!(a.queue.try_recv().is_ok());
        assert!(a.queue.try_recv().is_err());
    }

    #[test]
    fn a_full_queue_evicts_only_that_connection() {
        let hub = hub(2);
        let mut slow = hub.subscribe("a", None).unwrap();
        let mut fast = hub.subscribe("a", None).unwrap();
        for offset in 100..102 {
            hub.publish(Some((0, offset)), &event("a"));
            fast.queue.try_recv().unwrap();
        }
        hub.publish(Some((0, 102)), &event("a"));
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
        hub.publish(Some((0, 100)), &event("a"));
        let seen = first.queue.try_recv().unwrap();
        hub.unsubscribe(&first.user, first.id);
        hub.publish(Some((1, 200)), &event("b"));
        hub.publish(Some((2, 300)), &event("a"));
        hub.publish(Some((0, 101)), &event("a"));
        let mut again = hub.subscribe("a", Some(position_of(&hub, &seen))).unwrap();
        let opening = &again.opening;
        assert_eq!(opening.replay.len(), 2);
        assert!(opening.read_back.is_none() && opening.floor.is_none());
        assert_eq!(
            opening.position,
            Position::from_offsets(vec![102, 201, 301])
        );
        hub.publish(Some((1, 201)), &event("a"));
        let live = again.queue.try_recv().unwrap();
        assert_eq!(
            position_of(&hub, &live),
            Position::from_offsets(vec![102, 202, 301])
        );
    }

    #[test]
    fn a_cursor_from_before_the_start_reads_back_and_one_ahead_sets_a_floor() {
        let hub = hub(8);
        // Another instance had sent up to offset 105 of partition 0, but partition 1 only up
        // to 150, before this one started at 200.
        let theirs = Position::from_offsets(vec![105, 150, 300]);
        let s = hub.subscribe("a", Some(theirs.clone())).unwrap();
        assert_eq!(
            s.opening.read_back,
            Some((theirs.clone(), Position::from_offsets(vec![100, 200, 300])))
        );
        assert_eq!(s.opening.floor, Some(theirs));
        assert_eq!(
            s.opening.position,
            Position::from_offsets(vec![105, 200, 300])
        );
    }

    #[test]
    fn no_connection_before_the_start_position_is_known() {
        let hub = Hub::new(
            Arc::new(Layout::of(&[Topic::TaskCreated])),
            ConnectionSettings::default(),
            ReplayLimits::default(),
            GatewayMetrics::register(&Metrics::new()),
        );
        assert_eq!(hub.subscribe("a", None).err(), Some(Refusal::NotReady));
    }

    #[test]
    fn a_user_may_hold_only_so_many_connections() {
        let hub = hub(8);
        let _held: Vec<_> = (0..3).map(|_| hub.subscribe("a", None).unwrap()).collect();
        assert_eq!(
            hub.subscribe("a", None).err(),
            Some(Refusal::TooManyConnections(3))
        );
        assert!(hub.subscribe("b", None).is_ok());
    }
}
