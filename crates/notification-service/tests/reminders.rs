//! The schedule against the real cluster, on SQLite and PostgreSQL: reminders fire on time and
//! once, follow task changes by version, and two instances on one database never fire twice.

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

#[tokio::test]
async fn two_instances_on_one_postgres_database_never_fire_twice() {
    const TASKS: usize = 120;
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let db_url = testing::fresh_database(Backend::Postgres);
    let group = fresh_group().await;
    let options = Options {
        batch_size: 7,
        ..Options::default()
    };
    let a = spawn_instance(&db_url, &group, &options).await;
    let b = spawn_instance(&db_url, &group, &options).await;
    let u = user(&[InApp, Email]);
    bus.publish(&u).await;
    let remind_at = events::now_millis() + 8_000;
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            task(
                &u.user_id,
                &format!("Task {i}"),
                None,
                vec![at(remind_at, InApp)],
            )
        })
        .collect();
    for t in &tasks {
        bus.publish(t).await;
    }
    let ids: Vec<String> = tasks
        .iter()
        .map(|t| reminder_id(t, remind_at, InApp))
        .collect();
    let notifications: Vec<String> = ids.iter().map(|r| notification_id(r, InApp)).collect();
    let sent = bus
        .wait_sent(&notifications, TASKS, Duration::from_secs(60))
        .await;
    assert_eq!(sent.len(), TASKS, "each delivery reported once");
    let fired = bus.triggered(&ids).await;
    let distinct: HashSet<&str> = fired.iter().map(|e| e.reminder_id.as_str()).collect();
    assert_eq!(distinct.len(), TASKS, "every reminder fired");
    assert_eq!(fired.len(), TASKS, "no reminder fired twice");
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    let (fa, fb) = (
        testing::metric_sum(&ma, "reminders_fired_total", &[]),
        testing::metric_sum(&mb, "reminders_fired_total", &[]),
    );
    println!("instance a fired {fa}, instance b fired {fb}");
    assert!(fa + fb >= TASKS as f64);
    a.stop().await;
    b.stop().await;
}
