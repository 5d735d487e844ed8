//! Deliveries against real receivers: mail to Mailpit (and to an SMTP server the test takes
//! down), signed webhooks to a local HTTP server, in-app; retries, final failures and replays.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use chrono::DateTime;
use events::NotificationChannel::{Email, InApp, Webhook};
use events::{DeliveryStatus, Service, Topic};
use service_kit::consumer::RetryPolicy;
use service_kit::testing::{self, Backend};
use support::*;

const BOUND: Duration = Duration::from_secs(30);

fn utc(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

/// The text and HTML parts of a raw mail, decoded.
fn parts(raw: &str) -> (Vec<String>, Vec<String>) {
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("a MIME message");
    let texts = (0..message.text_body_count())
        .filter_map(|i| message.body_text(i).map(|t| t.into_owned()))
        .collect();
    let htmls = (0..message.html_body_count())
        .filter_map(|i| message.body_html(i).map(|t| t.into_owned()))
        .collect();
    (texts, htmls)
}

#[tokio::test]
async fn an_email_reminder_arrives_once_with_text_html_title_and_local_due_time() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let app = spawn_app(Backend::Postgres, &Options::default()).await;
    let mut u = user(&[Email, InApp]);
    u.timezone = "Asia/Kolkata".into();
    bus.publish(&u).await;
    let remind_at = events::now_millis() + 3_000;
    let due = utc("2027-03-15T03:30:00Z");
    let t = task(
        &u.user_id,
        "Renew the passport",
        Some(due),
        vec![at(remind_at, Email)],
    );
    bus.publish(&t).await;

    let rid = reminder_id(&t, remind_at, Email);
    let nid = notification_id(&rid, Email);
    let sent = bus.wait_sent(&[&nid], 1, BOUND).await;
    assert_eq!(
        sent[0].status,
        DeliveryStatus::Delivered,
        "{:?}",
        sent[0].error
    );
    assert_eq!(sent[0].attempts, 1);

    let http = reqwest::Client::new();
    let mails = testing::wait_for("the mail in Mailpit", BOUND, || async {
        let mails = mailpit::mails_to(&http, &u.email).await;
        (!mails.is_empty()).then_some(mails)
    })
    .await;
    assert_eq!(mails.len(), 1, "one mail");
    let mail = &mails[0];
    assert_eq!(mail.subject, "Reminder: Renew the passport");
    let (texts, htmls) = parts(&mail.raw);
    assert_eq!(
        (texts.len(), htmls.len()),
        (1, 1),
        "a text and an HTML part"
    );
    assert!(mail.raw.contains("multipart/alternative"));
    for body in [&texts[0], &htmls[0]] {
        assert!(body.contains("Renew the passport"), "{body}");
        assert!(body.contains("Monday, 15 March 2027, 09:00 IST"), "{body}");
        assert!(
            body.contains(&format!("http://127.0.0.1:8000/#/tasks/{}", t.task_id)),
            "{body}"
        );
    }
    assert!(mail.text.contains("Hello Ada Lovelace,"));
    app.stop().await;
}

#[tokio::test]
async fn local_due_times_follow_each_users_zone_across_dst() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let app = spawn_app(Backend::Sqlite, &Options::default()).await;
    let mut kolkata = user(&[Email]);
    kolkata.timezone = "Asia/Kolkata".into();
    let mut new_york = user(&[Email]);
    new_york.timezone = "America/New_York".into();
    bus.publish(&kolkata).await;
    bus.publish(&new_york).await;
    let remind_at = events::now_millis() + 3_000;
    // New York moves to summer time on 14 March 2027; Kolkata has none.
    let cases = [
        (
            &kolkata,
            utc("2027-03-15T03:30:00Z"),
            "Monday, 15 March 2027, 09:00 IST",
        ),
        (
            &new_york,
            utc("2027-03-13T14:00:00Z"),
            "Saturday, 13 March 2027, 09:00 EST",
        ),
        (
            &new_york,
            utc("2027-03-15T13:00:00Z"),
            "Monday, 15 March 2027, 09:00 EDT",
        ),
    ];
    let mut expected = Vec::new();
    for (i, (u, due, local)) in cases.iter().enumerate() {
        let title = format!("Standup {i}");
        let t = task(&u.user_id, &title, Some(*due), vec![at(remind_at, Email)]);
        bus.publish(&t).await;
        expected.push((u.email.clone(), title, *local));
    }
    let http = reqwest::Client::new();
    for (email, title, local) in expected {
        let mail = testing::wait_for(&format!("mail {title}"), BOUND, || async {
            mailpit::mails_to(&http, &email)
                .await
                .into_iter()
                .find(|m| m.subject.ends_with(&title))
        })
        .await;
        assert!(mail.text.contains(local), "{title}: {}", mail.text);
        assert!(mail.html.contains(local), "{title}: {}", mail.html);
    }
    app.stop().await;
}

