//! The shared outbox against the real cluster and registry, on SQLite and PostgreSQL: rows leave
//! in order per key and are marked sent once acknowledged; nothing is lost while Kafka is
//! unreachable, nor when a relay's process is killed (SIGKILL) mid-drain; two relays on one
//! PostgreSQL database publish each row once and in order; a row that can never be published is
//! set aside and the rows behind it go on; the monitor's count of set-aside rows reads their index.
//!
//! (A full outage of a running cluster is the reliability suite's scenario 2, which owns the
//! cluster: crates/system-tests/tests/chaos.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use events::{Event, EventCodec, Service, TaskCreatedEvent, Topic};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use service_kit::config::DatabaseUrl;
use service_kit::db::{Database, KIT_ONLY};
use service_kit::metrics::Metrics;
use service_kit::outbox::{self, NewOutboxRow, OutboxMetrics, OutboxRelay, RelaySettings, store};
use service_kit::testing::{self, Backend};

const TOPIC: Topic = Topic::TaskCreated;

async fn database(backend: Backend) -> Database {
    connect(testing::fresh_database(backend)).await
}

async fn connect(url: DatabaseUrl) -> Database {
    tokio::task::spawn_blocking(move || Database::connect(&url, KIT_ONLY))
        .await
        .unwrap()
        .unwrap()
}

fn relay(db: &Database, bootstrap: &str, metrics: &Metrics) -> OutboxRelay {
    relay_of(db, bootstrap, metrics, 100)
}

fn relay_of(db: &Database, bootstrap: &str, metrics: &Metrics, batch_size: i64) -> OutboxRelay {
    relay_keeping(
        db,
        bootstrap,
        metrics,
        batch_size,
        RelaySettings::default().retention,
    )
}

/// A relay that keeps sent rows for `retention` (zero: deletes them once acknowledged).
fn relay_keeping(
    db: &Database,
    bootstrap: &str,
    metrics: &Metrics,
    batch_size: i64,
    retention: Duration,
) -> OutboxRelay {
    let codec = Arc::new(EventCodec::connect(&service_kit::testing::registry_access()).unwrap());
    OutboxRelay::new(
        db.clone(),
        &service_kit::kafka::KafkaAccess {
            bootstrap_servers: bootstrap.to_owned(),
            ..testing::kafka_access()
        },
        codec,
        Service::TaskApi,
        RelaySettings {
            batch_size,
            publish_timeout: Duration::from_secs(10),
            retention,
            ..RelaySettings::default()
        },
        OutboxMetrics::register(metrics, Service::TaskApi),
    )
    .unwrap()
}

/// Like [`write_events`], all in one transaction (many rows, quickly).
async fn write_events_at_once(
    db: &Database,
    users: &[String],
    per_user: usize,
) -> Vec<TaskCreatedEvent> {
    let mut written = Vec::new();
    for i in 0..per_user {
        for user in users {
            let mut e = events::sample::task_created(user);
            e.title = format!("outbox kill test {i}");
            written.push(e);
        }
    }
    let rows: Vec<NewOutboxRow> = written
        .iter()
        .map(|e| NewOutboxRow::of(e, None).unwrap())
        .collect();
    db.transaction(move |conn| store::insert(conn, &rows))
        .await
        .unwrap();
    written
}

async fn rows_sent(db: &Database) -> usize {
    db.run(store::all)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.sent_at.is_some())
        .count()
}

/// `per_user` events for each of `users` users, written in one transaction per event, in an
/// order that interleaves the users (keys).
async fn write_events(db: &Database, users: &[String], per_user: usize) -> Vec<TaskCreatedEvent> {
    let mut written = Vec::new();
    for i in 0..per_user {
        for user in users {
            let mut e = events::sample::task_created(user);
            e.title = format!("outbox test {i}");
            let row = e.clone();
            db.transaction(move |conn| outbox::enqueue(conn, &row, None))
                .await
                .unwrap();
            written.push(e);
        }
    }
    written
}

fn start_marks() -> Vec<i64> {
    testing::end_offsets(TOPIC.name(), TOPIC.spec().partitions)
}

/// The event ids of `wanted` read back from the topic, in topic order per key, once
/// `at_least` of them were read.
async fn read_back(
    from: Vec<i64>,
    wanted: &HashSet<String>,
    at_least: usize,
) -> HashMap<String, Vec<String>> {
    read_back_until(from, wanted, move |ids| ids.count() >= at_least).await
}

/// [`read_back`] until every one of `wanted` was read, however many copies came before.
async fn read_back_all(from: Vec<i64>, wanted: &HashSet<String>) -> HashMap<String, Vec<String>> {
    let n = wanted.len();
    read_back_until(from, wanted, move |ids| {
        ids.collect::<HashSet<String>>().len() >= n
    })
    .await
}

