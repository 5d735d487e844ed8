//! The reminder schedule under load: a notification-service (in-process, PostgreSQL, mailing to
//! Mailpit) gets 10,000 email reminders due within the same minute. Two phases on one instance:
//!
//! 1. `count` reminders spread uniformly over `spread_ms`: the lateness from remind-at to
//!    reminder.triggered on Kafka (p50, p99, max), beside Kafka's own end-to-end latency: the
//!    floor (the scheduler has no tick; it sleeps until the next known due time).
//! 2. `burst` reminders all due within one second: the delivery throughput to the SMTP sink, from
//!    the first to the last finished delivery. (In phase 1 deliveries can only follow the rate at
//!    which reminders fall due, so it says nothing of the capacity.)
//!
//! Then, with the service stopped, the ceiling of phase 2: as many mails of the same shape sent
//! straight to the same Mailpit with lettre, through a pool as large as the service's delivery
//! concurrency, that many at once.
//!
//! Clean-up: the database is dropped, the run's mails are deleted from Mailpit (they all go to
//! one domain of the run), and what the run wrote to Kafka is deleted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::prelude::*;
use events::NotificationChannel::Email;
use events::{
    EventCodec, EventPublisher, NotificationChannel, Priority, Reminder, TaskCreatedEvent,
    TaskStatus, Topic, UserRegisteredEvent,
};
use futures::StreamExt;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use notification_service::config::{
    Config, DEFAULT_FROM, DeliverySettings, ScheduleSettings, SmtpSettings, SmtpTls,
    WebhookSettings,
};
use notification_service::domain::message::Notice;
use notification_service::storage::schema::{deliveries, reminders, users};
use service_kit::config::CommonConfig;
use service_kit::consumer::RetryPolicy;
use service_kit::db::Database;
use service_kit::testing::{self, Backend};
use service_kit::webhook::WebhookKey;

use crate::kafka::{self, EndToEnd, TopicMarks};
use crate::report::Figure;
use crate::services::{self, Running};
use crate::stats::{Latencies, wait_for};

const USERS: usize = 50;
/// The burst's reminders fall due within this window.
const BURST_WINDOW_MS: i64 = 1_000;

pub struct Reminders {
    pub count: usize,
    pub spread_ms: i64,
    pub burst: usize,
    /// Time from publishing the tasks to the first reminder being due: scheduling must be done
    /// by then, or the lateness would measure the scheduling.
    pub lead_ms: i64,
    pub concurrency: usize,
    pub smtp_url: String,
    pub mailpit_api: String,
    pub repo: PathBuf,
}

/// One phase: reminder id → remind-at of what was published, and the window they fall due in.
struct Phase {
    remind_at: HashMap<String, i64>,
    first_due: i64,
}

struct Measured {
    lateness: Latencies,
    triggered_messages: usize,
    fired: Latencies,
    spread_delivered: usize,
    burst: Option<Burst>,
}

struct Burst {
    delivered: usize,
    mails_per_second: f64,
    span_ms: i64,
    lateness: Latencies,
}

struct Ceiling {
    mails_per_second: f64,
    seconds: f64,
}

impl Reminders {
    pub async fn run(&self) -> anyhow::Result<Vec<Figure>> {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let domain = format!("loadgen-{}.example.com", &run[..12]);
        let marks = TopicMarks::take().await?;
        let database_url = testing::fresh_database(Backend::Postgres);
        let measured = async {
            let (service, db) = self.start_service(&database_url).await?;
            let measured = self.measure(&db, &marks, &domain).await;
            let stopped = service.stop().await;
            let measured = measured?;
            stopped?;
            anyhow::Ok(measured)
        }
        .await;
        services::drop_database(&database_url);
        let ceiling = match (&measured, self.burst) {
            (Ok(_), n) if n > 0 => Some(self.raw_smtp(n, &domain).await),
            _ => None,
        };
        let in_mailpit = self.mailpit_count(&domain).await;
        self.delete_mail(&domain).await;
        marks.delete_written().await?;
        let m = measured?;
        let ceiling = ceiling.transpose()?;
        let floor = EndToEnd::of_this_run(&self.repo, 1_000).await?;
        self.figures(&m, ceiling.as_ref(), &floor, in_mailpit)
    }

