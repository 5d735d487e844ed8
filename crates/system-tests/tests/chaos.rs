//! The reliability suite (`make chaos` for the long mode): steady load through the running
//! system, a fault, healing, then the ledger: every request the API accepted has all its
//! effects (one event per change, one audit entry per event, each reminder fired and mailed
//! once, each assignment mailed once, each next occurrence created once, every message its
//! user may see on each live WebSocket), and nothing appears twice.
//!
//! Every service runs as two instances, as deployed: task-api's two behind one round-robin
//! port, notification-, recurring-task- and audit-service two each in one consumer group on one
//! database, ws-gateway two each in its own group with the users' WebSockets spread over both.
//!
//! Quick mode (default, in `make test`): short load, each fault once, short outages.
//! Long mode (`CHAOS_MODE=long`): longer load, 60 s outages, ten kills per service.
//! Scenarios run one at a time: they break shared infrastructure.

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use events::{Service, Topic};
use service_kit::testing::{self, Backend};
use system_tests::load::{Ledger, user_loop};
use system_tests::verify::{self, AfterGatewayLoss, Marks};
use system_tests::{LiveView, Svc, System, UserClient, faults};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn long_mode() -> bool {
    std::env::var("CHAOS_MODE").is_ok_and(|m| m == "long")
}

/// Quick or long duration.
fn pick(quick: u64, long: u64) -> Duration {
    Duration::from_secs(if long_mode() { long } else { quick })
}

const USERS: usize = 3;
const REMINDER_IN: Duration = Duration::from_secs(4);

/// Processes of every service.
const INSTANCES: usize = 2;

/// What a WebSocket whose gateway was killed gets from another instance: its cursor is a Kafka
/// position every instance serves (from its buffer, or read back from Kafka when it started
/// since), so no resync, nothing missed, nothing twice.
const AFTER_GATEWAY_KILLED: AfterGatewayLoss = AfterGatewayLoss::ResumeRequired;

async fn start_system(backend: Backend) -> System {
    System::start_scaled(backend, INSTANCES).await
}

/// Load running in the background while a fault happens.
struct Load {
    users: Vec<UserClient>,
    views: Vec<LiveView>,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    marks: Marks,
}

