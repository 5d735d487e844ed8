//! How many concurrent WebSocket connections the gateway's binary holds (aim: 10,000), each of
//! them then proven alive by receiving its user's event, and the gateway's resident memory per
//! connection. The gateway runs as its own process so that its memory is its own and the
//! connections' two ends do not share one process's descriptor limit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use events::{EventCodec, EventPublisher};
use futures::StreamExt;
use service_kit::testing;

use crate::kafka::TopicMarks;
use crate::report::Figure;
use crate::services;
use crate::stats::wait_for;
use crate::ws_client::{self, Ws};

/// Connections per user (the gateway allows 32); several per user also exercise the fan-out.
const PER_USER: usize = 4;
/// Upgrades in flight at once.
const OPENING: usize = 256;

pub struct WsConnections {
    pub target: usize,
    pub gateway_bin: PathBuf,
}

struct Measured {
    held: usize,
    failures: HashMap<String, usize>,
    idle_kib: u64,
    loaded_kib: u64,
    opened_in: Duration,
    delivered_in: Duration,
    users: usize,
}

/// The gateway process; killed if a failure leaves it running.
struct Gateway {
    child: Child,
    port: u16,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Gateway {
    fn resident_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/<pid>/status")
    }

    /// SIGTERM, then wait for the graceful stop (at most 30 s; the guard kills it after that).
    async fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("ws-gateway did not stop within 30 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

impl WsConnections {
    pub async fn run(&self) -> anyhow::Result<Vec<Figure>> {
        let marks = TopicMarks::take().await?;
        let measured = self.measure().await;
        marks.delete_written().await?;
        let m = measured?;
        let per_connection = m.loaded_kib.saturating_sub(m.idle_kib) as f64 / m.held.max(1) as f64;
        println!(
            "held {} of {} connections (opened in {:.1} s); RSS {} MiB idle, {} MiB loaded: {per_connection:.1} KiB per connection",
            m.held,
            self.target,
            m.opened_in.as_secs_f64(),
            m.idle_kib / 1024,
            m.loaded_kib / 1024
        );
        if !m.failures.is_empty() {
            println!("failures: {:?}", m.failures);
        }
        let failures = if m.failures.is_empty() {
            "none failed".to_owned()
        } else {
            format!("failed: {:?}", m.failures)
        };
        Ok(vec![
            Figure::new(
                "WebSocket connections held (ws-gateway binary)",
                "connections",
                m.held as f64,
                "the target",
                self.target as f64,
                format!(
                    "{} users × {PER_USER}, opened {OPENING} at a time in {:.1} s; held = open, `ready`, and then received its user's event ({} events to every connection in {:.1} s); {failures}",
                    m.users,
                    m.opened_in.as_secs_f64(),
                    m.users,
                    m.delivered_in.as_secs_f64()
                ),
            ),
            Figure::new(
                "ws-gateway memory per connection",
                "KiB",
                per_connection,
                "idle ws-gateway RSS, same process before connecting (KiB)",
                m.idle_kib as f64,
                format!(
                    "(RSS with {} connections − idle RSS) / connections: {} MiB idle, {} MiB loaded; no external ceiling exists, so the reference is the idle process and the ratio is the share of it one connection adds",
                    m.held,
                    m.idle_kib / 1024,
                    m.loaded_kib / 1024
                ),
            ),
        ])
    }

    async fn measure(&self) -> anyhow::Result<Measured> {
        let (signer, _, public_key) = testing::token_pair();
        let port = services::free_port()?;
        let child = Command::new(&self.gateway_bin)
            .env("KAFKA_BOOTSTRAP_SERVERS", testing::bootstrap_servers())
            .env("SCHEMA_REGISTRY_URL", testing::registry_url())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("JWT_PUBLIC_KEY", &public_key)
            .env("CONSUMER_GROUP", "loadgen-ws-gateway")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.gateway_bin.display()))?;
        let gateway = Gateway { child, port };
        let measured = self.with_gateway(&gateway, &signer).await;
        let stopped = gateway.stop().await;
        let measured = measured?;
        stopped?;
        Ok(measured)
    }

    async fn with_gateway(
        &self,
        gateway: &Gateway,
        signer: &service_kit::auth::TokenSigner,
    ) -> anyhow::Result<Measured> {
        let http = reqwest::Client::new();
        let readyz = format!("http://127.0.0.1:{}/readyz", gateway.port);
        wait_for("ws-gateway /readyz", Duration::from_secs(60), || async {
            Ok(http
                .get(&readyz)
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ()))
        })
        .await?;
        let idle_kib = gateway.resident_kib()?;

        let users: Vec<String> = (0..self.target.div_ceil(PER_USER))
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        let tokens = users
            .iter()
            .map(|u| signer.issue(u))
            .collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        let attempts = (0..self.target).map(|i| {
            let token = tokens[i / PER_USER].clone();
            let port = gateway.port;
            async move {
                ws_client::connect(port, &token, true)
                    .await
                    .map(|ws| (i / PER_USER, ws))
            }
        });
        let results: Vec<anyhow::Result<(usize, Ws)>> = futures::stream::iter(attempts)
            .buffer_unordered(OPENING)
            .collect()
            .await;
        let opened_in = started.elapsed();
        let mut open = Vec::with_capacity(results.len());
        let mut failures: HashMap<String, usize> = HashMap::new();
        for r in results {
            match r {
                Ok(c) => open.push(c),
                Err(e) => *failures.entry(format!("{e:#}")).or_default() += 1,
            }
        }
        let loaded_kib = gateway.resident_kib()?;

        // Every open connection still works: one event per user reaches all its connections.
        let codec = Arc::new(EventCodec::connect(
            &service_kit::testing::registry_access(),
        )?);
        let publisher =
            EventPublisher::connect(service_kit::testing::kafka_config(), codec, "loadgen")?;
        let events: Vec<_> = users.iter().map(|u| quiet_task_created(u)).collect();
        let delivery = Instant::now();
        for chunk in events.chunks(500) {
            for r in
                futures::future::join_all(chunk.iter().map(|e| publisher.publish(e, None))).await
            {
                r.context("publishing task.created")?;
            }
        }
        let checks = open.into_iter().map(|(user, mut ws)| {
            let expected = events[user].event_id.clone();
            async move {
                let m = ws_client::next_json(&mut ws, Duration::from_secs(120)).await?;
                if m["event_id"] != expected.as_str() {
                    bail!("expected the user's event, got {m}");
                }
                anyhow::Ok(ws)
            }
        });
        let checked = futures::future::join_all(checks).await;
        let delivered_in = delivery.elapsed();
        let mut held = 0;
        for r in &checked {
            match r {
                Ok(_) => held += 1,
                Err(e) => *failures.entry(format!("after opening: {e:#}")).or_default() += 1,
            }
        }
        drop(checked);
        Ok(Measured {
            held,
            failures,
            idle_kib,
            loaded_kib,
            opened_in,
            delivered_in,
            users: users.len(),
        })
    }
}

/// A task.created without recurrence or reminders: the other services reading the topic have
/// nothing to add for it.
fn quiet_task_created(user: &str) -> events::TaskCreatedEvent {
    let mut e = events::sample::task_created(user);
    e.recurrence = None;
    e.reminders.clear();
    e.series_id = None;
    e.occurrence_index = None;
    e
}
