//! Create-task benchmark against the real cluster, on SQLite and on PostgreSQL:
//! throughput and p50/p99 latency of `POST /api/tasks` under concurrent load, the time from the
//! 201 to the event being readable on Kafka, and two ceilings measured in the same run: the same
//! load against a trivial endpoint of the same server (`GET /healthz`, the HTTP ceiling) and a
//! raw insert-and-commit loop on the same database (the database ceiling).
//!
//! `cargo run -p task-api --example bench` (BENCH_SECONDS, default 10; BENCH_CONCURRENCY,
//! default 16). Needs the local cluster, registry and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use events::Topic;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use service_kit::config::CommonConfig;
use service_kit::testing::{self, Backend};
use service_kit::webhook::WebhookKey;
use task_api::config::{Config, LoginLimits, OutboxSettings};
use task_api::startup::Application;
use tokio::sync::Mutex;

struct Stats {
    ops: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
}

impl Stats {
    fn quantile(&self, q: f64) -> f64 {
        let mut v = self.latencies_ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            return f64::NAN;
        }
        v[((v.len() - 1) as f64 * q).round() as usize]
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what:<34} {:>9.0} /s {:>9.2} ms {:>9.2} ms   ({} ops)",
            self.ops as f64 / self.seconds,
            self.quantile(0.5),
            self.quantile(0.99),
            self.ops
        )
    }
}

/// Run `op` from `concurrency` workers for `duration`; each call returns its own latency.
async fn load<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Stats
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let workers = (0..concurrency).map(|_| {
        let op = op.clone();
        tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                op().await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        })
    });
    let mut latencies_ms = Vec::new();
    for w in futures::future::join_all(workers).await {
        latencies_ms.extend(w.unwrap());
    }
    Stats {
        ops: latencies_ms.len(),
        seconds: started.elapsed().as_secs_f64(),
        latencies_ms,
    }
}

