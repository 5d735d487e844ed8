//! The checks after a fault healed: every request the API accepted has all its effects, once.
//!
//! Who should see what comes from the events themselves through [`events::audience`], the rule
//! ws-gateway routes by: a user's WebSocket must carry every message of the tasks they own or
//! collaborate on and of the reminders and notifications addressed to them, and nothing else.
//! A live view whose gateway died reconnects to another instance; see [`AfterGatewayLoss`] for
//! what it may get there and how what it missed is accounted for.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use events::{AnyEvent, EventCodec, Topic};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::client::UserClient;
use crate::live_view::{LiveView, Reload};
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
    /// Distinct mails (by Message-ID), and further transmissions of one of them.
    pub emails: usize,
    pub mail_copies: usize,
    pub audit_entries: usize,
    pub ws_messages: usize,
    /// Close codes of the checked WebSocket connections that ended during the run.
    pub ws_closed: Vec<u16>,
    /// Reconnections to another gateway instance, and how many of them got `resync`.
    pub ws_reconnects: usize,
    pub ws_resyncs: usize,
    /// Messages missed while reconnecting that the REST reload after a resync showed instead.
    pub ws_covered_by_reload: usize,
    /// Messages missed while reconnecting whose change was published before the reload after
    /// the resync but was not in it yet (a next occurrence task-api had not ingested yet): the
    /// REST view shows it now, so the client's next reload will. Never allowed with
    /// [`AfterGatewayLoss::ResumeRequired`].
    pub ws_shown_by_a_later_reload: usize,
    /// Messages received again on the connection after a resync (harmless: the client had
    /// reloaded; never allowed on one connection or after a resume).
    pub ws_again_after_resync: usize,
}

