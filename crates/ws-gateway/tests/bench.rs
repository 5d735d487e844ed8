//! The gateway's benchmark, ignored by default (it takes a few minutes):
//!
//! ```text
//! cargo test -p ws-gateway --test bench -- --ignored --nocapture
//! ```
//!
//! 1. End-to-end latency from the REST 201 of `POST /api/tasks` (a real task-api: database,
//!    outbox relay, Kafka) to the `task_created` message arriving at a WebSocket client, p50 and
//!    p99 at a steady rate, printed beside Kafka's own end-to-end latency on the same cluster in
//!    the same run (`org.apache.kafka.tools.EndToEndLatency` from the cached jars, acks=all, a
//!    three-replica topic): that is the floor.
//! 2. The most concurrent connections the gateway binary holds (aim: 10,000), each then
//!    receiving its user's event, and the gateway's resident memory per connection.
//!
//! Knobs: `WS_BENCH_CREATES` (600), `WS_BENCH_RATE` (creates per second, 20),
//! `WS_BENCH_CONNECTIONS` (10000). Figures are from a debug build unless run with `--release`.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use service_kit::auth::generate_keypair;
use service_kit::testing;
use support::services::{free_port, start_gateway, start_task_api};
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Part 1: REST 201 → WebSocket message, at `rate` creates per second.
async fn rest_to_websocket(creates: usize, rate: usize) -> (Vec<Duration>, usize) {
    let keys = generate_keypair().unwrap();
    let (api_port, gateway_port) = (free_port(), free_port());
    let gateway = start_gateway(gateway_port, api_port, &keys.1).await;
    let (api_shutdown, api_handle) = start_task_api(api_port, gateway_port, &keys).await;
    let api = format!("http://127.0.0.1:{api_port}");
    let http = reqwest::Client::new();
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let password = "correct horse battery";
    let r = http
        .post(format!("{api}/api/auth/register"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let login: serde_json::Value = http
        .post(format!("{api}/api/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let mut ws = open(
        &format!("ws://127.0.0.1:{gateway_port}"),
        &format!("token={token}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "ready");

    let create = {
        let (http, api, token) = (http.clone(), api.clone(), token.clone());
        move |title: String| {
            let (http, api, token) = (http.clone(), api.clone(), token.clone());
            async move {
                let r = http
                    .post(format!("{api}/api/tasks"))
                    .bearer_auth(&token)
                    .json(
                        &serde_json::json!({"title": title, "priority": "high", "tags": ["bench"]}),
                    )
                    .send()
                    .await
                    .unwrap();
                let at = Instant::now();
                assert_eq!(r.status(), 201);
                let task: serde_json::Value = r.json().await.unwrap();
                (task["id"].as_str().unwrap().to_owned(), at)
            }
        }
    };
    // Warm-up: the first event also waits for the gateway's consumer group to be assigned.
    let (warm_id, _) = create("warm-up".into()).await;
    loop {
        let m = next_json(&mut ws).await;
        if m["data"]["task"]["id"] == warm_id.as_str() {
            break;
        }
    }

    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = arrivals.clone();
    let reader = tokio::spawn(async move {
        for _ in 0..creates {
            let m = next_json(&mut ws).await;
            let at = Instant::now();
            if m["type"] == "task_created" {
                let id = m["data"]["task"]["id"].as_str().unwrap().to_owned();
                seen.lock().unwrap().insert(id, at);
            }
        }
        ws
    });
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut requests = Vec::with_capacity(creates);
    for i in 0..creates {
        tick.tick().await;
        requests.push(tokio::spawn(create(format!("bench task {i}"))));
    }
    let mut answered = Vec::with_capacity(creates);
    for r in requests {
        answered.push(r.await.unwrap());
    }
    let _ws = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("every message arrives")
        .unwrap();
    let arrivals = std::mem::take(&mut *arrivals.lock().unwrap());
    let mut before_the_201 = 0;
    let mut latencies: Vec<Duration> = answered
        .iter()
        .map(|(id, at)| {
            let arrived = arrivals[id];
            if arrived < *at {
                before_the_201 += 1;
            }
            arrived.saturating_duration_since(*at)
        })
        .collect();
    latencies.sort();
    api_shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(30), api_handle).await;
    gateway.stop().await;
    (latencies, before_the_201)
}

/// Kafka's own end-to-end latency (produce acks=all, then consume) on a three-replica topic:
/// (average, p50, p99) as the tool prints them, in ms.
fn kafka_floor(messages: usize) -> (String, String, String) {
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka-tool.sh");
    let bootstrap = testing::bootstrap_servers();
    let topic = "bench.ws-gateway.e2e";
    let created = std::process::Command::new(&tool)
        .args([
            "topics",
            "--bootstrap-server",
            &bootstrap,
            "--create",
            "--if-not-exists",
        ])
        .args([
            "--topic",
            topic,
            "--partitions",
            "1",
            "--replication-factor",
            "3",
        ])
        .args(["--config", "min.insync.replicas=2"])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let output = std::process::Command::new(&tool)
        .arg("org.apache.kafka.tools.EndToEndLatency")
        .args([
            bootstrap.as_str(),
            topic,
            &messages.to_string(),
            "all",
            "700",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let avg = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Avg latency: "))
        .unwrap_or("?")
        .to_owned();
    let percentiles = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Percentiles: "))
        .unwrap_or("");
    let pick = |name: &str| {
        percentiles
            .split(", ")
            .find_map(|p| p.strip_prefix(name))
            .map(|v| format!("{} ms", v.trim()))
            .unwrap_or_else(|| "?".into())
    };
    (avg, pick("50th = "), pick("99th = "))
}

fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Part 2: how many connections the gateway binary holds, and its memory per connection.
async fn connections_held(target: usize) {
    const PER_USER: usize = 4;
    let (signer, _, public_key) = testing::token_pair();
    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ws-gateway"))
        .env("KAFKA_BOOTSTRAP_SERVERS", testing::bootstrap_servers())
        .env("SCHEMA_REGISTRY_URL", testing::registry_url())
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("JWT_PUBLIC_KEY", &public_key)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    testing::wait_for("the gateway", Duration::from_secs(60), || async {
        let r = http.get(format!("{base}/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let idle_kib = resident_kib(child.id());

    let users: Vec<String> = (0..target.div_ceil(PER_USER)).map(|_| new_user()).collect();
    let tokens: Vec<String> = users.iter().map(|u| signer.issue(u).unwrap()).collect();
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let started = Instant::now();
    let attempts = (0..target).map(|i| {
        let url = format!(
            "ws://127.0.0.1:{port}/ws/tasks?token={}",
            tokens[i / PER_USER]
        );
        async move {
            let request = url.into_client_request().unwrap();
            let (mut ws, _) =
                tokio_tungstenite::connect_async_with_config(request, Some(config), true)
                    .await
                    .map_err(|e| e.to_string())?;
            let ready = next_json(&mut ws).await;
            (ready["type"] == "ready")
                .then_some((i / PER_USER, ws))
                .ok_or_else(|| "no ready".to_owned())
        }
    });
    let results: Vec<Result<(usize, Ws), String>> = futures::stream::iter(attempts)
        .buffer_unordered(256)
        .collect()
        .await;
    let connect_time = started.elapsed();
    let mut held = Vec::new();
    let mut errors: HashMap<String, usize> = HashMap::new();
    for r in results {
        match r {
            Ok(c) => held.push(c),
            Err(e) => *errors.entry(e).or_default() += 1,
        }
    }
    let stats: serde_json::Value = http
        .get(format!("{base}/ws/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let loaded_kib = resident_kib(child.id());

    // Every held connection still works: one event per user reaches all of its connections.
    let publisher = publisher();
    let events: Vec<_> = users.iter().map(|u| created(u)).collect();
    let delivery = Instant::now();
    for chunk in events.chunks(500) {
        for r in futures::future::join_all(chunk.iter().map(|e| publisher.publish(e, None))).await {
            r.unwrap();
        }
    }
    let checks = held.into_iter().map(|(user, mut ws)| {
        let expected = events[user].event_id.clone();
        async move {
            let m = next_json(&mut ws).await;
            assert_eq!(m["event_id"], expected.as_str());
            ws
        }
    });
    let held = tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(checks))
        .await
        .expect("every held connection receives its user's event");
    let delivered = delivery.elapsed();

    let n = held.len();
    println!(
        "--- connections (gateway binary, {} users x {PER_USER}) ---",
        users.len()
    );
    println!(
        "held {n} of {target} concurrent connections (/ws/stats: {stats}); opened in {connect_time:?}"
    );
    if !errors.is_empty() {
        println!("failed attempts: {errors:?}");
    }
    println!(
        "gateway resident memory: {} MiB idle, {} MiB with {n} connections: {:.1} KiB per connection",
        idle_kib / 1024,
        loaded_kib / 1024,
        (loaded_kib.saturating_sub(idle_kib)) as f64 / n.max(1) as f64
    );
    println!(
        "{} events delivered to all {n} connections in {delivered:?}",
        events.len()
    );
    drop(held);
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    assert_eq!(n, target, "not every connection was held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn benchmark() {
    let creates = knob("WS_BENCH_CREATES", 600);
    let rate = knob("WS_BENCH_RATE", 20).max(1);
    let target = knob("WS_BENCH_CONNECTIONS", 10_000);

    let (latencies, early) = rest_to_websocket(creates, rate).await;
    let floor = tokio::task::spawn_blocking(move || kafka_floor(creates))
        .await
        .unwrap();
    println!("--- end-to-end latency, {creates} creates at {rate}/s ---");
    println!(
        "REST 201 -> WebSocket message: p50 {}  p99 {}  max {}  ({early} messages arrived before the 201 was read)",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
    );
    println!(
        "Kafka EndToEndLatency (acks=all, 3 replicas, 700 B), the floor: p50 {}  p99 {}  avg {}",
        floor.1, floor.2, floor.0
    );

    connections_held(target).await;
}
