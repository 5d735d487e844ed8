//! The audit-service as a real process: killed mid-stream, stopped with SIGTERM, and its
//! database taken away for a while.

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use events::{Event, Service, Topic, sample};
use rdkafka::consumer::{BaseConsumer, Consumer};
use service_kit::testing::{self, Backend};
use support::*;

/// Publish `n` task.created events spread over 40 users (so every partition gets some).
async fn publish_stream(n: usize) -> Vec<String> {
    let codec = std::sync::Arc::new(
        events::EventCodec::connect(&service_kit::testing::registry_access()).unwrap(),
    );
    let publisher =
        events::EventPublisher::connect(service_kit::testing::kafka_config(), codec, "audit-tests")
            .unwrap();
    let users: Vec<String> = (0..40).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let events: Vec<_> = (0..n)
        .map(|i| sample::task_created(&users[i % users.len()]))
        .collect();
    let ids = events.iter().map(|e| e.event_id.clone()).collect();
    for chunk in events.chunks(200) {
        let sends = chunk.iter().map(|e| publisher.publish(e, None));
        for r in futures::future::join_all(sends).await {
            r.expect("publish");
        }
    }
    ids
}

async fn wait_stored(env: &ProcessEnv, at_least: i64, bound: Duration) -> i64 {
    testing::wait_for(
        &format!("{at_least} stored audit entries"),
        bound,
        || async {
            let n = env.stored().await;
            (n >= at_least).then_some(n)
        },
    )
    .await
}

#[tokio::test]
async fn sigkill_mid_stream_then_restart_stores_every_event_exactly_once() {
    const N: usize = 3000;
    let env = ProcessEnv::new(Backend::Postgres).await;
    let mut first = env.start().await;
    let publishing = tokio::spawn(publish_stream(N));
    wait_stored(&env, 300, Duration::from_secs(60)).await;
    first.child.kill().expect("SIGKILL");
    first.child.wait().unwrap();
    let killed_at = env.stored().await;
    assert!(
        killed_at < N as i64,
        "killed too late to prove anything ({killed_at} stored)"
    );

    let mut second = env.start().await;
    let published: HashSet<String> = publishing.await.unwrap().into_iter().collect();
    // Other tests publish to the same topics meanwhile: count only this stream's events.
    let ours = || async {
        env.stored_ids()
            .await
            .into_iter()
            .filter(|id| published.contains(id))
            .count()
    };
    testing::wait_for(
        &format!("all {N} events stored"),
        Duration::from_secs(120),
        || async { (ours().await >= N).then_some(()) },
    )
    .await;
    // The table's unique event id makes a second copy impossible; what matters is that the
    // replay after the crash did not fail on it, and that nothing is missing.
    assert_eq!(ours().await, N, "every published event stored once");
    let all = env.stored_ids().await;
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "no event stored twice");
    second.child.kill().unwrap();
    second.child.wait().unwrap();
}