async fn bench(backend: Backend, seconds: u64, concurrency: usize) {
    let duration = Duration::from_secs(seconds);
    let (private, public) = service_kit::auth::generate_keypair().unwrap();
    let db_url = testing::fresh_database(backend);
    let config = Config {
        common: CommonConfig {
            kafka_bootstrap_servers: testing::bootstrap_servers(),
            schema_registry_url: testing::registry_url(),
            database_url: db_url,
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            shutdown_timeout: Duration::from_secs(10),
        },
        signer: service_kit::auth::TokenSigner::from_pem(&private, 3600).unwrap(),
        verifier: service_kit::auth::TokenVerifier::from_pem(&public).unwrap(),
        webhook_key: WebhookKey::new("bench-webhook-signing-key-of-32-chars!"),
        ws_public_url: "ws://127.0.0.1:8001".into(),
        consumer_group: testing::unique_group("task-api-bench"),
        login_limits: LoginLimits::default(),
        outbox: OutboxSettings::default(),
    };
    let app = Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let db = app.database();
    let shutdown = app.shutdown_handle();
    let running = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let password = "correct horse battery";
    let user: serde_json::Value = http
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_id = user["id"].as_str().unwrap().to_owned();
    let token: serde_json::Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    // HTTP ceiling.
    let healthz = {
        let (http, url) = (http.clone(), format!("{base}/healthz"));
        load(concurrency, duration, move || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(&url).send().await.unwrap().bytes().await.unwrap();
            }
        })
        .await
    };

    // A reader of task.created runs during the load and notes when each of the user's events
    // becomes readable; it stops once it has seen as many as there were 201s.
    let from = testing::end_offsets(Topic::TaskCreated.name(), 3);
    let target = Arc::new(AtomicUsize::new(usize::MAX));
    let reader = {
        let (wanted, target) = (user_id.clone(), target.clone());
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", testing::bootstrap_servers())
                .set("group.id", testing::unique_group("bench-reader"))
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "10")
                .create()
                .unwrap();
            let mut tpl = rdkafka::TopicPartitionList::new();
            for (p, o) in from.iter().enumerate() {
                tpl.add_partition_offset(
                    Topic::TaskCreated.name(),
                    p as i32,
                    rdkafka::Offset::Offset(*o),
                )
                .unwrap();
            }
            consumer.assign(&tpl).unwrap();
            let mut seen = Vec::new();
            let mut deadline: Option<Instant> = None;
            loop {
                let goal = target.load(Ordering::Acquire);
                if goal != usize::MAX {
                    let d =
                        *deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(120));
                    if seen.len() >= goal || Instant::now() > d {
                        return seen;
                    }
                }
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20))
                    && m.key() == Some(wanted.as_bytes())
                {
                    seen.push((Instant::now(), m.detach()));
                }
            }
        })
    };

    // Create tasks, remembering when each 201 arrived.
    let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let creates = {
        let (http, url, token, acked) = (
            http.clone(),
            format!("{base}/api/tasks"),
            token.clone(),
            acked.clone(),
        );
        load(concurrency, duration, move || {
            let (http, url, token, acked) = (http.clone(), url.clone(), token.clone(), acked.clone());
            async move {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"title": "bench", "priority": "high", "tags": ["bench"]}))
                    .send()
                    .await
                    .unwrap();
                let at = Instant::now();
                assert_eq!(r.status(), 201);
                let t: serde_json::Value = r.json().await.unwrap();
                acked.lock().await.insert(t["id"].as_str().unwrap().to_owned(), at);
            }
        })
        .await
    };

    let expected = acked.lock().await.len();
    target.store(expected, Ordering::Release);
    let seen = reader.await.unwrap();
    let codec = Arc::new(events::EventCodec::new(&testing::registry_url()).unwrap());
    let acked = acked.lock().await;
    let mut to_kafka = Vec::new();
    for (at, m) in &seen {
        if let Ok(e) = codec.decode(m.topic(), m.payload()).await
            && let Some(t201) = e.task_id().and_then(|id| acked.get(id))
        {
            to_kafka.push(at.saturating_duration_since(*t201).as_secs_f64() * 1000.0);
        }
    }
    let kafka = Stats {
        ops: to_kafka.len(),
        seconds: 1.0,
        latencies_ms: to_kafka,
    };

    // Database ceiling: insert-and-commit of one task row per transaction, same pool.
    let rows = {
        let (db, user) = (db.clone(), user_id.clone());
        load(concurrency, duration, move || {
            let (db, user) = (db.clone(), user.clone());
            async move {
                db.transaction(move |conn| {
                    let fields = task_api::domain::task::TaskFields {
                        title: "raw".into(),
                        description: None,
                        priority: events::Priority::High,
                        due_at: None,
                        category_id: None,
                        tags: vec![],
                        recurrence: None,
                        reminders: vec![],
                    };
                    let task =
                        task_api::domain::task::Task::new(&user, fields, events::now_millis());
                    task_api::storage::tasks::insert(conn, &task)
                })
                .await
                .unwrap();
            }
        })
        .await
    };

    println!("\n== {backend:?}: {concurrency} concurrent clients, {seconds} s per run ==");
    println!(
        "{:<34} {:>12} {:>12} {:>12}",
        "", "throughput", "p50", "p99"
    );
    println!("{}", healthz.line("HTTP ceiling (GET /healthz)"));
    println!("{}", creates.line("POST /api/tasks"));
    println!("{}", rows.line("DB ceiling (insert + commit)"));
    println!(
        "{:<34} {:>12} {:>9.2} ms {:>9.2} ms   ({} of {} events seen)",
        "201 -> event readable on Kafka",
        "",
        kafka.quantile(0.5),
        kafka.quantile(0.99),
        kafka.ops,
        expected
    );
    shutdown.trigger();
    running.await.unwrap().unwrap();
}

#[tokio::main]
async fn main() {
    let seconds = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let concurrency = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    for backend in [Backend::Sqlite, Backend::Postgres] {
        bench(backend, seconds, concurrency).await;
    }
}
