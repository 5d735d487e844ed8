//! The bounded buffer behind `?after=<cursor>`: each user's newest messages, so a client that
//! reconnects gets exactly what it missed from memory in the common case.
//!
//! Bounds: `per_user` messages per user, `max_age`, and `total` messages over all users (oldest
//! first). What the buffer can vouch for is tracked per user and partition as a
//! [`Position`] (`covered_from`): every message of the user at or after it is here. It starts
//! at the instance's start position and moves past whatever a bound pushes out. A user's log
//! itself is dropped once it is empty, nobody of that user is connected and it has been idle
//! for `max_age`; its coverage then folds into one global position (`forgotten`) that every log
//! created later starts from. That global position is conservative (it may send a client to
//! the Kafka read-back that missed nothing), never optimistic.
//!
//! A cursor the buffer does not cover is served by reading Kafka back ([`crate::read_back`]).
//! No I/O and no clock of its own: callers pass `now`, which keeps it testable.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ReplayLimits;
use crate::cursor::{Layout, Position};
use crate::messages::Outbound;

#[derive(Debug)]
struct Entry {
    id: u64,
    message: Outbound,
}

#[derive(Debug)]
struct UserLog {
    entries: VecDeque<Entry>,
    /// Per partition, the offset from which every message of this user is in `entries`.
    covered_from: Position,
    last_active: Instant,
}

impl UserLog {
    fn evicted(&mut self, message: &Outbound) {
        if let Some((slot, offset)) = message.at {
            self.covered_from.advance(slot, offset + 1);
        }
    }
}

/// Why a cursor cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Gap {
    #[error("messages after the cursor are no longer kept")]
    TooOld,
    #[error("more was published since the cursor than a reconnect may read back")]
    TooFar,
    #[error("the messages after the cursor could not be read back from Kafka in time")]
    Unavailable,
    #[error("the cursor is from a gateway that followed other topics")]
    OtherLayout,
    #[error("the cursor is ahead of what Kafka holds (the topics were recreated)")]
    AheadOfKafka,
}

impl Gap {
    /// The `outcome` label of a read-back that ended in this gap.
    pub fn label(self) -> &'static str {
        match self {
            Gap::TooOld => "too_old",
            Gap::TooFar => "too_far",
            Gap::Unavailable | Gap::OtherLayout | Gap::AheadOfKafka => "unavailable",
        }
    }
}

#[derive(Debug)]
pub struct ReplayBuffer {
    limits: ReplayLimits,
    logs: HashMap<Arc<str>, UserLog>,
    /// Every recorded message in order, for the age and total bounds. Entries whose message
    /// already left its user's log (per-user bound) are skipped when they come up.
    order: VecDeque<(u64, Instant, Arc<str>)>,
    next_id: u64,
    /// Coverage of users without a log: the start position, then the coverage of every log
    /// dropped since.
    forgotten: Position,
    /// Messages held over all logs, kept as they come and go (the metric reads it per event).
    held: usize,
}

impl ReplayBuffer {
    /// An empty buffer of an instance that reads every partition from `start` on.
    pub fn new(limits: ReplayLimits, start: Position) -> Self {
        Self {
            limits,
            logs: HashMap::new(),
            order: VecDeque::new(),
            next_id: 0,
            forgotten: start,
            held: 0,
        }
    }

    fn log_mut(&mut self, user: &Arc<str>, now: Instant) -> &mut UserLog {
        let floor = &self.forgotten;
        self.logs.entry(user.clone()).or_insert_with(|| UserLog {
            entries: VecDeque::new(),
            covered_from: floor.clone(),
            last_active: now,
        })
    }

    /// Keep `user`'s log (creating it empty) as if active at `now`: called when a connection
    /// opens or closes, so a quick reconnect is served from memory.
    pub fn touch(&mut self, user: &Arc<str>, now: Instant) {
        self.log_mut(user, now).last_active = now;
    }

    /// Remember a message sent to `user`.
    pub fn record(&mut self, user: &Arc<str>, message: Outbound, now: Instant) {
        let per_user = self.limits.per_user;
        self.next_id += 1;
        let id = self.next_id;
        let log = self.log_mut(user, now);
        log.last_active = now;
        log.entries.push_back(Entry { id, message });
        let mut evicted = 0;
        while log.entries.len() > per_user {
            if let Some(old) = log.entries.pop_front() {
                log.evicted(&old.message);
                evicted += 1;
            }
        }
        self.held = self.held + 1 - evicted;
        self.order.push_back((id, now, user.clone()));
        self.expire(now);
    }

    /// Per partition, the offset from which the buffer holds every message of `user`.
    pub fn coverage(&self, user: &str) -> &Position {
        self.logs
            .get(user)
            .map_or(&self.forgotten, |log| &log.covered_from)
    }

