//! Create-task throughput and latency of task-api on SQLite and on PostgreSQL, each beside two
//! ceilings measured on the same server in the same run: the same concurrent load on
//! `GET /healthz` (what the HTTP stack alone gives) and a raw insert-and-commit loop of one task
//! row per transaction on the same connection pool (what the database alone gives). While the
//! tasks are created, a reader of task.created notes when each one's event becomes readable:
//! the 201 → on-Kafka latency, beside Kafka's own end-to-end latency.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use events::{EventCodec, Topic};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use service_kit::db::Database;
use service_kit::testing::{self, Backend};

use crate::kafka::{EndToEnd, TopicMarks};
use crate::report::Figure;
use crate::services::{self, ApiUser};
use crate::stats::{Latencies, Run, closed_loop};

pub struct CreateTasks {
    pub seconds: u64,
    pub concurrency: usize,
    pub repo: PathBuf,
}

/// One backend's runs.
struct Measured {
    healthz: Run,
    creates: Run,
    inserts: Run,
    to_kafka: Latencies,
}

impl CreateTasks {
    pub async fn run(&self) -> anyhow::Result<Vec<Figure>> {
        let marks = TopicMarks::take().await?;
        let mut measured = Vec::new();
        let mut outcome = Ok(());
        for backend in [Backend::Sqlite, Backend::Postgres] {
            match self.on(backend).await {
                Ok(m) => measured.push((backend, m)),
                Err(e) => {
                    outcome = Err(e.context(format!("create-tasks on {backend:?}")));
                    break;
                }
            }
        }
        marks.delete_written().await?;
        outcome?;
        let floor = EndToEnd::of_this_run(&self.repo, 1_000).await?;
        Ok(measured
            .iter()
            .flat_map(|(backend, m)| self.figures(*backend, m, &floor))
            .collect())
    }

    /// Start task-api on a fresh database, measure, stop it and drop the database.
    async fn on(&self, backend: Backend) -> anyhow::Result<Measured> {
        let keys = services::key_pair()?;
        let (api, db, url) = services::start_task_api(backend, 0, &keys, 0).await?;
        let measured = self.measure(&api.base_url(), &db).await;
        let stopped = api.stop().await;
        drop(db);
        services::drop_database(&url);
        let measured = measured?;
        stopped?;
        println!(
            "\n== {backend:?}: {} concurrent clients, {} s per run ==",
            self.concurrency, self.seconds
        );
        println!("{}", measured.healthz.line("HTTP ceiling (GET /healthz)"));
        println!("{}", measured.creates.line("POST /api/tasks"));
        println!("{}", measured.inserts.line("DB ceiling (insert + commit)"));
        println!(
            "201 -> readable on Kafka: p50 {:.2} ms, p99 {:.2} ms ({} of {} events seen)",
            measured.to_kafka.quantile(0.5),
            measured.to_kafka.quantile(0.99),
            measured.to_kafka.len(),
            measured.creates.ops
        );
        Ok(measured)
    }

    async fn measure(&self, base: &str, db: &Database) -> anyhow::Result<Measured> {
        let duration = Duration::from_secs(self.seconds);
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(self.concurrency)
            .build()?;
        let user = services::register_and_login(&http, base).await?;

        let healthz = {
            let (http, url) = (http.clone(), format!("{base}/healthz"));
            closed_loop(self.concurrency, duration, move || {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    http.get(&url)
                        .send()
                        .await?
                        .error_for_status()?
                        .bytes()
                        .await?;
                    Ok(())
                }
            })
            .await?
        };

        let reader = KafkaReader::start(&user.id).await?;
        let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let creates = {
            let (http, base, token, acked) = (
                http.clone(),
                base.to_owned(),
                user.token.clone(),
                acked.clone(),
            );
            closed_loop(self.concurrency, duration, move || {
                let (http, base, token, acked) =
                    (http.clone(), base.clone(), token.clone(), acked.clone());
                async move {
                    let (id, at) = services::create_task(&http, &base, &token, "loadgen").await?;
                    acked
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .insert(id, at);
                    Ok(())
                }
            })
            .await?
        };
        let acked = std::mem::take(&mut *acked.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
        let seen = reader.finish(acked.len()).await?;
        let to_kafka = to_kafka_latencies(&seen, &acked).await?;

        let inserts = insert_and_commit_loop(db, &user, self.concurrency, duration).await?;
        Ok(Measured {
            healthz,
            creates,
            inserts,
            to_kafka,
        })
    }

