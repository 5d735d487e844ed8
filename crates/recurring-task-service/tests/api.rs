//! The HTTP API, dead letters, replays and the outbox's recovery path.
#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

mod support;

use std::time::Duration;

use events::{RecurrenceMode, Service, Topic};
use rdkafka::Message;
use service_kit::testing::{self, Backend};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_lists_the_next_occurrences_of_a_rule() {
    let app = spawn_app(Backend::Sqlite).await;
    let resp = app
        .get(
            "/api/recurrence/preview?rrule=FREQ%3DWEEKLY%3BBYDAY%3DMO%2CWE&timezone=Europe/Berlin\
             &count=4&start=2026-03-23T09:00:00%2B01:00",
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["timezone"], "Europe/Berlin");
    let local: Vec<&str> = body["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["local"].as_str().unwrap())
        .collect();
    assert_eq!(
        local,
        [
            "2026-03-23T09:00:00+01:00",
            "2026-03-25T09:00:00+01:00",
            "2026-03-30T09:00:00+02:00",
            "2026-04-01T09:00:00+02:00"
        ]
    );
    assert_eq!(body["occurrences"][2]["at"], "2026-03-30T07:00:00Z");

    // Unix cron: 1-5 is Monday to Friday; count defaults to 10.
    let resp = app
        .get(
            "/api/recurrence/preview?cron=0%209%20*%20*%201-5&timezone=America/New_York\
             &start=2026-03-06T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let items = body["occurrences"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    assert_eq!(items[0]["local"], "2026-03-06T09:00:00-05:00");
    assert_eq!(items[1]["local"], "2026-03-09T09:00:00-04:00");

    // Without a start, the preview starts now.
    let resp = app
        .get(
            "/api/recurrence/preview?cron=0%209%20*%20*%20*&count=1",
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let first =
        chrono::DateTime::parse_from_rfc3339(body["occurrences"][0]["at"].as_str().unwrap())
            .unwrap();
    assert!(first > chrono::Utc::now() - chrono::Duration::seconds(5));
    assert!(first < chrono::Utc::now() + chrono::Duration::days(1));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_preview_requests_get_400_problems_naming_the_field() {
    let app = spawn_app(Backend::Sqlite).await;
    let cases = [
        ("rrule=FREQ%3DSOMETIMES", "rrule"),
        ("rrule=FREQ%3DSECONDLY", "rrule"),
        ("cron=0%209%20*%20*", "cron"),
        ("cron=0%209%20*%20*%208", "cron"),
        ("rrule=FREQ%3DDAILY&timezone=Mars/Olympus", "timezone"),
        ("rrule=FREQ%3DDAILY&count=0", "count"),
        ("rrule=FREQ%3DDAILY&count=101", "count"),
        ("rrule=FREQ%3DDAILY&start=yesterday", "start"),
        ("timezone=UTC", "recurrence"),
        ("rrule=FREQ%3DDAILY&cron=0%209%20*%20*%20*", "recurrence"),
    ];
    for (query, field) in cases {
        let resp = app
            .get(&format!("/api/recurrence/preview?{query}"), None)
            .await;
        assert_eq!(resp.status(), 400, "{query}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{query}"
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["status"], 400);
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    let resp = app
        .get(
            "/api/recurrence/preview?rrule=FREQ%3DDAILY&colour=blue",
            None,
        )
        .await;
    assert_eq!(resp.status(), 400, "unknown parameters are refused");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_is_visible_to_its_owner_only() {
    let app = spawn_app(Backend::Postgres).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let (alice, bob) = (app.user(), app.user());
    let first = first_of_series(
        &alice,
        rrule("FREQ=DAILY", "UTC", RecurrenceMode::Fixed),
        Some(utc_ms("2026-03-02T09:00:00Z")),
    );
    app.publish(&first).await;
    app.publish(&completion_of(&first, 2, utc_ms("2026-03-02T10:00:00Z")))
        .await;
    wait_next_occurrences(reader, &alice, 1).await;
    let series_id = first.series_id.as_deref().unwrap();
    let body = app
        .wait_series(&alice, series_id, "alice's series", |s| {
            s["occurrences"].as_array().is_some_and(|o| o.len() == 2)
        })
        .await;
    assert_eq!(body["series_id"], series_id);
    assert_eq!(body["series_start"], "2026-03-02T09:00:00.000Z");
    assert_eq!(body["occurrences"][1]["due_at"], "2026-03-03T09:00:00.000Z");
    assert_eq!(body["template"]["reminders"][0]["before_due"], 30);
    assert_eq!(body["template"]["reminders"][0]["channel"], "email");

    let (status, problem) = app.series(&bob, series_id).await;
    assert_eq!(status, 404, "another user's series is not found");
    assert_eq!(problem["status"], 404);
    let (status, _) = app.series(&alice, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(status, 404);
    let (status, _) = app.series(&alice, "not-a-uuid").await;
    assert_eq!(status, 404);
    let resp = app.get(&format!("/api/series/{series_id}"), None).await;
    assert_eq!(resp.status(), 401);
    let resp = app
        .get(&format!("/api/series/{series_id}"), Some("not.a.token"))
        .await;
    assert_eq!(resp.status(), 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rule_in_an_event_is_dead_lettered_and_the_partition_moves_on() {
    let app = spawn_app(Backend::Sqlite).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let dlq =
        events::DeadLetterTopic::new(Topic::TaskCompleted, Service::RecurringTaskService).name();
    let dlq_start = testing::end_offsets(&dlq, 3);
    let user = app.user();
    let mut first = first_of_series(
        &user,
        rrule("FREQ=DAILY", "UTC", RecurrenceMode::Fixed),
        Some(utc_ms("2026-03-02T09:00:00Z")),
    );
    // An external producer's completion with a rule nobody can evaluate...
    let mut poison = completion_of(&first, 2, utc_ms("2026-03-02T10:00:00Z"));
    poison.recurrence = Some(rrule("FREQ=FORTNIGHTLY", "UTC", RecurrenceMode::Fixed));
    app.publish(&poison).await;
    // ...then, on the same partition (same task id), a good one.
    first.title = "After the poison".into();
    app.publish(&completion_of(&first, 3, utc_ms("2026-03-02T10:00:00Z")))
        .await;
    let (_, next) = wait_next_occurrences(reader, &user, 1).await;
    assert_eq!(next[0].title, "After the poison");

    let task = first.task_id.clone();
    let letters = tokio::task::spawn_blocking(move || {
        testing::read_until(&dlq, &dlq_start, Duration::from_secs(30), |seen| {
            seen.iter().any(|m| m.key() == Some(task.as_bytes()))
        })
    })
    .await
    .unwrap();
    let letter = letters
        .iter()
        .find(|m| m.key() == Some(first.task_id.as_bytes()))
        .unwrap();
    let header = |name| events::publish::header_str(letter, name).map(str::to_owned);
    assert_eq!(
        header("dlq.source.topic").as_deref(),
        Some("task.completed")
    );
    assert!(
        header("dlq.error").unwrap().contains("rrule"),
        "{:?}",
        header("dlq.error")
    );
    let m = app.metrics().await;
    assert!(testing::metric_sum(&m, "dead_letters_total", &["topic=\"task.completed\""]) >= 1.0);
    app.stop().await;
}

/// Replaying every task topic from before a series began (a new consumer group on the same
/// database) creates no second occurrence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_topics_from_the_beginning_creates_no_second_occurrence() {
    let before = tokio::task::spawn_blocking(task_topic_ends).await.unwrap();
    let app = spawn_app(Backend::Postgres).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let user = app.user();
    let first = first_of_series(
        &user,
        rrule("FREQ=WEEKLY;BYDAY=MO", "UTC", RecurrenceMode::Fixed),
        Some(utc_ms("2026-03-02T09:00:00Z")),
    );
    app.publish(&first).await;
    app.publish(&completion_of(&first, 2, utc_ms("2026-03-02T10:00:00Z")))
        .await;
    let (reader, next) = wait_next_occurrences(reader, &user, 1).await;
    let last = app
        .publish(&completion_of(&next[0], 2, utc_ms("2026-03-09T10:00:00Z")))
        .await;
    let (reader, _) = wait_next_occurrences(reader, &user, 2).await;
    let (db_url, scope) = (app.db_url.clone(), app.scope.clone());
    app.stop().await;

    let group = testing::unique_group("recurring-replay");
    let g = group.clone();
    let replay_from = before.clone();
    tokio::task::spawn_blocking(move || position_group(&g, &replay_from))
        .await
        .unwrap();
    let replay = spawn_app_scoped(db_url, group, scope).await;
    // The replaying group has passed the last completion, and the next occurrences the service
    // itself published (task.created, read back too).
    let ends = tokio::task::spawn_blocking(task_topic_ends).await.unwrap();
    let positions: Vec<(Topic, events::Delivered)> = ends
        .iter()
        .flat_map(|(topic, offsets)| {
            offsets
                .iter()
                .enumerate()
                .filter(|(p, end)| **end > before.iter().find(|(t, _)| t == topic).unwrap().1[*p])
                .map(|(p, end)| {
                    (
                        *topic,
                        events::Delivered {
                            partition: p as i32,
                            offset: end - 1,
                        },
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        positions
            .iter()
            .any(|(t, d)| *t == last.0 && d.partition == last.1.partition)
    );
    wait_processed(&replay.group, &positions).await;
    let (_, all) = next_occurrences_now(reader, &user).await;
    assert_eq!(all.len(), 2, "no occurrence created twice: {all:?}");
    let m = replay.metrics().await;
    assert_eq!(
        testing::metric_sum(&m, "recurring_next_occurrences_total", &[]),
        0.0
    );
    replay.stop().await;
}

/// A next occurrence recorded but not published (the process died between the commit and the
/// broker's acknowledgement) is published when the service starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_but_unpublished_occurrence_is_published_after_a_restart() {
    use recurring_task_service::consumer::{Source, apply};
    use recurring_task_service::domain::SeriesEvent;

    let db_url = testing::fresh_database(Backend::Sqlite);
    let scope = scope();
    let user = user_in(&scope);
    let first = first_of_series(
        &user,
        rrule("FREQ=DAILY", "UTC", RecurrenceMode::Fixed),
        Some(utc_ms("2026-03-02T09:00:00Z")),
    );
    let completion = completion_of(&first, 2, utc_ms("2026-03-02T10:00:00Z"));
    // What the consumer commits for the completion, without the relay that would publish it.
    let url = db_url.clone();
    let event = events::Event::into_any(completion.clone());
    tokio::task::spawn_blocking(move || {
        let db =
            service_kit::db::Database::connect(&url, recurring_task_service::startup::MIGRATIONS)
                .unwrap();
        let mut conn = db.pool().get().unwrap();
        let series = SeriesEvent::from_event(&event).unwrap().unwrap();
        let applied = diesel::Connection::transaction(&mut *conn, |c| {
            apply(c, &series, &Source::of_event(&event), events::now_millis())
        })
        .unwrap();
        assert!(matches!(
            applied,
            recurring_task_service::consumer::Applied::NextRecorded { .. }
        ));
    })
    .await
    .unwrap();

    let reader = TopicReader::from_now(Topic::TaskCreated);
    let group = testing::unique_group("recurring");
    let g = group.clone();
    tokio::task::spawn_blocking(move || {
        testing::position_group_at_end(&g, Service::RecurringTaskService.consumes())
    })
    .await
    .unwrap();
    let app = spawn_app_scoped(db_url, group, scope).await;
    let (_, next) = wait_next_occurrences(reader, &user, 1).await;
    assert_eq!(next[0].task_id, occurrence_id(&first, 1));
    assert_eq!(next[0].due_date, Some(utc_ms("2026-03-03T09:00:00Z")));
    app.wait_series(
        &user,
        first.series_id.as_deref().unwrap(),
        "marked published",
        |s| s["occurrences"][1]["published"] == true,
    )
    .await;
    // The backlog gauge is refreshed every second.
    testing::wait_for(
        "the outbox backlog gauge at 0",
        Duration::from_secs(10),
        || async {
            let m = app.metrics().await;
            (testing::metric_sum(&m, "outbox_backlog_rows", &[]) == 0.0).then_some(())
        },
    )
    .await;
    app.stop().await;
}
