//! `loadgen`: the benchmarks of the task platform against the real cluster, registry, databases
//! and SMTP sink, and their one report. `make bench` (scripts/bench.sh) runs them all with
//! release builds; each can also run on its own.
//!
//! Every figure is recorded beside a ceiling or floor measured in the same run on the same
//! machine, with the ratio (`bench/out/figures.jsonl`, then `loadgen report`):
//!
//! | subcommand | measures | beside |
//! |---|---|---|
//! | `ws-latency [--creates 600] [--rate 20]` | REST 201 → WebSocket message p50/p99 at a steady rate (task-api on SQLite and ws-gateway in-process) | Kafka's `EndToEndLatency` (acks=all, 3 replicas), run once here and kept in `bench/out` for the others |
//! | `create-tasks [--seconds 10] [--concurrency 16]` | `POST /api/tasks` throughput and p50/p99 on SQLite and on PostgreSQL; 201 → event readable on Kafka p50/p99 | `GET /healthz` of the same server (same load); a raw insert+commit loop on the same pool; Kafka's end-to-end latency |
//! | `create-tasks --whole-system <bin dir> [--baseline <bin dir> --baseline-name <name> --baseline-schemas <dir>]` | the same with all five services running as release binaries, plus busy cores (creates per busy core) and the consumers' catch-up time | the same ceilings; with `--baseline`, an earlier commit's binaries measured the same way in the same run |
//! | `reminders [--reminders 10000] [--spread-ms 60000] [--burst 10000]` | lateness remind-at → reminder.triggered p50/p99/max; mail delivery throughput to Mailpit (burst phase) | Kafka's end-to-end latency; lettre sending as many mails straight to the same Mailpit at the same concurrency |
//! | `ws-connections --gateway-bin <path> [--connections 10000]` | concurrent connections the gateway binary holds (each then gets its user's event); gateway memory per connection | the 10,000 target; the idle gateway's own RSS |
//! | `audit-ingest --audit-bin <path> [--events 200000]` | audit-service ingest rate on SQLite and PostgreSQL | `kafka-consumer-perf-test` on the same topic; one server-side `INSERT … SELECT` of as many rows into the audit table, same database |
//! | `report [--version name=x]` | writes `bench/report.md` and `bench/report.json` from the run's figures | |
//!
//! Each benchmark is bounded in time and cleans up after itself: fresh databases are dropped,
//! in-process services and child processes stopped, the records it wrote to Kafka deleted
//! (DeleteRecords up to the end of each topic it grew: run it alone, never beside `make dev`'s
//! services), and the reminders benchmark's mails deleted from Mailpit.
//!
//! The in-process services log only when `RUST_LOG` is set (`make bench` sets `warn`).

