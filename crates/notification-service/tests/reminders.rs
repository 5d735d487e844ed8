//! The schedule against the real cluster, on SQLite and PostgreSQL: reminders fire on time and
//! once, follow task changes by version, and two instances on one database fire and mail each
//! of 2,000 reminders once.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use events::NotificationChannel::{Email, InApp};
use events::{DeliveryStatus, Topic};
use service_kit::testing::{self, Backend};
use support::*;

const BOUND: Duration = Duration::from_secs(30);

async fn a_reminder_fires_on_time_once(backend: Backend) {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let app = spawn_app(backend, &Options::default()).await;
    let u = user(&[InApp]);
    bus.publish(&u).await;
    let remind_at = events::now_millis() + 3_000;
    let t = task(
        &u.user_id,
        "Water the plants",
        Some(remind_at + 3_600_000),
        vec![at(remind_at, InApp)],
    );
    bus.publish(&t).await;
    app.wait_reminders(&t.task_id, "scheduled", 1).await;

    let rid = reminder_id(&t, remind_at, InApp);
    let fired = bus.wait_triggered(&[&rid], 1, BOUND).await;
    let e = &fired[0];
    let delay = e.fired_at - e.remind_at;
    println!("firing delay ({backend:?}): {delay} ms");
    assert!(
        (0..1_000).contains(&delay),
        "fired {delay} ms after its time"
    );
    assert!(!e.late);
    assert_eq!(e.task_title, "Water the plants");
    assert_eq!(e.user_id, u.user_id);
    assert_eq!(e.remind_at, remind_at);
    assert_eq!(
        e.event_id,
        events::ids::derived_event_id(Topic::ReminderTriggered.name(), &rid).to_string()
    );

    // In-app: nothing to send, reported delivered.
    let nid = notification_id(&rid, InApp);
    let sent = bus.wait_sent(&[&nid], 1, BOUND).await;
    assert_eq!(sent[0].status, DeliveryStatus::Delivered);
    assert_eq!(sent[0].attempts, 1);
    assert_eq!(sent[0].channel, InApp);
    assert_eq!(sent[0].reminder_id.as_deref(), Some(rid.as_str()));

    // Once: by the time its delivery was reported, one reminder.triggered and one row.
    assert_eq!(bus.triggered(&[&rid]).await.len(), 1);
    assert_eq!(bus.sent(&[nid]).await.len(), 1);
    assert_eq!(app.outbox_rows(&e.event_id).await.len(), 1);
    let m = app.metrics().await;
    assert!(testing::metric_sum(&m, "reminders_fired_total", &["late=\"false\""]) >= 1.0);
    assert!(testing::metric_sum(&m, "reminder_firing_delay_seconds_count", &[]) >= 1.0);
    app.stop().await;
}