    fn figures(&self, backend: Backend, m: &Measured, floor: &EndToEnd) -> Vec<Figure> {
        let db = match backend {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        };
        let load = format!(
            "{} concurrent clients, {} s per run, {} tasks created",
            self.concurrency, self.seconds, m.creates.ops
        );
        vec![
            Figure::new(
                &format!("create task ({db})"),
                "tasks/s",
                m.creates.rate(),
                "GET /healthz, same server",
                m.healthz.rate(),
                load.clone(),
            ),
            Figure::new(
                &format!("create task ({db})"),
                "tasks/s",
                m.creates.rate(),
                "insert+commit, same database",
                m.inserts.rate(),
                format!(
                    "{load}; the ceiling: one task row per transaction on task-api's own pool, no HTTP, auth or outbox"
                ),
            ),
            Figure::new(
                &format!("create task p50 ({db})"),
                "ms",
                m.creates.latencies.quantile(0.5),
                "GET /healthz p50, same server",
                m.healthz.latencies.quantile(0.5),
                format!("{load}; a floor: lower is better"),
            ),
            Figure::new(
                &format!("create task p99 ({db})"),
                "ms",
                m.creates.latencies.quantile(0.99),
                "GET /healthz p99, same server",
                m.healthz.latencies.quantile(0.99),
                format!("{load}; a floor: lower is better"),
            ),
            Figure::new(
                &format!("201 → on Kafka p50 ({db})"),
                "ms",
                m.to_kafka.quantile(0.5),
                &format!("{} p50", EndToEnd::REFERENCE),
                floor.p50_ms,
                format!(
                    "{} of {} events read back during the load (outbox relay, idempotent producer); a floor: lower is better",
                    m.to_kafka.len(),
                    m.creates.ops
                ),
            ),
            Figure::new(
                &format!("201 → on Kafka p99 ({db})"),
                "ms",
                m.to_kafka.quantile(0.99),
                &format!("{} p99", EndToEnd::REFERENCE),
                floor.p99_ms,
                format!(
                    "{} of {} events read back during the load; a floor: lower is better",
                    m.to_kafka.len(),
                    m.creates.ops
                ),
            ),
        ]
    }
}

/// The database ceiling: one task row inserted and committed per transaction, from as many
/// workers as there were HTTP clients, on task-api's own pool.
async fn insert_and_commit_loop(
    db: &Database,
    user: &ApiUser,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Run> {
    let (db, user_id) = (db.clone(), user.id.clone());
    closed_loop(concurrency, duration, move || {
        let (db, user_id) = (db.clone(), user_id.clone());
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
                    task_api::domain::task::Task::new(&user_id, fields, events::now_millis());
                task_api::storage::tasks::insert(conn, &task)
            })
            .await?;
            Ok(())
        }
    })
    .await
}

/// Reads task.created from where it ended when started, noting when each of one user's events
/// became readable.
struct KafkaReader {
    target: Arc<AtomicUsize>,
    handle: tokio::task::JoinHandle<anyhow::Result<Vec<(Instant, OwnedMessage)>>>,
}

impl KafkaReader {
    /// How long the reader may still wait for the last events once the load ended.
    const DRAIN: Duration = Duration::from_secs(60);

    async fn start(user_id: &str) -> anyhow::Result<Self> {
        let topic = Topic::TaskCreated;
        let from = tokio::task::spawn_blocking(move || {
            testing::end_offsets(topic.name(), topic.spec().partitions)
        })
        .await?;
        let target = Arc::new(AtomicUsize::new(usize::MAX));
        let (wanted, goal) = (user_id.to_owned(), target.clone());
        let handle = tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = service_kit::testing::kafka_config()
                .set("group.id", testing::unique_group("loadgen-reader"))
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "10")
                .create()?;
            let mut tpl = rdkafka::TopicPartitionList::new();
            for (p, o) in from.iter().enumerate() {
                tpl.add_partition_offset(topic.name(), p as i32, rdkafka::Offset::Offset(*o))?;
            }
            consumer.assign(&tpl)?;
            let mut seen = Vec::new();
            let mut deadline: Option<Instant> = None;
            loop {
                let wanted_count = goal.load(Ordering::Acquire);
                if wanted_count != usize::MAX {
                    let d = *deadline.get_or_insert_with(|| Instant::now() + Self::DRAIN);
                    if seen.len() >= wanted_count || Instant::now() > d {
                        return Ok(seen);
                    }
                }
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20))
                    && m.key() == Some(wanted.as_bytes())
                {
                    seen.push((Instant::now(), m.detach()));
                }
            }
        });
        Ok(Self { target, handle })
    }

    /// Stop once `expected` events were seen (or the drain bound passed).
    async fn finish(self, expected: usize) -> anyhow::Result<Vec<(Instant, OwnedMessage)>> {
        self.target.store(expected, Ordering::Release);
        self.handle
            .await
            .context("the task.created reader panicked")?
    }
}

/// For each event read back, the time from its task's 201 to the event being readable.
async fn to_kafka_latencies(
    seen: &[(Instant, OwnedMessage)],
    acked: &HashMap<String, Instant>,
) -> anyhow::Result<Latencies> {
    let codec = Arc::new(EventCodec::connect(
        &service_kit::testing::registry_access(),
    )?);
    let mut ms = Vec::with_capacity(seen.len());
    for (at, m) in seen {
        if let Ok(e) = codec.decode(m.topic(), m.payload()).await
            && let Some(t201) = e.task_id().and_then(|id| acked.get(id))
        {
            ms.push(at.saturating_duration_since(*t201).as_secs_f64() * 1000.0);
        }
    }
    Ok(Latencies::new(ms))
}
