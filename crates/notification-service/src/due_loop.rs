//! A loop that does work when it is due, and otherwise sleeps: until the next due time it knows
//! of, until something wakes it (a [`Notify`] from whoever changed the work), or at most
//! `max_idle`. The scheduler, the delivery worker and the outbox relay each run one; none scans
//! on a fixed tick.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use events::EpochMillis;
use service_kit::consumer::RetryPolicy;
use service_kit::db::DbError;
use service_kit::shutdown::Shutdown;
use tokio::sync::Notify;

/// What a pass found about the next work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// More is due already: run again at once.
    Now,
    /// The next known work is due at this time (epoch ms).
    At(EpochMillis),
    /// Nothing known: sleep until woken (or `max_idle`).
    Idle,
}

/// One pass of a loop: do what is due now, say when the next work is.
pub trait DuePass: Send + 'static {
    fn pass(&mut self) -> impl Future<Output = Result<Next, DbError>> + Send;
}

/// Backoff after a failed pass (the database is away): 200 ms doubling to 5 s, with jitter.
const ERROR_BACKOFF: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(200),
    max_delay: Duration::from_secs(5),
    max_attempts: u32::MAX,
};

/// Run `pass` until shutdown.
pub async fn run<P: DuePass>(
    name: &'static str,
    mut pass: P,
    wake: Arc<Notify>,
    shutdown: Shutdown,
    max_idle: Duration,
) -> P {
    let mut failures: u32 = 0;
    while !shutdown.is_triggered() {
        let sleep = match pass.pass().await {
            Ok(next) => {
                failures = 0;
                match next {
                    Next::Now => {
                        // Let other tasks run between back-to-back passes.
                        tokio::task::yield_now().await;
                        continue;
                    }
                    // +1 ms: the timer rounds, and waking a hair early would find nothing due.
                    Next::At(at) => {
                        Duration::from_millis((at - events::now_millis() + 1).max(0) as u64)
                            .min(max_idle)
                    }
                    Next::Idle => max_idle,
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(loop_name = name, error = %e, failures, "pass failed; retrying");
                ERROR_BACKOFF.delay(failures)
            }
        };
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
    tracing::debug!(loop_name = name, "loop stopped");
    pass
}
