//! Create-task throughput and latency of task-api on SQLite and on PostgreSQL, each beside two
//! ceilings measured on the same server in the same run: the same concurrent load on
//! `GET /healthz` (what the HTTP stack alone gives) and a raw insert-and-commit loop of one task
//! row per transaction on the same connection pool (what the database alone gives). While the
//! tasks are created, a reader of task.created notes when each one's event becomes readable:
//! the 201 → on-Kafka latency, beside Kafka's own end-to-end latency.
//!
//! With `--whole-system <bin dir>` all five services run as release binaries ([`WholeSystem`]),
//! the four others consuming what task-api publishes: the figures are then those of the whole
//! system on this machine, with the busy cores of the run (creates per busy core) and how long
//! the consumers took to catch up once the load stopped. With `--baseline <bin dir>` the
//! binaries of an earlier commit are measured the same way in the same run, alternating with
//! this commit's on each database, and the figures compare the two.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
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

use crate::baseline_schemas::BaselineSchemas;
use crate::kafka::{EndToEnd, TopicMarks};
use crate::report::Figure;
use crate::services::{self, ApiUser};
use crate::stats::{Latencies, Run, closed_loop};
use crate::whole_system::{self, WholeSystem};

pub struct CreateTasks {
    pub seconds: u64,
    pub concurrency: usize,
    pub repo: PathBuf,
    /// Where this commit's release binaries are, to run the whole system from them.
    pub whole_system: Option<PathBuf>,
    /// An earlier commit's binaries, measured the same way beside this commit's.
    pub baseline: Option<Baseline>,
    /// One database only (a quicker look while working on one); both when `None`.
    pub only: Option<OnlyDatabase>,
}

/// The database `--only` names.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OnlyDatabase {
    Sqlite,
    Postgres,
}

/// The binaries of an earlier commit and how the report names them.
pub struct Baseline {
    pub bin_dir: PathBuf,
    pub name: String,
    /// Its schemas/ directory, registered for the run (see [`BaselineSchemas`]).
    pub schemas: Option<PathBuf>,
}

/// One backend's runs.
struct Measured {
    healthz: Run,
    creates: Run,
    /// The database ceiling (not measured for a baseline, whose schema this code does not
    /// know: the same run's figure for this commit stands for both).
    inserts: Option<Run>,
    to_kafka: Latencies,
    /// Where that time went (see [`Split`]).
    split: Split,
    /// Cores of the machine busy on average while the tasks were created.
    busy_cores: f64,
    /// With the whole system: how long after the load its consumers had committed everything.
    caught_up: Option<Duration>,
}

/// What a run measures: task-api in this process, or the whole system from a directory of
/// binaries (this commit's, or a baseline's with its name).
#[derive(Clone, Copy)]
enum Subject<'a> {
    InProcess,
    Binaries {
        dir: &'a Path,
        baseline: Option<&'a str>,
    },
}

impl Subject<'_> {
    /// How the figures name what ran.
    fn scope(&self) -> String {
        match self {
            Subject::InProcess => String::new(),
            Subject::Binaries { baseline: None, .. } => ", all five services".to_owned(),
            Subject::Binaries {
                baseline: Some(name),
                ..
            } => format!(", all five services, {name}"),
        }
    }

    /// The baseline's name, when this is one.
    fn baseline(&self) -> Option<&str> {
        match self {
            Subject::Binaries { baseline, .. } => *baseline,
            Subject::InProcess => None,
        }
    }
}

/// How long the consumers may take to catch up after the load.
const CATCH_UP_BOUND: Duration = Duration::from_secs(180);

