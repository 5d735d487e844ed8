//! The checks after a fault healed: every request the API accepted has all its effects, once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use events::{AnyEvent, EventCodec, Topic};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::client::{UserClient, WsClient};
use crate::load::{Accepted, Ledger};
use crate::mail;
use crate::system::Svc;

/// End offsets of every topic, taken before the load starts.
pub struct Marks(HashMap<Topic, Vec<i64>>);

impl Marks {
    pub fn now() -> Self {
        Self(
            Topic::ALL
                .into_iter()
                .map(|t| {
                    (
                        t,
                        service_kit::testing::end_offsets(t.name(), t.spec().partitions),
                    )
                })
                .collect(),
        )
    }
}

/// An event seen on Kafka, with its `producer` header.
#[derive(Debug, Clone)]
pub struct Seen {
    pub event: AnyEvent,
    pub producer: Option<String>,
}

/// Every event for `users` published since `marks`, decoded.
pub async fn events_since(marks: &Marks, users: &HashSet<String>) -> Vec<Seen> {
    let codec = EventCodec::connect(&service_kit::testing::registry_access()).unwrap();
    let mut raw = Vec::new();
    let marks_owned: Vec<(Topic, Vec<i64>)> =
        marks.0.iter().map(|(t, o)| (*t, o.clone())).collect();
    let messages = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = service_kit::testing::kafka_config()
            .set("group.id", service_kit::testing::unique_group("verify"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        let mut remaining = 0i64;
        for (topic, starts) in &marks_owned {
            for (p, start) in starts.iter().enumerate() {
                let (_, high) = service_kit::testing::watermarks(&consumer, topic.name(), p as i32);
                if high > *start {
                    remaining += high - start;
                    tpl.add_partition_offset(
                        topic.name(),
                        p as i32,
                        rdkafka::Offset::Offset(*start),
                    )
                    .unwrap();
                }
            }
        }
        let mut out = Vec::new();
        if remaining == 0 {
            return out;
        }
        consumer.assign(&tpl).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while (out.len() as i64) < remaining && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                out.push(m.detach());
            }
        }
        out
    })
    .await
    .unwrap();
    for m in messages {
        if let Ok(event) = codec.decode(m.topic(), m.payload()).await
            && event.user_id().is_some_and(|u| users.contains(u))
        {
            raw.push(Seen {
                event,
                producer: events::publish::header_str(&m, events::headers::PRODUCER)
                    .map(str::to_owned),
            });
        }
    }
    raw
}

/// What the checks counted.
#[derive(Debug, Default)]
pub struct Counts {
    pub accepted: usize,
    pub events: usize,
    pub redelivered_copies: usize,
    /// Topics that carried a second copy of some event (same event id), with the count.
    pub copies_by_topic: Vec<(Topic, usize)>,
    pub next_occurrences: usize,
    pub reminders: usize,
    pub emails: usize,
    pub audit_entries: usize,
    pub ws_messages: usize,
    /// Close codes of the checked WebSockets that ended during the run (each one is a problem).
    pub ws_closed: Vec<u16>,
}

fn distinct<'a>(seen: impl Iterator<Item = &'a Seen>) -> HashSet<&'a str> {
    seen.map(|s| s.event.event_id()).collect()
}