async fn read_back_until(
    from: Vec<i64>,
    wanted: &HashSet<String>,
    enough: impl Fn(&mut dyn Iterator<Item = String>) -> bool + Send + 'static,
) -> HashMap<String, Vec<String>> {
    let codec_wanted = wanted.clone();
    let messages: Vec<OwnedMessage> = tokio::task::spawn_blocking(move || {
        testing::read_until(TOPIC.name(), &from, Duration::from_secs(60), move |seen| {
            let mut ids = seen
                .iter()
                .filter_map(event_id_of)
                .filter(|id| codec_wanted.contains(id));
            enough(&mut ids)
        })
    })
    .await
    .unwrap();
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for m in &messages {
        if let Some(id) = event_id_of(m)
            && wanted.contains(&id)
        {
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            by_key.entry(key).or_default().push(id);
        }
    }
    by_key
}

/// The event id of a message (the Avro body holds it as the first field: a length-prefixed
/// string after the 5-byte header).
fn event_id_of(m: &OwnedMessage) -> Option<String> {
    let payload = m.payload()?;
    let body = payload.get(5..)?;
    // Avro string: zig-zag varint length, then the bytes; a UUID is 36 bytes (length 72 zig-zag).
    (body.first() == Some(&72))
        .then(|| String::from_utf8(body.get(1..37)?.to_vec()).ok())
        .flatten()
}

fn expected_by_key(written: &[TaskCreatedEvent]) -> HashMap<String, Vec<String>> {
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for e in written {
        by_key
            .entry(e.key().to_owned())
            .or_default()
            .push(e.event_id.clone());
    }
    by_key
}

async fn rows_unsent(db: &Database) -> i64 {
    db.run(store::backlog).await.unwrap().rows
}

