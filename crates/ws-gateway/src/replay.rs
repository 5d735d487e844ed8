//! The bounded buffer behind `?after=<cursor>`: each user's newest messages, so a client that
//! reconnects gets exactly what it missed — or a clear "cannot" (resync), never a gap.
//!
//! Bounds: `per_user` messages per user, `max_age`, and `total` messages over all users (oldest
//! first). Whatever a bound pushes out is remembered as a high-water mark per user
//! (`evicted_through`): a cursor older than it cannot be served. A user's log itself is
//! dropped once it is empty, nobody of that user is connected and it has been idle for
//! `max_age`; its mark then folds into one global mark (`forgotten_through`) that every log
//! created later starts from, so a cursor from before the drop also gets resync. That global
//! mark is conservative (it may resync a client that missed nothing), never optimistic.
//!
//! No I/O and no clock of its own: callers pass `now`, which keeps it testable.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ReplayLimits;
use crate::messages::Outbound;

#[derive(Debug)]
struct Entry {
    seq: u64,
    message: Outbound,
}

#[derive(Debug)]
struct UserLog {
    entries: VecDeque<Entry>,
    /// Highest sequence number of this user's messages that is no longer here.
    evicted_through: u64,
    last_active: Instant,
}

/// Why a cursor cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Gap {
    #[error("messages after the cursor are no longer buffered")]
    TooOld,
    #[error("the cursor is ahead of this gateway")]
    Unknown,
}

#[derive(Debug)]
pub struct ReplayBuffer {
    limits: ReplayLimits,
    logs: HashMap<Arc<str>, UserLog>,
    /// Every recorded message in sequence order, for the age and total bounds. Entries whose
    /// message already left its user's log (per-user bound) are skipped when they come up.
    order: VecDeque<(u64, Instant, Arc<str>)>,
    forgotten_through: u64,
    /// Messages held over all logs, kept as they come and go (the metric reads it per event).
    held: usize,
}

impl ReplayBuffer {
    pub fn new(limits: ReplayLimits) -> Self {
        Self {
            limits,
            logs: HashMap::new(),
            order: VecDeque::new(),
            forgotten_through: 0,
            held: 0,
        }
    }

    fn log_mut(&mut self, user: &Arc<str>, now: Instant) -> &mut UserLog {
        let floor = self.forgotten_through;
        self.logs.entry(user.clone()).or_insert_with(|| UserLog {
            entries: VecDeque::new(),
            evicted_through: floor,
            last_active: now,
        })
    }

    /// Keep `user`'s log (creating it empty) as if active at `now`: called when a connection
    /// opens or closes, so a quick reconnect gets an exact answer.
    pub fn touch(&mut self, user: &Arc<str>, now: Instant) {
        self.log_mut(user, now).last_active = now;
    }

    /// Remember a message sent to `user` with sequence number `seq` (increasing).
    pub fn record(&mut self, user: &Arc<str>, seq: u64, message: Outbound, now: Instant) {
        let per_user = self.limits.per_user;
        let log = self.log_mut(user, now);
        log.last_active = now;
        log.entries.push_back(Entry { seq, message });
        let mut evicted = 0;
        while log.entries.len() > per_user {
            if let Some(old) = log.entries.pop_front() {
                log.evicted_through = old.seq;
                evicted += 1;
            }
        }
        self.held = self.held + 1 - evicted;
        self.order.push_back((seq, now, user.clone()));
        self.expire(now);
    }

    /// The messages of `user` after sequence number `after`, oldest first; `last_seq` is the
    /// newest sequence number issued so far.
    pub fn since(&self, user: &str, after: u64, last_seq: u64) -> Result<Vec<Outbound>, Gap> {
        if after > last_seq {
            return Err(Gap::Unknown);
        }
        let Some(log) = self.logs.get(user) else {
            return if after >= self.forgotten_through {
                Ok(Vec::new())
            } else {
                Err(Gap::TooOld)
            };
        };
        if after < log.evicted_through {
            return Err(Gap::TooOld);
        }
        let start = log.entries.partition_point(|e| e.seq <= after);
        Ok(log
            .entries
            .range(start..)
            .map(|e| e.message.clone())
            .collect())
    }

    /// Apply the age and total bounds.
    pub fn expire(&mut self, now: Instant) {
        let max_age = self.limits.max_age;
        while let Some((seq, at, user)) = self.order.front() {
            let too_old = now.saturating_duration_since(*at) > max_age;
            if !too_old && self.order.len() <= self.limits.total {
                break;
            }
            if let Some(log) = self.logs.get_mut(user)
                && log.entries.front().is_some_and(|e| e.seq == *seq)
            {
                log.entries.pop_front();
                log.evicted_through = *seq;
                self.held -= 1;
            }
            self.order.pop_front();
        }
    }

