//! audit-service against the real cluster, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

mod support;

use std::time::Duration;

use events::{Topic, sample};
use service_kit::testing::{self, Backend};
use support::*;

fn user() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn replayed_events_are_stored_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user();
    let events = sample::one_of_each(&user);
    let mut counted = 0;
    for _ in 0..2 {
        for e in &events {
            app.publisher.publish_any(e, None).await.unwrap();
        }
    }
    // user.authenticated carries the user too; every sample is this user's.
    for e in &events {
        if e.user_id() == Some(user.as_str()) {
            counted += 1;
        }
    }
    app.wait_for_events(&user, counted).await;
    // Both copies have been consumed before we look at the final count.
    testing::wait_for("both copies consumed", Duration::from_secs(30), || async {
        let m = app.metrics().await;
        (testing::metric_sum(&m, "events_consumed_total", &["outcome=\"handled\""])
            >= (2 * events.len()) as f64)
            .then_some(())
    })
    .await;
    let items = app.all_events(&user).await;
    assert_eq!(items.len(), counted, "each event stored once");
    let mut ids: Vec<&str> = items
        .iter()
        .map(|i| i["event_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), counted);
    let item = items.iter().find(|i| i["topic"] == "task.created").unwrap();
    assert_eq!(item["event_type"], "task_created");
    assert!(item["schema_id"].as_i64().unwrap() > 0);
    assert_eq!(item["producer"], "audit-tests");
    assert!(item["event_time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(item["data"]["title"], "Water the plants");
    app.stop().await;
}

#[tokio::test]
async fn replayed_events_are_stored_once_on_sqlite() {
    replayed_events_are_stored_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn replayed_events_are_stored_once_on_postgres() {
    replayed_events_are_stored_once(Backend::Postgres).await;
}

#[tokio::test]
async fn a_task_history_is_oldest_first_and_only_its_owner_reads_it() {
    let app = spawn_app(Backend::Sqlite).await;
    let (alice, bob) = (user(), user());
    let mut created = sample::task_created(&alice);
    created.event_timestamp -= 2_000;
    let mut updated = sample::task_updated(&alice);
    updated.task_id = created.task_id.clone();
    updated.event_timestamp -= 1_000;
    let mut completed = sample::task_completed(&alice);
    completed.task_id = created.task_id.clone();
    // Published newest first: the history still reads oldest first.
    app.publish(&completed).await;
    app.publish(&updated).await;
    app.publish(&created).await;
    let bobs = sample::task_created(&bob);
    app.publish(&bobs).await;
    app.wait_for_events(&alice, 3).await;
    app.wait_for_events(&bob, 1).await;

    let history = app
        .get_json(
            &format!("/api/audit/tasks/{}/history", created.task_id),
            &alice,
        )
        .await;
    let types: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["task_created", "task_updated", "task_completed"]);

    // Paging with limit=1 walks the same order.
    let page = app
        .get_json(
            &format!("/api/audit/tasks/{}/history?limit=1", created.task_id),
            &alice,
        )
        .await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let page2 = app
        .get_json(
            &format!(
                "/api/audit/tasks/{}/history?limit=1&cursor={cursor}",
                created.task_id
            ),
            &alice,
        )
        .await;
    assert_eq!(page2["items"][0]["event_type"], "task_updated");

    // Bob asks for Alice's task: 404, not her data.
    let resp = app
        .get(
            &format!("/api/audit/tasks/{}/history", created.task_id),
            Some(&app.token(&bob)),
        )
        .await;
    assert_eq!(resp.status(), 404);
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains(&alice) && !body.contains("Water the plants"),
        "{body}"
    );
    // Filtering Alice's task id from Bob's token shows nothing.
    let filtered = app
        .get_json(
            &format!("/api/audit/events?task_id={}", created.task_id),
            &bob,
        )
        .await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 0);
    // Bob's own list holds only his event.
    let bobs_items = app.all_events(&bob).await;
    assert_eq!(bobs_items.len(), 1);
    assert_eq!(bobs_items[0]["task_id"], bobs.task_id.as_str());

    // An admin reads both.
    let admin = app.signer.issue_admin(&user()).unwrap();
    let resp = app
        .get(
            "/api/audit/events?topic=task.created&limit=500",
            Some(&admin),
        )
        .await;
    let all: serde_json::Value = resp.json().await.unwrap();
    let tasks: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["task_id"].as_str())
        .collect();
    assert!(tasks.contains(&created.task_id.as_str()) && tasks.contains(&bobs.task_id.as_str()));
    app.stop().await;
}