impl Load {
    async fn start(system: &System) -> Self {
        let marks = tokio::task::spawn_blocking(Marks::now).await.unwrap();
        let mut users = Vec::new();
        let mut views = Vec::new();
        let gateways = system.ws_urls();
        for i in 0..USERS {
            let user = UserClient::register(system, &format!("chaos{i}")).await;
            // Spread over the gateway instances.
            views.push(LiveView::open(gateways.clone(), i % gateways.len(), user.clone()).await);
            users.push(user);
        }
        let ledger = Arc::new(Ledger::default());
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                tokio::spawn(user_loop(
                    u.clone(),
                    users[(i + 1) % USERS].clone(),
                    ledger.clone(),
                    stop.clone(),
                    REMINDER_IN,
                ))
            })
            .collect();
        Self {
            users,
            views,
            ledger,
            stop,
            tasks,
            marks,
        }
    }

    async fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// Wait until the ledger holds (bounded); print what was checked and how long recovery took.
    async fn verify(
        &mut self,
        scenario: &str,
        healed_at: Instant,
        after_loss: AfterGatewayLoss,
    ) -> verify::Counts {
        self.stop().await;
        let views: Vec<&LiveView> = self.views.iter().collect();
        let deadline = Instant::now() + Duration::from_secs(180);
        let counts = loop {
            match verify::check(&self.ledger, &self.users, &self.marks, &views, after_loss).await {
                Ok(counts) => break counts,
                Err(problems) if Instant::now() > deadline => {
                    panic!(
                        "{scenario}: the ledger does not hold after 180 s:\n  {}",
                        problems.join("\n  ")
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
            }
        };
        assert!(counts.accepted > 0, "{scenario}: the load did nothing");
        if after_loss == AfterGatewayLoss::NotExpected {
            // No process was killed: nothing can have interrupted a delivery after SMTP.
            assert_eq!(
                counts.mail_copies, 0,
                "{scenario}: a mail went out twice though no service was killed"
            );
        }
        println!(
            "[chaos] {scenario}: recovered {:.1} s after healing; accepted {} requests (refused {}), {} events ({} redelivered copies), \
             {} next occurrences, {} reminders, {} emails ({} sent again after a crash), {} audit entries, {} WebSocket messages (connections closed: {:?}; \
             {} reconnections to the other gateway, {} resyncs, {} missed messages shown by the reload after the resync, {} only by a later one, \
             {} received again after a resync)",
            healed_at.elapsed().as_secs_f64(),
            counts.accepted,
            self.ledger.refused_count(),
            counts.events,
            counts.redelivered_copies,
            counts.next_occurrences,
            counts.reminders,
            counts.emails,
            counts.mail_copies,
            counts.audit_entries,
            counts.ws_messages,
            counts.ws_closed,
            counts.ws_reconnects,
            counts.ws_resyncs,
            counts.ws_covered_by_reload,
            counts.ws_shown_by_a_later_reload,
            counts.ws_again_after_resync,
        );
        counts
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_1_one_broker_killed_under_load_loses_and_duplicates_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let system = start_system(Backend::Sqlite).await;
    let mut load = Load::start(&system).await;
    tokio::time::sleep(pick(3, 20)).await;
    tokio::task::spawn_blocking(|| faults::kill_broker(2))
        .await
        .unwrap();
    tokio::time::sleep(pick(6, 60)).await;
    tokio::task::spawn_blocking(|| faults::start_broker(2))
        .await
        .unwrap();
    let healed = Instant::now();
    tokio::time::sleep(pick(2, 20)).await;
    let counts = load
        .verify("one broker killed", healed, AfterGatewayLoss::NotExpected)
        .await;
    // acks=all with min.insync.replicas=2 and idempotent producers: nothing lost (checked
    // above). A relay whose send timed out during the failover sends the row again, so a second
    // copy of an event (same event id) can reach a topic; consumers apply it once, which the
    // ledger checked. Report them rather than pretend they cannot happen.
    println!(
        "[chaos] one broker killed: copies on topics by event id: {:?}",
        counts.copies_by_topic
    );
    faults::wait_cluster_whole(Duration::from_secs(120)).await;
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_2_all_brokers_down_the_api_keeps_accepting_and_the_outbox_drains() {
    let _one = ONE_AT_A_TIME.lock().await;
    let system = start_system(Backend::Sqlite).await;
    let mut load = Load::start(&system).await;
    tokio::time::sleep(pick(3, 20)).await;
    tokio::task::spawn_blocking(|| {
        for id in 1..=3 {
            faults::kill_broker(id);
        }
    })
    .await
    .unwrap();
    let before = load.ledger.entries().len();
    tokio::time::sleep(pick(15, 60)).await;
    let during = load.ledger.entries().len() - before;
    assert!(
        during > 0,
        "the API accepted no writes while Kafka was down"
    );
    let backlog = testing::metric_sum(
        &reqwest::get(format!("{}/metrics", system.url(Svc::TaskApi)))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "outbox_backlog_rows",
        &[],
    );
    assert!(
        backlog > 0.0,
        "the outbox holds the writes made while Kafka was down"
    );
    println!(
        "[chaos] all brokers down: {during} requests accepted during the outage, outbox backlog {backlog}"
    );
    tokio::task::spawn_blocking(faults::start_brokers)
        .await
        .unwrap();
    let healed = Instant::now();
    load.verify("all brokers down", healed, AfterGatewayLoss::NotExpected)
        .await;
    faults::wait_cluster_whole(Duration::from_secs(120)).await;
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_3_every_service_killed_under_load_has_no_lost_or_duplicate_effects() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut system = start_system(Backend::Postgres).await;
    let mut load = Load::start(&system).await;
    let rounds = if long_mode() { 10 } else { 1 };
    let mut healed = Instant::now();
    for _ in 0..rounds {
        for svc in Svc::ALL {
            // A random moment of the load.
            tokio::time::sleep(Duration::from_millis(500 + fastrand_ms(1500))).await;
            system.kill(svc);
            tokio::time::sleep(Duration::from_millis(300)).await;
            system.restart(svc).await;
            healed = Instant::now();
        }
    }
    tokio::time::sleep(pick(2, 10)).await;
    // Both gateways were killed: the live views reconnected once one was back.
    load.verify("every service killed", healed, AFTER_GATEWAY_KILLED)
        .await;
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_9_one_instance_of_each_service_killed_in_turn_under_load_the_other_carries_on() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut system = start_system(Backend::Postgres).await;
    let mut load = Load::start(&system).await;
    let rounds = if long_mode() { 10 } else { 1 };
    let mut healed = Instant::now();
    let mut killed = 0;
    for round in 0..rounds {
        for (i, svc) in Svc::ALL.into_iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(500 + fastrand_ms(1500))).await;
            // Alternate instances round by round, so the long mode kills every one.
            let instance = (svc, (i + round) % INSTANCES);
            system.kill_instance(instance);
            killed += 1;
            // The survivor works alone for a moment before the killed one is back.
            tokio::time::sleep(Duration::from_millis(1000)).await;
            system.restart_instance(instance).await;
            healed = Instant::now();
        }
    }
    tokio::time::sleep(pick(2, 10)).await;
    let counts = load
        .verify(
            "one instance of each killed in turn",
            healed,
            AFTER_GATEWAY_KILLED,
        )
        .await;
    let served = system.front_served();
    let (rerouted, refused) = system.front_rerouted_and_refused();
    println!(
        "[chaos] one instance of each killed in turn: {killed} kills; task-api front: connections per instance {served:?}, \
         {rerouted} rerouted from a dead instance, {refused} refused"
    );
    assert!(
        served.iter().all(|n| *n > 0),
        "both task-api instances served: {served:?}"
    );
    assert!(
        counts.ws_reconnects > 0,
        "a WebSocket of the killed gateway moved to the other"
    );
    system.stop().await;
}

fn fastrand_ms(max: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(max)) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_4_registry_down_producers_and_consumers_go_on_with_cached_schemas() {
    let _one = ONE_AT_A_TIME.lock().await;
    let system = start_system(Backend::Sqlite).await;
    let mut load = Load::start(&system).await;
    tokio::time::sleep(pick(3, 20)).await;
    tokio::task::spawn_blocking(faults::stop_registry)
        .await
        .unwrap();
    let stopped = Instant::now();
    let before = load.ledger.entries().len();
    tokio::time::sleep(pick(15, 60)).await;
    assert!(
        load.ledger.entries().len() > before,
        "writes continued without the registry"
    );
    // Effects of writes made while the registry was away already arrived (cached schemas).
    let during = load.ledger.entries().len() - before;
    tokio::task::spawn_blocking(faults::start_registry)
        .await
        .unwrap();
    let healed = Instant::now();
    println!(
        "[chaos] registry down for {:.0} s: {during} requests accepted meanwhile",
        stopped.elapsed().as_secs_f64()
    );
    load.verify("registry down", healed, AfterGatewayLoss::NotExpected)
        .await;
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_5_a_consumer_database_outage_is_retried_not_dead_lettered() {
    let _one = ONE_AT_A_TIME.lock().await;
    let system = start_system(Backend::Postgres).await;
    let mut load = Load::start(&system).await;
    tokio::time::sleep(pick(3, 20)).await;
    let service_kit::config::DatabaseUrl::Postgres(audit_db) = system.database(Svc::Audit).clone()
    else {
        unreachable!()
    };
    faults::block_database(&audit_db, true).await;
    tokio::time::sleep(pick(10, 30)).await;
    faults::block_database(&audit_db, false).await;
    let healed = Instant::now();
    load.verify(
        "audit database unavailable",
        healed,
        AfterGatewayLoss::NotExpected,
    )
    .await;
    let metrics = reqwest::get(format!("{}/metrics", system.url(Svc::Audit)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        testing::metric_sum(&metrics, "event_retries_total", &[]) > 0.0,
        "the outage was noticed and retried"
    );
    assert_eq!(
        testing::metric_sum(&metrics, "dead_letters_total", &[]),
        0.0,
        "nothing dead-lettered"
    );
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_6_poison_on_every_topic_is_dead_lettered_with_headers_and_replayable() {
    let _one = ONE_AT_A_TIME.lock().await;
    let system = start_system(Backend::Sqlite).await;
    let codec = std::sync::Arc::new(
        events::EventCodec::connect(&service_kit::testing::registry_access()).unwrap(),
    );
    let publisher = events::EventPublisher::connect(
        service_kit::testing::kafka_config(),
        codec.clone(),
        "chaos",
    )
    .unwrap();
    let starts: Vec<(events::DeadLetterTopic, Vec<i64>)> = events::DeadLetterTopic::all()
        .map(|d| (d, testing::end_offsets(&d.name(), d.partitions())))
        .collect();
    let user = uuid::Uuid::new_v4().to_string();
    let key = uuid::Uuid::new_v4().to_string();
    let mut impossible = events::sample::task_updated(&user);
    impossible.version = 0;
    let impossible = codec.encode(&impossible).await.unwrap();
    let poison: [&[u8]; 3] = [
        b"garbage bytes",
        &[0, 0x7f, 0xff, 0xff, 0x03, 9, 9],
        &impossible,
    ];
    for topic in Topic::ALL {
        for payload in poison {
            publisher
                .send(topic.name(), &key, payload, None)
                .await
                .unwrap();
        }
    }
    // Each consuming service dead-letters the three of each topic it consumes, with headers.
    let started = Instant::now();
    for (dlq, from) in &starts {
        let group = match dlq.service {
            Service::TaskApi => system.group(Svc::TaskApi).to_owned(),
            Service::WsGateway => system.group(Svc::WsGateway).to_owned(),
            Service::NotificationService => system.group(Svc::Notification).to_owned(),
            Service::RecurringTaskService => system.group(Svc::Recurring).to_owned(),
            Service::AuditService => system.group(Svc::Audit).to_owned(),
        };
        let name = dlq.name();
        let letters = tokio::task::spawn_blocking({
            let (from, key, group) = (from.clone(), key.clone(), group.clone());
            move || {
                let ours = |m: &rdkafka::message::OwnedMessage| {
                    rdkafka::Message::key(m) == Some(key.as_bytes())
                        && events::publish::header_str(m, "dlq.group")
                            .is_some_and(|g| g.starts_with(&group))
                };
                let all = testing::read_until(&name, &from, Duration::from_secs(60), |seen| {
                    seen.iter().filter(|m| ours(m)).count() >= 3
                });
                all.into_iter().filter(|m| ours(m)).collect::<Vec<_>>()
            }
        })
        .await
        .unwrap();
        let ours_only = letters;
        assert_eq!(ours_only.len(), 3, "{}", dlq.name());
        for letter in &ours_only {
            for header in [
                "dlq.source.topic",
                "dlq.source.partition",
                "dlq.source.offset",
                "dlq.error",
                "dlq.error.kind",
                "dlq.attempts",
                "dlq.failed.at",
            ] {
                assert!(
                    events::publish::header_str(letter, header).is_some(),
                    "{} lacks {header}",
                    dlq.name()
                );
            }
            assert_eq!(
                events::publish::header_str(letter, "dlq.source.topic"),
                Some(dlq.source.name())
            );
        }
    }
    println!(
        "[chaos] poison: 27 poison messages dead-lettered into all {} dead-letter topics within {:.1} s",
        starts.len(),
        started.elapsed().as_secs_f64()
    );

    // The partitions moved on: a valid event after the poison, same key, is applied.
    let mut after = events::sample::task_created(&user);
    after.user_id = user.clone();
    publisher
        .send(
            Topic::TaskCreated.name(),
            &key,
            &codec.encode(&after).await.unwrap(),
            None,
        )
        .await
        .unwrap();
    let admin = system
        .signer
        .issue_admin(&uuid::Uuid::new_v4().to_string())
        .unwrap();
    let http = reqwest::Client::new();
    let audit = system.url(Svc::Audit);
    let audited = |event_id: String| {
        let (http, admin, audit) = (http.clone(), admin.clone(), audit.clone());
        async move {
            let page: serde_json::Value = http
                .get(format!(
                    "{audit}/api/audit/events?topic=task.created&limit=500"
                ))
                .bearer_auth(&admin)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            page["items"]
                .as_array()?
                .iter()
                .any(|i| i["event_id"] == event_id.as_str())
                .then_some(())
        }
    };
    testing::wait_for(
        "the event after the poison in the audit",
        Duration::from_secs(60),
        || audited(after.event_id.clone()),
    )
    .await;

    // Replay: a valid event that was dead-lettered (say, by a bug since fixed) goes back to its
    // source topic with the documented command and is applied.
    let parked = events::sample::task_created(&user);
    let dlq = events::DeadLetterTopic::new(Topic::TaskCreated, Service::AuditService).name();
    let payload = codec.encode(&parked).await.unwrap();
    let producer: rdkafka::producer::FutureProducer =
        events::producer_config(service_kit::testing::kafka_config())
            .create()
            .unwrap();
    let headers = rdkafka::message::OwnedHeaders::new()
        .insert(rdkafka::message::Header {
            key: "dlq.source.topic",
            value: Some("task.created"),
        })
        .insert(rdkafka::message::Header {
            key: "dlq.error",
            value: Some("simulated bug"),
        });
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&dlq)
                .key(&parked.user_id)
                .payload(&payload)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let output = tokio::process::Command::new(System::todoctl())
        .args(["dlq-replay", &dlq])
        .env("KAFKA_BOOTSTRAP_SERVERS", testing::bootstrap_servers())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "todoctl dlq-replay: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("[chaos] {}", String::from_utf8_lossy(&output.stdout).trim());
    testing::wait_for(
        "the replayed event in the audit",
        Duration::from_secs(60),
        || audited(parked.event_id.clone()),
    )
    .await;
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_7_a_second_consumer_joins_and_leaves_under_load_without_loss_or_duplicates() {
    let _one = ONE_AT_A_TIME.lock().await;
    let system = start_system(Backend::Postgres).await;
    let mut load = Load::start(&system).await;
    tokio::time::sleep(pick(3, 20)).await;
    let (mut audit2, _) = system.spawn_second_instance(Svc::Audit).await;
    let (mut notify2, _) = system.spawn_second_instance(Svc::Notification).await;
    tokio::time::sleep(pick(6, 40)).await;
    for child in [&mut audit2, &mut notify2] {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    let healed = Instant::now();
    load.verify(
        "a third consumer joined and left",
        healed,
        AfterGatewayLoss::NotExpected,
    )
    .await;
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_8_a_login_flood_is_limited_without_slowing_others_and_bad_input_is_refused() {
    let _one = ONE_AT_A_TIME.lock().await;
    let system = start_system(Backend::Sqlite).await;
    let mut load = Load::start(&system).await;
    let base = system.url(Svc::TaskApi);
    let victim = UserClient::register(&system, "victim").await;
    // Registered (and logged in) before the flood: the flood exhausts this address's budget.
    let other = UserClient::register(&system, "bystander").await;
    let flood = reqwest::Client::new();
    let mut limited = 0;
    for _ in 0..200 {
        let r = flood
            .post(format!("{base}/api/auth/login"))
            .json(&serde_json::json!({"email": victim.email, "password": "wrong password!"}))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            assert!(r.headers().get("retry-after").is_some());
            limited += 1;
        }
    }
    assert!(
        limited >= 150,
        "only {limited} of 200 failed logins were limited"
    );
    // Another user, from another address, logs in at once and quickly.
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let started = Instant::now();
    let r = elsewhere
        .post(format!("{base}/api/auth/login"))
        .json(
            &serde_json::json!({"email": other.email, "password": "correct horse battery staple"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "a bystander's login took {took:?} during the flood"
    );

    // Oversized and malformed requests get clear 4xx problem documents.
    let huge = "x".repeat(10 * 1024 * 1024);
    let r = flood
        .post(format!("{base}/api/tasks"))
        .bearer_auth(&other.token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = flood
        .post(format!("{base}/api/tasks"))
        .bearer_auth(&other.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // An oversized WebSocket frame closes the connection with 1009.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{}/ws/tasks?token={}",
        system.ws_url(),
        other.token
    ))
    .await
    .unwrap();
    use futures::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "y".repeat(64 * 1024).into(),
    ))
    .await
    .unwrap();
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = m {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(close, Some(1009));
    println!(
        "[chaos] security: {limited}/200 failed logins limited (429 + Retry-After); a bystander logged in in {} ms; 10 MB body 413, bad JSON 400, 64 KiB frame closed 1009",
        took.as_millis()
    );
    load.verify("login flood", Instant::now(), AfterGatewayLoss::NotExpected)
        .await;
    system.stop().await;
}
