//! The delivery worker: takes pending deliveries whose attempt is due, delivers each on its
//! channel (several at once), and records the outcome: delivered, failed for good, or a next
//! attempt after an exponential backoff with jitter. A finished delivery and its
//! notification.sent event commit in one transaction (the event goes out through the outbox).
//!
//! Retries live in the database, not in the consumer: a slow or failing webhook never holds up a
//! partition, and a restart forgets no retry. An attempt is counted and leased when it starts;
//! if the process dies mid-attempt, the lease runs out and the attempt is made again (the one
//! window in which a message can go out twice).

pub mod email;
pub mod push;
pub mod sms;
pub mod webhook;

/// The HTTP client of the deliveries that POST (webhooks, push services).
pub(crate) type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<hyper::body::Bytes>,
>;

/// An HTTP/1 client for http and https URLs, TLS by rustls with ring and the webpki roots
/// (no OpenSSL), idle connections kept 30 s.
pub(crate) fn https_client() -> Result<HttpsClient, String> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| format!("TLS setup: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .build(https),
    )
}

use std::sync::Arc;
use std::time::{Duration, Instant};

use events::{DeliveryStatus, NotificationChannel, NotificationSentEvent, Topic};
use service_kit::db::{Database, DbError};
use service_kit::telemetry::TraceContext;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::DeliverySettings;
use crate::domain::message::{Notice, NoticeKind, task_link};
use crate::domain::{DeliveryState, channels_from_text};
use crate::due_loop::{DuePass, Next};
use crate::metrics::NotificationMetrics;
use crate::scheduler::outbox_entry;
use crate::storage::deliveries::{self, DeliveryRow};
use crate::storage::users::{self, UserRow};
use email::EmailSender;
use push::PushSender;
use sms::SmsSender;
use webhook::WebhookSender;

/// Tries to record an outcome while the database is away, before leaving it to the lease.
const RECORD_TRIES: u32 = 6;

/// Why an attempt did not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    /// May work later: retried with backoff until the last attempt.
    #[error("{0}")]
    Transient(String),
    /// Will not work: the delivery fails now.
    #[error("{0}")]
    Permanent(String),
}

/// The error a user sees when they switched the reminder's channel off.
pub const CHANNEL_DISABLED: &str = "channel disabled by user";

/// The means of delivery.
pub struct Channels {
    pub email: EmailSender,
    pub webhook: WebhookSender,
    pub sms: SmsSender,
    /// `None` when VAPID is not configured: the push channel is unavailable.
    pub push: Option<PushSender>,
    pub app_base_url: String,
}

/// What a spawned attempt needs.
struct Shared {
    db: Database,
    channels: Channels,
    settings: DeliverySettings,
    metrics: NotificationMetrics,
    relay: Arc<Notify>,
    wake: Arc<Notify>,
}

pub struct DeliveryWorker {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    in_flight: JoinSet<()>,
}

impl DeliveryWorker {
    pub fn new(
        db: Database,
        channels: Channels,
        settings: DeliverySettings,
        metrics: NotificationMetrics,
        relay: Arc<Notify>,
        wake: Arc<Notify>,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(settings.concurrency));
        Self {
            shared: Arc::new(Shared {
                db,
                channels,
                settings,
                metrics,
                relay,
                wake,
            }),
            permits,
            in_flight: JoinSet::new(),
        }
    }

    /// After shutdown: let attempts in flight finish, at most `bound`; the rest are retried
    /// after their lease by the next start.
    pub async fn finish_in_flight(mut self, bound: Duration) {
        let wait = async { while self.in_flight.join_next().await.is_some() {} };
        if tokio::time::timeout(bound, wait).await.is_err() {
            tracing::warn!("deliveries still in flight at shutdown; retried after restart");
            self.in_flight.abort_all();
        }
    }

    async fn claim(&self, limit: i64) -> Result<Vec<DeliveryRow>, DbError> {
        // How long an attempt holds its delivery: longer than any one attempt can take.
        let lease = self.shared.settings.lease;
        self.shared
            .db
            .transaction(move |conn| {
                let now = events::now_millis();
                let rows = deliveries::lock_due(conn, now, limit)?;
                let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
                if !seqs.is_empty() {
                    let lease_until = now + lease.as_millis() as i64;
                    deliveries::start_attempts(conn, &seqs, lease_until, now)?;
                }
                Ok(rows)
            })
            .await
    }
}