/// Commit `group`'s offsets back to `start`, so the service reads everything again.
fn rewind(group: &str, start: &[(events::Topic, Vec<i64>)]) {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    let consumer: BaseConsumer = service_kit::testing::kafka_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (topic, offsets) in start {
        for (p, o) in offsets.iter().enumerate() {
            tpl.add_partition_offset(topic.name(), p as i32, rdkafka::Offset::Offset(*o))
                .unwrap();
        }
    }
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
}

#[tokio::test]
async fn replaying_reminder_triggered_and_every_topic_sends_no_second_email() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let db_url = testing::fresh_database(Backend::Sqlite);
    let group = fresh_group().await;
    let mut start = Vec::new();
    for topic in Service::NotificationService.consumes() {
        start.push((*topic, topics::offsets_now(*topic).await));
    }
    let app = spawn_instance(&db_url, &group, &Options::default()).await;
    let u = user(&[Email]);
    bus.publish(&u).await;
    let remind_at = events::now_millis() + 3_000;
    let t = task(&u.user_id, "Replay me", None, vec![at(remind_at, Email)]);
    bus.publish(&t).await;
    let rid = reminder_id(&t, remind_at, Email);
    let nid = notification_id(&rid, Email);
    bus.wait_sent(&[&nid], 1, BOUND).await;
    let http = reqwest::Client::new();
    testing::wait_for("the mail", BOUND, || async {
        (mailpit::ids_to(&http, &u.email).await.len() == 1).then_some(())
    })
    .await;

    // The same reminder.triggered once more, as a producer retry or a replay would bring it.
    let fired = bus.triggered(&[&rid]).await;
    bus.publish(&fired[0]).await;
    testing::wait_for("the replayed event consumed", BOUND, || async {
        let m = app.metrics().await;
        (testing::metric_sum(
            &m,
            "notification_events_ignored_total",
            &[
                "topic=\"reminder.triggered\"",
                "reason=\"already_recorded\"",
            ],
        ) >= 1.0)
            .then_some(())
    })
    .await;
    app.stop().await;

    // Every consumed topic from the start of the test, into the same database.
    let g = group.clone();
    tokio::task::spawn_blocking(move || rewind(&g, &start))
        .await
        .unwrap();
    let again = spawn_instance(&db_url, &group, &Options::default()).await;
    testing::wait_for("the replay consumed", BOUND, || async {
        let m = again.metrics().await;
        let ignored = |topic: &str, reason: &str| {
            testing::metric_sum(
                &m,
                "notification_events_ignored_total",
                &[
                    &format!("topic=\"{topic}\""),
                    &format!("reason=\"{reason}\""),
                ],
            )
        };
        (ignored("task.created", "stale_version") >= 1.0
            && ignored("user.registered", "stale_version") >= 1.0
            && ignored(Topic::ReminderTriggered.name(), "already_recorded") >= 2.0)
            .then_some(())
    })
    .await;
    assert_eq!(
        mailpit::ids_to(&http, &u.email).await.len(),
        1,
        "still one mail"
    );
    assert_eq!(
        bus.sent(&[nid]).await.len(),
        1,
        "still one notification.sent"
    );
    assert_eq!(
        bus.triggered(&[rid]).await.len(),
        2,
        "only the copy the test published"
    );
    again.stop().await;
}