/// The group's committed offset of each partition of `topics` (`None` where it has none).
fn committed_offsets(group: &str, topics: &[Topic]) -> Vec<(Topic, Vec<Option<i64>>)> {
    let consumer: BaseConsumer = service_kit::testing::kafka_config()
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for topic in topics {
        for p in 0..topic.spec().partitions {
            tpl.add_partition(topic.name(), p);
        }
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    topics
        .iter()
        .map(|topic| {
            let offsets = (0..topic.spec().partitions)
                .map(|p| {
                    committed
                        .find_partition(topic.name(), p)
                        .and_then(|e| e.offset().to_raw())
                })
                .collect();
            (*topic, offsets)
        })
        .collect()
}

/// Where the group starts reading: its committed offsets, else the topics' end.
fn start_positions(group: &str, topics: &[Topic]) -> Vec<(Topic, Vec<i64>)> {
    committed_offsets(group, topics)
        .into_iter()
        .map(|(topic, committed)| {
            let end = testing::end_offsets(topic.name(), topic.spec().partitions);
            let from = committed
                .into_iter()
                .zip(end)
                .map(|(c, e)| c.unwrap_or(e))
                .collect();
            (topic, from)
        })
        .collect()
}

/// Messages the group committed past `start`, over every partition.
fn committed_total(group: &str, start: &[(Topic, Vec<i64>)]) -> i64 {
    let topics: Vec<Topic> = start.iter().map(|(t, _)| *t).collect();
    committed_offsets(group, &topics)
        .into_iter()
        .zip(start)
        .map(|((_, committed), (_, from))| {
            committed
                .into_iter()
                .zip(from)
                .map(|(c, f)| c.unwrap_or(*f) - f)
                .sum::<i64>()
        })
        .sum()
}

#[tokio::test]
async fn sigterm_commits_in_flight_work_and_exits_cleanly_within_bounds() {
    let env = ProcessEnv::new(Backend::Sqlite).await;
    let topics = Service::AuditService.consumes();
    // From where the group was positioned, not the topics' end now: other tests of this file
    // publish to the same topics meanwhile, and the service reads (and stores) theirs too
    // from that position on (CI saw the end offsets run ahead of the group's position).
    let start = tokio::task::spawn_blocking({
        let group = env.group.clone();
        move || start_positions(&group, topics)
    })
    .await
    .unwrap();
    let mut service = env.start().await;
    let publishing = tokio::spawn(publish_stream(2000));
    wait_stored(&env, 200, Duration::from_secs(60)).await;

    let asked = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(status) = service.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(25),
            "still running 25 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    let log = std::fs::read_to_string(&service.log).unwrap();
    assert!(
        log.contains("audit-service stopped"),
        "clean stop not logged:\n{log}"
    );
    publishing.await.unwrap();

    // Everything stored was committed, and nothing was committed that is not stored: a
    // restart neither replays nor skips.
    let stored = env.stored().await;
    let committed = tokio::task::spawn_blocking({
        let group = env.group.clone();
        move || committed_total(&group, &start)
    })
    .await
    .unwrap();
    assert_eq!(committed, stored, "committed offsets vs stored entries");
}

#[tokio::test]
async fn a_database_outage_is_retried_not_dead_lettered_and_nothing_is_lost() {
    let app = spawn_app(Backend::Postgres).await;
    let service_kit::config::DatabaseUrl::Postgres(url) = app.db_url.clone() else {
        unreachable!()
    };
    let db_name = url.rsplit('/').next().unwrap().to_owned();
    let user = uuid::Uuid::new_v4().to_string();
    for _ in 0..3 {
        app.publish(&sample::task_created(&user)).await;
    }
    app.wait_for_events(&user, 3).await;

    let admin = |sql: String| async move {
        tokio::task::spawn_blocking(move || {
            use diesel::{Connection, RunQueryDsl};
            let mut conn =
                diesel::PgConnection::establish(&testing::postgres_server_url()).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        })
        .await
        .unwrap()
    };
    admin(format!("ALTER DATABASE {db_name} ALLOW_CONNECTIONS false")).await;
    admin(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db_name}'"
    ))
    .await;

    let mut more = Vec::new();
    for _ in 0..4 {
        let e = sample::task_created(&user);
        app.publish(&e).await;
        more.push(e.event_id().to_owned());
    }
    testing::wait_for(
        "retries while the database is away",
        Duration::from_secs(60),
        || async {
            let m = app.metrics().await;
            (testing::metric_sum(&m, "event_retries_total", &["topic=\"task.created\""]) >= 2.0)
                .then_some(())
        },
    )
    .await;
    admin(format!("ALTER DATABASE {db_name} ALLOW_CONNECTIONS true")).await;

    let items = app.wait_for_events(&user, 7).await;
    assert_eq!(items.len(), 7);
    for id in &more {
        assert!(
            items.iter().any(|i| i["event_id"] == id.as_str()),
            "{id} stored after the outage"
        );
    }
    let m = app.metrics().await;
    assert_eq!(
        testing::metric_sum(&m, "dead_letters_total", &[]),
        0.0,
        "nothing dead-lettered"
    );
    app.stop().await;
}
