//! task-api as a real process: a missing setting stops it with one line; SIGTERM stops it
//! cleanly after publishing what it had accepted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use events::Topic;
use service_kit::config::DatabaseUrl;
use service_kit::testing::{self, Backend};
use support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn base_command(db_url: &DatabaseUrl, port: u16, keys: &(String, String)) -> Command {
    let database_url = match db_url {
        DatabaseUrl::Sqlite(p) => format!("sqlite://{p}"),
        DatabaseUrl::Postgres(u) => u.clone(),
    };
    let mut c = Command::new(env!("CARGO_BIN_EXE_task-api"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KAFKA_BOOTSTRAP_SERVERS", testing::bootstrap_servers())
        .env("SCHEMA_REGISTRY_URL", testing::registry_url())
        .env("DATABASE_URL", database_url)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("JWT_PRIVATE_KEY", &keys.0)
        .env("JWT_PUBLIC_KEY", &keys.1)
        .env("WEBHOOK_SIGNING_KEY", "k".repeat(32))
        .env("CONSUMER_GROUP", testing::unique_group("task-api-proc"))
        .env("RUST_LOG", "info");
    c
}

#[test]
fn a_missing_setting_stops_the_service_with_one_line_naming_it() {
    let keys = service_kit::auth::generate_keypair().unwrap();
    let db = testing::fresh_database(Backend::Sqlite);
    for missing in [
        "JWT_PRIVATE_KEY",
        "JWT_PUBLIC_KEY",
        "WEBHOOK_SIGNING_KEY",
        "KAFKA_BOOTSTRAP_SERVERS",
    ] {
        let out = base_command(&db, free_port(), &keys)
            .env_remove(missing)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{missing}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(missing), "{stderr}");
    }
    // Keys of two different pairs are refused too.
    let other = service_kit::auth::generate_keypair().unwrap();
    let out = base_command(&db, free_port(), &keys)
        .env("JWT_PUBLIC_KEY", &other.1)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWT_PUBLIC_KEY"));
    // SMS is optional, but a gateway without a usable key or URL is a mistake.
    for (name, url, key) in [
        (
            "SMS_GATEWAY_SIGNING_KEY",
            "https://sms.example.com/send",
            "short",
        ),
        (
            "SMS_GATEWAY_URL",
            "sms.example.com",
            "sms-gateway-signing-key-0123456789abcdef",
        ),
    ] {
        let out = base_command(&db, free_port(), &keys)
            .env("SMS_GATEWAY_URL", url)
            .env("SMS_GATEWAY_SIGNING_KEY", key)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(name), "{stderr}");
        assert!(!stderr.contains(key), "the key is never printed: {stderr}");
    }
    // Push is optional (unset: off), but a key given must be a P-256 public key; the line
    // names the setting without echoing the value.
    let out = base_command(&db, free_port(), &keys)
        .env("VAPID_PUBLIC_KEY", "not-a-vapid-key")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("VAPID_PUBLIC_KEY"), "{stderr}");
    assert!(!stderr.contains("not-a-vapid-key"), "{stderr}");
}

#[tokio::test]
async fn sigterm_publishes_what_was_accepted_and_exits_cleanly() {
    let key_pair = service_kit::auth::generate_keypair().unwrap();
    let db = testing::fresh_database(Backend::Sqlite);
    let port = free_port();
    let log = std::env::temp_dir().join(format!("task-api-{}.log", uuid::Uuid::new_v4()));
    let from = offsets(Topic::TaskCreated).await;
    let mut child = base_command(&db, port, &key_pair)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    testing::wait_for("task-api /readyz", Duration::from_secs(60), || async {
        let r = http.get(format!("{address}/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let email = unique_email();
    let r = http
        .post(format!("{address}/api/auth/register"))
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let user_id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = http
        .post(format!("{address}/api/auth/login"))
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ids = Vec::new();
    for i in 0..20 {
        let t: serde_json::Value = http
            .post(format!("{address}/api/tasks"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"title": format!("before SIGTERM {i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(t["id"].as_str().unwrap().to_owned());
    }

    let asked = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(25),
            "still running 25 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(
        output.contains("task-api stopped"),
        "clean stop not logged:\n{output}"
    );
    assert!(
        output.contains(&format!("http://127.0.0.1:{port}/docs")),
        "the docs URL is logged"
    );

    // Everything accepted before the signal is on Kafka, and the outbox is empty.
    let user = TestUser {
        id: user_id,
        email,
        token,
    };
    let published = wait_for_published(
        Topic::TaskCreated,
        &from,
        &keys([user.id.clone()]),
        ids.len(),
    )
    .await;
    let task_ids: Vec<String> = published
        .iter()
        .map(|p| p.event.task_id().unwrap().to_owned())
        .collect();
    assert_eq!(task_ids, ids);
    let backlog = tokio::task::spawn_blocking(move || {
        let d = service_kit::db::Database::connect(&db, task_api::startup::MIGRATIONS).unwrap();
        let mut conn = d.pool().get().unwrap();
        service_kit::outbox::store::backlog(&mut conn).unwrap().rows
    })
    .await
    .unwrap();
    assert_eq!(backlog, 0, "outbox drained before exit");
}

/// Readiness tells the truth: with Kafka and the registry unreachable task-api stays ready (it
/// keeps taking writes into its outbox) and says what is down.
#[tokio::test]
async fn task_api_stays_ready_and_takes_writes_while_kafka_and_the_registry_are_down() {
    let key_pair = service_kit::auth::generate_keypair().unwrap();
    let db = testing::fresh_database(Backend::Sqlite);
    let port = free_port();
    let mut child = base_command(&db, port, &key_pair)
        .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .env("SCHEMA_REGISTRY_URL", "http://127.0.0.1:1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let body = testing::wait_for("task-api /readyz 200", Duration::from_secs(60), || async {
        let r = http.get(format!("{address}/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(r.json::<serde_json::Value>().await.ok()?)
    })
    .await;
    for dependency in ["kafka", "schema_registry"] {
        assert_eq!(body["checks"][dependency]["status"], "failing", "{body}");
        assert_eq!(
            body["checks"][dependency]["gates_readiness"], false,
            "{body}"
        );
    }
    assert_eq!(body["checks"]["database"]["status"], "ok", "{body}");
    let email = unique_email();
    let r = http
        .post(format!("{address}/api/auth/register"))
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "registering while Kafka is down");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_bad_kafka_security_setting_stops_the_service_with_one_line_naming_it() {
    let keys = service_kit::auth::generate_keypair().unwrap();
    let db = testing::fresh_database(Backend::Sqlite);
    for (name, value, named) in [
        (
            "KAFKA_SECURITY_PROTOCOL",
            "SASL_TLS",
            "KAFKA_SECURITY_PROTOCOL",
        ),
        ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "KAFKA_SASL_USERNAME"),
        (
            "KAFKA_SSL_CA_LOCATION",
            "/nonexistent/ca.pem",
            "KAFKA_SSL_CA_LOCATION",
        ),
    ] {
        let out = base_command(&db, free_port(), &keys)
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(named), "{name}={value}: {stderr}");
    }
}
