//! Create-task throughput and latency of task-api on SQLite and on PostgreSQL, each beside two
//! ceilings measured on the same server in the same run: the same concurrent load on
//! `GET /healthz` (what the HTTP stack alone gives) and a raw insert-and-commit loop of one task
//! row per transaction on the same connection pool (what the database alone gives). While the
//! tasks are created, a reader of task.created notes when each one's event becomes readable:
//! the 201 → on-Kafka latency, beside Kafka's own end-to-end latency.
//!
//! With `--whole-system <bin dir>` the four other services run beside task-api as release
//! binaries, consuming what it publishes ([`crate::consumers`]): the figures are then those of
//! the whole system on this machine, with the busy cores of the run (creates per busy core) and
//! how long the consumers took to catch up once the load stopped.

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

use crate::consumers::{self, Consumers};
use crate::kafka::{EndToEnd, TopicMarks};
use crate::report::Figure;
use crate::services::{self, ApiUser};
use crate::stats::{Latencies, Run, closed_loop};

pub struct CreateTasks {
    pub seconds: u64,
    pub concurrency: usize,
    pub repo: PathBuf,
    /// Where the other services' release binaries are, to run them beside task-api.
    pub whole_system: Option<PathBuf>,
}

/// One backend's runs.
struct Measured {
    healthz: Run,
    creates: Run,
    inserts: Run,
    to_kafka: Latencies,
    /// Cores of the machine busy on average while the tasks were created.
    busy_cores: f64,
    /// With the whole system: how long after the load its consumers had committed everything.
    caught_up: Option<Duration>,
}

/// How long the consumers may take to catch up after the load.
const CATCH_UP_BOUND: Duration = Duration::from_secs(180);

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
        let consumers = match &self.whole_system {
            Some(bin_dir) => Some(Consumers::start(bin_dir, backend, &keys.1).await?),
            None => None,
        };
        let started = services::start_task_api(backend, 0, &keys, 0).await;
        let (api, db, url) = match started {
            Ok(s) => s,
            Err(e) => {
                if let Some(c) = consumers {
                    c.stop().await;
                }
                return Err(e);
            }
        };
        let measured = self.measure(&api.base_url(), &db, consumers.as_ref()).await;
        let stopped = api.stop().await;
        if let Some(c) = consumers {
            c.stop().await;
        }
        drop(db);
        services::drop_database(&url);
        let measured = measured?;
        stopped?;
        println!(
            "\n== {backend:?}{}: {} concurrent clients, {} s per run ==",
            self.scope(),
            self.concurrency,
            self.seconds
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
        println!(
            "busy cores during the creates: {:.2} of {}",
            measured.busy_cores,
            cores()
        );
        if let Some(d) = measured.caught_up {
            println!(
                "consumers caught up {:.1} s after the load",
                d.as_secs_f64()
            );
        }
        Ok(measured)
    }

    /// How the figures name what ran.
    fn scope(&self) -> &'static str {
        if self.whole_system.is_some() {
            ", all five services"
        } else {
            ""
        }
    }

    async fn measure(
        &self,
        base: &str,
        db: &Database,
        consumers: Option<&Consumers>,
    ) -> anyhow::Result<Measured> {
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
        let cpu_before = consumers::cpu_ticks()?;
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
        let busy_cores = consumers::busy_cores(cpu_before, consumers::cpu_ticks()?, cores());
        let caught_up = match consumers {
            Some(c) => Some(c.caught_up(CATCH_UP_BOUND).await?),
            None => None,
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
            busy_cores,
            caught_up,
        })
    }

    fn figures(&self, backend: Backend, m: &Measured, floor: &EndToEnd) -> Vec<Figure> {
        let db = match backend {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        };
        let db = &format!("{db}{}", self.scope());
        let load = format!(
            "{} concurrent clients, {} s per run, {} tasks created",
            self.concurrency, self.seconds, m.creates.ops
        );
        let mut figures = vec![
            Figure::new(
                &format!("create task per busy core ({db})"),
                "tasks/s",
                m.creates.rate() / m.busy_cores.max(0.01),
                "create task, whole machine",
                m.creates.rate(),
                format!(
                    "{:.2} of {} cores busy during the creates (/proc/stat: the load generator, the services, the database, three brokers and the registry share them); the ratio is 1 / busy cores",
                    m.busy_cores,
                    cores()
                ),
            ),
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
        ];
        if let Some(caught_up) = m.caught_up {
            figures.push(Figure::new(
                &format!("consumers caught up after the load ({db})"),
                "s",
                caught_up.as_secs_f64(),
                "length of the load",
                self.seconds as f64,
                "notification-service, recurring-task-service and audit-service (release binaries, own databases) committed every event published during the creates; lower is better".to_owned(),
            ));
        }
        figures
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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
