//! The notification-service binary as a real process: killed before a reminder's time and
//! started after it, stopped with SIGTERM, and refusing to start without its settings.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use events::DeliveryStatus;
use events::NotificationChannel::Email;
use notification_service::storage::reminders;
use service_kit::testing::{self, Backend};
use support::*;

const BOUND: Duration = Duration::from_secs(30);

#[tokio::test]
async fn killed_before_a_reminder_and_started_after_it_delivers_once_marked_late() {
    let _one = exclusive().await;
    let bus = Bus::new().await;
    let (_, _, public_key) = testing::token_pair();
    let db_url = testing::fresh_database(Backend::Postgres);
    let group = fresh_group().await;
    let port = free_port();
    let env = process_env(&db_url, &group, &public_key, port);
    let mut first = start_process(&env, port).await;

    let u = user(&[Email]);
    bus.publish(&u).await;
    let remind_at = events::now_millis() + 5_000;
    let t = task(
        &u.user_id,
        "Survive a crash",
        None,
        vec![at(remind_at, Email)],
    );
    bus.publish(&t).await;
    let rid = reminder_id(&t, remind_at, Email);
    let db = open_db(&db_url).await;
    let scheduled = |db: service_kit::db::Database, rid: String| async move {
        db.run(move |conn| reminders::get(conn, &rid))
            .await
            .unwrap()
    };
    testing::wait_for("the reminder scheduled", BOUND, || async {
        scheduled(db.clone(), rid.clone())
            .await
            .filter(|r| r.state == "scheduled")
    })
    .await;
    first.child.kill().expect("SIGKILL");
    first.child.wait().unwrap();
    assert!(
        events::now_millis() < remind_at,
        "killed before the reminder's time"
    );

    // Start again once the reminder is past its time by more than REMINDER_LATE_AFTER_MS.
    let start_at = remind_at + 3_000;
    tokio::time::sleep(Duration::from_millis(
        (start_at - events::now_millis()).max(0) as u64,
    ))
    .await;
    let row = scheduled(db.clone(), rid.clone()).await.unwrap();
    assert_eq!(
        row.state, "scheduled",
        "nothing fired while the service was down"
    );
    let port = free_port();
    let env = process_env(&db_url, &group, &public_key, port);
    let mut second = start_process(&env, port).await;

    let fired = bus.wait_triggered(&[&rid], 1, BOUND).await;
    assert!(fired[0].late, "marked late");
    assert!(fired[0].fired_at >= start_at);
    let nid = notification_id(&rid, Email);
    let sent = bus.wait_sent(&[&nid], 1, BOUND).await;
    assert_eq!(
        sent[0].status,
        DeliveryStatus::Delivered,
        "{:?}",
        sent[0].error
    );
    let http = reqwest::Client::new();
    let mails = testing::wait_for("the mail", BOUND, || async {
        let mails = mailpit::mails_to(&http, &u.email).await;
        (!mails.is_empty()).then_some(mails)
    })
    .await;
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].text.contains("This reminder is late"),
        "{}",
        mails[0].text
    );
    assert_eq!(bus.triggered(&[rid]).await.len(), 1, "fired once");
    assert_eq!(bus.sent(&[nid]).await.len(), 1, "delivered once");
    second.child.kill().unwrap();
    second.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_stops_the_service_cleanly() {
    let _one = exclusive().await;
    let (_, _, public_key) = testing::token_pair();
    let db_url = testing::fresh_database(Backend::Sqlite);
    let group = fresh_group().await;
    let port = free_port();
    let mut service = start_process(&process_env(&db_url, &group, &public_key, port), port).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let asked = std::time::Instant::now();
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
    assert!(exit.success(), "{exit:?}");
    let log = std::fs::read_to_string(&service.log).unwrap();
    assert!(log.contains("notification-service stopped"), "{log}");
}

/// Run the binary with `env` and return (exit code, stderr).
fn run_with(env: &[(String, String)]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_notification-service"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_missing_or_bad_setting_stops_the_binary_with_one_line_naming_it() {
    let (_, _, public_key) = testing::token_pair();
    let db_url = testing::fresh_database(Backend::Sqlite);
    let full = process_env(&db_url, "unused", &public_key, free_port());
    let without = |name: &str| -> Vec<(String, String)> {
        full.iter().filter(|(k, _)| k != name).cloned().collect()
    };
    let with = |name: &str, value: &str| -> Vec<(String, String)> {
        let mut env = without(name);
        env.push((name.to_owned(), value.to_owned()));
        env
    };
    let cases = [
        ("SMTP_URL", without("SMTP_URL")),
        ("WEBHOOK_SIGNING_KEY", without("WEBHOOK_SIGNING_KEY")),
        ("JWT_PUBLIC_KEY", without("JWT_PUBLIC_KEY")),
        ("SMTP_URL", with("SMTP_URL", "http://mail.example.com")),
        ("WEBHOOK_SIGNING_KEY", with("WEBHOOK_SIGNING_KEY", "short")),
        ("DELIVERY_MAX_ATTEMPTS", with("DELIVERY_MAX_ATTEMPTS", "0")),
        ("APP_BASE_URL", with("APP_BASE_URL", "ftp://x")),
        // SMS is optional, but a gateway without its key, or a bad URL, is a mistake.
        (
            "SMS_GATEWAY_SIGNING_KEY",
            with("SMS_GATEWAY_URL", "https://sms.example.com/send"),
        ),
        ("SMS_GATEWAY_URL", {
            let mut env = with("SMS_GATEWAY_URL", "ftp://sms.example.com");
            env.push((
                "SMS_GATEWAY_SIGNING_KEY".to_owned(),
                "sms-gateway-signing-key-0123456789abcdef".to_owned(),
            ));
            env
        }),
        // Push is optional, but a key given must be one, with a contact beside it.
        ("VAPID_PRIVATE_KEY", with("VAPID_PRIVATE_KEY", "not-a-key")),
        (
            "VAPID_SUBJECT",
            with(
                "VAPID_PRIVATE_KEY",
                "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI",
            ),
        ),
    ];
    for (name, env) in cases {
        let (code, stderr) = run_with(&env);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: {stderr}");
        assert!(
            lines[0].starts_with(&format!("configuration error: {name}:")),
            "{name}: {stderr}"
        );
    }
}