#[tokio::test]
async fn a_webhook_arrives_once_with_a_valid_signature() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let receiver = webhook::WebhookReceiver::start(webhook_key()).await;
    let app = spawn_app(Backend::Sqlite, &Options::default()).await;
    let mut u = user(&[Webhook]);
    u.webhook_url = Some(receiver.url.clone());
    bus.publish(&u).await;
    let remind_at = events::now_millis() + 3_000;
    let due = remind_at + 600_000;
    let t = task(
        &u.user_id,
        "Deploy",
        Some(due),
        vec![at(remind_at, Webhook)],
    );
    bus.publish(&t).await;
    let rid = reminder_id(&t, remind_at, Webhook);
    let nid = notification_id(&rid, Webhook);
    let sent = bus.wait_sent(&[&nid], 1, BOUND).await;
    assert_eq!(
        sent[0].status,
        DeliveryStatus::Delivered,
        "{:?}",
        sent[0].error
    );
    let hooks = receiver.hooks();
    assert_eq!(hooks.len(), 1, "one POST");
    let hook = &hooks[0];
    assert!(
        hook.signature_valid,
        "signature verifies with the user's secret"
    );
    assert!((hook.timestamp - chrono::Utc::now().timestamp()).abs() < 60);
    assert_eq!(hook.notification_id.as_deref(), Some(nid.as_str()));
    assert_eq!(hook.body["task"]["title"], "Deploy");
    assert_eq!(hook.body["task"]["id"], t.task_id.as_str());
    assert_eq!(hook.body["reminder_id"], rid.as_str());
    assert_eq!(hook.body["channel"], "webhook");
    assert_eq!(hook.body["late"], false);
    app.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn a_failing_webhook_is_retried_with_backoff_until_it_answers() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let receiver = webhook::WebhookReceiver::start(webhook_key()).await;
    receiver.fail_first(2);
    let app = spawn_app(Backend::Postgres, &Options::default()).await;
    let mut u = user(&[Webhook]);
    u.webhook_url = Some(receiver.url.clone());
    bus.publish(&u).await;
    let remind_at = events::now_millis() + 2_000;
    let t = task(&u.user_id, "Retry me", None, vec![at(remind_at, Webhook)]);
    bus.publish(&t).await;
    let nid = notification_id(&reminder_id(&t, remind_at, Webhook), Webhook);
    let sent = bus.wait_sent(&[nid], 1, BOUND).await;
    assert_eq!(sent[0].status, DeliveryStatus::Delivered);
    assert_eq!(sent[0].attempts, 3);
    let hooks = receiver.hooks();
    let answers: Vec<u16> = hooks.iter().map(|h| h.answered).collect();
    assert_eq!(answers, vec![503, 503, 204]);
    assert!(hooks.iter().all(|h| h.signature_valid));
    let m = app.metrics().await;
    assert_eq!(
        testing::metric_sum(
            &m,
            "notification_delivery_attempts_total",
            &["channel=\"webhook\"", "outcome=\"retry\""]
        ),
        2.0
    );
    app.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn a_webhook_failing_past_the_last_attempt_is_reported_failed() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let receiver = webhook::WebhookReceiver::start(webhook_key()).await;
    receiver.always_fail(true);
    let app = spawn_app(Backend::Sqlite, &Options::default()).await;
    let mut u = user(&[Webhook, InApp]);
    u.webhook_url = Some(receiver.url.clone());
    bus.publish(&u).await;
    let remind_at = events::now_millis() + 2_000;
    let t = task(
        &u.user_id,
        "Never answered",
        None,
        vec![at(remind_at, Webhook)],
    );
    bus.publish(&t).await;
    let nid = notification_id(&reminder_id(&t, remind_at, Webhook), Webhook);
    let sent = bus.wait_sent(&[nid], 1, BOUND).await;
    assert_eq!(sent[0].status, DeliveryStatus::Failed);
    assert_eq!(sent[0].attempts, 4);
    let error = sent[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("503") && error.contains("gave up after 4 attempts"),
        "{error}"
    );
    assert_eq!(receiver.hooks().len(), 4);
    let items = app.notifications(&u.user_id).await;
    assert_eq!(items[0]["status"], "failed");
    assert_eq!(items[0]["attempts"], 4);
    app.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn a_reminder_on_a_channel_the_user_switched_off_is_reported_failed() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let app = spawn_app(Backend::Sqlite, &Options::default()).await;
    let u = user(&[Email]);
    bus.publish(&u).await;
    let remind_at = events::now_millis() + 2_000;
    let t = task(&u.user_id, "Quiet please", None, vec![at(remind_at, InApp)]);
    bus.publish(&t).await;
    let rid = reminder_id(&t, remind_at, InApp);
    // Still fired (the gateway may show it), but not delivered.
    bus.wait_triggered(&[&rid], 1, BOUND).await;
    let sent = bus
        .wait_sent(&[notification_id(&rid, InApp)], 1, BOUND)
        .await;
    assert_eq!(sent[0].status, DeliveryStatus::Failed);
    assert_eq!(sent[0].error.as_deref(), Some("channel disabled by user"));
    assert_eq!(sent[0].attempts, 1);
    app.stop().await;
}

