//! Exponential backoff with full jitter.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay before the first retry (before jitter).
    pub initial: Duration,
    /// Upper bound of any one delay.
    pub max_delay: Duration,
    /// Attempts (the first included) before a retryable failure is dead-lettered.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_attempts: 8,
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based): uniformly random in
    /// `[d/2, d]` where `d = min(initial * 2^(attempt-1), max_delay)`, so a crowd of failing
    /// consumers does not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_and_stay_bounded() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_attempts: 5,
        };
        for attempt in 1..=30 {
            let d = p.delay(attempt);
            let expected = (Duration::from_millis(100) * 2u32.pow((attempt - 1).min(20)))
                .min(Duration::from_secs(2));
            assert!(
                d >= expected / 2 && d <= expected,
                "attempt {attempt}: {d:?} vs {expected:?}"
            );
        }
    }
}