/// Check the ledger against Kafka, the audit, the mail sink and the WebSocket clients; `Err`
/// lists what does not hold (yet).
pub async fn check(
    ledger: &Ledger,
    users: &[UserClient],
    marks: &Marks,
    sockets: &[(String, &WsClient)],
) -> Result<Counts, Vec<String>> {
    let ids: HashSet<String> = users.iter().map(|u| u.id.clone()).collect();
    let seen = events_since(marks, &ids).await;
    let mut problems = Vec::new();
    let mut counts = Counts {
        accepted: ledger.entries().len(),
        events: seen.len(),
        ..Default::default()
    };
    counts.redelivered_copies = seen.len() - distinct(seen.iter()).len();
    for topic in Topic::ALL {
        let on_topic: Vec<&Seen> = seen.iter().filter(|s| s.event.topic() == topic).collect();
        let copies = on_topic.len() - distinct(on_topic.iter().copied()).len();
        if copies > 0 {
            counts.copies_by_topic.push((topic, copies));
        }
    }

    let task_events = |topic: Topic, task: &str, version: Option<i64>| {
        distinct(seen.iter().filter(|s| {
            s.event.topic() == topic
                && s.event.task_id() == Some(task)
                && version.is_none_or(|v| s.event.task_version() == Some(v))
        }))
        .len()
    };
    let mut reminded: HashMap<String, usize> = HashMap::new();
    for entry in ledger.entries() {
        match &entry.accepted {
            Accepted::Created {
                task_id,
                with_reminder,
                ..
            } => {
                let n = task_events(Topic::TaskCreated, task_id, Some(1));
                if n != 1 {
                    problems.push(format!("task.created of {task_id}: {n} events"));
                }
                if *with_reminder {
                    *reminded.entry(entry.user.clone()).or_default() += 1;
                    let fired = task_events(Topic::ReminderTriggered, task_id, None);
                    counts.reminders += fired;
                    if fired != 1 {
                        problems.push(format!("reminder of {task_id}: fired {fired} times"));
                    }
                }
            }
            Accepted::Updated { task_id, version } => {
                let n = task_events(Topic::TaskUpdated, task_id, Some(*version));
                if n != 1 {
                    problems.push(format!("task.updated of {task_id} v{version}: {n} events"));
                }
            }
            Accepted::Completed {
                task_id,
                version,
                series_id,
            } => {
                let n = task_events(Topic::TaskCompleted, task_id, Some(*version));
                if n != 1 {
                    problems.push(format!(
                        "task.completed of {task_id} v{version}: {n} events"
                    ));
                }
                if let Some(series) = series_id {
                    let next = distinct(seen.iter().filter(|s| {
                        matches!(&s.event, AnyEvent::TaskCreated(e) if e.series_id.as_deref() == Some(series) && e.occurrence_index == Some(1))
                            && s.producer.as_deref() == Some("recurring-task-service")
                    }))
                    .len();
                    counts.next_occurrences += next;
                    if next != 1 {
                        problems.push(format!("series {series}: {next} next occurrences"));
                    }
                }
            }
        }
    }
    // One email per reminded task, no more.
    for user in users {
        let expected = reminded.get(&user.id).copied().unwrap_or(0);
        let mails = mail::count_to(&user.email).await;
        counts.emails += mails;
        if mails != expected {
            problems.push(format!(
                "{}: {mails} emails for {expected} reminders",
                user.email
            ));
        }
    }
    // The audit holds every event of these users once.
    for user in users {
        let mut audited = Vec::new();
        let mut path = "/api/audit/events?limit=500".to_owned();
        loop {
            let (status, page) = user
                .call(reqwest::Method::GET, Svc::Audit, &path, None)
                .await;
            if status != 200 {
                problems.push(format!("audit answered {status}"));
                break;
            }
            audited.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["event_id"].as_str().unwrap().to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/api/audit/events?limit=500&cursor={c}"),
                None => break,
            }
        }
        let expected: HashSet<&str> = distinct(
            seen.iter()
                .filter(|s| s.event.user_id() == Some(user.id.as_str())),
        );
        let got: HashSet<&str> = audited.iter().map(String::as_str).collect();
        counts.audit_entries += audited.len();
        if got.len() != audited.len() {
            problems.push(format!(
                "audit of {}: {} entries, {} distinct",
                user.id,
                audited.len(),
                got.len()
            ));
        }
        let missing = expected.difference(&got).count();
        if missing > 0 {
            problems.push(format!("audit of {}: {missing} events missing", user.id));
        }
    }
    // WebSocket clients stay connected (the gateway must not drop them, e.g. as too slow
    // during the burst after an outage) and get every message of their user, once.
    let ws_topics = events::Service::WsGateway.consumes();
    for (user, socket) in sockets {
        if let Some(code) = socket.close_code() {
            counts.ws_closed.push(code);
            problems.push(format!("WebSocket of {user}: closed with code {code}"));
            continue;
        }
        let received: Vec<String> = socket
            .messages()
            .iter()
            .filter_map(|m| m["event_id"].as_str().map(str::to_owned))
            .collect();
        counts.ws_messages += received.len();
        let got: HashSet<&str> = received.iter().map(String::as_str).collect();
        if got.len() != received.len() {
            problems.push(format!(
                "WebSocket of {user}: {} messages, {} distinct",
                received.len(),
                got.len()
            ));
        }
        let expected = distinct(seen.iter().filter(|s| {
            s.event.user_id() == Some(user.as_str()) && ws_topics.contains(&s.event.topic())
        }));
        let missing = expected.difference(&got).count();
        if missing > 0 {
            problems.push(format!(
                "WebSocket of {user}: {missing} of {} messages missing",
                expected.len()
            ));
        }
    }
    if problems.is_empty() {
        Ok(counts)
    } else {
        Err(problems)
    }
}
