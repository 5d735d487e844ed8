//! The recurring-task-service as a real process: killed in the middle of a stream of
//! completions, stopped with SIGTERM, started with a bad setting; and how long a next
//! occurrence takes.
#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use events::{EventPublisher, RecurrenceMode, TaskCreatedEvent, Topic};
use rdkafka::Message;
use service_kit::testing::{self, Backend};
use support::*;

/// `n` first tasks of weekly series, spread over 30 users of `scope`.
fn series_stream(scope: &str, n: usize) -> Vec<TaskCreatedEvent> {
    let users: Vec<String> = (0..30).map(|_| user_in(scope)).collect();
    (0..n)
        .map(|i| {
            first_of_series(
                &users[i % users.len()],
                rrule(
                    "FREQ=WEEKLY;BYDAY=MO",
                    "Europe/Berlin",
                    RecurrenceMode::Fixed,
                ),
                Some(utc_ms("2026-03-02T08:00:00Z")),
            )
        })
        .collect()
}

/// Publish each task and its completion, the completion twice (a duplicate delivery).
async fn publish_completions(publisher: EventPublisher, tasks: Vec<TaskCreatedEvent>) {
    for chunk in tasks.chunks(50) {
        let mut sends = Vec::new();
        for t in chunk {
            let publisher = &publisher;
            sends.push(async move {
                let completion = completion_of(t, 2, utc_ms("2026-03-02T09:00:00Z"));
                publisher.publish(t, None).await.unwrap();
                publisher.publish(&completion, None).await.unwrap();
                publisher.publish(&completion, None).await.unwrap();
            });
        }
        futures::future::join_all(sends).await;
    }
}