mod audit;
mod baseline_schemas;
mod create_tasks;
mod kafka;
mod reminders;
mod report;
mod services;
mod stats;
mod whole_system;
mod ws_client;
mod ws_connections;
mod ws_latency;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Audit ingest rate from a pre-filled topic (SQLite and PostgreSQL) vs Kafka's own consumer.
    AuditIngest {
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// The audit-service binary to measure (a release build).
        #[arg(long)]
        audit_bin: PathBuf,
    },
    /// Create-task throughput and p50/p99 (SQLite, PostgreSQL) vs GET /healthz and a raw
    /// insert+commit loop; 201 → on Kafka vs Kafka's end-to-end latency.
    CreateTasks {
        /// Length of each of the three runs per database.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent clients (and insert workers of the database ceiling).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Run the four other services (release binaries in this directory) beside task-api,
        /// consuming what it publishes.
        #[arg(long)]
        whole_system: Option<PathBuf>,
        /// An earlier commit's release binaries, measured the same way beside these, alternating
        /// on each database (needs --whole-system).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// How the report names the baseline (e.g. "main at bfcef9f").
        #[arg(long, default_value = "the baseline")]
        baseline_name: String,
        /// The baseline's schemas/ directory: registered before its services start (this
        /// commit's newer schemas are in the registry, whose rules refuse an older one after
        /// them) and deleted after the run.
        #[arg(long, requires = "baseline")]
        baseline_schemas: Option<PathBuf>,
        /// Measure on this database only (both when not given).
        #[arg(long, value_enum)]
        only: Option<create_tasks::OnlyDatabase>,
    },
    /// REST 201 → WebSocket message p50/p99 vs Kafka's EndToEndLatency (measured here for the run).
    WsLatency {
        #[arg(long, default_value_t = 600)]
        creates: usize,
        /// Creates per second.
        #[arg(long, default_value_t = 20)]
        rate: usize,
    },
    /// Concurrent WebSocket connections the gateway binary holds, and its memory per connection.
    WsConnections {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// The ws-gateway binary to measure (a release build).
        #[arg(long)]
        gateway_bin: PathBuf,
    },
    /// Reminders due within one minute: lateness vs Kafka's end-to-end latency; mail delivery
    /// throughput vs lettre straight to the same SMTP server.
    Reminders {
        /// Reminders of the lateness phase.
        #[arg(long, default_value_t = 10_000)]
        reminders: usize,
        /// Their remind-at times spread uniformly over this many ms.
        #[arg(long, default_value_t = 60_000)]
        spread_ms: i64,
        /// Reminders of the throughput phase, all due within one second (0 skips the phase).
        #[arg(long, default_value_t = 10_000)]
        burst: usize,
        /// Time from publishing a phase's tasks to its first reminder being due.
        #[arg(long, default_value_t = 45_000)]
        lead_ms: i64,
        /// The service's delivery concurrency, and the ceiling's.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, env = "TEST_SMTP_URL", default_value = "smtp://127.0.0.1:1025")]
        smtp_url: String,
        #[arg(
            long,
            env = "TEST_MAILPIT_API",
            default_value = "http://127.0.0.1:8025/api/v1"
        )]
        mailpit_api: String,
    },
    /// Write bench/report.md and bench/report.json from this run's figures.
    Report {
        /// name=version pairs to print in the report.
        #[arg(long = "version")]
        versions: Vec<String>,
    },
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    // The in-process services log (JSON on stdout) only when asked to, e.g. RUST_LOG=warn.
    if std::env::var_os("RUST_LOG").is_some() {
        service_kit::telemetry::init("loadgen");
    }
    let repo = audit::repo_root();
    let figures = match Cli::parse().command {
        Command::AuditIngest { events, audit_bin } => {
            audit::AuditIngest {
                events,
                audit_bin,
                repo: repo.clone(),
            }
            .run()
            .await?
        }
        Command::CreateTasks {
            seconds,
            concurrency,
            whole_system,
            baseline,
            baseline_name,
            baseline_schemas,
            only,
        } => {
            create_tasks::CreateTasks {
                seconds,
                concurrency,
                only,
                repo: repo.clone(),
                whole_system,
                baseline: baseline.map(|bin_dir| create_tasks::Baseline {
                    bin_dir,
                    name: baseline_name,
                    schemas: baseline_schemas,
                }),
            }
            .run()
            .await?
        }
        Command::WsLatency { creates, rate } => {
            ws_latency::WsLatency {
                creates,
                rate,
                repo: repo.clone(),
            }
            .run()
            .await?
        }
        Command::WsConnections {
            connections,
            gateway_bin,
        } => {
            ws_connections::WsConnections {
                target: connections,
                gateway_bin,
            }
            .run()
            .await?
        }
        Command::Reminders {
            reminders,
            spread_ms,
            burst,
            lead_ms,
            concurrency,
            smtp_url,
            mailpit_api,
        } => {
            reminders::Reminders {
                count: reminders,
                spread_ms,
                burst,
                lead_ms,
                concurrency,
                smtp_url,
                mailpit_api,
                repo: repo.clone(),
            }
            .run()
            .await?
        }
        Command::Report { versions } => {
            let versions = versions
                .iter()
                .filter_map(|v| v.split_once('='))
                .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
                .collect::<serde_json::Map<_, _>>();
            return report::write(&repo, serde_json::Value::Object(versions));
        }
    };
    report::record(&repo, &figures)
}
