//! Two instances of every service against one, on the same machine and cluster: create
//! throughput through task-api (behind its round-robin front when two) and the latency from
//! `201 Created` to the `task_created` message on the owner's WebSocket (spread over the
//! gateway instances). On two shared cores no throughput gain is expected; what must hold is
//! that nothing is lost (every create's message arrives) and latency stays bounded.

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use service_kit::testing::Backend;
use system_tests::{LiveView, Svc, System, UserClient};

const USERS: usize = 8;
const SECONDS: u64 = 8;
/// What "bounded" means here: a p99 above this is a failure, whatever the instance count.
const P99_BOUND: Duration = Duration::from_secs(5);

struct Figures {
    creates: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn measure(instances: usize) -> Figures {
    let system = System::start_scaled(Backend::Postgres, instances).await;
    let gateways = system.ws_urls();
    let mut users = Vec::new();
    let mut views = Vec::new();
    for i in 0..USERS {
        let user = UserClient::register(&system, &format!("scale{i}"))
            .await
            .keeping_connections();
        views.push(LiveView::open(gateways.clone(), i % gateways.len(), user.clone()).await);
        users.push(user);
    }
    // Each user creates as fast as the API answers, one request at a time.
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(SECONDS);
    let workers: Vec<_> = users
        .iter()
        .map(|user| {
            let (user, created) = (user.clone(), created.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while Instant::now() < deadline {
                    n += 1;
                    let body = json!({"title": format!("load {n}")});
                    let (status, task) = user
                        .call(
                            reqwest::Method::POST,
                            Svc::TaskApi,
                            "/api/tasks",
                            Some(body),
                        )
                        .await;
                    assert_eq!(status, 201, "{task}");
                    let id = task["id"].as_str().unwrap().to_owned();
                    created.lock().unwrap().insert(id, Instant::now());
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    let created = created.lock().unwrap().clone();
    // Every create's message, on its owner's view.
    let arrived = service_kit::testing::wait_for(
        "every created task's message on its owner's WebSocket",
        Duration::from_secs(120),
        || async {
            let mut arrived: HashMap<String, Instant> = HashMap::new();
            for view in &views {
                for (_, m, at) in view.record().messages {
                    if m["type"] == "task_created"
                        && let Some(id) = m["data"]["id"].as_str()
                    {
                        arrived.entry(id.to_owned()).or_insert(at);
                    }
                }
            }
            created
                .keys()
                .all(|id| arrived.contains_key(id))
                .then_some(arrived)
        },
    )
    .await;
    let mut latencies: Vec<Duration> = created
        .iter()
        .map(|(id, answered)| arrived[id].saturating_duration_since(*answered))
        .collect();
    latencies.sort();
    for view in &views {
        assert!(
            view.record().connections.len() == 1,
            "no connection was lost"
        );
    }
    if instances > 1 {
        let served = system.front_served();
        assert!(
            served.iter().all(|n| *n > 0),
            "every task-api instance served: {served:?}"
        );
    }
    system.stop().await;
    Figures {
        creates: created.len(),
        per_second: created.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        max: *latencies.last().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_of_each_service_lose_nothing_and_keep_latency_bounded() {
    let one = measure(1).await;
    let two = measure(2).await;
    for (label, f) in [("one instance ", &one), ("two instances", &two)] {
        println!(
            "[scale] {label}: {} creates in {SECONDS} s by {USERS} users = {:.0}/s; 201 → WebSocket p50 {} ms, p99 {} ms, max {} ms",
            f.creates,
            f.per_second,
            f.p50.as_millis(),
            f.p99.as_millis(),
            f.max.as_millis()
        );
    }
    println!(
        "[scale] two against one: throughput x{:.2}, p99 x{:.2}",
        two.per_second / one.per_second,
        two.p99.as_secs_f64() / one.p99.as_secs_f64().max(0.001)
    );
    for f in [&one, &two] {
        assert!(f.creates > 0);
        assert!(f.p99 < P99_BOUND, "p99 {:?} above {P99_BOUND:?}", f.p99);
    }
}