/// Read task.created until the service published a next occurrence for each of `tasks`.
async fn wait_all_published(
    reader: TopicReader,
    tasks: &[TaskCreatedEvent],
) -> Vec<rdkafka::message::OwnedMessage> {
    let users: HashSet<String> = tasks.iter().map(|t| t.user_id.clone()).collect();
    let wanted: HashSet<String> = tasks.iter().map(|t| occurrence_id(t, 1)).collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut reader = reader;
    loop {
        let users = users.clone();
        let (r, ours) = tokio::task::spawn_blocking(move || {
            let mut r = reader;
            r.catch_up();
            let ours: Vec<_> = users
                .iter()
                .flat_map(|u| r.next_occurrences_of(u))
                .collect();
            (r, ours)
        })
        .await
        .unwrap();
        reader = r;
        let decoded = decode_all(&ours).await;
        let seen: HashSet<&str> = decoded.iter().map(|e| e.task_id.as_str()).collect();
        if wanted.iter().all(|id| seen.contains(id.as_str())) {
            return ours;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} next occurrences published",
            seen.len(),
            wanted.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_stream_of_completions_then_restart_creates_each_next_occurrence_exactly_once()
 {
    const N: usize = 400;
    let env = ProcessEnv::new(Backend::Postgres).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let tasks = series_stream(&env.scope, N);
    let mut first = env.start().await;
    let publishing = tokio::spawn(publish_completions(publisher(), tasks.clone()));
    testing::wait_for(
        "some next occurrences recorded",
        Duration::from_secs(90),
        || async { (env.ledger().await.len() >= 40).then_some(()) },
    )
    .await;
    first.child.kill().expect("SIGKILL");
    first.child.wait().unwrap();
    let at_kill = env.ledger().await;
    assert!(
        at_kill.len() < N,
        "killed too late to prove anything ({} recorded)",
        at_kill.len()
    );

    let mut second = env.start().await;
    publishing.await.unwrap();
    let messages = wait_all_published(reader, &tasks).await;
    let decoded = decode_all(&messages).await;

    // Each next occurrence exists once: one ledger row per series, all published, and on the
    // topic one task id per series, always with the same event id (a re-publication after the
    // crash, if any, is the same event and consumers deduplicate it).
    let ledger = testing::wait_for(
        "the ledger fully published",
        Duration::from_secs(60),
        || async {
            let rows = env.ledger().await;
            (rows.len() >= N && rows.iter().all(|(_, _, published)| *published)).then_some(rows)
        },
    )
    .await;
    assert_eq!(ledger.len(), N, "one ledger row per series");
    assert!(ledger.iter().all(|(_, index, _)| *index == 1));
    let mut event_ids: HashMap<&str, HashSet<&str>> = HashMap::new();
    for e in &decoded {
        event_ids
            .entry(e.task_id.as_str())
            .or_default()
            .insert(e.event_id.as_str());
    }
    assert_eq!(
        event_ids.len(),
        N,
        "one next occurrence per series on the topic"
    );
    assert!(
        event_ids.values().all(|ids| ids.len() == 1),
        "one event id per next occurrence"
    );
    let republished = decoded.len() - N;
    eprintln!(
        "SIGKILL after {} of {N} recorded; {} messages for {N} occurrences ({republished} re-published with the same ids)",
        at_kill.len(),
        decoded.len()
    );
    assert!(
        republished <= 200,
        "re-publications bounded by one relay batch"
    );
    second.child.kill().unwrap();
    second.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_work_publishes_what_it_recorded_and_exits_cleanly() {
    let env = ProcessEnv::new(Backend::Sqlite).await;
    let tasks = series_stream(&env.scope, 300);
    let mut service = env.start().await;
    let publishing = tokio::spawn(publish_completions(publisher(), tasks));
    testing::wait_for(
        "some next occurrences recorded",
        Duration::from_secs(90),
        || async { (env.ledger().await.len() >= 30).then_some(()) },
    )
    .await;
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
            asked.elapsed() < Duration::from_secs(30),
            "still running 30 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("stopped {:?} after SIGTERM", asked.elapsed());
    assert!(exit.success(), "exit status {exit:?}");
    let log = std::fs::read_to_string(&service.log).unwrap();
    assert!(
        log.contains("recurring-task-service stopped"),
        "clean stop not logged:\n{log}"
    );
    publishing.await.unwrap();
    let ledger = env.ledger().await;
    assert!(
        ledger.iter().all(|(_, _, published)| *published),
        "everything recorded before the stop was published: {} of {} pending",
        ledger.iter().filter(|(_, _, p)| !p).count(),
        ledger.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_bad_setting_stops_the_service_with_one_line_naming_it() {
    let env = ProcessEnv::new(Backend::Sqlite).await;
    let log = std::env::temp_dir().join(format!("recurring-config-{}.log", uuid::Uuid::new_v4()));
    for (unset, set, name) in [
        (
            Some("KAFKA_BOOTSTRAP_SERVERS"),
            None,
            "KAFKA_BOOTSTRAP_SERVERS",
        ),
        (Some("JWT_PUBLIC_KEY"), None, "JWT_PUBLIC_KEY"),
        (
            None,
            Some(("RECURRING_RELAY_INTERVAL_MS", "soon")),
            "RECURRING_RELAY_INTERVAL_MS",
        ),
        (None, Some(("DATABASE_URL", "mysql://x")), "DATABASE_URL"),
    ] {
        let mut cmd = env.command(0, &log);
        if let Some(v) = unset {
            cmd.env_remove(v);
        }
        if let Some((k, v)) = set {
            cmd.env(k, v);
        }
        let out = cmd.stderr(std::process::Stdio::piped()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: {stderr}");
        assert!(
            lines[0].starts_with(&format!("configuration error: {name}")),
            "{stderr}"
        );
    }
}

/// Time from a completion being published to its next occurrence being published, over a few
/// hundred completions sent one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_occurrences_follow_completions_within_a_bound() {
    const N: usize = 300;
    let app = spawn_app(Backend::Postgres).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let tasks = series_stream(&app.scope, N);
    for t in &tasks {
        app.publish(t).await;
    }
    let mut sent = HashMap::new();
    for t in &tasks {
        // A steady stream, not a burst: each completion is measured on its own.
        tokio::time::sleep(Duration::from_millis(20)).await;
        sent.insert(occurrence_id(t, 1), events::now_millis());
        app.publish(&completion_of(t, 2, utc_ms("2026-03-02T09:00:00Z")))
            .await;
    }
    let messages = wait_all_published(reader, &tasks).await;
    let decoded = decode_all(&messages).await;
    let mut latencies: Vec<i64> = messages
        .iter()
        .zip(&decoded)
        .filter_map(|(m, e)| Some(m.timestamp().to_millis()? - sent.get(&e.task_id)?))
        .collect();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    eprintln!(
        "completion published -> next occurrence published, {} completions: p50 {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        pct(0.50),
        pct(0.99),
        latencies.last().unwrap()
    );
    assert!(pct(0.99) < 5_000, "p99 {} ms", pct(0.99));
    app.stop().await;
}
