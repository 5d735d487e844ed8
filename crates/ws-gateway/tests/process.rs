//! The real ws-gateway binary: its settings, SIGTERM closing connections with 1001, and a
//! client resuming on another instance after its own was SIGKILLed.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use service_kit::testing;
use support::*;

struct Gateway {
    child: std::process::Child,
    ws_base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command(public_key: &str, port: u16) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ws-gateway"));
    cmd.env("KAFKA_BOOTSTRAP_SERVERS", testing::bootstrap_servers())
        .env("SCHEMA_REGISTRY_URL", testing::registry_url())
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("JWT_PUBLIC_KEY", public_key)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null());
    cmd
}

async fn start(public_key: &str) -> Gateway {
    let port = free_port();
    let child = command(public_key, port).spawn().expect("start ws-gateway");
    let address = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    testing::wait_for("ws-gateway /readyz", Duration::from_secs(60), || async {
        let r = http.get(format!("{address}/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    Gateway {
        child,
        ws_base: format!("ws://127.0.0.1:{port}"),
    }
}

#[tokio::test]
async fn sigterm_closes_every_connection_with_going_away_and_exits() {
    let (signer, _, public_key) = testing::token_pair();
    let mut gw = start(&public_key).await;
    let user = new_user();
    let token = signer.issue(&user).unwrap();
    let mut a = open(&gw.ws_base, &format!("token={token}"), None)
        .await
        .unwrap();
    let mut b = open(&gw.ws_base, &format!("token={token}"), None)
        .await
        .unwrap();
    assert_eq!(next_json(&mut a).await["type"], "ready");
    assert_eq!(next_json(&mut b).await["type"], "ready");
    // The binary is live: an event reaches the connection.
    let publisher = publisher();
    let e = created(&user);
    publisher.publish(&e, None).await.unwrap();
    assert_eq!(next_json(&mut a).await["event_id"], e.event_id.as_str());

    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(gw.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let (code, reason) = close_code(&mut b).await;
    assert_eq!(code, 1001, "{reason}");
    loop {
        match next(&mut a).await {
            Received::Closed(frame) => {
                assert_eq!(u16::from(frame.unwrap().code), 1001);
                break;
            }
            Received::Json(m) => assert_eq!(m["event_id"], e.event_id.as_str()),
            Received::Text(t) => panic!("unexpected {t}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(25);
    let exit = loop {
        if let Some(status) = gw.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 25 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn after_its_gateway_is_killed_a_client_resumes_on_another_with_nothing_lost() {
    let (signer, _, public_key) = testing::token_pair();
    let (mut one, mut two) = futures::join!(start(&public_key), start(&public_key));
    let user = new_user();
    let token = signer.issue(&user).unwrap();
    let mut tab = open(&one.ws_base, &format!("token={token}"), None)
        .await
        .unwrap();
    assert_eq!(next_json(&mut tab).await["type"], "ready");
    let mut witness = open(&two.ws_base, &format!("token={token}"), None)
        .await
        .unwrap();
    assert_eq!(next_json(&mut witness).await["type"], "ready");
    let publisher = publisher();
    let first = created(&user);
    publisher.publish(&first, None).await.unwrap();
    let seen = next_json(&mut tab).await;
    assert_eq!(seen["event_id"], first.event_id.as_str());
    take(&mut witness, 1).await;
    let cursor = seen["cursor"].as_str().unwrap().to_owned();

    one.child.kill().unwrap(); // SIGKILL: no goodbye, no close frame
    one.child.wait().unwrap();
    let missed: Vec<_> = (0..5).map(|_| created(&user)).collect();
    for e in &missed {
        publisher.publish(e, None).await.unwrap();
    }
    // A witness on gateway two shows when it has routed them all: then all is a replay.
    take(&mut witness, missed.len()).await;
    let (mut ws, replay, _) = resume(&two.ws_base, &token, &cursor).await;
    let marker = created(&user);
    publisher.publish(&marker, None).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await["event_id"],
        marker.event_id.as_str(),
        "nothing twice"
    );
    let mut got: Vec<String> = replay
        .iter()
        .map(|m| m["event_id"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = missed.iter().map(|e| e.event_id.clone()).collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "exactly the missed events, once each");
    two.child.kill().unwrap();
    two.child.wait().unwrap();
}

#[tokio::test]
async fn a_missing_or_bad_setting_stops_the_binary_with_one_line_naming_it() {
    let (_, _, public_key) = testing::token_pair();
    let cases: [(&str, Option<&str>); 4] = [
        ("JWT_PUBLIC_KEY", None),
        ("JWT_PUBLIC_KEY", Some("not a key")),
        ("WS_ALLOWED_ORIGINS", Some("localhost:8000")),
        ("WS_SEND_QUEUE", Some("0")),
    ];
    for (name, value) in cases {
        let mut cmd = command(&public_key, free_port());
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
        let output = cmd.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}={value:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(name), "{stderr}");
    }
}

#[tokio::test]
async fn without_kafka_the_gateway_still_starts_and_says_it_is_not_ready() {
    let (_, _, public_key) = testing::token_pair();
    let port = free_port();
    let mut child = command(&public_key, port)
        .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    testing::wait_for("ws-gateway /healthz", Duration::from_secs(30), || async {
        let r = http.get(format!("{address}/healthz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let ready = http.get(format!("{address}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    child.kill().unwrap();
    child.wait().unwrap();
}
