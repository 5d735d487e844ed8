//! `todoctl`: creates the topics and registers the schemas of the catalogue, and shows what the
//! cluster and the registry hold (every such command is idempotent). Also the command-line
//! client of the API ([`cli`]: `login`, `tasks`) and the MCP tools over stdio ([`mcp`]).

mod cli;
mod dlq;
mod mcp;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use events::admin::{DesiredTopic, Ensured, TopicAdmin};
use events::registry::RegistryAdmin;
use events::{DeadLetterTopic, Topic};
use service_kit::kafka::KafkaAccess;

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
    )]
    bootstrap_servers: String,
    /// Base URL of the registry's Confluent-compatible API.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081/apis/ccompat/v7"
    )]
    schema_registry_url: String,
    /// Base URL of task-api (login, tasks, mcp); default the one logged in to, else
    /// http://127.0.0.1:8000.
    #[arg(long, env = "TODO_API_URL", global = true)]
    api_url: Option<String>,
    /// How login and tasks print their answers.
    #[arg(long, value_enum, default_value = "table", global = true)]
    output: cli::Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the topics (and dead-letter topics) and register the schemas.
    Setup,
    /// Create missing topics and repair drifted settings.
    Topics,
    /// Register every schema under `<topic>-value` with compatibility BACKWARD.
    Schemas,
    /// Print brokers, topics with their configs, and subjects; fails when something differs
    /// from the catalogue.
    Status,
    /// Give each service's consumer group a starting position at the current end of its topics,
    /// unless the group already has committed offsets: a fresh local environment then starts
    /// from now instead of replaying whatever earlier test runs left on the shared topics.
    StartGroupsAtEnd {
        /// Move groups that have committed offsets too (`make dev` after a test run: what the
        /// tests wrote since is not this environment's to act on).
        #[arg(long)]
        even_committed: bool,
        /// Services (default: all five), by name.
        services: Vec<String>,
    },
    /// Republish what a dead-letter topic holds to the topic it came from, after the cause was
    /// fixed. Consumers deduplicate by event id, so replaying to every consumer of the source
    /// topic is safe. Progress is kept in the consumer group `todoctl-replay.<dlq topic>`, so a
    /// second run replays only what arrived since.
    DlqReplay {
        /// The dead-letter topic, e.g. task.completed.dlq.audit-service.
        topic: String,
        /// Only list what would be replayed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the catalogue as tab-separated values (name, partitions, retention.ms, key field,
    /// value type), for scripts and manifests.
    Catalogue {
        /// Include the dead-letter topics.
        #[arg(long)]
        dead_letters: bool,
    },
    /// Print the Kafka ACLs each service's user needs (least privilege, from the catalogue), one
    /// per line: `<service> <topic|group> <literal|prefixed> <name> <read|write>`.
    Acls {
        /// Services (default: all five), by name.
        services: Vec<String>,
    },
    /// Log in to task-api and keep the token in your config folder (mode 0600).
    Login(cli::LoginArgs),
    /// Your tasks: add, ls, done, reopen, rm, show, share, unshare, shares, assign.
    #[command(subcommand)]
    Tasks(Box<cli::TasksCommand>),
    /// The task tools for an assistant over stdio (MCP), relayed to task-api's /mcp with your
    /// token (TODO_TOKEN, else the one `todoctl login` kept).
    Mcp,
    /// Print shell completions, e.g. `todoctl completions bash > ~/.local/share/bash-completion/completions/todoctl`.
    Completions { shell: clap_complete::Shell },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Setup => {
            topics(&cli.bootstrap_servers).await?;
            schemas(&cli.schema_registry_url).await
        }
        Command::Topics => topics(&cli.bootstrap_servers).await,
        Command::Schemas => schemas(&cli.schema_registry_url).await,
        Command::Status => status(&cli.bootstrap_servers, &cli.schema_registry_url).await,
        Command::DlqReplay { topic, dry_run } => {
            dlq::replay(&kafka(&cli.bootstrap_servers)?, &topic, dry_run).await
        }
        Command::StartGroupsAtEnd {
            even_committed,
            services,
        } => start_groups_at_end(&cli.bootstrap_servers, &services, even_committed),
        Command::Acls { services } => {
            for service in services_named(&services)? {
                for acl in service.acls() {
                    println!("{} {acl}", service.name());
                }
            }
            Ok(())
        }
        Command::Catalogue { dead_letters } => {
            catalogue(dead_letters);
            Ok(())
        }
        Command::Login(args) => {
            cli::exit_on_error(cli::login(cli.api_url.as_deref(), args, cli.output).await);
            Ok(())
        }
        Command::Tasks(command) => {
            cli::exit_on_error(cli::tasks(cli.api_url.as_deref(), *command, cli.output).await);
            Ok(())
        }
        Command::Mcp => {
            cli::exit_on_error(mcp::serve(cli.api_url.as_deref()).await);
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "todoctl",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// The brokers of `--bootstrap-servers` with the security settings of the environment
/// (`service_kit::kafka`); a bad setting is the one line naming it.
fn kafka(bootstrap: &str) -> Result<KafkaAccess> {
    KafkaAccess::from_env_with_bootstrap(bootstrap)
        .map_err(|e| anyhow::anyhow!("configuration error: {e}"))
}

fn registry(url: &str) -> Result<RegistryAdmin> {
    let access = service_kit::kafka::registry_from_env_with_url(url)
        .map_err(|e| anyhow::anyhow!("configuration error: {e}"))?;
    Ok(RegistryAdmin::connect(&access)?)
}

async fn topics(bootstrap: &str) -> Result<()> {
    let admin = TopicAdmin::connect(&kafka(bootstrap)?.client_config_for("todoctl"))
        .context("KAFKA_BOOTSTRAP_SERVERS")?;
    let outcome = admin.ensure(&DesiredTopic::everything()).await?;
    let count = |what| outcome.iter().filter(|(_, e)| *e == what).count();
    println!(
        "topics: {} created, {} repaired, {} already right",
        count(Ensured::Created),
        count(Ensured::Repaired),
        count(Ensured::Unchanged)
    );
    Ok(())
}

async fn schemas(registry_url: &str) -> Result<()> {
    let registry = registry(registry_url)?;
    for (topic, id) in registry
        .register_catalogue()
        .await
        .context("registering schemas")?
    {
        println!("schema {:<28} id {id}", topic.subject());
    }
    Ok(())
}

async fn status(bootstrap: &str, registry_url: &str) -> Result<()> {
    let admin = TopicAdmin::connect(&kafka(bootstrap)?.client_config_for("todoctl"))?;
    let brokers = admin.brokers().await?;
    println!("brokers ({}):", brokers.len());
    for b in &brokers {
        println!("  {} {}:{}", b.id, b.host, b.port);
    }
    let desired = DesiredTopic::everything();
    let names: Vec<&str> = desired.iter().map(|d| d.name.as_str()).collect();
    let states = admin.describe(&names).await?;
    let mut problems = Vec::new();
    println!("topics ({}):", states.len());
    for (d, s) in desired.iter().zip(&states) {
        let configs: Vec<String> = s.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "  {:<44} partitions={} rf={} isr>={} {}",
            s.name,
            s.partitions,
            s.replication_factor,
            s.min_isr_seen,
            configs.join(" ")
        );
        if s.partitions != d.partitions
            || s.replication_factor != d.replication_factor
            || s.configs != d.configs
        {
            problems.push(format!("{} differs from the catalogue", s.name));
        }
    }
    let registry = registry(registry_url)?;
    let subjects = registry.subjects().await.context("listing subjects")?;
    println!("subjects ({}):", subjects.len());
    for topic in Topic::ALL {
        let subject = topic.subject();
        if subjects.contains(&subject) {
            let versions = registry.versions(&subject).await?;
            let compat = registry.compatibility(Some(&subject)).await?;
            println!("  {subject:<28} versions={versions:?} compatibility={compat}");
        } else {
            problems.push(format!("subject {subject} is missing"));
        }
    }
    if brokers.len() != 3 {
        problems.push(format!("{} brokers, expected 3", brokers.len()));
    }
    if !problems.is_empty() {
        bail!(
            "cluster differs from the catalogue:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// The services named (all five when none is).
fn services_named(names: &[String]) -> Result<Vec<events::Service>> {
    use events::Service;
    if names.is_empty() {
        return Ok(Service::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            Service::ALL
                .into_iter()
                .find(|s| s.name() == n)
                .with_context(|| format!("unknown service {n}"))
        })
        .collect()
}

fn start_groups_at_end(bootstrap: &str, names: &[String], even_committed: bool) -> Result<()> {
    use events::Service;
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use std::time::Duration;
    let services = services_named(names)?;
    let timeout = Duration::from_secs(10);
    let kafka = kafka(bootstrap)?;
    for service in services {
        // The gateway's instances each use a group of their own, positioned at the end already.
        if service == Service::WsGateway {
            continue;
        }
        let consumer: BaseConsumer = kafka
            .client_config_for("todoctl")
            .set("group.id", service.name())
            .create()?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        for topic in service.consumes() {
            for p in 0..topic.spec().partitions {
                tpl.add_partition(topic.name(), p);
            }
        }
        let committed = consumer.committed_offsets(tpl, timeout)?;
        if !even_committed
            && committed
                .elements()
                .iter()
                .any(|e| e.offset().to_raw().is_some_and(|o| o >= 0))
        {
            println!("{}: has committed offsets, left alone", service.name());
            continue;
        }
        let mut at_end = rdkafka::TopicPartitionList::new();
        for topic in service.consumes() {
            for p in 0..topic.spec().partitions {
                let (_, high) = consumer.fetch_watermarks(topic.name(), p, timeout)?;
                at_end.add_partition_offset(topic.name(), p, rdkafka::Offset::Offset(high))?;
            }
        }
        consumer.commit(&at_end, CommitMode::Sync)?;
        println!("{}: starts at the end of its topics", service.name());
    }
    Ok(())
}

fn catalogue(dead_letters: bool) {
    for topic in Topic::ALL {
        let spec = topic.spec();
        println!(
            "{}\t{}\t{}\t{}\t{}",
            spec.name,
            spec.partitions,
            topic.retention_ms(),
            spec.key_field,
            spec.value_type
        );
    }
    if dead_letters {
        for dlq in DeadLetterTopic::all() {
            println!(
                "{}\t{}\t{}\t{}\t-",
                dlq.name(),
                dlq.partitions(),
                events::catalogue::DLQ_RETENTION.as_millis(),
                dlq.source.spec().key_field
            );
        }
    }
}