    async fn start_service(
        &self,
        database_url: &service_kit::config::DatabaseUrl,
    ) -> anyhow::Result<(Running, Database)> {
        let (_, verifier, _) = testing::token_pair();
        let group = services::group_at_end(
            "loadgen-notification",
            events::Service::NotificationService.consumes(),
        )
        .await?;
        let config = Config {
            common: CommonConfig {
                kafka: service_kit::testing::kafka_access(),
                registry: service_kit::testing::registry_access(),
                database_url: database_url.clone(),
                bind_addr: "127.0.0.1:0".parse()?,
                shutdown_timeout: Duration::from_secs(10),
            },
            verifier,
            consumer_group: group,
            smtp: self.smtp_settings()?,
            webhook: WebhookSettings {
                key: WebhookKey::new("loadgen-webhook-signing-key-of-40-chars!"),
                timeout: Duration::from_secs(5),
            },
            sms: None,
            push: None,
            app_base_url: notification_service::config::DEFAULT_APP_BASE_URL.into(),
            schedule: ScheduleSettings::defaults(),
            delivery: DeliverySettings {
                retry: RetryPolicy {
                    initial: Duration::from_secs(1),
                    max_delay: Duration::from_secs(10),
                    max_attempts: 5,
                },
                concurrency: self.concurrency,
                lease: DeliverySettings::DEFAULT_LEASE,
            },
        };
        let app = notification_service::startup::Application::build(config).await?;
        let db = app.database();
        let running = Running::spawn(
            "notification-service",
            app.port(),
            app.shutdown_handle(),
            app.run_until_stopped(),
        );
        Ok((running, db))
    }

    fn smtp_settings(&self) -> anyhow::Result<SmtpSettings> {
        Ok(SmtpSettings::parse(
            &self.smtp_url,
            DEFAULT_FROM.parse()?,
            Duration::from_secs(10),
        )?)
    }

    async fn measure(
        &self,
        db: &Database,
        marks: &TopicMarks,
        domain: &str,
    ) -> anyhow::Result<Measured> {
        let codec = Arc::new(EventCodec::connect(
            &service_kit::testing::registry_access(),
        )?);
        let publisher =
            EventPublisher::connect(service_kit::testing::kafka_config(), codec, "task-api")?;
        let people: Vec<UserRegisteredEvent> = (0..USERS).map(|_| user(domain)).collect();
        for u in &people {
            publisher.publish(u, None).await?;
        }
        wait_for(
            "the users to be stored",
            Duration::from_secs(60),
            || async {
                let n: i64 = db.run(|c| Ok(users::table.count().get_result(c)?)).await?;
                Ok((n as usize >= USERS).then_some(()))
            },
        )
        .await?;

        let spread = self
            .phase(
                db,
                &publisher,
                &people,
                self.count,
                self.spread_ms,
                "spread",
            )
            .await?;
        let spread_done = self.wait_finished(db, &spread).await?;
        let triggered = kafka::keyed_timestamps(
            Topic::ReminderTriggered,
            marks.start_of(Topic::ReminderTriggered),
            Arc::new(spread.remind_at.keys().cloned().collect()),
        )
        .await?;
        let lateness = Latencies::from_millis(
            triggered
                .iter()
                .filter_map(|(key, ts)| spread.remind_at.get(key).map(|at| ts - at)),
        );
        println!(
            "spread: {} reminders over {} ms; lateness remind-at -> reminder.triggered p50 {} ms, p99 {} ms, max {} ms",
            self.count,
            self.spread_ms,
            lateness.quantile(0.5),
            lateness.quantile(0.99),
            lateness.max()
        );
        let distinct: std::collections::HashSet<&String> =
            triggered.iter().map(|(k, _)| k).collect();
        if distinct.len() != self.count {
            bail!(
                "{} of {} reminders were triggered",
                distinct.len(),
                self.count
            );
        }

        let burst = if self.burst > 0 {
            let phase = self
                .phase(
                    db,
                    &publisher,
                    &people,
                    self.burst,
                    BURST_WINDOW_MS,
                    "burst",
                )
                .await?;
            let rows = self.wait_finished(db, &phase).await?;
            let done: Vec<i64> = rows.iter().filter_map(|r| r.finished_at).collect();
            let span_ms = done.iter().max().unwrap_or(&0) - done.iter().min().unwrap_or(&0);
            let delivered = rows.iter().filter(|r| r.status == "delivered").count();
            let burst = Burst {
                delivered,
                mails_per_second: delivered as f64 * 1000.0 / span_ms.max(1) as f64,
                span_ms,
                lateness: Latencies::from_millis(
                    rows.iter()
                        .filter_map(|r| r.finished_at.map(|f| f - r.remind_at)),
                ),
            };
            println!(
                "burst: {} reminders due within {BURST_WINDOW_MS} ms: {delivered} delivered in {span_ms} ms = {:.0} mails/s",
                self.burst, burst.mails_per_second
            );
            Some(burst)
        } else {
            None
        };
        Ok(Measured {
            lateness,
            triggered_messages: triggered.len(),
            fired: Latencies::from_millis(spread_done.iter().map(|r| r.fired_at - r.remind_at)),
            spread_delivered: spread_done
                .iter()
                .filter(|r| r.status == "delivered")
                .count(),
            burst,
        })
    }

