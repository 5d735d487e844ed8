//! The whole system as real release binaries: task-api and the four services consuming what it
//! publishes, each on a fresh database of the benchmark's backend and a consumer group of its
//! own positioned at the end of its topics. The create rate measured through it is what a
//! machine running all of it gives, and the consumers are checked to keep up (their groups' lag
//! drains after the load). The binaries may be of another commit (the benchmark's baseline):
//! only settings every version reads are given.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use events::{Service, Topic};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use service_kit::config::DatabaseUrl;
use service_kit::testing::{self, Backend};

use crate::services;

/// Every service, task-api first (the others' readiness does not depend on it).
const SERVICES: [Service; 5] = [
    Service::TaskApi,
    Service::NotificationService,
    Service::RecurringTaskService,
    Service::AuditService,
    Service::WsGateway,
];

struct Running {
    service: Service,
    child: Child,
    port: u16,
    /// The group whose lag is checked (ws-gateway's own is per instance and never lags behind
    /// anything durable: it is not checked).
    group: Option<String>,
    database: Option<DatabaseUrl>,
}

/// The running services; [`WholeSystem::stop`] stops them and drops their databases.
pub struct WholeSystem {
    running: Vec<Running>,
}

fn database_setting(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(p) => format!("sqlite://{p}"),
        DatabaseUrl::Postgres(u) => u.clone(),
    }
}

impl WholeSystem {
    /// Start every service from `bin_dir` (release builds) on `backend`, task-api signing with
    /// `keys` (private, public PEM) and the others accepting its tokens, and wait until each
    /// answers `/readyz`.
    pub async fn start(
        bin_dir: &Path,
        backend: Backend,
        keys: &(String, String),
    ) -> anyhow::Result<Self> {
        let mut running = Vec::new();
        for (service, port) in SERVICES
            .into_iter()
            .zip(services::free_ports(SERVICES.len())?)
        {
            match Self::spawn(bin_dir, service, port, backend, keys).await {
                Ok(c) => running.push(c),
                Err(e) => {
                    Self { running }.stop().await;
                    return Err(e);
                }
            }
        }
        let system = Self { running };
        if let Err(e) = system.wait_ready().await {
            system.stop().await;
            return Err(e);
        }
        Ok(system)
    }

    fn running_task_api(&self) -> anyhow::Result<&Running> {
        self.running
            .iter()
            .find(|c| c.service == Service::TaskApi)
            .context("task-api is not running")
    }

    /// task-api's base URL.
    pub fn task_api(&self) -> anyhow::Result<String> {
        Ok(format!(
            "http://127.0.0.1:{}",
            self.running_task_api()?.port
        ))
    }

    /// task-api's database, opened like task-api opens it (this commit's migrations, already
    /// run by task-api, and its pool).
    pub async fn task_api_database(&self) -> anyhow::Result<service_kit::db::Database> {
        let url = self
            .running_task_api()?
            .database
            .clone()
            .context("task-api has no database")?;
        tokio::task::spawn_blocking(move || {
            service_kit::db::Database::connect(&url, task_api::startup::MIGRATIONS)
        })
        .await?
        .context("opening task-api's database")
    }

    async fn spawn(
        bin_dir: &Path,
        service: Service,
        port: u16,
        backend: Backend,
        keys: &(String, String),
    ) -> anyhow::Result<Running> {
        let bin: PathBuf = bin_dir.join(service.name());
        let mut command = Command::new(&bin);
        command
            .env("KAFKA_BOOTSTRAP_SERVERS", testing::bootstrap_servers())
            .env("SCHEMA_REGISTRY_URL", testing::registry_url())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("JWT_PUBLIC_KEY", &keys.1)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        let (group, database) = if service == Service::WsGateway {
            command.env(
                "CONSUMER_GROUP",
                testing::unique_group("loadgen-ws-gateway"),
            );
            (None, None)
        } else {
            let group = services::group_at_end(service.name(), service.consumes()).await?;
            let database = testing::fresh_database(backend);
            command
                .env("CONSUMER_GROUP", &group)
                .env("DATABASE_URL", database_setting(&database));
            (Some(group), Some(database))
        };
        match service {
            Service::TaskApi => {
                command
                    .env("JWT_PRIVATE_KEY", &keys.0)
                    .env("WEBHOOK_SIGNING_KEY", services::WEBHOOK_SIGNING_KEY);
            }
            Service::NotificationService => {
                command
                    .env(
                        "SMTP_URL",
                        std::env::var("TEST_SMTP_URL")
                            .unwrap_or_else(|_| "smtp://127.0.0.1:1025".into()),
                    )
                    .env("WEBHOOK_SIGNING_KEY", services::WEBHOOK_SIGNING_KEY);
            }
            _ => {}
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Running {
            service,
            child,
            port,
            group,
            database,
        })
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        for c in &self.running {
            let url = format!("http://127.0.0.1:{}/readyz", c.port);
            loop {
                let ready = http
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ready {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{} was not ready within 60 s", c.service.name());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// Wait until every durable consumer's group has committed the end of its topics; how long
    /// that took from now. Fails past `bound`.
    pub async fn caught_up(&self, bound: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let groups: Vec<(String, Vec<Topic>)> = self
            .running
            .iter()
            .filter_map(|c| c.group.clone().map(|g| (g, c.service.consumes().to_vec())))
            .collect();
        loop {
            let g = groups.clone();
            let lag = tokio::task::spawn_blocking(move || {
                g.iter()
                    .map(|(group, topics)| group_lag(group, topics))
                    .sum::<anyhow::Result<i64>>()
            })
            .await?;
            // A metadata or offsets request can fail while a partition's leader moves: that is
            // asked again within the bound, like a lag that has not drained yet.
            match &lag {
                Ok(0) => return Ok(started.elapsed()),
                _ if started.elapsed() <= bound => {}
                Ok(lag) => bail!("the consumers still lag {lag} messages {bound:?} after the load"),
                Err(e) => bail!("the consumers' lag could not be read within {bound:?}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGTERM each (graceful stop), wait, and drop their databases.
    pub async fn stop(self) {
        for mut c in self.running {
            let _ = Command::new("kill")
                .args(["-TERM", &c.child.id().to_string()])
                .status();
            let _ = tokio::task::spawn_blocking(move || {
                let _ = c.child.wait();
                if let Some(db) = &c.database {
                    services::drop_database(db);
                }
            })
            .await;
        }
    }
}

/// Messages of `topics` that `group` has not committed yet.
fn group_lag(group: &str, topics: &[Topic]) -> anyhow::Result<i64> {
    let consumer: BaseConsumer = testing::kafka_config().set("group.id", group).create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for topic in topics {
        for p in 0..topic.spec().partitions {
            tpl.add_partition(topic.name(), p);
        }
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    let mut lag = 0;
    for e in committed.elements() {
        let (_, high) =
            consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(10))?;
        let at = match e.offset() {
            rdkafka::Offset::Offset(o) => o,
            // Nothing committed: the group was positioned at the end, so this cannot happen
            // unless the topic was empty; count from the start.
            _ => 0,
        };
        lag += (high - at).max(0);
    }
    Ok(lag)
}

/// Busy CPU time of the whole machine, from `/proc/stat`: (busy, total) in clock ticks.
pub fn cpu_ticks() -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

/// Cores busy on average between two [`cpu_ticks`] readings, of `cores` in the machine.
pub fn busy_cores(before: (u64, u64), after: (u64, u64), cores: usize) -> f64 {
    let busy = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1) as f64;
    if total == 0.0 {
        0.0
    } else {
        busy / total * cores as f64
    }
}
