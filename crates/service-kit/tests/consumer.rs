//! The consumer runtime against the real cluster and registry: a partition whose queue of
//! unhandled events reaches its bound is paused (librdkafka drops what it fetched ahead) and
//! resumed once the queue has drained to half, and every event is still handled exactly once and
//! in order per partition.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::{Event, EventCodec, EventPublisher, Service, Topic, sample};
use service_kit::consumer::{
    ConsumerRuntime, ConsumerSettings, EventHandler, HandleError, Received,
};
use service_kit::metrics::Metrics;
use service_kit::shutdown::Shutdown;
use service_kit::testing;
use tokio::sync::Semaphore;

const TOPIC: Topic = Topic::TaskCreated;
/// Events published before the consumer starts: many times the bound on every partition.
const EVENTS: usize = 900;
/// The queue bound under test, far below what one fetch brings.
const BOUND: usize = 20;

/// Records what it handled, in order; handles nothing until the test opens the gate.
#[derive(Clone)]
struct Gated {
    handled: Arc<Mutex<Vec<(i32, i64, String)>>>,
    gate: Arc<Semaphore>,
}

impl EventHandler for Gated {
    async fn handle(&self, event: &Received) -> Result<(), HandleError> {
        let _pass = self
            .gate
            .acquire()
            .await
            .map_err(|e| HandleError::Unavailable(e.to_string()))?;
        self.handled.lock().unwrap().push((
            event.meta.partition,
            event.meta.offset,
            event.event.event_id().to_owned(),
        ));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_paused_at_its_bound_resumes_and_loses_nothing() {
    let partitions = TOPIC.spec().partitions;
    // The group starts where the topic ends now, before the events are published.
    let group = testing::unique_group("consumer-bound");
    let g = group.clone();
    tokio::task::spawn_blocking(move || testing::position_group_at_end(&g, &[TOPIC]))
        .await
        .unwrap();
    let codec = Arc::new(EventCodec::connect(&testing::registry_access()).unwrap());
    let publisher =
        EventPublisher::connect(testing::kafka_config(), codec.clone(), "consumer-test").unwrap();
    let users: Vec<String> = (0..32).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let published: Vec<_> = (0..EVENTS)
        .map(|i| sample::task_created(&users[i % users.len()]))
        .collect();
    for r in futures::future::join_all(published.iter().map(|e| publisher.publish(e, None))).await {
        r.unwrap();
    }
    let ours: HashSet<String> = published.iter().map(|e| e.event_id().to_owned()).collect();

    let mut settings =
        ConsumerSettings::for_service(Service::AuditService, &testing::kafka_access());
    settings.group_id = group;
    settings.topics = vec![TOPIC];
    settings.max_queued_per_partition = BOUND;
    let handler = Gated {
        handled: Arc::default(),
        gate: Arc::new(Semaphore::new(0)),
    };
    let metrics = Metrics::new();
    let shutdown = Shutdown::new();
    let runtime = ConsumerRuntime::start(
        settings,
        handler.clone(),
        codec,
        metrics.clone(),
        shutdown.clone(),
    )
    .unwrap();

    // Nothing is handled yet, so every partition's queue fills up to the bound and the
    // partition pauses (once: it cannot drain, so it cannot resume, while the gate is shut).
    // Each holds about a third of the events, many times the bound, so none of its events
    // after the first twenty is handled unless it resumes.
    let pauses = || {
        metrics
            .partition_pauses_total
            .with_label_values(&[TOPIC.name()])
            .get()
    };
    testing::wait_for(
        "every partition paused at its bound",
        Duration::from_secs(60),
        || async { (pauses() >= partitions as u64).then_some(()) },
    )
    .await;
    assert!(handler.handled.lock().unwrap().is_empty());

    handler.gate.add_permits(Semaphore::MAX_PERMITS);
    testing::wait_for(
        "every published event handled",
        Duration::from_secs(120),
        || async {
            let handled = handler.handled.lock().unwrap();
            let seen = handled
                .iter()
                .filter(|(_, _, id)| ours.contains(id))
                .count();
            (seen >= EVENTS).then_some(())
        },
    )
    .await;
    shutdown.trigger();
    runtime.join().await;

    let handled = handler.handled.lock().unwrap().clone();
    let mut times: HashMap<&str, usize> = HashMap::new();
    for (_, _, id) in &handled {
        *times.entry(id.as_str()).or_default() += 1;
    }
    for id in &ours {
        assert_eq!(times.get(id.as_str()), Some(&1), "event {id} handled once");
    }
    // In order per partition: a resume fetches from where the queue ended.
    let mut by_partition: HashMap<i32, Vec<i64>> = HashMap::new();
    for (p, offset, _) in &handled {
        by_partition.entry(*p).or_default().push(*offset);
    }
    for (p, offsets) in &by_partition {
        assert!(
            offsets.windows(2).all(|w| w[1] > w[0]),
            "partition {p}: offsets handled in order"
        );
    }
}
