//! Login rate limiting per email and per client IP, in fixed windows, in memory.
//!
//! Per email it stops password guessing against one account (a successful login clears the
//! email's count, so a user who mistyped is not locked out by their own success); per IP it
//! stops one client spraying many accounts. Limits are per instance: with N instances an
//! attacker gets at most N times the budget, which still bounds guessing.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::LoginLimits;

/// Past this many tracked keys, expired windows are swept out (bounded memory under a spray).
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    attempts: u32,
}

#[derive(Debug)]
struct Counter<K> {
    limit: u32,
    windows: Mutex<HashMap<K, Window>>,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    fn new(limit: u32) -> Self {
        Self {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Count an attempt; `Err(wait)` when the key is over its limit in this window.
    fn attempt(&self, key: &K, window: Duration, now: Instant) -> Result<(), Duration> {
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        if windows.len() > SWEEP_ABOVE {
            windows.retain(|_, w| now.duration_since(w.started) < window);
        }
        let w = windows.entry(key.clone()).or_insert(Window {
            started: now,
            attempts: 0,
        });
        if now.duration_since(w.started) >= window {
            *w = Window {
                started: now,
                attempts: 0,
            };
        }
        if w.attempts >= self.limit {
            return Err(window.saturating_sub(now.duration_since(w.started)));
        }
        w.attempts += 1;
        Ok(())
    }

    fn clear(&self, key: &K) {
        if let Ok(mut windows) = self.windows.lock() {
            windows.remove(key);
        }
    }
}

#[derive(Debug)]
pub struct LoginLimiter {
    window: Duration,
    by_email: Counter<String>,
    by_ip: Counter<IpAddr>,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            window: limits.window,
            by_email: Counter::new(limits.per_email),
            by_ip: Counter::new(limits.per_ip),
        }
    }

    /// Count a login attempt; `Err(seconds)` to wait when the email or the IP is over its limit.
    pub fn attempt(&self, email: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        let now = Instant::now();
        let by_ip = match ip {
            Some(ip) => self.by_ip.attempt(&ip, self.window, now),
            None => Ok(()),
        };
        let by_email = self.by_email.attempt(&email.to_owned(), self.window, now);
        match (by_ip, by_email) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Err(b)) => Err(seconds(a.max(b))),
            (Err(w), _) | (_, Err(w)) => Err(seconds(w)),
        }
    }

    /// A successful login: the email's failures no longer count.
    pub fn succeeded(&self, email: &str) {
        self.by_email.clear(&email.to_owned());
    }
}

/// Whole seconds to wait, at least 1 (Retry-After has second granularity).
fn seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0).max(u64::from(d.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_applies_per_email_and_per_ip() {
        let limiter = LoginLimiter::new(LoginLimits {
            per_email: 2,
            per_ip: 3,
            window: Duration::from_secs(60),
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(limiter.attempt("a@x.io", Some(ip)).is_ok());
        assert!(limiter.attempt("a@x.io", Some(ip)).is_ok());
        let wait = limiter.attempt("a@x.io", Some(ip)).unwrap_err();
        assert!((59..=60).contains(&wait), "{wait}");
        // Another email from the same IP: the IP's budget (3) is spent by now.
        assert!(limiter.attempt("b@x.io", Some(ip)).is_err());
        // Another IP, another email: fine.
        assert!(
            limiter
                .attempt("c@x.io", Some("10.0.0.2".parse().unwrap()))
                .is_ok()
        );
    }

    #[test]
    fn a_success_clears_the_email_count() {
        let limiter = LoginLimiter::new(LoginLimits {
            per_email: 1,
            per_ip: 100,
            window: Duration::from_secs(60),
        });
        assert!(limiter.attempt("a@x.io", None).is_ok());
        limiter.succeeded("a@x.io");
        assert!(limiter.attempt("a@x.io", None).is_ok());
        assert!(limiter.attempt("a@x.io", None).is_err());
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(seconds(Duration::from_millis(1500)), 2);
        assert_eq!(seconds(Duration::from_secs(3)), 3);
        assert_eq!(seconds(Duration::ZERO), 1);
    }
}
