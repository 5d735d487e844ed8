//! Starting, stopping and killing the service processes: one instance of each service, or
//! several ([`System::start_scaled`]) as a deployment runs them: the instances of a service share
//! its database and consumer group (ws-gateway: each instance its own group, by design), and
//! task-api's instances sit behind one port, a round-robin front ([`crate::proxy`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use events::Service;
use service_kit::config::DatabaseUrl;
use service_kit::kafka::KafkaAccess;
use service_kit::testing::{self, Backend};

/// A service of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Svc {
    TaskApi,
    WsGateway,
    Notification,
    Recurring,
    Audit,
}

impl Svc {
    pub const ALL: [Svc; 5] = [
        Svc::TaskApi,
        Svc::WsGateway,
        Svc::Notification,
        Svc::Recurring,
        Svc::Audit,
    ];

    pub fn service(self) -> Service {
        match self {
            Svc::TaskApi => Service::TaskApi,
            Svc::WsGateway => Service::WsGateway,
            Svc::Notification => Service::NotificationService,
            Svc::Recurring => Service::RecurringTaskService,
            Svc::Audit => Service::AuditService,
        }
    }

    pub fn name(self) -> &'static str {
        self.service().name()
    }
}

struct Running {
    child: Child,
    log: PathBuf,
}

/// One process of the system: a service and which of its instances (from 0).
pub type Instance = (Svc, usize);

/// The five services with their settings; ports, databases and groups are fixed at start so a
/// killed instance restarts as the same instance.
pub struct System {
    pub backend: Backend,
    dir: PathBuf,
    /// Instances of each service.
    instances: usize,
    ports: HashMap<Instance, u16>,
    /// task-api's one port when it runs as several instances.
    front: Option<crate::proxy::RoundRobin>,
    databases: HashMap<Svc, DatabaseUrl>,
    groups: HashMap<Svc, String>,
    webhook_key: String,
    running: HashMap<Instance, Running>,
    pub signer: service_kit::auth::TokenSigner,
    kafka: KafkaAccess,
    service_env: HashMap<Svc, Vec<(String, String)>>,
}

/// How the services reach Kafka: the test's own access (positioning the groups, reading what
/// was published) and each service's own settings on top of the common ones (its user on the
/// secured cluster).
pub struct KafkaSettings {
    pub access: KafkaAccess,
    pub service_env: HashMap<Svc, Vec<(String, String)>>,
}

impl KafkaSettings {
    /// The test environment's cluster, every service with the same settings.
    pub fn from_test_env() -> Self {
        Self {
            access: testing::kafka_access(),
            service_env: HashMap::new(),
        }
    }
}