#[tokio::test]
async fn bad_tokens_get_401_and_bad_queries_get_400_problems() {
    let app = spawn_app(Backend::Sqlite).await;
    let resp = app.get("/api/audit/events", None).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let now = chrono::Utc::now().timestamp();
    let expired = app
        .signer
        .issue_at(&user(), now - 7200, now - 3600)
        .unwrap();
    assert_eq!(
        app.get("/api/audit/events", Some(&expired)).await.status(),
        401
    );
    assert_eq!(
        app.get("/api/audit/events", Some("not.a.token"))
            .await
            .status(),
        401
    );
    let (foreign, _, _) = testing::token_pair();
    assert_eq!(
        app.get("/api/audit/events", Some(&foreign.issue(&user()).unwrap()))
            .await
            .status(),
        401
    );

    let token = app.token(&user());
    for query in [
        "topic=nope",
        "from=yesterday",
        "limit=0",
        "cursor=zzz",
        "task_id=1",
        "colour=red",
    ] {
        let resp = app
            .get(&format!("/api/audit/events?{query}"), Some(&token))
            .await;
        assert_eq!(resp.status(), 400, "{query}");
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert!(
            problem["type"].as_str().unwrap().starts_with("https://"),
            "{problem}"
        );
    }
    assert_eq!(
        app.get("/api/audit/tasks/not-a-uuid/history", Some(&token))
            .await
            .status(),
        400
    );
    assert_eq!(
        app.get("/api/nothing-here", Some(&token)).await.status(),
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_the_partition_moves_on() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = user();
    let dlq =
        events::DeadLetterTopic::new(Topic::TaskUpdated, events::Service::AuditService).name();
    let dlq_start = testing::end_offsets(&dlq, 3);
    // Everything keyed by one task id lands on one partition, in this order.
    let task = uuid::Uuid::new_v4().to_string();
    let codec = app.publisher.codec().clone();
    let mut impossible = sample::task_updated(&user);
    impossible.task_id = task.clone();
    impossible.version = 0;
    let impossible = codec.encode(&impossible).await.unwrap();
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("not_wire_format", b"definitely not avro".to_vec()),
        (
            "unknown_schema_id",
            vec![0, 0x7f, 0xff, 0xff, 0x02, 1, 2, 3],
        ),
        ("invalid", impossible),
    ];
    for (_, payload) in &poison {
        app.publisher
            .send(Topic::TaskUpdated.name(), &task, payload, None)
            .await
            .unwrap();
    }
    let mut after = sample::task_updated(&user);
    after.task_id = task.clone();
    app.publish(&after).await;

    let items = app.wait_for_events(&user, 1).await;
    assert_eq!(
        items[0]["event_id"],
        after.event_id.as_str(),
        "the event after the poison is stored"
    );

    // Every audit-service instance of this test binary reads the topic and dead-letters the
    // poison too; ours are the letters of our consumer group.
    let ours_only = |m: &rdkafka::message::OwnedMessage| {
        rdkafka::Message::key(m) == Some(task.as_bytes())
            && events::publish::header_str(m, "dlq.group") == Some(app.group.as_str())
    };
    let letters = testing::read_until(&dlq, &dlq_start, Duration::from_secs(30), |seen| {
        seen.iter().filter(|m| ours_only(m)).count() >= 3
    });
    let ours: Vec<_> = letters.iter().filter(|m| ours_only(m)).collect();
    assert_eq!(
        ours.len(),
        3,
        "each poison message dead-lettered once by our instance"
    );
    for ((kind, payload), letter) in poison.iter().zip(&ours) {
        use rdkafka::Message;
        assert_eq!(
            letter.payload(),
            Some(payload.as_slice()),
            "payload kept as it was"
        );
        let header = |name| events::publish::header_str(*letter, name).map(str::to_owned);
        assert_eq!(header("dlq.error.kind").as_deref(), Some(*kind));
        assert_eq!(header("dlq.source.topic").as_deref(), Some("task.updated"));
        assert!(header("dlq.source.partition").is_some());
        assert!(header("dlq.source.offset").unwrap().parse::<i64>().is_ok());
        assert!(header("dlq.error").is_some());
        assert_eq!(header("dlq.attempts").as_deref(), Some("1"));
        assert!(chrono::DateTime::parse_from_rfc3339(&header("dlq.failed.at").unwrap()).is_ok());
        assert_eq!(
            header("producer").as_deref(),
            Some("audit-tests"),
            "original headers kept"
        );
    }
    let metrics = app.metrics().await;
    assert!(
        testing::metric_sum(&metrics, "dead_letters_total", &["topic=\"task.updated\""]) >= 3.0
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_show_processed_events_and_consumer_lag() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = user();
    let before = testing::metric_sum(&app.metrics().await, "events_consumed_total", &[]);
    for _ in 0..5 {
        app.publish(&sample::task_created(&user)).await;
    }
    app.wait_for_events(&user, 5).await;
    let metrics = testing::wait_for(
        "lag gauges from librdkafka statistics",
        Duration::from_secs(30),
        || async {
            let m = app.metrics().await;
            m.contains("kafka_consumer_lag_messages{").then_some(m)
        },
    )
    .await;
    let after = testing::metric_sum(&metrics, "events_consumed_total", &[]);
    assert!(after >= before + 5.0, "{before} -> {after}");
    assert!(metrics.contains("event_processing_seconds_bucket"));
    let readyz = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 200, "{}", readyz.text().await.unwrap());
    app.stop().await;
}

