//! Audit ingest rate from a pre-filled topic, on SQLite and on PostgreSQL, beside the rate of
//! Kafka's own `kafka-consumer-perf-test` reading the same topic in the same run, and beside
//! what each database itself takes into the audit table (one server-side `INSERT … SELECT` of
//! as many generated rows of the same size: no client, no Kafka, no decoding).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use events::{Event, EventCodec, EventPublisher, Service, Topic, sample};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use service_kit::config::DatabaseUrl;
use service_kit::testing::{self, Backend};

use crate::report::Figure;

pub struct AuditIngest {
    pub events: usize,
    pub audit_bin: PathBuf,
    pub repo: PathBuf,
}

impl AuditIngest {
    pub async fn run(&self) -> anyhow::Result<Vec<Figure>> {
        let topic = Topic::TaskCreated;
        let partitions = topic.spec().partitions;
        let start = testing::end_offsets(topic.name(), partitions);
        let fill = self.fill().await?;
        let end = testing::end_offsets(topic.name(), partitions);
        let filled: i64 = end.iter().zip(&start).map(|(e, s)| e - s).sum();
        println!(
            "filled {} with {filled} events in {:.1} s ({:.0} events/s)",
            topic,
            fill.as_secs_f64(),
            filled as f64 / fill.as_secs_f64()
        );

        let ceiling = self.kafka_ceiling(topic, filled)?;
        let payload_len = sample::task_created("loadgen")
            .into_any()
            .to_json_string()
            .len();
        let mut figures = Vec::new();
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let rate = self.ingest(backend, &start, filled).await?;
            let database = database_ceiling(backend, filled, payload_len).await?;
            let name = match backend {
                Backend::Sqlite => "audit ingest (SQLite)",
                Backend::Postgres => "audit ingest (PostgreSQL)",
            };
            let load =
                format!("{filled} task.created events, batches of up to 500 per transaction");
            figures.push(Figure::new(
                name,
                "events/s",
                rate,
                "kafka-consumer-perf-test, same topic",
                ceiling,
                load.clone(),
            ));
            figures.push(Figure::new(
                name,
                "events/s",
                rate,
                "INSERT … SELECT into the audit table, same database",
                database,
                format!(
                    "{load}; the ceiling: {filled} generated rows with {payload_len}-byte payloads \
                     in one server-side statement on a fresh database with the service's \
                     migrations (no client, no Kafka, no decoding)"
                ),
            ));
        }
        self.clean_up(topic, &end).await?;
        Ok(figures)
    }

    /// Publish the events (many users, so every partition gets its share).
    async fn fill(&self) -> anyhow::Result<Duration> {
        let codec = Arc::new(EventCodec::connect(
            &service_kit::testing::registry_access(),
        )?);
        let publisher =
            EventPublisher::connect(service_kit::testing::kafka_config(), codec, "loadgen")?;
        let users: Vec<String> = (0..64).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        let started = Instant::now();
        let mut sent = 0;
        while sent < self.events {
            let n = (self.events - sent).min(5_000);
            let batch: Vec<_> = (0..n)
                .map(|i| sample::task_created(&users[(sent + i) % users.len()]))
                .collect();
            let results =
                futures::future::join_all(batch.iter().map(|e| publisher.publish(e, None))).await;
            for r in results {
                r.context("publishing the fill")?;
            }
            sent += n;
        }
        Ok(started.elapsed())
    }

    /// Messages per second Kafka's own consumer reaches on this topic (fetch rate, without the
    /// group join time).
    fn kafka_ceiling(&self, topic: Topic, messages: i64) -> anyhow::Result<f64> {
        let output = Command::new(self.repo.join("scripts/kafka-tool.sh"))
            .arg("org.apache.kafka.tools.ConsumerPerformance")
            .args(["--bootstrap-server", &testing::bootstrap_servers()])
            .args(["--topic", topic.name()])
            .args(["--messages", &messages.to_string()])
            .args(["--group", &testing::unique_group("perf")])
            .args(["--timeout", "120000"])
            .output()
            .context("running kafka-consumer-perf-test from the cached jars")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "kafka-consumer-perf-test failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut lines = stdout.lines().filter(|l| l.contains(','));
        let header: Vec<&str> = lines
            .next()
            .context("no header")?
            .split(',')
            .map(str::trim)
            .collect();
        let values: Vec<&str> = lines
            .next()
            .context("no figures")?
            .split(',')
            .map(str::trim)
            .collect();
        let column = header
            .iter()
            .position(|h| *h == "fetch.nMsg.sec")
            .or_else(|| header.iter().position(|h| *h == "nMsg.sec"))
            .context("no nMsg.sec column")?;
        let rate: f64 = values[column].parse()?;
        println!("kafka-consumer-perf-test: {rate:.0} messages/s");
        Ok(rate)
    }

    /// Run the real audit-service binary on a fresh database, its group positioned at the start
    /// of the fill, and measure from the first to the last stored entry.
    async fn ingest(&self, backend: Backend, start: &[i64], expected: i64) -> anyhow::Result<f64> {
        let db_url = testing::fresh_database(backend);
        let group = testing::unique_group("audit-bench");
        let g = group.clone();
        let start = start.to_vec();
        tokio::task::spawn_blocking(move || position_at_fill(&g, &start)).await??;
        let (_, _, public_key) = testing::token_pair();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let database_url = match &db_url {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{p}"),
            DatabaseUrl::Postgres(u) => u.clone(),
        };
        let mut child = Command::new(&self.audit_bin)
            .env("KAFKA_BOOTSTRAP_SERVERS", testing::bootstrap_servers())
            .env("SCHEMA_REGISTRY_URL", testing::registry_url())
            .env("DATABASE_URL", &database_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("JWT_PUBLIC_KEY", public_key)
            .env("CONSUMER_GROUP", &group)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.audit_bin.display()))?;
        let db = service_kit::db::Database::connect(&db_url, audit_service_migrations())?;
        let bound = Duration::from_secs(120 + expected as u64 / 1_000);
        let deadline = Instant::now() + bound;
        // The probe while the service works reads one end of the primary key, so the
        // measurement does not scan the table it measures (a count, or a min/max of an
        // unindexed column, reads every row of a table growing to 200 MB). The exact figures
        // are read once the highest seq says it is done (seqs are never reused, so the count
        // can only lag it: then the probe goes on).
        let (count, first, last) = loop {
            if db.run(highest_seq).await? >= expected {
                let stats = db.run(bench_stats).await?;
                if stats.0 >= expected {
                    break stats;
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let stored = db.run(bench_stats).await?.0;
                bail!("audit-service stored {stored} of {expected} within {bound:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        let seconds = ((last - first).max(1)) as f64 / 1000.0;
        let rate = count as f64 / seconds;
        println!(
            "audit ingest on {backend:?}: {count} events in {seconds:.2} s = {rate:.0} events/s"
        );
        drop(db);
        crate::services::drop_database(&db_url);
        Ok(rate)
    }

    /// Drop what the fill wrote (Kafka DeleteRecords up to the end of the fill) so later runs
    /// and services do not read it again.
    async fn clean_up(&self, topic: Topic, end: &[i64]) -> anyhow::Result<()> {
        crate::kafka::delete_up_to(topic.name(), end).await
    }
}

/// The fill's partitions from its first offset, every other consumed topic from its end.
fn position_at_fill(group: &str, start: &[i64]) -> anyhow::Result<()> {
    let others: Vec<Topic> = Service::AuditService
        .consumes()
        .iter()
        .copied()
        .filter(|t| *t != Topic::TaskCreated)
        .collect();
    testing::position_group_at_end(group, &others);
    let consumer: BaseConsumer = service_kit::testing::kafka_config()
        .set("group.id", group)
        .create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (p, offset) in start.iter().enumerate() {
        tpl.add_partition_offset(
            Topic::TaskCreated.name(),
            p as i32,
            rdkafka::Offset::Offset(*offset),
        )?;
    }
    consumer.commit(&tpl, CommitMode::Sync)?;
    Ok(())
}

/// Rows per second the database itself takes into the audit table: one `INSERT … SELECT` of
/// `rows` generated rows (64 users, unique ids, payloads of `payload_len` bytes), timed around
/// the statement, on a fresh database with the service's migrations and indexes.
async fn database_ceiling(backend: Backend, rows: i64, payload_len: usize) -> anyhow::Result<f64> {
    use diesel::RunQueryDsl;
    use service_kit::db::DbConnection;
    let db_url = testing::fresh_database(backend);
    let db = service_kit::db::Database::connect(&db_url, audit_service_migrations())?;
    let columns = "event_id, topic, kafka_partition, kafka_offset, message_key, event_type, \
                   user_id, task_id, event_time, recorded_at, schema_id, producer, trace_id, payload";
    let now = events::now_millis();
    let topic = Topic::TaskCreated.name();
    let event_type = audit_service::domain::event_type(Topic::TaskCreated);
    // Event and task ids as the services make them, UUIDv7 (a millisecond timestamp first, so
    // the indexes on them grow at their end): row n's timestamp is `now + n`, the rest random.
    let pg_v7 = format!(
        "lpad(to_hex(({now} + g) >> 16), 8, '0') || '-' || lpad(to_hex(({now} + g) & 65535), 4, '0') \
         || '-7' || substr(gen_random_uuid()::text, 16)"
    );
    let sqlite_v7 = format!(
        "printf('%08x-%04x-7', ({now} + n) >> 16, ({now} + n) & 65535) \
         || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(2))) \
         || '-' || lower(hex(randomblob(6)))"
    );
    let seconds = db
        .run(move |conn| {
            let started = Instant::now();
            match conn {
                DbConnection::Postgresql(c) => diesel::sql_query(format!(
                    "INSERT INTO audit_events ({columns}) SELECT {pg_v7}, \
                     '{topic}', g % 12, g, gen_random_uuid()::text, '{event_type}', \
                     'user-' || (g % 64), {pg_v7}, {now} + g, {now} + g, 4, \
                     'loadgen', md5(g::text), repeat('x', {payload_len}) \
                     FROM generate_series(1, {rows}) g ON CONFLICT (event_id) DO NOTHING"
                ))
                .execute(c)?,
                DbConnection::Sqlite(c) => diesel::sql_query(format!(
                    "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {rows}) \
                     INSERT OR IGNORE INTO audit_events ({columns}) SELECT {sqlite_v7}, \
                     '{topic}', n % 12, n, lower(hex(randomblob(16))), '{event_type}', \
                     'user-' || (n % 64), {sqlite_v7}, {now} + n, {now} + n, 4, \
                     'loadgen', lower(hex(randomblob(16))), replace(hex(zeroblob({payload_len})), '00', 'x') FROM g"
                ))
                .execute(c)?,
            };
            Ok(started.elapsed().as_secs_f64())
        })
        .await?;
    let rate = rows as f64 / seconds;
    println!(
        "database ceiling on {backend:?}: {rows} rows in one INSERT … SELECT in {seconds:.2} s = {rate:.0} rows/s"
    );
    drop(db);
    crate::services::drop_database(&db_url);
    Ok(rate)
}

fn audit_service_migrations() -> service_kit::db::Migrations {
    audit_service::startup::MIGRATIONS
}

/// The highest seq stored (0 on an empty table): one index lookup.
fn highest_seq(conn: &mut service_kit::db::DbConnection) -> Result<i64, service_kit::db::DbError> {
    use audit_service::storage::audit_events::dsl as a;
    use diesel::dsl::max;
    use diesel::prelude::*;
    let highest: Option<i64> = a::audit_events.select(max(a::seq)).first(conn)?;
    Ok(highest.unwrap_or(0))
}

fn bench_stats(
    conn: &mut service_kit::db::DbConnection,
) -> Result<(i64, i64, i64), service_kit::db::DbError> {
    use audit_service::storage::audit_events::dsl as a;
    use diesel::dsl::{count_star, max, min};
    use diesel::prelude::*;
    let (count, first, last): (i64, Option<i64>, Option<i64>) = a::audit_events
        .select((count_star(), min(a::recorded_at), max(a::recorded_at)))
        .first(conn)?;
    Ok((count, first.unwrap_or(0), last.unwrap_or(0)))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