    /// Publish `n` tasks whose email reminders fall due within `window_ms` after the lead time,
    /// and wait until all are scheduled; that must happen before the first is due.
    async fn phase(
        &self,
        db: &Database,
        publisher: &EventPublisher,
        people: &[UserRegisteredEvent],
        n: usize,
        window_ms: i64,
        name: &str,
    ) -> anyhow::Result<Phase> {
        let first_due = events::now_millis() + self.lead_ms;
        let tasks: Vec<(TaskCreatedEvent, i64)> = (0..n)
            .map(|i| {
                let at = first_due + fastrand::i64(0..window_ms.max(1));
                let owner = &people[i % people.len()].user_id;
                (task(owner, &format!("loadgen {name} task {i}"), at), at)
            })
            .collect();
        let published = Instant::now();
        for chunk in tasks.chunks(500) {
            for r in
                futures::future::join_all(chunk.iter().map(|(t, _)| publisher.publish(t, None)))
                    .await
            {
                r.context("publishing task.created")?;
            }
        }
        wait_for(
            &format!("{n} {name} reminders scheduled"),
            Duration::from_millis(self.lead_ms.max(0) as u64 + 60_000),
            || async {
                let scheduled: i64 = db
                    .run(move |c| {
                        Ok(reminders::table
                            .filter(reminders::remind_at.ge(first_due))
                            .count()
                            .get_result(c)?)
                    })
                    .await?;
                Ok((scheduled as usize >= n).then_some(()))
            },
        )
        .await?;
        let margin = first_due - events::now_millis();
        println!(
            "{name}: {n} reminders published and scheduled in {:.1} s, {margin} ms before the first is due",
            published.elapsed().as_secs_f64()
        );
        if margin < 0 {
            bail!(
                "scheduling {n} reminders took longer than the lead time ({} ms); give more with --lead-ms",
                self.lead_ms
            );
        }
        let remind_at = tasks
            .iter()
            .map(|(t, at)| {
                let id = events::ids::reminder_id(&t.task_id, *at, Email).to_string();
                (id, *at)
            })
            .collect();
        Ok(Phase {
            remind_at,
            first_due,
        })
    }

    /// Wait until every delivery of the phase finished (delivered or failed for good).
    async fn wait_finished(
        &self,
        db: &Database,
        phase: &Phase,
    ) -> anyhow::Result<Vec<DeliveryRow>> {
        let n = phase.remind_at.len();
        let first_due = phase.first_due;
        let bound = Duration::from_millis(self.lead_ms.max(0) as u64 + self.spread_ms as u64)
            + Duration::from_secs(300);
        wait_for(&format!("{n} deliveries finished"), bound, || async {
            let finished: i64 = db
                .run(move |c| {
                    Ok(deliveries::table
                        .filter(deliveries::remind_at.ge(first_due))
                        .filter(deliveries::status.ne("pending"))
                        .count()
                        .get_result(c)?)
                })
                .await?;
            Ok((finished as usize >= n).then_some(()))
        })
        .await?;
        let rows: Vec<DeliveryRow> = db
            .run(move |c| {
                Ok(deliveries::table
                    .filter(deliveries::remind_at.ge(first_due))
                    .select((
                        deliveries::remind_at,
                        deliveries::fired_at,
                        deliveries::finished_at,
                        deliveries::status,
                    ))
                    .load::<(i64, i64, Option<i64>, String)>(c)?
                    .into_iter()
                    .map(|(remind_at, fired_at, finished_at, status)| DeliveryRow {
                        remind_at,
                        fired_at,
                        finished_at,
                        status,
                    })
                    .collect())
            })
            .await?;
        Ok(rows)
    }