/// Publish 120 rows of three keys; with a retention the rows stay, marked sent, without one
/// they are gone.
async fn publishes_in_order_per_key_then_keeps_or_deletes(backend: Backend, retention: Duration) {
    let db = database(backend).await;
    let metrics = Metrics::new();
    // Batches of 7: the 120 rows go in 18 batches, each marked once the next one is handed over.
    let relay = relay_keeping(&db, &testing::bootstrap_servers(), &metrics, 7, retention);
    let users: Vec<String> = (0..3).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let marks = start_marks();
    let written = write_events(&db, &users, 40).await;
    assert_eq!(rows_unsent(&db).await, 120);

    let published = relay.drain().await.unwrap();
    assert_eq!(published, 120);
    assert_eq!(rows_unsent(&db).await, 0);
    let (kept, sent) = (
        db.run(store::all).await.unwrap().len(),
        rows_sent(&db).await,
    );
    if retention.is_zero() {
        assert_eq!((kept, sent), (0, 0), "acknowledged rows are deleted");
    } else {
        assert_eq!(
            (kept, sent),
            (120, 120),
            "acknowledged rows are kept, marked sent"
        );
    }

    let ids: HashSet<String> = written.iter().map(|e| e.event_id.clone()).collect();
    let got = read_back(marks, &ids, ids.len()).await;
    assert_eq!(
        got,
        expected_by_key(&written),
        "once each, in order per key"
    );
    assert_eq!(
        testing::metric_sum(
            &metrics.render(),
            "outbox_published_total",
            &["service=\"task-api\""]
        ),
        120.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_leave_in_order_per_key_and_are_marked_sent_on_sqlite() {
    publishes_in_order_per_key_then_keeps_or_deletes(Backend::Sqlite, Duration::from_secs(3600))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_leave_in_order_per_key_and_are_marked_sent_on_postgres() {
    publishes_in_order_per_key_then_keeps_or_deletes(Backend::Postgres, Duration::from_secs(3600))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_retention_rows_leave_in_order_per_key_and_are_deleted_on_sqlite() {
    publishes_in_order_per_key_then_keeps_or_deletes(Backend::Sqlite, Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_retention_rows_leave_in_order_per_key_and_are_deleted_on_postgres() {
    publishes_in_order_per_key_then_keeps_or_deletes(Backend::Postgres, Duration::ZERO).await;
}

async fn nothing_is_lost_while_kafka_is_unreachable(backend: Backend) {
    let db = database(backend).await;
    let users = vec![uuid::Uuid::new_v4().to_string()];
    let marks = start_marks();
    let written = write_events(&db, &users, 20).await;

    // Nothing listens there: the round fails, the rows stay.
    let cut_off = relay(&db, "127.0.0.1:1", &Metrics::new());
    let err = cut_off.round().await.expect_err("no broker acknowledges");
    assert!(err.to_string().contains("not acknowledged"), "{err}");
    assert_eq!(rows_unsent(&db).await, 20);

    // Kafka is back: everything goes, in order.
    let relay = relay(&db, &testing::bootstrap_servers(), &Metrics::new());
    assert_eq!(relay.drain().await.unwrap(), 20);
    let ids: HashSet<String> = written.iter().map(|e| e.event_id.clone()).collect();
    let got = read_back(marks, &ids, ids.len()).await;
    assert_eq!(got, expected_by_key(&written), "{backend:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_while_kafka_is_unreachable_on_sqlite() {
    nothing_is_lost_while_kafka_is_unreachable(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_while_kafka_is_unreachable_on_postgres() {
    nothing_is_lost_while_kafka_is_unreachable(Backend::Postgres).await;
}

/// Environment of the relay process [`relay_process`] runs: the database it drains.
const CHILD_SQLITE: &str = "OUTBOX_TEST_RELAY_SQLITE";
const CHILD_POSTGRES: &str = "OUTBOX_TEST_RELAY_POSTGRES";

/// Not a test of its own: the relay process that
/// `nothing_is_lost_when_the_relay_process_is_killed_mid_drain` starts (this test binary, run
/// again with `--ignored --exact relay_process`) and kills. Small batches: many rounds, so the
/// kill lands between two of them or inside one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the relay process of the SIGKILL test, started by it"]
async fn relay_process() {
    let url = match (std::env::var(CHILD_SQLITE), std::env::var(CHILD_POSTGRES)) {
        (Ok(path), _) => DatabaseUrl::Sqlite(path),
        (_, Ok(url)) => DatabaseUrl::Postgres(url),
        _ => panic!("run by the SIGKILL test, which names the database"),
    };
    let db = connect(url).await;
    let relay = relay_of(&db, &testing::bootstrap_servers(), &Metrics::new(), 25);
    relay.run(service_kit::shutdown::Shutdown::new()).await;
}

/// A relay's process is killed (SIGKILL) while it drains a backlog: rows it had not marked sent
/// stay, and another relay publishes them; every event reaches the topic, in order per key (a
/// row acknowledged but not yet marked may be published again: the same event, which consumers
/// drop by its id).
async fn nothing_is_lost_when_the_relay_process_is_killed_mid_drain(backend: Backend) {
    let url = testing::fresh_database(backend);
    let db = connect(url.clone()).await;
    let users: Vec<String> = (0..4).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let marks = start_marks();
    let written = write_events_at_once(&db, &users, 1000).await;
    let total = written.len();

    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["--ignored", "--exact", "relay_process", "--nocapture"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match &url {
        DatabaseUrl::Sqlite(path) => child.env(CHILD_SQLITE, path),
        DatabaseUrl::Postgres(u) => child.env(CHILD_POSTGRES, u),
    };
    let mut child = child.spawn().unwrap();
    let sent_before_kill = testing::wait_for(
        "the relay process to publish some rows",
        Duration::from_secs(60),
        || async { Some(rows_sent(&db).await).filter(|n| *n > 0) },
    )
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let sent_at_kill = rows_sent(&db).await;
    eprintln!("{backend:?}: relay process killed with {sent_at_kill} of {total} rows marked sent");
    assert!(
        sent_at_kill < total,
        "the relay was killed mid-drain ({sent_before_kill} then {sent_at_kill} of {total} sent)"
    );

    let relay = relay(&db, &testing::bootstrap_servers(), &Metrics::new());
    let rest = relay.drain().await.unwrap();
    assert_eq!(rows_sent(&db).await, total, "{backend:?}");
    assert_eq!(rest, total - sent_at_kill, "{backend:?}");

    let ids: HashSet<String> = written.iter().map(|e| e.event_id.clone()).collect();
    let got = read_back_all(marks, &ids).await;
    // Per key, the first copy of each event in topic order is the written order.
    let expected = expected_by_key(&written);
    assert_eq!(got.len(), expected.len(), "{backend:?}: keys");
    for (key, seen) in got {
        let copies = seen.len();
        let mut once = HashSet::new();
        let firsts: Vec<String> = seen
            .into_iter()
            .filter(|id| once.insert(id.clone()))
            .collect();
        assert!(
            firsts == expected[&key],
            "{backend:?} key {key}: {} events ({copies} messages) read, {} written, in order: {}",
            firsts.len(),
            expected[&key].len(),
            firsts.iter().zip(&expected[&key]).all(|(a, b)| a == b)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_when_the_relay_process_is_killed_mid_drain_on_sqlite() {
    nothing_is_lost_when_the_relay_process_is_killed_mid_drain(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_when_the_relay_process_is_killed_mid_drain_on_postgres() {
    nothing_is_lost_when_the_relay_process_is_killed_mid_drain(Backend::Postgres).await;
}

/// PostgreSQL writers commit concurrently: a row can become visible only after a row with a
/// higher `seq` was read and published. It is published all the same (which is why reads there
/// skip the rows in flight instead of starting after the highest row read).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_that_commits_after_a_later_one_was_published_is_published_too() {
    let db = database(Backend::Postgres).await;
    let marks = start_marks();
    let user = uuid::Uuid::new_v4().to_string();
    let (early, late) = (
        events::sample::task_created(&user),
        events::sample::task_created(&user),
    );

    // The early row's transaction: its row takes the lower seq, then it waits to commit.
    let (inserted_tx, inserted_rx) = tokio::sync::oneshot::channel();
    let (commit_tx, commit_rx) = std::sync::mpsc::channel::<()>();
    let (pool, early_row) = (db.pool().clone(), NewOutboxRow::of(&early, None).unwrap());
    let holder = tokio::task::spawn_blocking(move || {
        use diesel::Connection;
        let mut conn = pool.get().unwrap();
        conn.transaction(|c| {
            store::insert(c, &[early_row])?;
            inserted_tx.send(()).unwrap();
            commit_rx.recv_timeout(Duration::from_secs(60)).unwrap();
            Ok::<_, service_kit::db::DbError>(())
        })
        .unwrap();
    });
    inserted_rx.await.unwrap();
    let late_row = late.clone();
    db.transaction(move |conn| outbox::enqueue(conn, &late_row, None))
        .await
        .unwrap();

    let relay = relay(&db, &testing::bootstrap_servers(), &Metrics::new());
    assert_eq!(
        relay.drain().await.unwrap(),
        1,
        "only the later row is visible"
    );
    commit_tx.send(()).unwrap();
    holder.await.unwrap();
    assert_eq!(
        relay.drain().await.unwrap(),
        1,
        "the earlier row, once committed"
    );
    assert_eq!(rows_unsent(&db).await, 0);

    let ids: HashSet<String> = [&early, &late].iter().map(|e| e.event_id.clone()).collect();
    let got: HashSet<String> = read_back(marks, &ids, 2)
        .await
        .into_values()
        .flatten()
        .collect();
    assert_eq!(got, ids);
}

/// Two instances' relays on one database (PostgreSQL: an advisory lock; SQLite, processes
/// sharing the file: a file lock beside it), each with its own pool as two processes have.
async fn two_relays_on_one_database_publish_each_row_once_in_order(backend: Backend) {
    let url = testing::fresh_database(backend);
    let db = connect(url.clone()).await;
    let other = connect(url).await;
    let users: Vec<String> = (0..4).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let marks = start_marks();
    let written = write_events(&db, &users, 75).await;

    let (a, b) = (
        relay(&db, &testing::bootstrap_servers(), &Metrics::new()),
        relay(&other, &testing::bootstrap_servers(), &Metrics::new()),
    );
    // Both drain at once; the lock makes them take turns.
    let (ra, rb) = tokio::join!(a.drain(), b.drain());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // One may stop early when the other holds the lock: finish what is left.
    let rest = a.drain().await.unwrap();
    assert_eq!(
        ra + rb + rest,
        300,
        "each row published once ({ra} + {rb} + {rest})"
    );
    assert_eq!(rows_unsent(&db).await, 0);

    let ids: HashSet<String> = written.iter().map(|e| e.event_id.clone()).collect();
    let got = read_back(marks, &ids, ids.len()).await;
    assert_eq!(
        got,
        expected_by_key(&written),
        "once each, in order per key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_on_one_postgres_database_publish_each_row_once_in_order() {
    two_relays_on_one_database_publish_each_row_once_in_order(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_on_one_sqlite_file_publish_each_row_once_in_order() {
    two_relays_on_one_database_publish_each_row_once_in_order(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_that_can_never_be_published_is_set_aside_and_the_rest_goes_on() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = database(backend).await;
        let metrics = Metrics::new();
        let users = vec![uuid::Uuid::new_v4().to_string()];
        let marks = start_marks();
        let before = write_events(&db, &users, 3).await;
        // A row no producer could ever publish: its body is not the topic's event.
        let poison = NewOutboxRow {
            event_id: uuid::Uuid::new_v4().to_string(),
            topic: TOPIC.name().to_owned(),
            message_key: users[0].clone(),
            payload: r#"{"eventId": "not a task.created"}"#.to_owned(),
            traceparent: None,
            created_at: events::now_millis(),
        };
        let poison_id = poison.event_id.clone();
        db.transaction(move |conn| store::insert(conn, std::slice::from_ref(&poison)))
            .await
            .unwrap();
        let after = write_events(&db, &users, 3).await;

        let relay = relay(&db, &testing::bootstrap_servers(), &metrics);
        assert_eq!(relay.drain().await.unwrap(), 6, "{backend:?}");
        let rows = db.run(store::all).await.unwrap();
        let set_aside: Vec<_> = rows.iter().filter(|r| r.dead_at.is_some()).collect();
        assert_eq!(set_aside.len(), 1);
        assert_eq!(set_aside[0].event_id, poison_id);
        assert!(set_aside[0].sent_at.is_none());
        assert!(
            set_aside[0]
                .dead_reason
                .as_deref()
                .unwrap()
                .contains("unreadable task.created row"),
            "{:?}",
            set_aside[0].dead_reason
        );
        let backlog = db.run(store::backlog).await.unwrap();
        assert_eq!((backlog.rows, backlog.dead), (0, 1));
        assert_eq!(
            testing::metric_sum(&metrics.render(), "outbox_dead_rows_total", &[]),
            1.0
        );

        let written: Vec<TaskCreatedEvent> = before.into_iter().chain(after).collect();
        let ids: HashSet<String> = written.iter().map(|e| e.event_id.clone()).collect();
        let got = read_back(marks, &ids, ids.len()).await;
        assert_eq!(got, expected_by_key(&written), "{backend:?}");
    }
}

/// One line of a query plan: PostgreSQL's `EXPLAIN`, SQLite's `EXPLAIN QUERY PLAN`.
#[derive(diesel::QueryableByName)]
struct PgPlanLine {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

#[derive(diesel::QueryableByName)]
struct SqlitePlanLine {
    #[diesel(sql_type = diesel::sql_types::Text)]
    detail: String,
}

/// The monitor counts the rows set aside every second: that count reads an index of them, not
/// the whole table (sent rows are kept for a day, so the table can be large).
#[tokio::test]
async fn the_count_of_rows_set_aside_reads_their_index_not_the_table() {
    use diesel::RunQueryDsl;
    use service_kit::db::DbConnection;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = database(backend).await;
        let plan = db
            .run(|conn| {
                // 20,000 sent rows, two set aside.
                let plan = match conn {
                    DbConnection::Postgresql(c) => {
                        diesel::sql_query(
                            "INSERT INTO event_outbox (event_id, topic, message_key, payload, \
                             created_at, sent_at, dead_at) SELECT 'e' || g, 'task.created', 'k', \
                             '{}', g, g, CASE WHEN g % 10000 = 0 THEN g END \
                             FROM generate_series(1, 20000) g",
                        )
                        .execute(c)?;
                        diesel::sql_query("ANALYZE event_outbox").execute(c)?;
                        // The monitor's own statement (it binds nothing).
                        let count =
                            diesel::debug_query::<diesel::pg::Pg, _>(&store::count_set_aside())
                                .to_string();
                        diesel::sql_query(format!("EXPLAIN {count}"))
                            .load::<PgPlanLine>(c)?
                            .into_iter()
                            .map(|l| l.line)
                            .collect::<Vec<_>>()
                    }
                    DbConnection::Sqlite(c) => {
                        diesel::sql_query(
                            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g \
                             WHERE n < 20000) INSERT INTO event_outbox (event_id, topic, \
                             message_key, payload, created_at, sent_at, dead_at) SELECT 'e' || n, \
                             'task.created', 'k', '{}', n, n, CASE WHEN n % 10000 = 0 THEN n END \
                             FROM g",
                        )
                        .execute(c)?;
                        let count = diesel::debug_query::<diesel::sqlite::Sqlite, _>(
                            &store::count_set_aside(),
                        )
                        .to_string();
                        diesel::sql_query(format!("EXPLAIN QUERY PLAN {count}"))
                            .load::<SqlitePlanLine>(c)?
                            .into_iter()
                            .map(|l| l.detail)
                            .collect::<Vec<_>>()
                    }
                };
                Ok(plan.join("\n"))
            })
            .await
            .unwrap();
        assert!(
            plan.contains("event_outbox_dead") && !plan.contains("Seq Scan"),
            "{backend:?}: {plan}"
        );
        let backlog = db.run(store::backlog).await.unwrap();
        assert_eq!((backlog.rows, backlog.dead), (0, 2), "{backend:?}");
    }
}