#[tokio::test]
async fn smtp_down_for_a_while_is_retried_and_delivers_once_when_it_returns() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let mut sink = smtp::SmtpSink::start().await;
    let options = Options {
        smtp_url: sink.url(),
        retry: RetryPolicy {
            initial: Duration::from_millis(200),
            max_delay: Duration::from_millis(800),
            max_attempts: 30,
        },
        ..Options::default()
    };
    let app = spawn_app(Backend::Postgres, &options).await;
    sink.stop().await;
    let u = user(&[Email]);
    bus.publish(&u).await;
    let remind_at = events::now_millis() + 2_000;
    let t = task(&u.user_id, "Outage", None, vec![at(remind_at, Email)]);
    bus.publish(&t).await;
    testing::wait_for("failed attempts while SMTP is down", BOUND, || async {
        let rows = app.deliveries_of(&t.task_id).await;
        rows.first()
            .filter(|r| r.attempts >= 2 && r.status == "pending")
            .map(|_| ())
    })
    .await;
    sink.restart().await;
    let rows = app.wait_finished(&t.task_id, 1, BOUND).await;
    assert_eq!(rows[0].status, "delivered");
    // `attempts` counts attempts started: the second may have been under way when the sink
    // came back (CI saw it deliver), but it only started because the first had failed.
    assert!(rows[0].attempts >= 2, "attempts {}", rows[0].attempts);
    let nid = notification_id(&reminder_id(&t, remind_at, Email), Email);
    let sent = bus.wait_sent(&[nid], 1, BOUND).await;
    assert_eq!(sent[0].status, DeliveryStatus::Delivered);
    assert_eq!(sent[0].attempts, rows[0].attempts);
    assert_eq!(sink.messages_to(&u.email).len(), 1, "one mail");
    app.stop().await;
}

#[tokio::test]
async fn smtp_down_for_good_reports_failed_loses_nothing_and_others_go_on() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let mut sink = smtp::SmtpSink::start().await;
    let options = Options {
        smtp_url: sink.url(),
        ..Options::default()
    };
    let app = spawn_app(Backend::Sqlite, &options).await;
    sink.stop().await;
    let u = user(&[Email, InApp]);
    bus.publish(&u).await;
    let remind_at = events::now_millis() + 2_000;
    let t = task(
        &u.user_id,
        "Down for good",
        None,
        vec![at(remind_at, Email), at(remind_at, InApp)],
    );
    bus.publish(&t).await;
    let email = notification_id(&reminder_id(&t, remind_at, Email), Email);
    let in_app = notification_id(&reminder_id(&t, remind_at, InApp), InApp);
    // The in-app reminder is not held up by the failing mail.
    let first = bus.wait_sent(&[&in_app], 1, BOUND).await;
    assert_eq!(first[0].status, DeliveryStatus::Delivered);
    let sent = bus.wait_sent(&[email], 1, BOUND).await;
    assert_eq!(sent[0].status, DeliveryStatus::Failed);
    assert_eq!(sent[0].attempts, 4);
    assert!(sent[0].error.as_deref().unwrap_or("").starts_with("SMTP"));
    let items = app.notifications(&u.user_id).await;
    assert_eq!(items.len(), 2, "both deliveries recorded");
    let m = app.metrics().await;
    assert_eq!(testing::metric_sum(&m, "dead_letters_total", &[]), 0.0);
    app.stop().await;
}

#[tokio::test]
async fn a_mail_the_server_refuses_for_good_fails_at_once() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let sink = smtp::SmtpSink::start().await;
    sink.reject_with(Some("550 5.1.1 mailbox unavailable"));
    let options = Options {
        smtp_url: sink.url(),
        ..Options::default()
    };
    let app = spawn_app(Backend::Sqlite, &options).await;
    let u = user(&[Email]);
    bus.publish(&u).await;
    let remind_at = events::now_millis() + 2_000;
    let t = task(&u.user_id, "Bounced", None, vec![at(remind_at, Email)]);
    bus.publish(&t).await;
    let nid = notification_id(&reminder_id(&t, remind_at, Email), Email);
    let sent = bus.wait_sent(&[nid], 1, BOUND).await;
    assert_eq!(sent[0].status, DeliveryStatus::Failed);
    assert_eq!(sent[0].attempts, 1, "a permanent refusal is not retried");
    assert!(
        sent[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("mailbox unavailable")
    );
    app.stop().await;
}
