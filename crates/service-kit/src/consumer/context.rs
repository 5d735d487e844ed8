//! librdkafka callbacks: rebalance (drain and commit before partitions move) and statistics
//! (consumer lag per partition).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;

use super::{ConsumerAccess, PartitionMap, PartitionState};
use crate::metrics::Metrics;

pub(crate) struct RuntimeContext {
    partitions: PartitionMap,
    metrics: Metrics,
    drain_timeout: Duration,
    access: ConsumerAccess,
}

impl RuntimeContext {
    pub fn new(
        partitions: PartitionMap,
        metrics: Metrics,
        drain_timeout: Duration,
        access: ConsumerAccess,
    ) -> Self {
        Self {
            partitions,
            metrics,
            drain_timeout,
            access,
        }
    }
}

/// Wait until none of `states` is processing an event, at most `timeout`. Runs on the poll
/// thread (a plain OS thread), so sleeping here blocks no executor.
pub(crate) fn wait_idle(states: &[Arc<PartitionState>], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while states.iter().any(|s| s.busy.load(Ordering::Acquire)) {
        if Instant::now() >= deadline {
            tracing::warn!(
                ?timeout,
                "in-flight events did not finish in time; they will be redelivered"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl ClientContext for RuntimeContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (id, p) in &t.partitions {
                // -1 is librdkafka's internal "unassigned" partition; lag -1 means unknown.
                if *id < 0 || p.consumer_lag < 0 {
                    continue;
                }
                self.metrics
                    .consumer_lag
                    .with_label_values(&[topic.as_str(), &id.to_string()])
                    .set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for RuntimeContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let revoked: Vec<Arc<PartitionState>> = {
            let Ok(mut map) = self.partitions.lock() else {
                return;
            };
            tpl.elements()
                .iter()
                .filter_map(|e| map.remove(&(e.topic().to_owned(), e.partition())))
                .collect()
        };
        for s in &revoked {
            s.revoked.store(true, Ordering::Release);
        }
        wait_idle(&revoked, self.drain_timeout);
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!(
                partitions = revoked.len(),
                "revoked partitions drained and committed"
            ),
            Err(e) => tracing::debug!(error = %e, "commit on revoke"),
        }
        for s in &revoked {
            self.metrics
                .consumer_lag
                .remove_label_values(&[s.topic.as_str(), &s.partition.to_string()])
                .ok();
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // The group coordinator let this consumer in: a refusal seen before has ended.
            self.access.accepted();
            tracing::info!(partitions = tpl.count(), "partitions assigned");
        }
    }
}
