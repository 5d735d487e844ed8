//! Latency samples and closed-loop load: what every benchmark measures with.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;

/// Latencies in milliseconds, sorted once.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<f64>);

impl Latencies {
    pub fn new(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        Self(ms)
    }

    pub fn from_millis(ms: impl IntoIterator<Item = i64>) -> Self {
        Self::new(ms.into_iter().map(|v| v as f64).collect())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank quantile (`q` in 0..=1); 0 without samples.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }

    pub fn max(&self) -> f64 {
        self.0.last().copied().unwrap_or(0.0)
    }
}

/// What a closed-loop run did.
#[derive(Debug, Clone)]
pub struct Run {
    pub ops: usize,
    pub seconds: f64,
    pub latencies: Latencies,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.seconds.max(f64::EPSILON)
    }

    pub fn line(&self, what: &str) -> String {
        format!(
            "{what:<34} {:>9.0} /s  p50 {:>8.2} ms  p99 {:>8.2} ms  ({} ops)",
            self.rate(),
            self.latencies.quantile(0.5),
            self.latencies.quantile(0.99),
            self.ops
        )
    }
}

/// Run `op` from `concurrency` workers, each starting its next call when the last one answered,
/// for `duration`. The first failing call ends the run with its error.
pub async fn closed_loop<F, Fut>(
    concurrency: usize,
    duration: Duration,
    op: F,
) -> anyhow::Result<Run>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let workers = (0..concurrency.max(1)).map(|_| {
        let op = op.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                op().await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        })
    });
    let mut all = Vec::new();
    for worker in futures::future::join_all(workers).await {
        all.extend(worker.context("a load worker panicked")??);
    }
    Ok(Run {
        ops: all.len(),
        seconds: started.elapsed().as_secs_f64(),
        latencies: Latencies::new(all),
    })
}

/// Poll `check` every 50 ms until it returns `Some`, at most `bound`; an error naming `what`
/// otherwise (unlike `testing::wait_for`, which panics: a benchmark must still clean up).
pub async fn wait_for<T, F, Fut>(what: &str, bound: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {bound:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let l = Latencies::new((1..=100).rev().map(f64::from).collect());
        assert_eq!(l.quantile(0.5), 50.0);
        assert_eq!(l.quantile(0.99), 99.0);
        assert_eq!(l.quantile(1.0), 100.0);
        assert_eq!(l.max(), 100.0);
        assert_eq!(Latencies::default().quantile(0.5), 0.0);
    }
}
