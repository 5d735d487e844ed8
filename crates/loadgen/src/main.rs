//! `loadgen`: benchmarks of the task platform against the real cluster, and their report.

mod audit;
mod report;

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
    /// Write bench/report.md and bench/report.json from this run's figures.
    Report {
        /// name=version pairs to print in the report.
        #[arg(long = "version")]
        versions: Vec<String>,
    },
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let repo = audit::repo_root();
    match Cli::parse().command {
        Command::AuditIngest { events, audit_bin } => {
            let figures = audit::AuditIngest {
                events,
                audit_bin,
                repo: repo.clone(),
            }
            .run()
            .await?;
            report::record(&repo, &figures)
        }
        Command::Report { versions } => {
            let versions = versions
                .iter()
                .filter_map(|v| v.split_once('='))
                .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
                .collect::<serde_json::Map<_, _>>();
            report::write(&repo, serde_json::Value::Object(versions))
        }
    }
}
