//! Next occurrences on the real cluster: created once, on the rule's calendar, ended by count,
//! until and deletion, following rule changes; on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

mod support;

use chrono::{Datelike, Duration as Days, TimeZone, Utc};
use chrono_tz::Tz;
use events::{RecurrenceMode, TaskStatus, Topic};
use service_kit::testing::Backend;
use support::*;

const BERLIN: Tz = Tz::Europe__Berlin;

/// A weekly Monday 09:00 (Berlin) task, due next Monday, completed now (early): the next
/// occurrence is due the Monday after, published once with the contract's ids and fields.
async fn completing_a_weekly_task_creates_the_next_monday_occurrence_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let user = app.user();
    let today = Utc::now().with_timezone(&BERLIN).date_naive();
    let monday = monday_on_or_after(today + Days::days(1));
    let due = local_ms(BERLIN, monday.year(), monday.month(), monday.day(), 9, 0);
    let first = first_of_series(
        &user,
        rrule(
            "FREQ=WEEKLY;BYDAY=MO",
            "Europe/Berlin",
            RecurrenceMode::Fixed,
        ),
        Some(due),
    );
    app.publish(&first).await;
    let completion = completion_of(&first, 2, events::now_millis());
    app.publish(&completion).await;

    let (reader, next) = wait_next_occurrences(reader, &user, 1).await;
    let next = &next[0];
    let following = monday + Days::days(7);
    assert_eq!(
        next.due_date,
        Some(local_ms(
            BERLIN,
            following.year(),
            following.month(),
            following.day(),
            9,
            0
        )),
        "due {} ({})",
        rfc3339(next.due_date.unwrap()),
        following
    );
    assert_eq!(next.task_id, occurrence_id(&first, 1));
    assert_eq!(
        next.event_id,
        events::ids::derived_event_id("next-occurrence", &next.task_id).to_string()
    );
    assert_eq!(next.user_id, user);
    assert_eq!(next.series_id, first.series_id);
    assert_eq!(next.occurrence_index, Some(1));
    assert_eq!(next.version, 1);
    assert_eq!(next.status, TaskStatus::Open);
    assert_eq!(next.title, first.title);
    assert_eq!(next.description, first.description);
    assert_eq!(next.priority, first.priority);
    assert_eq!(next.tags, first.tags);
    assert_eq!(next.category_id, first.category_id);
    assert_eq!(next.recurrence, first.recurrence);
    assert_eq!(next.reminders, first.reminders);

    // Completing the same task again and replaying the very same completion create nothing.
    app.publish(&completion).await;
    app.publish_and_wait_processed(&completion_of(&first, 2, events::now_millis()))
        .await;
    let body = app
        .wait_series(
            &user,
            first.series_id.as_deref().unwrap(),
            "both occurrences published",
            |s| {
                s["occurrences"].as_array().is_some_and(|o| o.len() == 2)
                    && s["occurrences"][1]["published"] == true
            },
        )
        .await;
    assert_eq!(body["status"], "active");
    assert_eq!(body["occurrences"][0]["status"], "completed");
    assert_eq!(body["occurrences"][1]["task_id"], next.task_id.as_str());
    assert_eq!(body["occurrences"][1]["generated"], true);
    assert_eq!(body["recurrence"]["rrule"], "FREQ=WEEKLY;BYDAY=MO");
    assert_eq!(body["recurrence"]["mode"], "fixed");
    assert_eq!(body["template"]["priority"], "high");
    let (_, all) = next_occurrences_now(reader, &user).await;
    assert_eq!(all.len(), 1, "one next occurrence on the topic: {all:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_weekly_task_creates_the_next_monday_occurrence_once_on_sqlite() {
    completing_a_weekly_task_creates_the_next_monday_occurrence_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_weekly_task_creates_the_next_monday_occurrence_once_on_postgres() {
    completing_a_weekly_task_creates_the_next_monday_occurrence_once(Backend::Postgres).await;
}

/// Reopening the completed task and completing it again creates no second next occurrence.
async fn reopening_and_completing_again_creates_no_second_occurrence(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let user = app.user();
    let first = first_of_series(
        &user,
        rrule("FREQ=DAILY", "UTC", RecurrenceMode::Fixed),
        Some(utc_ms("2026-03-02T09:00:00Z")),
    );
    app.publish(&first).await;
    app.publish(&completion_of(&first, 2, utc_ms("2026-03-02T08:00:00Z")))
        .await;
    let (reader, next) = wait_next_occurrences(reader, &user, 1).await;
    assert_eq!(next[0].due_date, Some(utc_ms("2026-03-03T09:00:00Z")));

    app.publish(&update_of(&first, 3, TaskStatus::Open)).await;
    app.publish_and_wait_processed(&completion_of(&first, 4, utc_ms("2026-03-02T10:00:00Z")))
        .await;
    let body = app
        .wait_series(
            &user,
            first.series_id.as_deref().unwrap(),
            "the series",
            |s| s["occurrences"][0]["version"] == 4,
        )
        .await;
    assert_eq!(body["occurrences"].as_array().unwrap().len(), 2);
    let (_, all) = next_occurrences_now(reader, &user).await;
    assert_eq!(all.len(), 1, "still one next occurrence: {all:?}");
    let m = app.metrics().await;
    assert_eq!(
        service_kit::testing::metric_sum(
            &m,
            "recurring_completions_without_next_total",
            &["reason=\"already_created\""]
        ),
        1.0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_and_completing_again_creates_no_second_occurrence_on_sqlite() {
    reopening_and_completing_again_creates_no_second_occurrence(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_and_completing_again_creates_no_second_occurrence_on_postgres() {
    reopening_and_completing_again_creates_no_second_occurrence(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_completion_in_fixed_mode_skips_the_backlog() {
    let app = spawn_app(Backend::Sqlite).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let user = app.user();
    let first = first_of_series(
        &user,
        rrule(
            "FREQ=WEEKLY;BYDAY=MO",
            "Europe/Berlin",
            RecurrenceMode::Fixed,
        ),
        Some(local_ms(BERLIN, 2026, 3, 2, 9, 0)),
    );
    app.publish(&first).await;
    // Three weeks late, on a Wednesday: the next one is the coming Monday, not 2026-03-09.
    app.publish(&completion_of(
        &first,
        2,
        local_ms(BERLIN, 2026, 3, 25, 12, 0),
    ))
    .await;
    let (_, next) = wait_next_occurrences(reader, &user, 1).await;
    assert_eq!(
        next[0].due_date,
        Some(local_ms(BERLIN, 2026, 3, 30, 9, 0)),
        "{}",
        rfc3339(next[0].due_date.unwrap())
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_completion_mode_counts_from_the_completion() {
    let app = spawn_app(Backend::Postgres).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let user = app.user();
    let first = first_of_series(
        &user,
        rrule(
            "FREQ=DAILY;INTERVAL=3",
            "Europe/Berlin",
            RecurrenceMode::AfterCompletion,
        ),
        Some(local_ms(BERLIN, 2026, 3, 2, 9, 0)),
    );
    app.publish(&first).await;
    app.publish(&completion_of(
        &first,
        2,
        local_ms(BERLIN, 2026, 3, 12, 15, 30),
    ))
    .await;
    let (_, next) = wait_next_occurrences(reader, &user, 1).await;
    // Three days after the completion day, at the series' 09:00 (fixed mode would give the 14th).
    assert_eq!(
        next[0].due_date,
        Some(local_ms(BERLIN, 2026, 3, 15, 9, 0)),
        "{}",
        rfc3339(next[0].due_date.unwrap())
    );
    app.stop().await;
}

/// Count 2: the first completion creates the second task, completing that one ends the series.
async fn count_ends_the_series(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let user = app.user();
    let mut rule = rrule("FREQ=WEEKLY;INTERVAL=2", "UTC", RecurrenceMode::Fixed);
    rule.count = Some(2);
    let first = first_of_series(&user, rule, Some(utc_ms("2026-03-02T09:00:00Z")));
    app.publish(&first).await;
    app.publish(&completion_of(&first, 2, utc_ms("2026-03-02T10:00:00Z")))
        .await;
    let (reader, next) = wait_next_occurrences(reader, &user, 1).await;
    assert_eq!(next[0].due_date, Some(utc_ms("2026-03-16T09:00:00Z")));

    app.publish(&completion_of(&next[0], 2, utc_ms("2026-03-16T10:00:00Z")))
        .await;
    let body = app
        .wait_series(
            &user,
            first.series_id.as_deref().unwrap(),
            "the series to end",
            |s| s["status"] == "ended",
        )
        .await;
    assert_eq!(body["end_reason"], "finished");
    assert_eq!(body["occurrences"].as_array().unwrap().len(), 2);
    let (_, all) = next_occurrences_now(reader, &user).await;
    assert_eq!(all.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_ends_the_series_on_sqlite() {
    count_ends_the_series(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_ends_the_series_on_postgres() {
    count_ends_the_series(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_ends_the_series() {
    let app = spawn_app(Backend::Sqlite).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let user = app.user();
    let mut rule = cron("0 9 * * MON", "UTC", RecurrenceMode::Fixed);
    rule.until = Some(utc_ms("2026-03-12T00:00:00Z"));
    let first = first_of_series(&user, rule, Some(utc_ms("2026-03-02T09:00:00Z")));
    app.publish(&first).await;
    app.publish(&completion_of(&first, 2, utc_ms("2026-03-02T10:00:00Z")))
        .await;
    let (reader, next) = wait_next_occurrences(reader, &user, 1).await;
    assert_eq!(next[0].due_date, Some(utc_ms("2026-03-09T09:00:00Z")));
    app.publish(&completion_of(&next[0], 2, utc_ms("2026-03-09T10:00:00Z")))
        .await;
    let body = app
        .wait_series(
            &user,
            first.series_id.as_deref().unwrap(),
            "the series to end",
            |s| s["status"] == "ended",
        )
        .await;
    assert_eq!(body["end_reason"], "finished");
    let (_, all) = next_occurrences_now(reader, &user).await;
    assert_eq!(all.len(), 1);
    app.stop().await;
}

/// Deleting the open task of a series ends it: its later completion creates nothing.
async fn deleting_a_task_ends_the_series(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let user = app.user();
    let first = first_of_series(
        &user,
        rrule("FREQ=DAILY", "UTC", RecurrenceMode::Fixed),
        Some(utc_ms("2026-03-02T09:00:00Z")),
    );
    app.publish(&first).await;
    app.publish(&completion_of(&first, 2, utc_ms("2026-03-02T10:00:00Z")))
        .await;
    let (reader, next) = wait_next_occurrences(reader, &user, 1).await;

    app.publish(&deletion_of(&next[0], 2)).await;
    let series_id = first.series_id.as_deref().unwrap();
    let body = app
        .wait_series(&user, series_id, "the series to end", |s| {
            s["status"] == "ended"
        })
        .await;
    assert_eq!(body["end_reason"], "deleted");
    assert_eq!(body["occurrences"][1]["status"], "deleted");

    // Whatever arrives later for the series (here a completion of the deleted task, as a
    // replay or an out-of-order event would bring it) creates nothing more.
    app.publish_and_wait_processed(&completion_of(&next[0], 2, utc_ms("2026-03-03T10:00:00Z")))
        .await;
    let (_, all) = next_occurrences_now(reader, &user).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let (_, body) = app.series(&user, series_id).await;
    assert_eq!(body["end_reason"], "deleted");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_task_ends_the_series_on_sqlite() {
    deleting_a_task_ends_the_series(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_task_ends_the_series_on_postgres() {
    deleting_a_task_ends_the_series(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_seen_before_the_completion_still_ends_the_series() {
    let app = spawn_app(Backend::Sqlite).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let user = app.user();
    let first = first_of_series(
        &user,
        rrule("FREQ=DAILY", "UTC", RecurrenceMode::Fixed),
        Some(utc_ms("2026-03-02T09:00:00Z")),
    );
    // Nothing of the series is known yet when its deletion arrives.
    app.publish_and_wait_processed(&deletion_of(&first, 3))
        .await;
    app.publish_and_wait_processed(&completion_of(&first, 2, utc_ms("2026-03-02T10:00:00Z")))
        .await;
    let (_, body) = app.series(&user, first.series_id.as_deref().unwrap()).await;
    assert_eq!(body["end_reason"], "deleted");
    let (_, all) = next_occurrences_now(reader, &user).await;
    assert!(all.is_empty(), "{all:?}");
    app.stop().await;
}

/// Changing the rule of the current task (task.updated with a newer version) applies to the
/// occurrence after it.
async fn a_rule_change_applies_to_the_next_occurrence(backend: Backend) {
    let app = spawn_app(backend).await;
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
    let mut second = next[0].clone();
    assert_eq!(second.due_date, Some(utc_ms("2026-03-09T09:00:00Z")));

    // The user moves the series to Fridays on the second task (version 2)...
    second.recurrence = Some(rrule("FREQ=WEEKLY;BYDAY=FR", "UTC", RecurrenceMode::Fixed));
    let mut change = update_of(&second, 2, TaskStatus::Open);
    change.changed_fields = vec!["recurrence".into()];
    app.publish(&change).await;
    let series_id = first.series_id.as_deref().unwrap();
    app.wait_series(&user, series_id, "the new rule", |s| {
        s["recurrence"]["rrule"] == "FREQ=WEEKLY;BYDAY=FR"
    })
    .await;
    // ...and a stale completion snapshot (version 1, old rule) arrives: the newer rule wins.
    let mut stale = second.clone();
    stale.recurrence = first.recurrence.clone();
    let mut completion = completion_of(&stale, 1, utc_ms("2026-03-09T10:00:00Z"));
    completion.version = 1;
    app.publish(&update_of(&second, 3, TaskStatus::Completed))
        .await;
    app.publish(&completion).await;
    let (_, all) = wait_next_occurrences(reader, &user, 2).await;
    let third = all.iter().find(|e| e.occurrence_index == Some(2)).unwrap();
    assert_eq!(
        third.due_date,
        Some(utc_ms("2026-03-13T09:00:00Z")),
        "{}",
        rfc3339(third.due_date.unwrap())
    );
    assert_eq!(third.recurrence, second.recurrence);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_change_applies_to_the_next_occurrence_on_sqlite() {
    a_rule_change_applies_to_the_next_occurrence(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_change_applies_to_the_next_occurrence_on_postgres() {
    a_rule_change_applies_to_the_next_occurrence(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_oclock_local_stays_nine_oclock_across_dst_changes() {
    let app = spawn_app(Backend::Sqlite).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let user = app.user();
    // Berlin springs forward on 2026-03-29: 09:00 is 08:00Z before, 07:00Z after.
    let berlin = first_of_series(
        &user,
        rrule(
            "FREQ=WEEKLY;BYDAY=MO",
            "Europe/Berlin",
            RecurrenceMode::Fixed,
        ),
        Some(utc_ms("2026-03-23T08:00:00Z")),
    );
    // New York springs forward on 2026-03-08: 09:00 is 14:00Z before, 13:00Z after.
    let new_york = first_of_series(
        &user,
        cron("0 9 * * 1-5", "America/New_York", RecurrenceMode::Fixed),
        Some(utc_ms("2026-03-06T14:00:00Z")),
    );
    // Berlin falls back on 2026-10-25: 09:00 is 07:00Z before, 08:00Z after.
    let autumn = first_of_series(
        &user,
        rrule(
            "FREQ=WEEKLY;BYDAY=MO",
            "Europe/Berlin",
            RecurrenceMode::Fixed,
        ),
        Some(utc_ms("2026-10-19T07:00:00Z")),
    );
    for task in [&berlin, &new_york, &autumn] {
        app.publish(task).await;
        app.publish(&completion_of(task, 2, task.due_date.unwrap() + 3_600_000))
            .await;
    }
    let (_, all) = wait_next_occurrences(reader, &user, 3).await;
    let due_of = |t: &events::TaskCreatedEvent| {
        let id = occurrence_id(t, 1);
        all.iter()
            .find(|e| e.task_id == id)
            .unwrap()
            .due_date
            .unwrap()
    };
    assert_eq!(rfc3339(due_of(&berlin)), "2026-03-30T07:00:00.000Z");
    assert_eq!(rfc3339(due_of(&new_york)), "2026-03-09T13:00:00.000Z");
    assert_eq!(rfc3339(due_of(&autumn)), "2026-10-26T08:00:00.000Z");
    for t in [&berlin, &autumn] {
        let local = Utc
            .timestamp_millis_opt(due_of(t))
            .unwrap()
            .with_timezone(&BERLIN);
        assert_eq!(local.format("%a %H:%M").to_string(), "Mon 09:00");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_seen_before_its_task_created_still_creates_the_next_occurrence() {
    let app = spawn_app(Backend::Postgres).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let user = app.user();
    let first = first_of_series(
        &user,
        rrule("FREQ=DAILY", "UTC", RecurrenceMode::Fixed),
        Some(utc_ms("2026-03-02T09:00:00Z")),
    );
    app.publish(&completion_of(&first, 2, utc_ms("2026-03-02T10:00:00Z")))
        .await;
    let (reader, next) = wait_next_occurrences(reader, &user, 1).await;
    assert_eq!(next[0].due_date, Some(utc_ms("2026-03-03T09:00:00Z")));
    // The late task.created (an older version) changes nothing.
    app.publish_and_wait_processed(&first).await;
    let body = app
        .wait_series(
            &user,
            first.series_id.as_deref().unwrap(),
            "the series",
            |_| true,
        )
        .await;
    assert_eq!(body["occurrences"][0]["status"], "completed");
    let (_, all) = next_occurrences_now(reader, &user).await;
    assert_eq!(all.len(), 1);
    app.stop().await;
}

/// Two instances on one database and in one consumer group (the task topics' partitions split
/// between them): 200 weekly series of 10 users, each first task completed and its completion
/// delivered twice (at-least-once). A series' creation and its completion travel on different
/// topics, so often reach different instances, in either order. Each next occurrence is
/// published once.
async fn two_instances_create_each_next_occurrence_once(backend: Backend) {
    const USERS: usize = 10;
    const PER_USER: usize = 20;
    let db_url = service_kit::testing::fresh_database(backend);
    let group = service_kit::testing::unique_group("recurring");
    let topics = events::Service::RecurringTaskService.consumes().to_vec();
    let g = group.clone();
    tokio::task::spawn_blocking(move || service_kit::testing::position_group_at_end(&g, &topics))
        .await
        .unwrap();
    let scope = scope();
    let a_group = group.clone();
    let a = spawn_app_scoped(db_url.clone(), group.clone(), scope.clone()).await;
    let b = spawn_app_scoped(db_url, group, scope).await;
    let reader = TopicReader::from_now(Topic::TaskCreated);
    let users: Vec<String> = (0..USERS).map(|_| a.user()).collect();
    let due = events::now_millis() + 86_400_000;
    let weekly = rrule("FREQ=WEEKLY", "UTC", RecurrenceMode::Fixed);
    let firsts: Vec<_> = (0..USERS * PER_USER)
        .map(|i| first_of_series(&users[i % USERS], weekly.clone(), Some(due)))
        .collect();
    for first in &firsts {
        a.publish(first).await;
    }
    for first in &firsts {
        let completion = completion_of(first, 2, events::now_millis());
        b.publish(&completion).await;
        b.publish(&completion).await;
    }
    let mut reader = reader;
    for user in &users {
        let (r, next) = wait_next_occurrences(reader, user, PER_USER).await;
        reader = r;
        assert_eq!(next.len(), PER_USER, "{user}: {next:?}");
    }
    // Whatever either instance still had in flight is on the topic now: nothing more came.
    a.publish_and_wait_processed(&completion_of(&firsts[0], 2, events::now_millis()))
        .await;
    b.publish_and_wait_processed(&completion_of(&firsts[1], 2, events::now_millis()))
        .await;
    let mut total = 0;
    for user in &users {
        let (r, all) = next_occurrences_now(reader, user).await;
        reader = r;
        let series: std::collections::HashSet<_> =
            all.iter().map(|e| e.series_id.clone()).collect();
        assert_eq!(
            all.len(),
            PER_USER,
            "{user}: one next occurrence per series"
        );
        assert_eq!(series.len(), PER_USER, "{user}: every series continued");
        total += all.len();
    }
    let members =
        tokio::task::spawn_blocking(move || service_kit::testing::group_assignments(&a_group))
            .await
            .unwrap();
    println!(
        "{backend:?}: {total} next occurrences; the group's two members hold {:?} partitions",
        members
            .iter()
            .map(|(_, held)| held.len())
            .collect::<Vec<_>>()
    );
    assert_eq!(members.len(), 2, "two members: {members:?}");
    assert!(
        members.iter().all(|(_, held)| !held.is_empty()),
        "the partitions are split between both: {members:?}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_create_each_next_occurrence_once_on_sqlite() {
    two_instances_create_each_next_occurrence_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_create_each_next_occurrence_once_on_postgres() {
    two_instances_create_each_next_occurrence_once(Backend::Postgres).await;
}