#[tokio::test]
async fn a_reminder_fires_on_time_once_on_sqlite() {
    a_reminder_fires_on_time_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_reminder_fires_on_time_once_on_postgres() {
    a_reminder_fires_on_time_once(Backend::Postgres).await;
}

#[tokio::test]
async fn moving_the_due_date_moves_the_reminder() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let app = spawn_app(Backend::Postgres, &Options::default()).await;
    let u = user(&[InApp]);
    bus.publish(&u).await;
    let first_due = events::now_millis() + 120_000;
    let t = task(
        &u.user_id,
        "Call Bob",
        Some(first_due),
        vec![before(1, InApp)],
    );
    bus.publish(&t).await;
    let old = app.wait_reminders(&t.task_id, "scheduled", 1).await;
    assert_eq!(old[0].remind_at, first_due - 60_000);

    let new_due = events::now_millis() + 63_000;
    bus.publish(&updated(&t, 2, Some(new_due), vec![before(1, InApp)]))
        .await;
    let new_at = new_due - 60_000;
    let new_id = reminder_id(&t, new_at, InApp);
    let fired = bus.wait_triggered(&[&new_id], 1, BOUND).await;
    assert_eq!(fired[0].remind_at, new_at);
    assert_eq!(fired[0].due_date, Some(new_due));
    assert_eq!(fired[0].task_version, 2);
    let rows = app.reminders_of(&t.task_id).await;
    let states: Vec<(&str, i64)> = rows
        .iter()
        .map(|r| (r.state.as_str(), r.remind_at))
        .collect();
    assert_eq!(
        states,
        vec![("fired", new_at), ("cancelled", first_due - 60_000)]
    );
    assert!(bus.triggered(&[&old[0].reminder_id]).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn completing_or_deleting_a_task_cancels_its_reminders() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let app = spawn_app(Backend::Sqlite, &Options::default()).await;
    let u = user(&[InApp]);
    bus.publish(&u).await;
    let soon = events::now_millis() + 5_000;
    let done = task(&u.user_id, "Done early", None, vec![at(soon, InApp)]);
    let gone = task(&u.user_id, "Not needed", None, vec![at(soon, InApp)]);
    bus.publish(&done).await;
    bus.publish(&gone).await;
    app.wait_reminders(&done.task_id, "scheduled", 1).await;
    app.wait_reminders(&gone.task_id, "scheduled", 1).await;

    bus.publish(&completed(&done, 2)).await;
    bus.publish(&deleted(&gone, 2)).await;
    app.wait_reminders(&done.task_id, "cancelled", 1).await;
    app.wait_reminders(&gone.task_id, "cancelled", 1).await;

    // A witness due after the cancelled ones fires: had they not been cancelled, they would
    // have fired before it.
    let witness_at = soon + 1_000;
    let witness = task(&u.user_id, "Witness", None, vec![at(witness_at, InApp)]);
    bus.publish(&witness).await;
    bus.wait_triggered(&[reminder_id(&witness, witness_at, InApp)], 1, BOUND)
        .await;
    let cancelled = [
        reminder_id(&done, soon, InApp),
        reminder_id(&gone, soon, InApp),
    ];
    assert!(
        bus.triggered(&cancelled).await.is_empty(),
        "cancelled reminders fired"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_older_task_version_arriving_late_changes_nothing() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let app = spawn_app(Backend::Postgres, &Options::default()).await;
    let u = user(&[InApp]);
    bus.publish(&u).await;
    let now = events::now_millis();
    let v1 = task(&u.user_id, "Versioned", None, vec![at(now + 90_000, InApp)]);
    let v3_at = now + 5_000;
    let v3 = updated(&v1, 3, None, vec![at(v3_at, InApp)]);
    let v2 = updated(&v1, 2, None, vec![at(now + 80_000, InApp)]);
    // Newest first; the older ones arrive after it, on other topics and partitions.
    bus.publish(&v3).await;
    bus.publish(&v1).await;
    bus.publish(&v2).await;
    bus.publish(&completed(&v1, 2)).await;

    let v3_id = reminder_id(&v1, v3_at, InApp);
    bus.wait_triggered(&[&v3_id], 1, BOUND).await;
    // All five events consumed (the user and four task events), whatever the order across
    // topics: v1 and the completion may well be applied before v3 arrives; v2 shares v3's
    // partition and comes after it, so it at least is always stale.
    testing::wait_for("every event consumed", BOUND, || async {
        let m = app.metrics().await;
        let consumed = testing::metric_sum(&m, "events_consumed_total", &[]);
        let stale = testing::metric_sum(
            &m,
            "notification_events_ignored_total",
            &["reason=\"stale_version\""],
        );
        (consumed >= 5.0 && stale >= 1.0).then_some(())
    })
    .await;
    let rows = app.reminders_of(&v1.task_id).await;
    let live: Vec<&str> = rows
        .iter()
        .filter(|r| r.state == "scheduled" || r.state == "fired")
        .map(|r| r.reminder_id.as_str())
        .collect();
    assert_eq!(
        live,
        vec![v3_id.as_str()],
        "only version 3's reminder exists: {rows:?}"
    );
    app.stop().await;
}

/// Two instances on one database and in one consumer group, 2,000 email reminders of 20 users
/// all due within the next minute: every reminder fires once (one reminder.triggered event id)
/// and is mailed once (Mailpit holds exactly one mail per reminder), whichever instance's
/// schedule claimed it.
async fn two_instances_fire_and_mail_each_of_2000_reminders_once(backend: Backend) {
    const USERS: usize = 20;
    const PER_USER: usize = 100;
    const TASKS: usize = USERS * PER_USER;
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let db_url = testing::fresh_database(backend);
    let group = fresh_group().await;
    let options = Options {
        batch_size: 50,
        ..Options::default()
    };
    let a = spawn_instance(&db_url, &group, &options).await;
    let b = spawn_instance(&db_url, &group, &options).await;
    let users: Vec<_> = (0..USERS).map(|_| user(&[Email])).collect();
    for u in &users {
        bus.publish(u).await;
    }
    for u in &users {
        a.wait_user(&u.user_id).await;
    }
    // Due from 20 s to 50 s from now: publishing 2,000 tasks takes a while on a busy machine.
    let start = events::now_millis() + 20_000;
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let remind_at = start + (i as i64 * 30_000) / TASKS as i64;
            // Fixed-width titles: no title is part of another, so each mail names one task.
            let owner = &users[i % USERS].user_id;
            task(owner, &format!("#{i:04}"), None, vec![at(remind_at, Email)])
        })
        .collect();
    for chunk in tasks.chunks(200) {
        futures::future::join_all(chunk.iter().map(|t| bus.publish(t))).await;
    }
    let published = events::now_millis();
    assert!(
        published < start,
        "publishing 2,000 tasks took longer than 20 s: the reminders would not all be due later"
    );
    let ids: Vec<String> = tasks
        .iter()
        .map(|t| reminder_id(t, t.reminders[0].at.unwrap(), Email))
        .collect();
    let notifications: Vec<String> = ids.iter().map(|r| notification_id(r, Email)).collect();
    let sent = bus
        .wait_sent(&notifications, TASKS, Duration::from_secs(180))
        .await;
    let reported: HashSet<&str> = sent.iter().map(|e| e.notification_id.as_str()).collect();
    assert_eq!(reported.len(), TASKS, "every delivery reported");
    assert!(
        sent.iter().all(|e| e.status == DeliveryStatus::Delivered),
        "every mail sent"
    );
    let fired = bus.triggered(&ids).await;
    let mut firings: std::collections::HashMap<&str, HashSet<&str>> = Default::default();
    for e in &fired {
        firings
            .entry(e.reminder_id.as_str())
            .or_default()
            .insert(e.event_id.as_str());
    }
    assert_eq!(firings.len(), TASKS, "every reminder fired");
    let twice: Vec<_> = firings.iter().filter(|(_, f)| f.len() > 1).collect();
    assert!(twice.is_empty(), "reminders fired twice: {twice:?}");
    // Each reminder mailed once: every user's mailbox holds one mail per task of theirs.
    let http = reqwest::Client::new();
    for (u, n) in users.iter().zip(0..) {
        let subjects = testing::wait_for(
            &format!("{PER_USER} mails to user {n}"),
            Duration::from_secs(60),
            || async {
                let subjects = mailpit::subjects_to(&http, &u.email).await;
                (subjects.len() >= PER_USER).then_some(subjects)
            },
        )
        .await;
        let mut titles: Vec<String> = subjects
            .iter()
            .map(|s| s.trim_start_matches("Reminder: ").to_owned())
            .collect();
        titles.sort();
        let mut expected: Vec<String> = (0..TASKS)
            .filter(|i| i % USERS == n)
            .map(|i| format!("#{i:04}"))
            .collect();
        expected.sort();
        assert_eq!(titles, expected, "user {n}: one mail per reminder");
    }
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    let (fa, fb) = (
        testing::metric_sum(&ma, "reminders_fired_total", &[]),
        testing::metric_sum(&mb, "reminders_fired_total", &[]),
    );
    println!(
        "{backend:?}: {TASKS} reminders, instance a fired {fa}, instance b fired {fb}; {} copies of reminder.triggered on the topic",
        fired.len() - TASKS
    );
    assert_eq!(fa + fb, TASKS as f64, "the instances' fired counts add up");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn two_instances_on_one_postgres_database_fire_and_mail_each_reminder_once() {
    two_instances_fire_and_mail_each_of_2000_reminders_once(Backend::Postgres).await;
}

#[tokio::test]
async fn two_instances_on_one_sqlite_file_fire_and_mail_each_reminder_once() {
    two_instances_fire_and_mail_each_of_2000_reminders_once(Backend::Sqlite).await;
}
