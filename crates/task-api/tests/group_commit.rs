//! Group commit under concurrency, against the real cluster on SQLite and PostgreSQL: many
//! creates share transactions, yet each request keeps its own outcome (201, its own 4xx, the
//! first response again for a repeated Idempotency-Key), every 201 has exactly one event, and a
//! database failure mid-load fails requests with 503 without losing any that were answered 201.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::RunQueryDsl;
use events::{AnyEvent, Topic};
use reqwest::Method;
use serde_json::{Value, json};
use service_kit::testing::Backend;
use support::*;

/// What one of the concurrent requests sends.
#[derive(Clone)]
enum Request {
    Valid(usize),
    /// An invalid body: 422 for it alone.
    Invalid(usize),
    /// A valid body under an Idempotency-Key that other requests repeat.
    Keyed {
        key: String,
        n: usize,
    },
}

fn body(request: &Request) -> Value {
    match request {
        Request::Valid(i) => json!({"title": format!("group {i}"), "priority": "high"}),
        Request::Invalid(i) => json!({"title": format!("bad {i}"), "priority": "urgent"}),
        Request::Keyed { key, .. } => json!({"title": format!("keyed {key}")}),
    }
}

async fn send(app: &TestApp, user: &TestUser, request: &Request) -> (u16, Value) {
    let mut r = app
        .req(Method::POST, "/api/tasks", Some(&user.token))
        .json(&body(request));
    if let Request::Keyed { key, .. } = request {
        r = r.header("Idempotency-Key", key.as_str());
    }
    let response = r.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn concurrent_creates_keep_their_own_outcomes(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let from = offsets(Topic::TaskCreated).await;
    let mut requests = Vec::new();
    for i in 0..200 {
        requests.push(match i % 20 {
            0 => Request::Invalid(i),
            1..=4 => Request::Keyed {
                key: format!("key-{}", i % 3),
                n: i,
            },
            _ => Request::Valid(i),
        });
    }
    let outcomes = futures::future::join_all(requests.iter().map(|r| send(&app, &user, r))).await;

    let mut created: Vec<String> = Vec::new();
    let mut by_key: HashMap<String, Vec<(u16, Value)>> = HashMap::new();
    for (request, (status, body)) in requests.iter().zip(&outcomes) {
        match request {
            Request::Valid(_) => {
                assert_eq!(*status, 201, "{body}");
                created.push(body["id"].as_str().unwrap().to_owned());
            }
            Request::Invalid(_) => {
                assert_eq!(*status, 422, "{body}");
                assert_eq!(body["errors"][0]["field"], "priority", "{body}");
            }
            Request::Keyed { key, n } => {
                assert_eq!(*status, 201, "request {n}: {body}");
                by_key
                    .entry(key.clone())
                    .or_default()
                    .push((*status, body.clone()));
            }
        }
    }
    // Every request of one key got the same first response: one task per key.
    for (key, answers) in &by_key {
        let first = &answers[0].1;
        assert!(
            answers.iter().all(|(_, b)| b == first),
            "{key}: {answers:?}"
        );
        created.push(first["id"].as_str().unwrap().to_owned());
    }
    // 150 plain valid requests, 10 invalid ones, 40 under 3 keys.
    assert_eq!(created.len(), 150 + 3);

    // Exactly one event per created task, and nothing else of this user's.
    let published = wait_for_published(
        Topic::TaskCreated,
        &from,
        &keys([user.id.clone()]),
        created.len(),
    )
    .await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for p in &published {
        let AnyEvent::TaskCreated(e) = &p.event else {
            panic!("{p:?}")
        };
        *seen.entry(e.task_id.clone()).or_default() += 1;
    }
    assert_eq!(seen.len(), created.len(), "one event per created task");
    assert!(seen.values().all(|n| *n == 1), "no task announced twice");
    for id in &created {
        assert_eq!(seen.get(id), Some(&1), "{id}");
    }
    let listed = app.all_tasks(&user, "").await;
    assert_eq!(listed.len(), created.len());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_keep_their_own_outcomes_on_sqlite() {
    concurrent_creates_keep_their_own_outcomes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_keep_their_own_outcomes_on_postgres() {
    concurrent_creates_keep_their_own_outcomes(Backend::Postgres).await;
}

/// Kill the service's PostgreSQL connections while creates are in flight: some requests fail
/// with 503 (never another 5xx), and every request answered 201 has its task and its one event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_failure_mid_batch_fails_requests_with_503_and_loses_no_201() {
    let app = spawn_app(Backend::Postgres).await;
    let user = app.new_user().await;
    let from = offsets(Topic::TaskCreated).await;
    let database = match &app.db_url {
        service_kit::config::DatabaseUrl::Postgres(url) => {
            url.rsplit('/').next().unwrap().to_owned()
        }
        other => panic!("{other:?}"),
    };

    let done = Arc::new(AtomicBool::new(false));
    let killer = {
        let done = done.clone();
        let admin = service_kit::testing::postgres_server_url();
        tokio::task::spawn_blocking(move || {
            use diesel::Connection;
            let mut conn = diesel::PgConnection::establish(&admin).unwrap();
            let mut kills = 0;
            while !done.load(Ordering::SeqCst) {
                let sql = format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{database}' AND pid <> pg_backend_pid()"
                );
                kills += diesel::sql_query(sql).execute(&mut conn).unwrap_or(0);
                std::thread::sleep(Duration::from_millis(100));
            }
            kills
        })
    };
    // Waves of concurrent creates until some met a kill (a batch is short: one wave may fall
    // between two kills), bounded in time.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut outcomes = Vec::new();
    let mut wave = 0;
    while std::time::Instant::now() < deadline
        && (wave < 3 || !outcomes.iter().any(|(status, _)| *status == 503))
    {
        let requests: Vec<usize> = (wave * 100..(wave + 1) * 100).collect();
        let answered = tokio::time::timeout(
            Duration::from_secs(60),
            futures::future::join_all(requests.iter().map(|i| {
                let app = &app;
                let user = &user;
                async move { send(app, user, &Request::Valid(*i)).await }
            })),
        )
        .await
        .expect("every request of the wave is answered within 60 s");
        outcomes.extend(answered);
        wave += 1;
    }
    done.store(true, Ordering::SeqCst);
    let kills = killer.await.unwrap();

    let mut created = Vec::new();
    let mut unavailable = 0;
    for (status, body) in &outcomes {
        match status {
            201 => created.push(body["id"].as_str().unwrap().to_owned()),
            503 => unavailable += 1,
            other => panic!("{other}: {body}"),
        }
    }
    eprintln!(
        "{kills} backends terminated in {wave} waves of 100 creates; {} created, {unavailable} answered 503",
        created.len()
    );
    assert!(kills > 0, "connections were killed during the load");
    assert!(!created.is_empty(), "some requests got through");
    assert!(unavailable > 0, "some requests met the failure");

    // Every 201 is durable and announced once.
    let listed: Vec<String> = testing_wait_listed(&app, &user, created.len()).await;
    for id in &created {
        assert!(listed.contains(id), "{id} answered 201 but is not stored");
    }
    let published = wait_for_published(
        Topic::TaskCreated,
        &from,
        &keys([user.id.clone()]),
        created.len(),
    )
    .await;
    // One event per task. The relay may have published a row again when its connection was
    // killed between the brokers' acknowledgement and marking the row sent: the same event
    // (same eventId, which consumers deduplicate), never a second one.
    let mut events_of: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
    for p in &published {
        if let AnyEvent::TaskCreated(e) = &p.event {
            events_of
                .entry(e.task_id.clone())
                .or_default()
                .insert(e.event_id.clone());
        }
    }
    for id in &created {
        assert_eq!(
            events_of.get(id).map(|e| e.len()),
            Some(1),
            "{id}: one event"
        );
    }
    app.stop().await;
}

/// The user's task ids once at least `n` are listed (the pool reconnects after the kills, so
/// a read may still fail for a moment).
async fn testing_wait_listed(app: &TestApp, user: &TestUser, n: usize) -> Vec<String> {
    service_kit::testing::wait_for("the tasks listed", Duration::from_secs(30), || async {
        let response = app
            .req(Method::GET, "/api/tasks?limit=200", Some(&user.token))
            .send()
            .await
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        let mut ids: Vec<String> = Vec::new();
        let mut page: Value = response.json().await.ok()?;
        loop {
            ids.extend(
                page["items"]
                    .as_array()?
                    .iter()
                    .filter_map(|t| t["id"].as_str().map(str::to_owned)),
            );
            let Some(cursor) = page["next_cursor"].as_str() else {
                break;
            };
            let next = app
                .req(
                    Method::GET,
                    &format!("/api/tasks?limit=200&cursor={cursor}"),
                    Some(&user.token),
                )
                .send()
                .await
                .ok()?;
            if next.status() != 200 {
                return None;
            }
            page = next.json().await.ok()?;
        }
        (ids.len() >= n).then_some(ids)
    })
    .await
}