    /// The ceiling: `n` mails of the service's shape, straight to the same server with lettre,
    /// `concurrency` at once over a pool of that many connections.
    async fn raw_smtp(&self, n: usize, domain: &str) -> anyhow::Result<Ceiling> {
        let settings = self.smtp_settings()?;
        if settings.tls != SmtpTls::None || settings.credentials.is_some() {
            bail!("the raw SMTP ceiling is for a local plain-text sink such as Mailpit");
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .timeout(Some(settings.timeout))
            .pool_config(PoolConfig::new().max_size(self.concurrency.max(1) as u32))
            .build();
        let from = settings.from.clone();
        let sender_domain = from.email.domain().to_owned();
        let started = Instant::now();
        let sends = (0..n).map(|i| {
            let (transport, from, sender_domain) = (&transport, from.clone(), &sender_domain);
            async move {
                let notice = sample_notice(i);
                let content = notice.email();
                let to = Mailbox::new(
                    notice.recipient_name.clone(),
                    format!("{}@{domain}", notice.user_id).parse()?,
                );
                let message = lettre::Message::builder()
                    .from(from)
                    .to(to)
                    .subject(content.subject)
                    .message_id(Some(format!(
                        "<{}@{sender_domain}>",
                        notice.notification_id
                    )))
                    .multipart(MultiPart::alternative_plain_html(
                        content.text,
                        content.html,
                    ))?;
                transport.send(message).await?;
                anyhow::Ok(())
            }
        });
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(sends)
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let seconds = started.elapsed().as_secs_f64();
        let failed = results.iter().filter(|r| r.is_err()).count();
        if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
            bail!("{failed} of {n} raw SMTP sends failed, e.g. {e:#}");
        }
        let ceiling = Ceiling {
            mails_per_second: n as f64 / seconds.max(f64::EPSILON),
            seconds,
        };
        println!(
            "raw lettre to the same SMTP server: {n} mails in {seconds:.1} s = {:.0} mails/s",
            ceiling.mails_per_second
        );
        Ok(ceiling)
    }

