//! End-to-end latency from the REST 201 of `POST /api/tasks` (a real task-api: database, outbox
//! relay, Kafka) to the `task_created` message arriving on a WebSocket of the gateway, at a
//! steady rate, beside Kafka's own end-to-end latency on the same cluster in the same run
//! (`org.apache.kafka.tools.EndToEndLatency`, acks=all, three replicas): the floor. This
//! benchmark takes the Kafka measurement that the others of the run compare with.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use service_kit::testing::Backend;

use crate::kafka::{EndToEnd, TopicMarks};
use crate::report::Figure;
use crate::services;
use crate::stats::Latencies;
use crate::ws_client;

pub struct WsLatency {
    pub creates: usize,
    pub rate: usize,
    pub repo: PathBuf,
}

struct Measured {
    latencies: Latencies,
    /// Messages that arrived before the client had read the 201 of their request.
    before_the_201: usize,
}

impl WsLatency {
    pub async fn run(&self) -> anyhow::Result<Vec<Figure>> {
        let marks = TopicMarks::take().await?;
        let measured = self.with_services().await;
        let floor = tokio::task::spawn_blocking({
            // At least 1,000 messages, so the tool's own warm-up weighs little in its p99.
            let (repo, n) = (self.repo.clone(), self.creates.max(1_000));
            move || EndToEnd::measure(&repo, n)
        })
        .await
        .unwrap_or_else(|e| Err(e.into()));
        marks.delete_written().await?;
        let (m, floor) = (measured?, floor?);
        let notes = format!(
            "{} creates at {}/s, one user, one connection; task-api on SQLite and ws-gateway in-process; max {:.1} ms; {} messages arrived before the 201 was read; a floor: lower is better",
            self.creates,
            self.rate,
            m.latencies.max(),
            m.before_the_201
        );
        println!(
            "REST 201 -> WebSocket message: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            m.latencies.quantile(0.5),
            m.latencies.quantile(0.99),
            m.latencies.max()
        );
        Ok(vec![
            Figure::new(
                "REST 201 → WebSocket message p50",
                "ms",
                m.latencies.quantile(0.5),
                &format!("{} p50", EndToEnd::REFERENCE),
                floor.p50_ms,
                notes.clone(),
            ),
            Figure::new(
                "REST 201 → WebSocket message p99",
                "ms",
                m.latencies.quantile(0.99),
                &format!("{} p99", EndToEnd::REFERENCE),
                floor.p99_ms,
                notes,
            ),
        ])
    }

    /// Gateway and task-api in this process, a fresh SQLite database dropped at the end.
    async fn with_services(&self) -> anyhow::Result<Measured> {
        let keys = services::key_pair()?;
        let gateway = services::start_gateway(0, &keys.1).await?;
        let started = services::start_task_api(Backend::Sqlite, 0, &keys, gateway.port).await;
        let (api, db, url) = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = gateway.stop().await;
                return Err(e);
            }
        };
        let measured = self.measure(&api.base_url(), gateway.port).await;
        let api_stopped = api.stop().await;
        let gateway_stopped = gateway.stop().await;
        drop(db);
        services::drop_database(&url);
        let measured = measured?;
        api_stopped?;
        gateway_stopped?;
        Ok(measured)
    }

    async fn measure(&self, base: &str, gateway_port: u16) -> anyhow::Result<Measured> {
        let http = reqwest::Client::new();
        let user = services::register_and_login(&http, base).await?;
        let mut ws = ws_client::connect(gateway_port, &user.token, false).await?;

        // Warm-up: the first event also waits for the gateway's consumer group to be assigned.
        let (warm_id, _) = services::create_task(&http, base, &user.token, "warm-up").await?;
        loop {
            let m = ws_client::next_json(&mut ws, Duration::from_secs(60)).await?;
            if m["data"]["id"] == warm_id.as_str() {
                break;
            }
        }

        let creates = self.creates;
        let reader = tokio::spawn(async move {
            let mut arrivals = HashMap::with_capacity(creates);
            while arrivals.len() < creates {
                let m = ws_client::next_json(&mut ws, Duration::from_secs(60)).await?;
                let at = Instant::now();
                if m["type"] == "task_created"
                    && let Some(id) = m["data"]["id"].as_str()
                {
                    arrivals.insert(id.to_owned(), at);
                }
            }
            anyhow::Ok(arrivals)
        });
        let mut tick =
            tokio::time::interval(Duration::from_secs_f64(1.0 / self.rate.max(1) as f64));
        let mut requests = Vec::with_capacity(self.creates);
        for i in 0..self.creates {
            tick.tick().await;
            let (http, base, token) = (http.clone(), base.to_owned(), user.token.clone());
            requests.push(tokio::spawn(async move {
                services::create_task(&http, &base, &token, &format!("loadgen task {i}")).await
            }));
        }
        let mut answered = Vec::with_capacity(self.creates);
        for r in requests {
            answered.push(r.await.context("a create request panicked")??);
        }
        let arrivals = reader.await.context("the WebSocket reader panicked")??;
        let mut before_the_201 = 0;
        let mut ms = Vec::with_capacity(answered.len());
        for (id, answered_at) in &answered {
            let Some(arrived) = arrivals.get(id) else {
                bail!("task {id} never arrived on the WebSocket");
            };
            if arrived < answered_at {
                before_the_201 += 1;
            }
            ms.push(
                arrived
                    .saturating_duration_since(*answered_at)
                    .as_secs_f64()
                    * 1000.0,
            );
        }
        Ok(Measured {
            latencies: Latencies::new(ms),
            before_the_201,
        })
    }
}