    /// Drop the logs that are empty, idle for `max_age` and whose user is not connected.
    pub fn forget_idle(&mut self, now: Instant, connected: impl Fn(&str) -> bool) {
        self.expire(now);
        let max_age = self.limits.max_age;
        let mut forgotten = self.forgotten_through;
        self.logs.retain(|user, log| {
            let keep = !log.entries.is_empty()
                || now.saturating_duration_since(log.last_active) <= max_age
                || connected(user);
            if !keep {
                forgotten = forgotten.max(log.evicted_through);
            }
            keep
        });
        self.forgotten_through = forgotten;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::MessageKind;

    fn msg(n: u64) -> Outbound {
        Outbound {
            frame: n.to_string().into(),
            kind: MessageKind::TaskCreated,
            event_time: 0,
        }
    }

    fn seqs(v: &[Outbound]) -> Vec<u64> {
        v.iter().map(|m| m.frame.parse().unwrap()).collect()
    }

    fn limits(per_user: usize, total: usize) -> ReplayLimits {
        ReplayLimits {
            per_user,
            max_age: Duration::from_secs(60),
            total,
        }
    }

    #[test]
    fn replays_exactly_the_users_messages_after_the_cursor() {
        let mut b = ReplayBuffer::new(limits(10, 100));
        let (a, other): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let now = Instant::now();
        for seq in 1..=6 {
            let user = if seq % 2 == 0 { &other } else { &a };
            b.record(user, seq, msg(seq), now);
        }
        assert_eq!(seqs(&b.since("a", 1, 6).unwrap()), vec![3, 5]);
        assert_eq!(seqs(&b.since("a", 0, 6).unwrap()), vec![1, 3, 5]);
        assert_eq!(seqs(&b.since("b", 4, 6).unwrap()), vec![6]);
        assert!(b.since("a", 6, 6).unwrap().is_empty());
        assert_eq!(b.since("a", 7, 6), Err(Gap::Unknown));
    }

    #[test]
    fn a_cursor_older_than_the_per_user_bound_gets_a_gap() {
        let mut b = ReplayBuffer::new(limits(3, 100));
        let a: Arc<str> = "a".into();
        let now = Instant::now();
        for seq in 1..=5 {
            b.record(&a, seq, msg(seq), now);
        }
        assert_eq!(b.since("a", 1, 5), Err(Gap::TooOld));
        assert_eq!(seqs(&b.since("a", 2, 5).unwrap()), vec![3, 4, 5]);
    }

    #[test]
    fn the_total_bound_evicts_oldest_first_across_users() {
        let mut b = ReplayBuffer::new(limits(10, 3));
        let (a, other): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let now = Instant::now();
        b.record(&a, 1, msg(1), now);
        b.record(&other, 2, msg(2), now);
        b.record(&other, 3, msg(3), now);
        b.record(&other, 4, msg(4), now);
        assert_eq!(b.len(), 3);
        let counted: usize = b.logs.values().map(|l| l.entries.len()).sum();
        assert_eq!(counted, 3);
        assert_eq!(b.since("a", 0, 4), Err(Gap::TooOld));
        assert!(b.since("a", 1, 4).unwrap().is_empty());
        assert_eq!(seqs(&b.since("b", 1, 4).unwrap()), vec![2, 3, 4]);
    }

    #[test]
    fn old_messages_age_out_and_idle_logs_are_forgotten_conservatively() {
        let mut b = ReplayBuffer::new(limits(10, 100));
        let a: Arc<str> = "a".into();
        let start = Instant::now();
        b.record(&a, 1, msg(1), start);
        let later = start + Duration::from_secs(61);
        b.expire(later);
        assert!(b.is_empty());
        assert_eq!(b.since("a", 0, 1), Err(Gap::TooOld));
        // Still connected: the log stays and a cursor at its mark is served exactly.
        b.forget_idle(later + Duration::from_secs(61), |_| true);
        assert_eq!(b.users(), 1);
        assert!(b.since("a", 1, 1).unwrap().is_empty());
        b.forget_idle(later + Duration::from_secs(61), |_| false);
        assert_eq!(b.users(), 0);
        assert_eq!(b.since("a", 0, 1), Err(Gap::TooOld));
        assert!(b.since("a", 1, 1).unwrap().is_empty());
        // A log created after the drop starts from the global mark.
        let b2: Arc<str> = "b".into();
        b.touch(&b2, later);
        assert_eq!(b.since("b", 0, 1), Err(Gap::TooOld));
    }
}