    /// How many of the run's mails the sink holds (a cross-check of the counts).
    async fn mailpit_count(&self, domain: &str) -> Option<u64> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/search", self.mailpit_api),
            &[("query", format!("to:{domain}")), ("limit", "1".into())],
        )
        .ok()?;
        let body: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
        body["messages_count"].as_u64()
    }

    /// Delete the run's mails from Mailpit (they all went to the run's own domain).
    async fn delete_mail(&self, domain: &str) {
        let deleted = async {
            let url = reqwest::Url::parse_with_params(
                &format!("{}/search", self.mailpit_api),
                &[("query", format!("to:{domain}"))],
            )?;
            reqwest::Client::new()
                .delete(url)
                .send()
                .await?
                .error_for_status()?;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = deleted {
            eprintln!("warning: could not delete the run's mails from Mailpit: {e:#}");
        }
    }

    fn figures(
        &self,
        m: &Measured,
        ceiling: Option<&Ceiling>,
        floor: &EndToEnd,
        in_mailpit: Option<u64>,
    ) -> anyhow::Result<Vec<Figure>> {
        let load = format!(
            "{} email reminders of {USERS} users due within {} ms, notification-service in-process on PostgreSQL; {} reminder.triggered messages for {} reminders; scheduler fired them p50 {} ms / p99 {} ms late; {} delivered; a floor: lower is better",
            self.count,
            self.spread_ms,
            m.triggered_messages,
            self.count,
            m.fired.quantile(0.5),
            m.fired.quantile(0.99),
            m.spread_delivered
        );
        let mut figures = vec![
            Figure::new(
                "reminder lateness p50 (remind-at → reminder.triggered)",
                "ms",
                m.lateness.quantile(0.5),
                &format!("{} p50", EndToEnd::REFERENCE),
                floor.p50_ms,
                load.clone(),
            ),
            Figure::new(
                "reminder lateness p99 (remind-at → reminder.triggered)",
                "ms",
                m.lateness.quantile(0.99),
                &format!("{} p99", EndToEnd::REFERENCE),
                floor.p99_ms,
                load.clone(),
            ),
            Figure::new(
                "reminder lateness max (remind-at → reminder.triggered)",
                "ms",
                m.lateness.max(),
                &format!("{} p99.9", EndToEnd::REFERENCE),
                floor.p999_ms,
                format!("{load}; the tool reports no maximum, so its p99.9 stands in"),
            ),
        ];
        if let (Some(b), Some(c)) = (&m.burst, ceiling) {
            figures.push(Figure::new(
                "reminder mail delivery to Mailpit",
                "mails/s",
                b.mails_per_second,
                "lettre straight to the same Mailpit, same concurrency",
                c.mails_per_second,
                format!(
                    "{} reminders due within {BURST_WINDOW_MS} ms: {} delivered in {} ms (first to last finished delivery), due → delivered p50 {} ms / p99 {} ms; delivery concurrency {} = ceiling's pool and parallelism, ceiling {} mails in {:.1} s{}",
                    self.burst,
                    b.delivered,
                    b.span_ms,
                    b.lateness.quantile(0.5),
                    b.lateness.quantile(0.99),
                    self.concurrency,
                    self.burst,
                    c.seconds,
                    in_mailpit
                        .map(|n| format!("; Mailpit held {n} mails of the run before clean-up"))
                        .unwrap_or_default()
                ),
            ));
        }
        Ok(figures)
    }
}

struct DeliveryRow {
    remind_at: i64,
    fired_at: i64,
    finished_at: Option<i64>,
    status: String,
}

/// A user with email reminders, at an address of the run's domain.
fn user(domain: &str) -> UserRegisteredEvent {
    let user_id = uuid::Uuid::new_v4().to_string();
    UserRegisteredEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_timestamp: events::now_millis(),
        email: format!("{user_id}@{domain}"),
        user_id,
        name: Some("Ada Lovelace".into()),
        timezone: "Europe/Berlin".into(),
        notification_channels: vec![Email],
        webhook_url: None,
    }
}

/// A task as task-api would publish it, with one email reminder at `remind_at`.
fn task(user_id: &str, title: &str, remind_at: i64) -> TaskCreatedEvent {
    let now = events::now_millis();
    TaskCreatedEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_timestamp: now,
        user_id: user_id.into(),
        task_id: uuid::Uuid::new_v4().to_string(),
        title: title.into(),
        description: None,
        priority: Priority::Medium,
        due_date: None,
        category_id: None,
        tags: vec![],
        version: 1,
        status: TaskStatus::Open,
        recurrence: None,
        reminders: vec![Reminder {
            before_due_minutes: None,
            at: Some(remind_at),
            channel: NotificationChannel::Email,
        }],
        series_id: None,
        occurrence_index: None,
        created_at: Some(now),
        collaborators: Vec::new(),
        assignee_id: None,
        actor_id: None,
    }
}

/// What the service would mail for one reminder of the burst (same template, same size).
fn sample_notice(i: usize) -> Notice {
    let now = events::now_millis();
    let task_id = uuid::Uuid::new_v4().to_string();
    let reminder_id = events::ids::reminder_id(&task_id, now, Email).to_string();
    Notice {
        kind: notification_service::domain::message::NoticeKind::Reminder,
        actor_name: None,
        notification_id: events::ids::notification_id(&reminder_id, Email).to_string(),
        reminder_id,
        user_id: uuid::Uuid::new_v4().to_string(),
        task_title: format!("loadgen raw task {i}"),
        link: notification_service::domain::message::task_link(
            notification_service::config::DEFAULT_APP_BASE_URL,
            &task_id,
        ),
        task_id,
        due_date: None,
        remind_at: now,
        fired_at: now,
        late: false,
        channel: Email,
        recipient_name: Some("Ada Lovelace".into()),
        timezone: "Europe/Berlin".into(),
    }
}