impl DuePass for DeliveryWorker {
    async fn pass(&mut self) -> Result<Next, DbError> {
        while self.in_flight.try_join_next().is_some() {}
        let free = self.permits.available_permits();
        if free == 0 {
            // A finishing attempt wakes the loop.
            return Ok(Next::Idle);
        }
        let rows = self.claim(free as i64).await?;
        let claimed = rows.len();
        for row in rows {
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                break;
            };
            self.in_flight
                .spawn(attempt(self.shared.clone(), row, permit));
        }
        if claimed == free {
            return Ok(Next::Idle);
        }
        Ok(match self.shared.db.run(deliveries::next_due).await? {
            Some(at) => Next::At(at),
            None => Next::Idle,
        })
    }
}

/// The notice a delivery's message is made of.
fn notice(
    row: &DeliveryRow,
    user: Option<&UserRow>,
    channel: NotificationChannel,
    base: &str,
) -> Notice {
    Notice {
        kind: NoticeKind::parse(&row.kind),
        actor_name: None,
        notification_id: row.notification_id.clone(),
        reminder_id: row.reminder_id.clone(),
        user_id: row.user_id.clone(),
        task_id: row.task_id.clone(),
        task_title: row.task_title.clone(),
        due_date: row.due_date,
        remind_at: row.remind_at,
        fired_at: row.fired_at,
        late: row.late,
        channel,
        recipient_name: user.and_then(|u| u.name.clone()),
        timezone: user
            .map(|u| u.timezone.clone())
            .unwrap_or_else(|| "UTC".to_owned()),
        link: task_link(base, &row.task_id),
    }
}

/// One attempt at delivering on the row's channel.
async fn deliver(
    channels: &Channels,
    row: &DeliveryRow,
    user: Option<&UserRow>,
    actor_name: Option<String>,
) -> Result<(), AttemptError> {
    let channel = row
        .channel
        .parse::<NotificationChannel>()
        .ok()
        .ok_or_else(|| AttemptError::Permanent(format!("unknown channel {}", row.channel)))?;
    let Some(user) = user else {
        return match channel {
            // Nothing to send: the ws-gateway shows reminder.triggered to the user.
            NotificationChannel::InApp => Ok(()),
            _ => Err(AttemptError::Transient(
                "the user's profile is not known yet (no user.registered seen)".to_owned(),
            )),
        };
    };
    if !channels_from_text(&user.channels).contains(&channel) {
        return Err(AttemptError::Permanent(CHANNEL_DISABLED.to_owned()));
    }
    let mut notice = notice(row, Some(user), channel, &channels.app_base_url);
    notice.actor_name = actor_name;
    match channel {
        NotificationChannel::InApp => Ok(()),
        NotificationChannel::Email => {
            channels
                .email
                .send(
                    &user.email,
                    user.name.as_deref(),
                    &notice.email(),
                    &row.notification_id,
                )
                .await
        }
        NotificationChannel::Webhook => {
            let url = user
                .webhook_url
                .as_deref()
                .ok_or_else(|| AttemptError::Permanent("no webhook URL configured".to_owned()))?;
            channels
                .webhook
                .send(
                    url,
                    &row.user_id,
                    &notice.webhook_body(),
                    &row.notification_id,
                )
                .await
        }
        NotificationChannel::Sms => {
            channels
                .sms
                .send(user.phone_number.as_deref(), &notice)
                .await
        }
        NotificationChannel::Push => match &channels.push {
            Some(push) => push.send(&row.user_id, &notice).await,
            None => Err(AttemptError::Permanent(
                "push is not configured on this server (VAPID_PRIVATE_KEY unset)".to_owned(),
            )),
        },
    }
}

/// How an attempt ends for the delivery.
enum Verdict {
    Finish(DeliveryState, Option<String>),
    RetryAt(i64, String),
}

async fn attempt(shared: Arc<Shared>, row: DeliveryRow, permit: OwnedSemaphorePermit) {
    let trace = TraceContext::from_header_or_new(row.traceparent.as_deref());
    let span = tracing::info_span!(
        "delivery",
        trace_id = %trace.trace_id(),
        notification_id = %row.notification_id,
        channel = %row.channel,
        attempt = row.attempts + 1,
    );
    attempt_in_span(shared, row, permit).instrument(span).await
}