    /// The messages of `user` at or after `from`, oldest first, if the buffer covers `from`.
    pub fn since(&self, user: &str, from: &Position) -> Result<Vec<Outbound>, Gap> {
        if !from.covers(self.coverage(user)) {
            return Err(Gap::TooOld);
        }
        let Some(log) = self.logs.get(user) else {
            return Ok(Vec::new());
        };
        Ok(log
            .entries
            .iter()
            .filter(|e| {
                e.message
                    .at
                    .is_none_or(|(slot, offset)| offset >= from.get(slot))
            })
            .map(|e| e.message.clone())
            .collect())
    }

    /// Apply the age and total bounds.
    pub fn expire(&mut self, now: Instant) {
        let max_age = self.limits.max_age;
        while let Some((id, at, user)) = self.order.front() {
            let too_old = now.saturating_duration_since(*at) > max_age;
            if !too_old && self.order.len() <= self.limits.total {
                break;
            }
            if let Some(log) = self.logs.get_mut(user)
                && log.entries.front().is_some_and(|e| e.id == *id)
                && let Some(old) = log.entries.pop_front()
            {
                log.evicted(&old.message);
                self.held -= 1;
            }
            self.order.pop_front();
        }
    }

    /// Drop the logs that are empty, idle for `max_age` and whose user is not connected.
    pub fn forget_idle(&mut self, now: Instant, connected: impl Fn(&str) -> bool) {
        self.expire(now);
        let max_age = self.limits.max_age;
        let mut forgotten = self.forgotten.clone();
        self.logs.retain(|user, log| {
            let keep = !log.entries.is_empty()
                || now.saturating_duration_since(log.last_active) <= max_age
                || connected(user);
            if !keep {
                forgotten.join(&log.covered_from);
            }
            keep
        });
        self.forgotten = forgotten;
    }

