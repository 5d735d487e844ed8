//! The outbox under failure: writes succeed while Kafka is unreachable and the backlog drains
//! when it is back; two relays on one PostgreSQL database publish each row once, in order.
//!
//! The shared brokers are never stopped (other tests use them): an instance pointed at an
//! address where no broker listens plays "Kafka is down", and a second instance on the same
//! database (or the same one restarted) plays "Kafka is back".

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use events::{AnyEvent, Topic};
use reqwest::Method;
use serde_json::json;
use service_kit::testing::{self, Backend};
use support::*;

async fn create_many(app: &TestApp, user: &TestUser, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let t = app
            .create_task(user, json!({"title": format!("while Kafka is away {i}")}))
            .await;
        ids.push(t["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Exactly the expected task.created events of `user`: none missing, none twice, in order.
async fn assert_created_exactly(from: &[i64], user: &TestUser, ids: &[String]) {
    let published = wait_for_published(
        Topic::TaskCreated,
        from,
        &keys([user.id.clone()]),
        ids.len(),
    )
    .await;
    let event_ids: HashSet<&str> = published.iter().map(|p| p.event.event_id()).collect();
    assert_eq!(event_ids.len(), published.len(), "an event published twice");
    let task_ids: Vec<String> = published
        .iter()
        .map(|p| p.event.task_id().unwrap().to_owned())
        .collect();
    assert_eq!(task_ids, ids, "exactly these tasks, in creation order");
    assert!(
        published
            .iter()
            .all(|p| p.producer.as_deref() == Some("task-api"))
    );
}

#[tokio::test]
async fn writes_succeed_while_kafka_is_unreachable_and_another_instance_drains_the_backlog() {
    const N: usize = 100;
    let db_url = testing::fresh_database(Backend::Postgres);
    let from = offsets(Topic::TaskCreated).await;
    let mut down = Options::new(Backend::Postgres);
    down.db_url = Some(db_url.clone());
    down.bootstrap = NO_KAFKA.to_owned();
    let cut_off = spawn_with(down).await;
    let user = cut_off.new_user().await;
    let ids = create_many(&cut_off, &user, N).await;
    // Reads work too.
    assert_eq!(cut_off.all_tasks(&user, "").await.len(), N);
    testing::wait_for(
        "the backlog metric to show every row",
        Duration::from_secs(30),
        || async { (cut_off.backlog().await >= N as f64).then_some(()) },
    )
    .await;
    let m = cut_off.metrics().await;
    assert!(testing::metric_sum(&m, "outbox_oldest_unsent_age_seconds", &[]) > 0.0);
    testing::wait_for(
        "the cut-off relay to try and fail",
        Duration::from_secs(30),
        || async {
            let m = cut_off.metrics().await;
            (testing::metric_sum(&m, "outbox_publish_failures_total", &[]) > 0.0).then_some(())
        },
    )
    .await;

    // Kafka "returns": an instance that reaches it, on the same database.
    let mut up = Options::new(Backend::Postgres);
    up.db_url = Some(db_url);
    up.keys = Some(cut_off.keys.clone());
    let connected = spawn_with(up).await;
    connected.wait_outbox_empty().await;
    assert_created_exactly(&from, &user, &ids).await;
    testing::wait_for(
        "the cut-off instance sees the backlog gone",
        Duration::from_secs(30),
        || async { (cut_off.backlog().await == 0.0).then_some(()) },
    )
    .await;
    cut_off.stop().await;
    connected.stop().await;
}

#[tokio::test]
async fn a_backlog_written_without_kafka_drains_after_a_restart_on_sqlite() {
    const N: usize = 30;
    let db_url = testing::fresh_database(Backend::Sqlite);
    let from = offsets(Topic::TaskCreated).await;
    let mut down = Options::new(Backend::Sqlite);
    down.db_url = Some(db_url.clone());
    down.bootstrap = NO_KAFKA.to_owned();
    let first = spawn_with(down).await;
    let keys_ = first.keys.clone();
    let user = first.new_user().await;
    let ids = create_many(&first, &user, N).await;
    testing::wait_for("backlog", Duration::from_secs(30), || async {
        (first.backlog().await >= N as f64).then_some(())
    })
    .await;
    first.stop().await;

    let mut up = Options::new(Backend::Sqlite);
    up.db_url = Some(db_url);
    up.keys = Some(keys_);
    let restarted = spawn_with(up).await;
    restarted.wait_outbox_empty().await;
    assert_created_exactly(&from, &user, &ids).await;
    restarted.stop().await;
}

#[tokio::test]
async fn two_relays_on_one_postgres_database_publish_each_row_once_and_in_order() {
    const USERS: usize = 4;
    const TASKS: usize = 6;
    const EDITS: i64 = 5;
    let db_url = testing::fresh_database(Backend::Postgres);
    let created_from = offsets(Topic::TaskCreated).await;
    let updated_from = offsets(Topic::TaskUpdated).await;
    let mut a = Options::new(Backend::Postgres);
    a.db_url = Some(db_url.clone());
    let a = spawn_with(a).await;
    let mut b = Options::new(Backend::Postgres);
    b.db_url = Some(db_url);
    b.keys = Some(a.keys.clone());
    let b = spawn_with(b).await;
    let apps = [&a, &b];

    // Users work concurrently; each user's own requests go one after the other, alternating
    // between the instances, so their order is defined.
    let work = (0..USERS).map(|u| async move {
        let user = apps[u % 2].new_user().await;
        let mut tasks = Vec::new();
        for i in 0..TASKS {
            let t = apps[i % 2]
                .create_task(&user, json!({"title": format!("t{i}")}))
                .await;
            tasks.push(t["id"].as_str().unwrap().to_owned());
        }
        for v in 1..=EDITS {
            for (i, id) in tasks.iter().enumerate() {
                let r = apps[(i + v as usize) % 2]
                    .req(
                        Method::PATCH,
                        &format!("/api/tasks/{id}"),
                        Some(&user.token),
                    )
                    .header("If-Match", v.to_string())
                    .json(&json!({"title": format!("t{i} v{}", v + 1)}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        }
        (user, tasks)
    });
    let users = futures::future::join_all(work).await;
    a.wait_outbox_empty().await;

    for (user, tasks) in &users {
        assert_created_exactly(&created_from, user, tasks).await;
    }
    let all_tasks: Vec<String> = users.iter().flat_map(|(_, t)| t.clone()).collect();
    let updates = wait_for_published(
        Topic::TaskUpdated,
        &updated_from,
        &keys(all_tasks.clone()),
        all_tasks.len() * EDITS as usize,
    )
    .await;
    assert_eq!(
        updates.len(),
        all_tasks.len() * EDITS as usize,
        "each update once"
    );
    let mut versions: HashMap<String, Vec<i64>> = HashMap::new();
    for p in &updates {
        let AnyEvent::TaskUpdated(e) = &p.event else {
            panic!()
        };
        versions
            .entry(e.task_id.clone())
            .or_default()
            .push(e.version);
    }
    for id in &all_tasks {
        assert_eq!(
            versions[id],
            (2..=EDITS + 1).collect::<Vec<_>>(),
            "versions of {id} in order"
        );
    }
    // Both relays took turns (each published something) or one did it all: either way, once.
    let published = |m: &str| testing::metric_sum(m, "outbox_published_total", &[]);
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    assert!(published(&ma) + published(&mb) >= (all_tasks.len() * (EDITS as usize + 1)) as f64);
    a.stop().await;
    b.stop().await;
}