async fn attempt_in_span(shared: Arc<Shared>, row: DeliveryRow, _permit: OwnedSemaphorePermit) {
    let number = row.attempts + 1;
    let started = Instant::now();
    let (user_id, actor_id) = (row.user_id.clone(), row.actor_id.clone());
    let people = shared
        .db
        .run(move |conn| {
            let actor = match &actor_id {
                Some(id) => users::get(conn, id)?,
                None => None,
            };
            Ok((users::get(conn, &user_id)?, actor))
        })
        .await;
    let (user, actor) = match people {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the user; retried after the lease");
            return;
        }
    };
    let actor_name = actor.and_then(|a| a.name);
    let result = deliver(&shared.channels, &row, user.as_ref(), actor_name).await;
    shared
        .metrics
        .delivery_attempt_seconds
        .with_label_values(&[row.channel.as_str()])
        .observe(started.elapsed().as_secs_f64());
    let max = shared.settings.retry.max_attempts as i32;
    let verdict = match result {
        Ok(()) => Verdict::Finish(DeliveryState::Delivered, None),
        Err(AttemptError::Permanent(e)) => Verdict::Finish(DeliveryState::Failed, Some(e)),
        Err(AttemptError::Transient(e)) if number >= max => Verdict::Finish(
            DeliveryState::Failed,
            Some(format!("{e} (gave up after {number} attempts)")),
        ),
        Err(AttemptError::Transient(e)) => {
            let delay = shared.settings.retry.delay(number as u32);
            Verdict::RetryAt(events::now_millis() + delay.as_millis() as i64, e)
        }
    };
    let outcome = match &verdict {
        Verdict::Finish(DeliveryState::Delivered, _) => "delivered",
        Verdict::Finish(_, _) => "failed",
        Verdict::RetryAt(..) => "retry",
    };
    shared
        .metrics
        .delivery_attempts_total
        .with_label_values(&[row.channel.as_str(), outcome])
        .inc();
    match &verdict {
        Verdict::Finish(state, error) => {
            tracing::info!(status = %state, error = error.as_deref().unwrap_or(""), "delivery finished")
        }
        Verdict::RetryAt(at, error) => {
            tracing::info!(%error, retry_in_ms = at - events::now_millis(), "delivery attempt failed; will retry")
        }
    }
    if record(&shared, &row, number, verdict).await {
        shared.relay.notify_one();
    }
    shared.wake.notify_one();
}

/// Store the verdict (and, for a finished delivery, its notification.sent in the outbox);
/// `true` when an event was written.
async fn record(shared: &Shared, row: &DeliveryRow, attempts: i32, verdict: Verdict) -> bool {
    let row = row.clone();
    let channel = row
        .channel
        .parse::<NotificationChannel>()
        .ok()
        .unwrap_or(NotificationChannel::InApp);
    let verdict = Arc::new(verdict);
    for tries in 1..=RECORD_TRIES {
        let (row, for_tx) = (row.clone(), verdict.clone());
        let result: Result<bool, DbError> = shared
            .db
            .transaction(move |conn| {
                let now = events::now_millis();
                match &*for_tx {
                    Verdict::RetryAt(at, error) => {
                        deliveries::retry_at(conn, &row.notification_id, *at, error, now)?;
                        Ok(false)
                    }
                    Verdict::Finish(state, error) => {
                        if !deliveries::finish(
                            conn,
                            &row.notification_id,
                            *state,
                            error.as_deref(),
                            now,
                        )? {
                            return Ok(false);
                        }
                        let event = sent_event(&row, channel, *state, attempts, error.clone(), now);
                        service_kit::outbox::store::insert(
                            conn,
                            &[outbox_entry(&event, row.traceparent.as_deref(), now)],
                        )?;
                        Ok(true)
                    }
                }
            })
            .await;
        match result {
            Ok(written) => {
                // Only the transaction that finished the delivery counts it.
                if let (true, Verdict::Finish(state, _)) = (written, &*verdict) {
                    shared
                        .metrics
                        .notifications_total
                        .with_label_values(&[channel.as_str(), state.as_str()])
                        .inc();
                }
                return written;
            }
            Err(e) => {
                tracing::warn!(error = %e, tries, "cannot record the delivery outcome; retrying");
                tokio::time::sleep(Duration::from_millis(200) * 2u32.pow(tries)).await;
            }
        }
    }
    false
}

/// The notification.sent of a finished delivery; its id derives from the notification id, so
/// it is the same event whatever is replayed.
pub fn sent_event(
    row: &DeliveryRow,
    channel: NotificationChannel,
    state: DeliveryState,
    attempts: i32,
    error: Option<String>,
    now: i64,
) -> NotificationSentEvent {
    NotificationSentEvent {
        event_id: events::ids::derived_event_id(
            Topic::NotificationSent.name(),
            &row.notification_id,
        )
        .to_string(),
        event_timestamp: now,
        notification_id: row.notification_id.clone(),
        // An assignment's row holds the assignment's id there: it is no reminder.
        reminder_id: (NoticeKind::parse(&row.kind) == NoticeKind::Reminder)
            .then(|| row.reminder_id.clone()),
        user_id: row.user_id.clone(),
        task_id: Some(row.task_id.clone()),
        channel,
        status: match state {
            DeliveryState::Delivered => DeliveryStatus::Delivered,
            _ => DeliveryStatus::Failed,
        },
        attempts: attempts.max(1),
        sent_at: now,
        error,
    }
}