fn bin_dir() -> PathBuf {
    // Test binaries live in <target>/debug/deps; the service binaries one level up.
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// `n` different free ports for the services' listeners, below the kernel's ephemeral range.
///
/// Below it, because a killed instance restarts on its own port: a port from the ephemeral
/// range (what binding port 0 gives) can meanwhile become the local end of any outgoing
/// connection (a proxy's, a Kafka client's), and the restarted instance then exits on "Address
/// already in use" (CI's chaos scenario 9 did). The kernel never picks a port below the range
/// for an outgoing connection. Each listener is held until all are picked, so one pick cannot
/// be given twice (CI saw task-api and ws-gateway of one system given the same port).
fn free_ports(n: usize) -> Vec<u16> {
    // Above the fixed ports of the infrastructure (Kafka, the registry, PostgreSQL, SMTP).
    const LOWEST: u16 = 20_000;
    let below = ephemeral_range_start().max(LOWEST + 1_000);
    let mut held: Vec<std::net::TcpListener> = Vec::with_capacity(n);
    for _ in 0..100 * n {
        if held.len() == n {
            break;
        }
        let port = LOWEST + (uuid::Uuid::new_v4().as_u128() % u128::from(below - LOWEST)) as u16;
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    assert_eq!(held.len(), n, "no {n} free ports in {LOWEST}..{below}");
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The first port the kernel gives outgoing connections (Linux's usual 32768 if unreadable).
fn ephemeral_range_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn free_port() -> u16 {
    free_ports(1)[0]
}

impl System {
    /// Start all five services and wait until every `/readyz` is green.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, KafkaSettings::from_test_env()).await
    }

    /// [`System::start`] with `instances` processes of every service.
    pub async fn start_scaled(backend: Backend, instances: usize) -> Self {
        Self::launch(backend, KafkaSettings::from_test_env(), instances).await
    }

    /// [`System::start`] on the cluster of `kafka`.
    pub async fn start_with(backend: Backend, kafka: KafkaSettings) -> Self {
        Self::launch(backend, kafka, 1).await
    }

    async fn launch(backend: Backend, kafka: KafkaSettings, instances: usize) -> Self {
        assert!(instances >= 1, "at least one instance of each service");
        let dir = std::env::temp_dir().join(format!("system-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let (private, public) = service_kit::auth::generate_keypair().unwrap();
        std::fs::write(dir.join("jwt-private.pem"), &private).unwrap();
        std::fs::write(dir.join("jwt-public.pem"), &public).unwrap();
        let signer = service_kit::auth::TokenSigner::from_pem(&private, 3600).unwrap();
        let all: Vec<Instance> = Svc::ALL
            .iter()
            .flat_map(|s| (0..instances).map(move |n| (*s, n)))
            .collect();
        let ports: HashMap<Instance, u16> =
            all.iter().copied().zip(free_ports(all.len())).collect();
        let front = if instances > 1 {
            let api = (0..instances)
                .map(|n| std::net::SocketAddr::from(([127, 0, 0, 1], ports[&(Svc::TaskApi, n)])))
                .collect();
            Some(crate::proxy::RoundRobin::start(api).await)
        } else {
            None
        };
        let mut system = Self {
            backend,
            instances,
            ports,
            front,
            databases: Svc::ALL
                .iter()
                .map(|s| (*s, testing::fresh_database(backend)))
                .collect(),
            groups: HashMap::new(),
            webhook_key: format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
            running: HashMap::new(),
            signer,
            dir,
            kafka: kafka.access,
            service_env: kafka.service_env,
        };
        for svc in Svc::ALL {
            let group = testing::unique_group(svc.name());
            let topics = svc.service().consumes().to_vec();
            let (g, access) = (group.clone(), system.kafka.clone());
            tokio::task::spawn_blocking(move || {
                testing::position_group_at_end_with(&access, &g, &topics)
            })
            .await
            .unwrap();
            system.groups.insert(svc, group);
        }
        for svc in Svc::ALL {
            for n in 0..instances {
                system.spawn((svc, n));
            }
        }
        for svc in Svc::ALL {
            system.wait_ready(svc).await;
        }
        system
    }

    /// The services of a deployment that already runs (the compose stack of
    /// `make compose-test`), reached on 127.0.0.1 at the given ports: nothing is started, and
    /// `stop` stops nothing. Users log in through the API; `signer` is a key of this process's
    /// own, which the deployment does not trust.
    pub fn attach(ports: HashMap<Svc, u16>) -> Self {
        let (private, _) = service_kit::auth::generate_keypair().unwrap();
        Self {
            backend: Backend::Postgres,
            dir: std::env::temp_dir(),
            instances: 1,
            ports: ports.into_iter().map(|(s, p)| ((s, 0), p)).collect(),
            front: None,
            databases: HashMap::new(),
            groups: HashMap::new(),
            webhook_key: String::new(),
            running: HashMap::new(),
            signer: service_kit::auth::TokenSigner::from_pem(&private, 3600).unwrap(),
            kafka: testing::kafka_access(),
            service_env: HashMap::new(),
        }
    }

    /// Where clients reach a service: task-api's front when it runs as several instances, else
    /// its (first) instance. The instances of the other services share their database, so any
    /// one answers for all.
    pub fn url(&self, svc: Svc) -> String {
        match (&self.front, svc) {
            (Some(front), Svc::TaskApi) => format!("http://127.0.0.1:{}", front.port()),
            _ => self.instance_url((svc, 0)),
        }
    }

    /// One instance's own address.
    pub fn instance_url(&self, instance: Instance) -> String {
        format!("http://127.0.0.1:{}", self.ports[&instance])
    }

    /// The first gateway's WebSocket base URL.
    pub fn ws_url(&self) -> String {
        self.ws_urls().remove(0)
    }

    /// Every gateway instance's WebSocket base URL, in instance order.
    pub fn ws_urls(&self) -> Vec<String> {
        (0..self.instances)
            .map(|n| format!("ws://127.0.0.1:{}", self.ports[&(Svc::WsGateway, n)]))
            .collect()
    }

    /// How many instances of each service run.
    pub fn instances(&self) -> usize {
        self.instances
    }

    /// Connections task-api's front gave each instance so far (empty with one instance).
    pub fn front_served(&self) -> Vec<usize> {
        self.front.as_ref().map(|f| f.served()).unwrap_or_default()
    }

    /// Connections task-api's front redispatched (their instance was down) and refused (every
    /// instance was).
    pub fn front_rerouted_and_refused(&self) -> (usize, usize) {
        self.front
            .as_ref()
            .map(|f| f.rerouted_and_refused())
            .unwrap_or_default()
    }

    /// An HTTP client for the system's users. With several task-api instances it opens a
    /// connection per request (no idle pool), so the front spreads requests, not just clients,
    /// over the instances, as a balancer in front of many browsers would.
    pub fn http_client(&self) -> reqwest::Client {
        let builder = reqwest::Client::builder();
        let builder = if self.instances > 1 {
            builder.pool_max_idle_per_host(0)
        } else {
            builder
        };
        builder.build().unwrap()
    }

    pub fn database(&self, svc: Svc) -> &DatabaseUrl {
        &self.databases[&svc]
    }

    pub fn group(&self, svc: Svc) -> &str {
        &self.groups[&svc]
    }

    pub fn log_path(&self, svc: Svc) -> PathBuf {
        self.instance_log_path((svc, 0))
    }

    /// The log of one instance: `<service>.log` for the first, `<service>-<n>.log` after.
    pub fn instance_log_path(&self, (svc, n): Instance) -> PathBuf {
        match n {
            0 => self.dir.join(format!("{}.log", svc.name())),
            n => self.dir.join(format!("{}-{n}.log", svc.name())),
        }
    }

    /// The settings of the first instance of `svc`.
    fn env(&self, svc: Svc) -> Vec<(String, String)> {
        self.instance_env((svc, 0))
    }

    fn instance_env(&self, (svc, n): Instance) -> Vec<(String, String)> {
        let database_url = match &self.databases[&svc] {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{p}"),
            DatabaseUrl::Postgres(u) => u.clone(),
        };
        let mut env = vec![
            (
                "KAFKA_BOOTSTRAP_SERVERS",
                self.kafka.bootstrap_servers.clone(),
            ),
            ("SCHEMA_REGISTRY_URL", testing::registry_url()),
            ("DATABASE_URL", database_url),
            ("BIND_ADDR", format!("127.0.0.1:{}", self.ports[&(svc, n)])),
            ("RUST_LOG", "info".to_owned()),
            (
                "JWT_PUBLIC_KEY",
                self.dir
                    .join("jwt-public.pem")
                    .to_string_lossy()
                    .into_owned(),
            ),
            ("WEBHOOK_SIGNING_KEY", self.webhook_key.clone()),
            (
                "SMTP_URL",
                std::env::var("TEST_SMTP_URL").unwrap_or_else(|_| "smtp://127.0.0.1:1025".into()),
            ),
            ("APP_BASE_URL", self.url(Svc::TaskApi)),
            ("WS_PUBLIC_URL", self.ws_url()),
            ("WS_ALLOWED_ORIGINS", self.url(Svc::TaskApi)),
            ("CONSUMER_GROUP", self.groups[&svc].clone()),
            // task-api's MCP tools task_history and preview_recurrence ask these two.
            ("AUDIT_API_URL", self.url(Svc::Audit)),
            ("RECURRENCE_API_URL", self.url(Svc::Recurring)),
            ("SHUTDOWN_TIMEOUT_MS", "10000".to_owned()),
            // Reminders of these tests are due within seconds.
            ("SCHEDULER_MAX_IDLE_MS", "1000".to_owned()),
            ("DELIVERY_RETRY_INITIAL_MS", "200".to_owned()),
            // A notification-service killed mid-attempt leaves its delivery to the other
            // instance after the lease: 15 s here (SMTP is Mailpit on this host) instead of
            // 120 s, so the ledger holds soon after a kill.
            ("SMTP_TIMEOUT_MS", "5000".to_owned()),
            ("DELIVERY_LEASE_MS", "15000".to_owned()),
        ];
        if svc == Svc::TaskApi {
            env.push((
                "JWT_PRIVATE_KEY",
                self.dir
                    .join("jwt-private.pem")
                    .to_string_lossy()
                    .into_owned(),
            ));
        }
        let mut env: Vec<(String, String)> =
            env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        env.extend(self.service_env.get(&svc).cloned().unwrap_or_default());
        env
    }

    /// Another process of `svc` with its settings changed by `overrides` (same names replaced),
    /// on a port of its own, logging to `<dir>/<label>.log`; not waited for. Returns the
    /// process, its base URL and its log.
    pub fn spawn_variant(
        &self,
        svc: Svc,
        label: &str,
        overrides: &[(String, String)],
    ) -> (Child, String, PathBuf) {
        let port = free_port();
        let mut env: Vec<(String, String)> = self
            .env(svc)
            .into_iter()
            .filter(|(k, _)| k != "BIND_ADDR" && !overrides.iter().any(|(o, _)| o == k))
            .collect();
        env.push(("BIND_ADDR".to_owned(), format!("127.0.0.1:{port}")));
        env.extend(overrides.iter().cloned());
        let log = self.dir.join(format!("{label}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin_dir().join(svc.name()))
            .envs(env)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        (child, format!("http://127.0.0.1:{port}"), log)
    }

    fn spawn(&mut self, instance: Instance) {
        let svc = instance.0;
        let log = self.instance_log_path(instance);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(bin_dir().join(svc.name()))
            .envs(self.instance_env(instance))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {} from {}: {e}", svc.name(), bin_dir().display())
            });
        self.running.insert(instance, Running { child, log });
    }

    /// Wait until every running instance of `svc` is ready.
    pub async fn wait_ready(&self, svc: Svc) {
        for n in 0..self.instances {
            if self.running.contains_key(&(svc, n)) {
                self.wait_instance_ready((svc, n)).await;
            }
        }
    }

    /// Wait (bounded) until one instance answers `/readyz` with 200.
    pub async fn wait_instance_ready(&self, instance: Instance) {
        let svc = instance.0;
        let url = format!("{}/readyz", self.instance_url(instance));
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.instance_log_path(instance)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "{} (instance {}) not ready after 90 s; log tail:\n{}",
                    svc.name(),
                    instance.1,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL every instance of a service (the whole service crashes).
    pub fn kill(&mut self, svc: Svc) {
        for n in 0..self.instances {
            self.kill_instance((svc, n));
        }
    }

    /// SIGKILL one instance (a crash).
    pub fn kill_instance(&mut self, instance: Instance) {
        if let Some(mut r) = self.running.remove(&instance) {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    /// SIGTERM every instance of a service and wait (bounded) for them to exit; returns whether
    /// all exited cleanly.
    pub async fn terminate(&mut self, svc: Svc) -> bool {
        let mut clean = true;
        for n in 0..self.instances {
            clean &= self.terminate_instance((svc, n)).await;
        }
        clean
    }

    /// SIGTERM one instance and wait (bounded) for it to exit; returns whether it exited cleanly.
    pub async fn terminate_instance(&mut self, instance: Instance) -> bool {
        let svc = instance.0;
        let Some(mut r) = self.running.remove(&instance) else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &r.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = r.child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = r.child.kill();
                let _ = r.child.wait();
                panic!(
                    "{} did not stop within 30 s of SIGTERM (log {})",
                    svc.name(),
                    r.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Start the stopped or killed instances of a service again, as the same instances.
    pub async fn restart(&mut self, svc: Svc) {
        for n in 0..self.instances {
            if !self.running.contains_key(&(svc, n)) {
                self.spawn((svc, n));
            }
        }
        self.wait_ready(svc).await;
    }

    /// Start one stopped or killed instance again, as the same instance.
    pub async fn restart_instance(&mut self, instance: Instance) {
        self.spawn(instance);
        self.wait_instance_ready(instance).await;
    }

    /// One more instance of a service, beside those [`System::start_scaled`] started: same
    /// database, same consumer group, another port. Returns the process and its base URL; the
    /// caller stops it.
    pub async fn spawn_second_instance(&self, svc: Svc) -> (Child, String) {
        let port = free_port();
        let mut env = self.env(svc);
        for (k, v) in env.iter_mut() {
            if k == "BIND_ADDR" {
                *v = format!("127.0.0.1:{port}");
            }
        }
        let log = self.dir.join(format!("{}-extra.log", svc.name()));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin_dir().join(svc.name()))
            .envs(env)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        service_kit::testing::wait_for(
            "the second instance /readyz",
            Duration::from_secs(60),
            || async {
                let r = http.get(format!("{url}/readyz")).send().await.ok()?;
                (r.status() == 200).then_some(())
            },
        )
        .await;
        (child, url)
    }

    /// The path of the `todoctl` binary built with the workspace.
    pub fn todoctl() -> PathBuf {
        bin_dir().join("todoctl")
    }

    /// Whether any instance of `svc` runs.
    pub fn is_running(&self, svc: Svc) -> bool {
        (0..self.instances).any(|n| self.running.contains_key(&(svc, n)))
    }

    pub async fn stop(mut self) {
        for svc in Svc::ALL {
            self.terminate(svc).await;
        }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        for (_, mut r) in self.running.drain() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}
