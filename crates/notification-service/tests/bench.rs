//! Benchmark (ignored by `cargo test`; run it with
//! `cargo test -p notification-service --test bench -- --ignored --nocapture`):
//! 10,000 email reminders due within the same minute, on PostgreSQL, mailed to Mailpit.
//! Prints the lateness between remind-at and reminder.triggered (p50/p99/max) and the delivery
//! throughput to the SMTP sink.
//!
//! `BENCH_REMINDERS` (10000) and `BENCH_SPREAD_MS` (60000: remind-at times spread uniformly over
//! one minute; 1000 makes a burst) change the load.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use events::NotificationChannel::Email;
use events::{AnyEvent, Topic};
use notification_service::storage::schema::{deliveries, reminders};
use service_kit::testing::{self, Backend};
use support::*;

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut values: Vec<i64>) {
    values.sort_unstable();
    println!(
        "{name}: p50 {} ms, p99 {} ms, max {} ms (n = {})",
        percentile(&values, 0.5),
        percentile(&values, 0.99),
        values.last().copied().unwrap_or(0),
        values.len()
    );
}

#[tokio::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn ten_thousand_reminders_due_within_one_minute() {
    let count = env_or("BENCH_REMINDERS", 10_000) as usize;
    let spread = env_or("BENCH_SPREAD_MS", 60_000);
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let options = Options {
        retry: service_kit::consumer::RetryPolicy {
            initial: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            max_attempts: 5,
        },
        late_after: Duration::from_secs(10),
        concurrency: 16,
        ..Options::default()
    };
    let app = spawn_app(Backend::Postgres, &options).await;
    let users: Vec<_> = (0..50).map(|_| user(&[Email])).collect();
    for u in &users {
        bus.publish(u).await;
    }
    // Far enough ahead that scheduling 10,000 tasks finishes before the first is due.
    let minute_start = events::now_millis() + 45_000;
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let remind_at = minute_start + fastrand::i64(0..spread.max(1));
            let u = &users[i % users.len()];
            let t = task(
                &u.user_id,
                &format!("Bench task {i}"),
                None,
                vec![at(remind_at, Email)],
            );
            (t, remind_at)
        })
        .collect();
    let published = Instant::now();
    for chunk in tasks.chunks(500) {
        let sends = chunk.iter().map(|(t, _)| bus.publisher.publish(t, None));
        for r in futures::future::join_all(sends).await {
            r.expect("publish");
        }
    }
    println!(
        "published {count} task.created in {:?}",
        published.elapsed()
    );
    let db = app.db.clone();
    testing::wait_for("all scheduled", Duration::from_secs(120), || async {
        let db = db.clone();
        let n: i64 = db
            .run(|c| Ok(reminders::table.count().get_result(c)?))
            .await
            .unwrap();
        (n as usize >= count).then_some(())
    })
    .await;
    println!(
        "{count} reminders scheduled {:?} after publishing began ({} ms before the first is due)",
        published.elapsed(),
        minute_start - events::now_millis()
    );
    assert!(
        events::now_millis() < minute_start,
        "scheduling took longer than the lead time"
    );

    // Every delivery finished.
    testing::wait_for(
        "all deliveries finished",
        Duration::from_secs(spread as u64 / 1000 + 300),
        || async {
            let db = db.clone();
            let pending: i64 = db
                .run(|c| {
                    Ok(deliveries::table
                        .filter(deliveries::status.ne("pending"))
                        .count()
                        .get_result(c)?)
                })
                .await
                .unwrap();
            (pending as usize >= count).then_some(())
        },
    )
    .await;
    let rows: Vec<(i64, i64, Option<i64>, String)> = db
        .run(|c| {
            Ok(deliveries::table
                .select((
                    deliveries::remind_at,
                    deliveries::fired_at,
                    deliveries::finished_at,
                    deliveries::status,
                ))
                .load(c)?)
        })
        .await
        .unwrap();
    let delivered = rows.iter().filter(|r| r.3 == "delivered").count();

    let keys: HashSet<String> = tasks
        .iter()
        .map(|(t, at)| reminder_id(t, *at, Email))
        .collect();
    let codec = Arc::new(events::EventCodec::new(&testing::registry_url()).unwrap());
    let triggered =
        topics::keyed(&codec, Topic::ReminderTriggered, &bus.triggered_from, &keys).await;
    assert_eq!(triggered.len(), count, "each reminder triggered once");
    let on_topic: Vec<i64> = triggered
        .iter()
        .filter_map(|p| match &p.event {
            AnyEvent::ReminderTriggered(e) => p.timestamp.map(|ts| ts - e.remind_at),
            _ => None,
        })
        .collect();
    let fired: Vec<i64> = rows.iter().map(|r| r.1 - r.0).collect();
    let delivery_lag: Vec<i64> = rows.iter().filter_map(|r| r.2.map(|f| f - r.1)).collect();
    let first = rows.iter().filter_map(|r| r.2).min().unwrap_or(0);
    let last = rows.iter().filter_map(|r| r.2).max().unwrap_or(0);
    println!("--- {count} reminders, remind-at spread over {spread} ms, PostgreSQL, Mailpit ---");
    summary("lateness remind-at -> fired (scheduler)", fired);
    summary(
        "lateness remind-at -> reminder.triggered on the topic",
        on_topic,
    );
    summary("delivery lag fired -> mail accepted by SMTP", delivery_lag);
    println!(
        "deliveries: {delivered} delivered of {count}; {:.0} mails/s between the first and the last ({} ms)",
        count as f64 * 1000.0 / (last - first).max(1) as f64,
        last - first
    );
    app.stop().await;
}