    /// Messages held, over all users.
    pub fn len(&self) -> usize {
        self.held
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Users with a log.
    pub fn users(&self) -> usize {
        self.logs.len()
    }

    pub fn max_age(&self) -> Duration {
        self.limits.max_age
    }
}

/// Put a replay (what was read back, then what the buffer held) in the order the events
/// happened, and give each message the cursor that is true once the client has it: per
/// partition, the lowest offset still to come in the replay, or `end` where none is left.
///
/// Why reorder: a gateway reads its topics in parallel, so the order it routed them in (or
/// read them back in) can put a task's update before its creation when they sit on different
/// topics. Event time, then the task version, gives each task's messages in version order.
pub fn in_event_order(
    layout: &Layout,
    mut messages: Vec<Outbound>,
    end: &Position,
) -> Vec<Outbound> {
    messages.sort_by_key(|m| (m.event_time, m.version));
    let mut next = end.clone();
    let mut cursors = Vec::with_capacity(messages.len());
    for m in messages.iter().rev() {
        cursors.push(layout.encode(&next));
        if let Some((slot, offset)) = m.at {
            next.lower(slot, offset);
        }
    }
    messages
        .iter()
        .zip(cursors.into_iter().rev())
        .map(|(m, cursor)| m.with_cursor(&cursor))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::{Event, sample};

    /// A message of slot `slot` at `offset` whose cursor text is `n`.
    fn msg(slot: usize, offset: i64) -> Outbound {
        crate::messages::render(&sample::task_created("u").into_any())
            .remove(0)
            .outbound(&format!("{slot}:{offset}"), Some((slot, offset)))
    }

    fn places(v: &[Outbound]) -> Vec<String> {
        v.iter().map(|m| m.cursor().to_owned()).collect()
    }

    fn at(offsets: &[i64]) -> Position {
        Position::from_offsets(offsets.to_vec())
    }

    fn limits(per_user: usize, total: usize) -> ReplayLimits {
        ReplayLimits {
            per_user,
            max_age: Duration::from_secs(60),
            total,
            ..ReplayLimits::default()
        }
    }

    #[test]
    fn replays_exactly_the_users_messages_at_or_after_the_position() {
        let mut b = ReplayBuffer::new(limits(10, 100), at(&[10, 20]));
        let (a, other): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let now = Instant::now();
        b.record(&a, msg(0, 10), now);
        b.record(&other, msg(1, 20), now);
        b.record(&a, msg(1, 21), now);
        b.record(&a, msg(0, 11), now);
        assert_eq!(
            places(&b.since("a", &at(&[10, 20])).unwrap()),
            ["0:10", "1:21", "0:11"]
        );
        assert_eq!(
            places(&b.since("a", &at(&[11, 21])).unwrap()),
            ["1:21", "0:11"]
        );
        assert_eq!(
            places(&b.since("a", &at(&[12, 22])).unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(places(&b.since("b", &at(&[10, 20])).unwrap()), ["1:20"]);
        // A user never seen: covered from the start position on, with nothing to replay.
        assert!(b.since("c", &at(&[10, 20])).unwrap().is_empty());
        // From before the instance started: not covered.
        assert_eq!(b.since("a", &at(&[9, 20])), Err(Gap::TooOld));
        assert_eq!(b.coverage("a"), &at(&[10, 20]));
    }

    #[test]
    fn eviction_moves_coverage_of_that_partition_only() {
        let mut b = ReplayBuffer::new(limits(2, 100), at(&[0, 0]));
        let a: Arc<str> = "a".into();
        let now = Instant::now();
        b.record(&a, msg(0, 5), now);
        b.record(&a, msg(1, 7), now);
        b.record(&a, msg(0, 6), now);
        assert_eq!(b.coverage("a"), &at(&[6, 0]));
        assert_eq!(b.since("a", &at(&[5, 0])), Err(Gap::TooOld));
        assert_eq!(places(&b.since("a", &at(&[6, 0])).unwrap()), ["1:7", "0:6"]);
    }

    #[test]
    fn the_total_bound_evicts_oldest_first_across_users() {
        let mut b = ReplayBuffer::new(limits(10, 3), at(&[0]));
        let (a, other): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let now = Instant::now();
        b.record(&a, msg(0, 1), now);
        b.record(&other, msg(0, 2), now);
        b.record(&other, msg(0, 3), now);
        b.record(&other, msg(0, 4), now);
        assert_eq!(b.len(), 3);
        let counted: usize = b.logs.values().map(|l| l.entries.len()).sum();
        assert_eq!(counted, 3);
        assert_eq!(b.since("a", &at(&[0])), Err(Gap::TooOld));
        assert!(b.since("a", &at(&[2])).unwrap().is_empty());
        assert_eq!(
            places(&b.since("b", &at(&[2])).unwrap()),
            ["0:2", "0:3", "0:4"]
        );
    }

    #[test]
    fn old_messages_age_out_and_idle_logs_are_forgotten_conservatively() {
        let mut b = ReplayBuffer::new(limits(10, 100), at(&[0]));
        let a: Arc<str> = "a".into();
        let start = Instant::now();
        b.record(&a, msg(0, 1), start);
        let later = start + Duration::from_secs(61);
        b.expire(later);
        assert!(b.is_empty());
        assert_eq!(b.since("a", &at(&[1])), Err(Gap::TooOld));
        // Still connected: the log stays and a position at its coverage is served exactly.
        b.forget_idle(later + Duration::from_secs(61), |_| true);
        assert_eq!(b.users(), 1);
        assert!(b.since("a", &at(&[2])).unwrap().is_empty());
        b.forget_idle(later + Duration::from_secs(61), |_| false);
        assert_eq!(b.users(), 0);
        assert_eq!(b.since("a", &at(&[1])), Err(Gap::TooOld));
        assert!(b.since("a", &at(&[2])).unwrap().is_empty());
        // A log created after the drop starts from the global coverage.
        let b2: Arc<str> = "b".into();
        b.touch(&b2, later);
        assert_eq!(b.since("b", &at(&[1])), Err(Gap::TooOld));
    }

    #[test]
    fn a_replay_is_put_in_event_order_with_cursors_true_at_each_message() {
        use events::Topic;
        let layout = Layout::of(&[Topic::TaskCreated]);
        let rendered = crate::messages::render(&sample::task_created("u").into_any()).remove(0);
        let message = |slot: usize, offset: i64, time: i64, version: i64| {
            let mut m = rendered.outbound("x", Some((slot, offset)));
            m.event_time = time;
            m.version = version;
            m
        };
        // Routed as: slot 1's version 2 before slot 0's version 1 of the same moment.
        let routed = vec![
            message(1, 50, 7, 2),
            message(0, 10, 7, 1),
            message(2, 90, 3, 1),
        ];
        let end = at(&[20, 60, 95]);
        let replay = in_event_order(&layout, routed, &end);
        let order: Vec<_> = replay.iter().map(|m| m.at.unwrap()).collect();
        assert_eq!(order, [(2, 90), (0, 10), (1, 50)]);
        let cursors: Vec<Position> = replay
            .iter()
            .map(|m| layout.parse(m.cursor()).unwrap())
            .collect();
        assert_eq!(cursors[0], at(&[10, 50, 95]));
        assert_eq!(cursors[1], at(&[20, 50, 95]));
        assert_eq!(cursors[2], end);
    }
}