impl CreateTasks {
    pub async fn run(&self) -> anyhow::Result<Vec<Figure>> {
        let subjects = match (&self.whole_system, &self.baseline) {
            (Some(dir), baseline) => {
                let mut subjects: Vec<Subject<'_>> = baseline
                    .iter()
                    .map(|b| Subject::Binaries {
                        dir: &b.bin_dir,
                        baseline: Some(&b.name),
                    })
                    .collect();
                subjects.push(Subject::Binaries {
                    dir,
                    baseline: None,
                });
                subjects
            }
            (None, Some(_)) => {
                anyhow::bail!("--baseline compares whole systems: give --whole-system too")
            }
            (None, None) => vec![Subject::InProcess],
        };
        let marks = TopicMarks::take().await?;
        let baseline_schemas = match self.baseline.as_ref().and_then(|b| b.schemas.as_deref()) {
            Some(dir) => {
                let registered = BaselineSchemas::register(dir).await?;
                println!(
                    "registered {} schema versions of the baseline for the run",
                    registered.added()
                );
                Some(registered)
            }
            None => None,
        };
        let mut measured = Vec::new();
        let mut outcome = Ok(());
        let backends = match self.only {
            None => vec![Backend::Sqlite, Backend::Postgres],
            Some(OnlyDatabase::Sqlite) => vec![Backend::Sqlite],
            Some(OnlyDatabase::Postgres) => vec![Backend::Postgres],
        };
        'all: for backend in backends {
            for subject in &subjects {
                match self.on(backend, *subject).await {
                    Ok(m) => measured.push((backend, *subject, m)),
                    Err(e) => {
                        outcome = Err(
                            e.context(format!("create-tasks on {backend:?}{}", subject.scope()))
                        );
                        break 'all;
                    }
                }
            }
        }
        marks.delete_written().await?;
        if let Some(registered) = baseline_schemas {
            registered.remove().await?;
        }
        outcome?;
        let floor = EndToEnd::of_this_run(&self.repo, 1_000).await?;
        let mut figures: Vec<Figure> = measured
            .iter()
            .flat_map(|(backend, subject, m)| self.figures(*backend, *subject, m, &floor))
            .collect();
        for (backend, subject, m) in measured.iter().filter(|(_, s, _)| s.baseline().is_none()) {
            let baseline = measured
                .iter()
                .find(|(b, s, _)| b == backend && s.baseline().is_some());
            if let Some((_, before, b)) = baseline {
                figures.extend(self.compared(*backend, *subject, m, *before, b));
            }
        }
        Ok(figures)
    }

    /// Start what `subject` names on a fresh database, measure, stop it and drop the database.
    async fn on(&self, backend: Backend, subject: Subject<'_>) -> anyhow::Result<Measured> {
        let keys = services::key_pair()?;
        let measured = match subject {
            Subject::InProcess => {
                let (api, db, url) = services::start_task_api(backend, 0, &keys, 0).await?;
                let measured = self.measure(&api.base_url(), Some(&db), None).await;
                let stopped = api.stop().await;
                drop(db);
                services::drop_database(&url);
                let measured = measured?;
                stopped?;
                measured
            }
            Subject::Binaries { dir, baseline } => {
                let system = WholeSystem::start(dir, backend, &keys).await?;
                // The database ceiling runs on task-api's own database, on a pool like its own:
                // only this commit's schema is known here.
                let measured = async {
                    let db = match baseline {
                        Some(_) => None,
                        None => Some(system.task_api_database().await?),
                    };
                    self.measure(&system.task_api()?, db.as_ref(), Some(&system))
                        .await
                }
                .await;
                system.stop().await;
                measured?
            }
        };
        println!(
            "\n== {backend:?}{}: {} concurrent clients, {} s per run ==",
            subject.scope(),
            self.concurrency,
            self.seconds
        );
        println!("{}", measured.healthz.line("HTTP ceiling (GET /healthz)"));
        println!("{}", measured.creates.line("POST /api/tasks"));
        if let Some(inserts) = &measured.inserts {
            println!("{}", inserts.line("DB ceiling (insert + commit)"));
        }
        println!(
            "201 -> readable on Kafka: p50 {:.2} ms, p99 {:.2} ms ({} of {} events seen)",
            measured.to_kafka.quantile(0.5),
            measured.to_kafka.quantile(0.99),
            measured.to_kafka.len(),
            measured.creates.ops
        );
        println!("  of which {}", measured.split.describe());
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

    async fn measure(
        &self,
        base: &str,
        db: Option<&Database>,
        system: Option<&WholeSystem>,
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
        let cpu_before = whole_system::cpu_ticks()?;
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
        let busy_cores = whole_system::busy_cores(cpu_before, whole_system::cpu_ticks()?, cores());
        let caught_up = match system {
            Some(c) => Some(c.caught_up(CATCH_UP_BOUND).await?),
            None => None,
        };
        let acked = std::mem::take(&mut *acked.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
        let seen = reader.finish(acked.len()).await?;
        let (to_kafka, split) = to_kafka_latencies(&seen, &acked).await?;
        // Each 201 has its event; a run whose events did not all arrive (a relay whose schema
        // the registry refused, say) measured something else than creating tasks.
        anyhow::ensure!(
            to_kafka.len() == acked.len(),
            "{} tasks were created but {} of their task.created events were read back within {} s of the load's end",
            acked.len(),
            to_kafka.len(),
            KafkaReader::DRAIN.as_secs()
        );

        let inserts = match db {
            Some(db) => Some(insert_and_commit_loop(db, &user, self.concurrency, duration).await?),
            None => None,
        };
        Ok(Measured {
            healthz,
            creates,
            inserts,
            to_kafka,
            split,
            busy_cores,
            caught_up,
        })
    }

    fn figures(
        &self,
        backend: Backend,
        subject: Subject<'_>,
        m: &Measured,
        floor: &EndToEnd,
    ) -> Vec<Figure> {
        let db = &format!("{}{}", backend_name(backend), subject.scope());
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
                    "{} of {} events read back during the load; {}; a floor: lower is better",
                    m.to_kafka.len(),
                    m.creates.ops,
                    m.split.describe()
                ),
            ),
        ];
        if let Some(inserts) = &m.inserts {
            figures.insert(
                2,
                Figure::new(
                    &format!("create task ({db})"),
                    "tasks/s",
                    m.creates.rate(),
                    "insert+commit, same database",
                    inserts.rate(),
                    format!(
                        "{load}; the ceiling: one task row per transaction on task-api's own pool, no HTTP, auth or outbox"
                    ),
                ),
            );
        }
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

    /// This commit's figures beside the baseline's (`before`) of the same run.
    fn compared(
        &self,
        backend: Backend,
        subject: Subject<'_>,
        after: &Measured,
        before: Subject<'_>,
        b: &Measured,
    ) -> Vec<Figure> {
        let db = &format!("{}{}", backend_name(backend), subject.scope());
        let name = before.baseline().unwrap_or("the baseline");
        let reference = format!("the same benchmark on {name}, same run");
        let notes = |what: &str| {
            format!(
                "{what}; this commit {} tasks, the baseline {} ({}), alternating on the same machine",
                after.creates.ops,
                b.creates.ops,
                before.scope().trim_start_matches(", "),
            )
        };
        vec![
            Figure::new(
                &format!("create task, after/before ({db})"),
                "tasks/s",
                after.creates.rate(),
                &reference,
                b.creates.rate(),
                notes(&format!(
                    "{} concurrent clients, {} s; higher is better",
                    self.concurrency, self.seconds
                )),
            ),
            Figure::new(
                &format!("create task p99, after/before ({db})"),
                "ms",
                after.creates.latencies.quantile(0.99),
                &format!("{reference}, p99"),
                b.creates.latencies.quantile(0.99),
                notes("a floor: lower is better"),
            ),
            Figure::new(
                &format!("201 → on Kafka p99, after/before ({db})"),
                "ms",
                after.to_kafka.quantile(0.99),
                &format!("{reference}, p99"),
                b.to_kafka.quantile(0.99),
                notes("a floor: lower is better"),
            ),
        ]
    }
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
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
            // On the pool directly, not `Database::transaction`: SQLite itself settles who
            // writes (its busy handler), as before task-api's writers queued on the process's
            // write gate, so the ceiling is the database's and does not move with that gate
            // (measured: gated, this loop ran about a tenth slower).
            db.run(move |conn| {
                use diesel::Connection;
                conn.transaction(|conn| {
                    let fields =
                        task_api::domain::task::TaskFields::titled("raw", events::Priority::High);
                    let task =
                        task_api::domain::task::Task::new(&user_id, fields, events::now_millis());
                    task_api::storage::tasks::insert(conn, &task)
                })
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

/// Where the time from a change to its event being readable goes, by wall-clock milliseconds
/// of the event itself: the change's time in task-api (`eventTimestamp`), the Kafka timestamp
/// the relay's producer gave the message when it was handed over, and when it was read.
struct Split {
    /// Change → handed to the producer: the batch's commit, the relay noticing, reading it.
    in_outbox: Latencies,
    /// Handed to the producer → readable: linger, the brokers' replication, the fetch.
    in_kafka: Latencies,
}

impl Split {
    fn describe(&self) -> String {
        format!(
            "change → handed to the producer p50 {:.0} / p99 {:.0} ms, handed → readable p50 {:.0} / p99 {:.0} ms",
            self.in_outbox.quantile(0.5),
            self.in_outbox.quantile(0.99),
            self.in_kafka.quantile(0.5),
            self.in_kafka.quantile(0.99)
        )
    }
}

/// For each event read back, the time from its task's 201 to the event being readable, and
/// where the time went.
async fn to_kafka_latencies(
    seen: &[(Instant, OwnedMessage)],
    acked: &HashMap<String, Instant>,
) -> anyhow::Result<(Latencies, Split)> {
    let codec = Arc::new(EventCodec::connect(
        &service_kit::testing::registry_access(),
    )?);
    // The wall clock of an Instant, from one moment read on both clocks.
    let (now, now_ms) = (Instant::now(), events::now_millis());
    let wall_ms = |at: Instant| now_ms - now.saturating_duration_since(at).as_millis() as i64;
    let (mut ms, mut in_outbox, mut in_kafka) = (Vec::new(), Vec::new(), Vec::new());
    for (at, m) in seen {
        if let Ok(e) = codec.decode(m.topic(), m.payload()).await
            && let Some(t201) = e.task_id().and_then(|id| acked.get(id))
        {
            ms.push(at.saturating_duration_since(*t201).as_secs_f64() * 1000.0);
            if let Some(handed) = m.timestamp().to_millis() {
                in_outbox.push((handed - e.event_timestamp()).max(0));
                in_kafka.push((wall_ms(*at) - handed).max(0));
            }
        }
    }
    let split = Split {
        in_outbox: Latencies::from_millis(in_outbox),
        in_kafka: Latencies::from_millis(in_kafka),
    };
    Ok((Latencies::new(ms), split))
}