/// What a live view whose gateway instance went away may get from the next instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterGatewayLoss {
    /// No gateway is lost in this scenario: any connection that ends is a problem (the gateway
    /// must not drop its clients, e.g. as too slow during the burst after an outage).
    NotExpected,
    /// A connection may end without a close frame (its gateway was killed); on the next
    /// instance the cursor of the dead one may get `resync`, and every message missed must then
    /// show in the REST reload made after it (the task at that version or later; the delivery
    /// with that status), or, when its event was published before that reload but REST did not
    /// have it yet (a next occurrence task-api had not ingested), in REST now: the client's next
    /// reload shows it (counted apart). What happens after the reload must arrive live.
    ResyncAllowed,
    /// As [`AfterGatewayLoss::ResyncAllowed`], but the next instance must resume from the
    /// cursor: no `resync`, every missed message replayed, none twice.
    ResumeRequired,
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
    views: &[&LiveView],
    after_loss: AfterGatewayLoss,
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
            Accepted::Shared { task_id, with_user } => {
                let n = distinct(seen.iter().filter(|s| {
                    matches!(&s.event, AnyEvent::TaskShared(e) if &e.task_id == task_id && &e.shared_with_user_id == with_user)
                }))
                .len();
                if n != 1 {
                    problems.push(format!(
                        "task.shared of {task_id} with {with_user}: {n} events"
                    ));
                }
            }
            Accepted::Assigned { task_id, version } => {
                let n = task_events(Topic::TaskAssigned, task_id, Some(*version));
                if n != 1 {
                    problems.push(format!("task.assigned of {task_id} v{version}: {n} events"));
                }
            }
        }
    }
    // Every reminder that fired (those of requests whose answer was lost included) fired once.
    let mut firings: HashMap<&str, HashSet<&str>> = HashMap::new();
    for s in &seen {
        if let AnyEvent::ReminderTriggered(e) = &s.event {
            firings
                .entry(e.reminder_id.as_str())
                .or_default()
                .insert(e.event_id.as_str());
        }
    }
    for (reminder, fired) in &firings {
        if fired.len() != 1 {
            problems.push(format!("reminder {reminder}: fired {} times", fired.len()));
        }
    }
    // One email per email reminder fired to the user and per task assigned to them by someone
    // else ("Assigned to you", once per assignment), no more.
    for user in users {
        let reminders = seen
            .iter()
            .filter_map(|s| match &s.event {
                AnyEvent::ReminderTriggered(e)
                    if e.user_id == user.id && e.channel == events::NotificationChannel::Email =>
                {
                    Some(e.reminder_id.as_str())
                }
                _ => None,
            })
            .collect::<HashSet<_>>()
            .len();
        let assignments = seen
            .iter()
            .filter_map(|s| match &s.event {
                AnyEvent::TaskAssigned(e)
                    if e.assignee_id.as_deref() == Some(user.id.as_str())
                        && e.actor_id.as_deref().unwrap_or(&e.user_id) != user.id =>
                {
                    Some((e.task_id.as_str(), e.version))
                }
                _ => None,
            })
            .collect::<HashSet<_>>()
            .len();
        if reminders < reminded.get(&user.id).copied().unwrap_or(0) {
            problems.push(format!(
                "{}: {reminders} email reminders fired, fewer than the ledger's",
                user.email
            ));
        }
        let expected = reminders + assignments;
        // A mail is its Message-ID (derived from the delivery): a notification-service killed
        // after the SMTP server took a mail but before it recorded that sends the same message
        // again once the delivery's claim expires. Receivers drop such a copy by its
        // Message-ID, as consumers drop a redelivered event by its id; it is counted apart.
        let ids = mail::message_ids_to(&user.email).await;
        let mails = ids.iter().collect::<HashSet<_>>().len();
        counts.emails += mails;
        counts.mail_copies += ids.len() - mails;
        if mails != expected {
            problems.push(format!(
                "{}: {mails} emails for {reminders} reminders and {assignments} assignments",
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
    // Each live view got every message its user may see, once, and nothing else.
    let ws_topics = events::Service::WsGateway.consumes();
    for view in views {
        let client = users.iter().find(|u| u.id == view.user);
        check_view(
            view,
            client,
            &seen,
            ws_topics,
            after_loss,
            &mut counts,
            &mut problems,
        )
        .await;
    }
    if problems.is_empty() {
        Ok(counts)
    } else {
        Err(problems)
    }
}

/// Whether a reload made after a resync shows the effect of `event` (so a client that missed its
/// message still shows the change).
fn reload_shows(reload: &Reload, event: &AnyEvent, user: &str) -> bool {
    let gone = events::audience(event)
        .iter()
        .any(|(reader, sees)| reader == user && *sees == events::Sees::Gone);
    match event {
        AnyEvent::ReminderTriggered(e) => reload.reminders.contains(&e.reminder_id),
        AnyEvent::NotificationSent(e) => reload
            .notifications
            .get(&e.notification_id)
            .is_some_and(|status| status == e.status.as_str()),
        _ => match (event.task_id(), gone) {
            (Some(task), true) => !reload.tasks.contains_key(task),
            (Some(task), false) => reload
                .tasks
                .get(task)
                .is_some_and(|v| Some(*v) >= event.task_version()),
            (None, _) => false,
        },
    }
}

/// One live view against the events: every message of its user received once (or, after a
/// resync, shown by the reload), none of anyone else's, and its connections ended only as the
/// scenario allows.
async fn check_view(
    view: &LiveView,
    client: Option<&UserClient>,
    seen: &[Seen],
    ws_topics: &[Topic],
    after_loss: AfterGatewayLoss,
    counts: &mut Counts,
    problems: &mut Vec<String>,
) {
    let user = view.user.as_str();
    let record = view.record();
    if let Some(why) = &record.gave_up {
        problems.push(format!("WebSocket of {user}: {why}"));
    }
    for c in &record.connections {
        if let Some(code) = c.ended {
            counts.ws_closed.push(code);
            // 1006: the connection ended without a close frame, as when its gateway is killed.
            if after_loss == AfterGatewayLoss::NotExpected || code != 1006 {
                problems.push(format!(
                    "WebSocket of {user}: gateway {} closed the connection with code {code}",
                    c.gateway
                ));
            }
        }
    }
    let reconnects = record.connections.len() - 1;
    let resyncs: Vec<&Reload> = record
        .connections
        .iter()
        .filter_map(|c| c.resync.as_ref())
        .collect();
    counts.ws_reconnects += reconnects;
    counts.ws_resyncs += resyncs.len();
    if after_loss == AfterGatewayLoss::ResumeRequired && !resyncs.is_empty() {
        problems.push(format!(
            "WebSocket of {user}: {} of {reconnects} reconnections got resync instead of resuming",
            resyncs.len()
        ));
    }
    counts.ws_messages += record.messages.len();
    // Each event once per connection; again on a later connection only after a resync.
    let mut first_on: HashMap<&str, usize> = HashMap::new();
    for (connection, message, _) in &record.messages {
        let Some(id) = message["event_id"].as_str() else {
            continue;
        };
        match first_on.get(id) {
            None => {
                first_on.insert(id, *connection);
            }
            Some(first) if first == connection => {
                problems.push(format!("WebSocket of {user}: {id} twice on one connection"));
            }
            Some(_) if record.connections[*connection].resync.is_some() => {
                counts.ws_again_after_resync += 1;
            }
            Some(_) => problems.push(format!(
                "WebSocket of {user}: {id} again after resuming on gateway {}",
                record.connections[*connection].gateway
            )),
        }
    }
    let mut expected: HashMap<&str, &AnyEvent> = HashMap::new();
    let mut others: HashSet<&str> = HashSet::new();
    for s in seen.iter().filter(|s| ws_topics.contains(&s.event.topic())) {
        if events::audience::sees(&s.event, user) {
            expected.insert(s.event.event_id(), &s.event);
        } else {
            others.insert(s.event.event_id());
        }
    }
    let leaked = first_on
        .keys()
        .filter(|id| others.contains(*id) && !expected.contains_key(*id))
        .count();
    if leaked > 0 {
        problems.push(format!(
            "WebSocket of {user}: {leaked} messages of events the user may not see"
        ));
    }
    let mut missing = Vec::new();
    let mut published_before_a_reload = Vec::new();
    for (id, event) in &expected {
        if first_on.contains_key(id) {
            continue;
        }
        if resyncs.iter().any(|r| reload_shows(r, event, user)) {
            counts.ws_covered_by_reload += 1;
        } else if after_loss == AfterGatewayLoss::ResyncAllowed
            && resyncs.iter().any(|r| event.event_timestamp() <= r.at_ms)
        {
            published_before_a_reload.push(*event);
        } else {
            missing.push(*event);
        }
    }
    // Published while the client was away and not yet visible when it reloaded: its effect
    // must be visible now (the client's next reload shows it), or it is lost.
    if !published_before_a_reload.is_empty() {
        let now = match client {
            Some(client) => crate::live_view::reload(client).await.ok(),
            None => None,
        };
        for event in published_before_a_reload {
            if now.as_ref().is_some_and(|r| reload_shows(r, event, user)) {
                counts.ws_shown_by_a_later_reload += 1;
            } else {
                missing.push(event);
            }
        }
    }
    if !missing.is_empty() {
        missing.sort_by_key(|e| e.event_timestamp());
        let reloads: Vec<i64> = resyncs.iter().map(|r| r.at_ms).collect();
        let some: Vec<String> = missing
            .iter()
            .take(5)
            .map(|e| {
                format!(
                    "{} of task {:?} v{:?} at {}",
                    e.topic(),
                    e.task_id(),
                    e.task_version(),
                    e.event_timestamp()
                )
            })
            .collect();
        problems.push(format!(
            "WebSocket of {user}: {} of {} messages missing (reloads at {reloads:?}): {}",
            missing.len(),
            expected.len(),
            some.join("; ")
        ));
    }
}