/// A collaborator reads the whole history of a task shared with them while it is; once the
/// share is removed they read nothing of it, and a stranger never does.
async fn collaborators_read_a_shared_tasks_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let (owner, stranger) = (user(), user());
    let created = sample::task_created(&owner);
    let mut shared = sample::task_shared(&owner);
    shared.task_id = created.task_id.clone();
    shared.version = 2;
    // History is ordered by event time; both samples may be made in the same millisecond, and
    // their topics are consumed in any order.
    shared.event_timestamp = created.event_timestamp + 1;
    let (viewer, editor) = (
        shared.collaborators[0].user_id.clone(),
        shared.collaborators[1].user_id.clone(),
    );
    app.publish(&created).await;
    app.publish(&shared).await;
    app.wait_for_events(&owner, 2).await;
    let path = format!("/api/audit/tasks/{}/history", created.task_id);
    let read = |who: String| {
        let (app, path) = (&app, &path);
        async move { app.get(path, Some(&app.token(&who))).await }
    };
    for who in [&viewer, &editor] {
        let history = app.get_json(&path, who).await;
        let types: Vec<&str> = history["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["event_type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["task_created", "task_shared"],
            "whole history for {who}"
        );
    }
    assert_eq!(read(stranger.clone()).await.status(), 404);

    // The editor's share is removed: from then on they read nothing; the viewer still does.
    let mut removed = shared.clone();
    removed.event_id = user();
    removed.event_timestamp += 1;
    removed.version = 3;
    removed.collaborators.truncate(1);
    removed.role = events::ShareRole::None;
    app.publish(&removed).await;
    app.wait_for_events(&owner, 3).await;
    assert_eq!(read(editor.clone()).await.status(), 404);
    assert_eq!(read(stranger).await.status(), 404);
    let history = app.get_json(&path, &viewer).await;
    assert_eq!(history["items"].as_array().unwrap().len(), 3);
    // A late, older event naming the editor again does not give the history back.
    let mut late = shared.clone();
    late.event_id = user();
    app.publish(&late).await;
    app.wait_for_events(&owner, 4).await;
    assert_eq!(read(editor).await.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn collaborators_read_a_shared_tasks_history_on_sqlite() {
    collaborators_read_a_shared_tasks_history(Backend::Sqlite).await;
}

#[tokio::test]
async fn collaborators_read_a_shared_tasks_history_on_postgres() {
    collaborators_read_a_shared_tasks_history(Backend::Postgres).await;
}

/// Two instances in one consumer group on one database: the group's partitions are split
/// between them (both hold some), and 600 events of 20 users published twice (at-least-once),
/// spread over every partition, are each stored once, whichever instance consumed them.
async fn two_instances_split_the_partitions_and_store_each_event_once(backend: Backend) {
    const USERS: usize = 20;
    let a = spawn_app(backend).await;
    let b = spawn_another(&a).await;
    let group = a.group.clone();
    let members = testing::wait_for(
        "both instances holding partitions",
        Duration::from_secs(60),
        || {
            let group = group.clone();
            async move {
                let members =
                    tokio::task::spawn_blocking(move || testing::group_assignments(&group))
                        .await
                        .unwrap();
                (members.len() == 2 && members.iter().all(|(_, held)| !held.is_empty()))
                    .then_some(members)
            }
        },
    )
    .await;
    let users: Vec<String> = (0..USERS).map(|_| user()).collect();
    let mut expected = 0;
    let mut all = Vec::new();
    for u in &users {
        for e in sample::one_of_each(u) {
            if e.user_id() == Some(u.as_str()) {
                expected += 1;
            }
            all.push(e);
        }
    }
    for _ in 0..2 {
        for chunk in all.chunks(100) {
            futures::future::join_all(chunk.iter().map(|e| a.publisher.publish_any(e, None)))
                .await
                .into_iter()
                .for_each(|r| {
                    r.unwrap();
                });
        }
    }
    let mut stored = 0;
    for u in &users {
        let n = all
            .iter()
            .filter(|e| e.user_id() == Some(u.as_str()))
            .count();
        let items = a.wait_for_events(u, n).await;
        let ids: std::collections::HashSet<&str> = items
            .iter()
            .map(|i| i["event_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), items.len(), "{u}: an event stored twice");
        stored += items.len();
    }
    // Both copies of everything consumed, by the two instances together.
    let handled =
        |m: String| testing::metric_sum(&m, "events_consumed_total", &["outcome=\"handled\""]);
    testing::wait_for("both copies consumed", Duration::from_secs(60), || async {
        let total = handled(a.metrics().await) + handled(b.metrics().await);
        (total >= (2 * all.len()) as f64).then_some(())
    })
    .await;
    let mut again = 0;
    for u in &users {
        again += a.all_events(u).await.len();
    }
    assert_eq!(again, expected, "each event stored once");
    assert_eq!(stored, expected);
    let (ha, hb) = (handled(a.metrics().await), handled(b.metrics().await));
    println!(
        "{backend:?}: {expected} events stored once of {} consumed; instance a handled {ha}, b {hb}; partitions held per instance {:?}",
        2 * all.len(),
        members
            .iter()
            .map(|(_, held)| held.len())
            .collect::<Vec<_>>()
    );
    assert!(
        ha > 0.0 && hb > 0.0,
        "both instances consumed: a {ha}, b {hb}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_split_the_partitions_and_store_each_event_once_on_sqlite() {
    two_instances_split_the_partitions_and_store_each_event_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_split_the_partitions_and_store_each_event_once_on_postgres() {
    two_instances_split_the_partitions_and_store_each_event_once(Backend::Postgres).await;
}
