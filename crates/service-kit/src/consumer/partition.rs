//! One task per assigned partition: takes its events in order, runs each to an outcome
//! (applied, or dead-lettered), then stores its offset.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use events::Topic;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{
    EventHandler, EventMeta, HandleError, KafkaConsumer, PartitionState, Received, Shared,
};
use crate::telemetry::TraceContext;

/// A queue falls back under this fraction of its bound before its partition resumes.
const RESUME_DIVISOR: usize = 2;
/// Upper bound of the delay between attempts while a dependency is unavailable.
const UNAVAILABLE_MAX_DELAY: Duration = Duration::from_secs(5);

pub(crate) fn pause(consumer: &KafkaConsumer, state: &PartitionState) {
    let Ok(mut paused) = state.paused.lock() else {
        return;
    };
    if *paused {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&state.topic, state.partition);
    match consumer.pause(&tpl) {
        Ok(()) => {
            *paused = true;
            tracing::debug!(topic = %state.topic, partition = state.partition, "partition paused (queue full)");
        }
        Err(e) => tracing::warn!(error = %e, "cannot pause partition"),
    }
}

fn resume_if_drained(consumer: &KafkaConsumer, state: &PartitionState, bound: usize) {
    if state.queued.load(Ordering::Acquire) > bound / RESUME_DIVISOR {
        return;
    }
    let Ok(mut paused) = state.paused.lock() else {
        return;
    };
    if !*paused {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&state.topic, state.partition);
    if consumer.resume(&tpl).is_ok() {
        *paused = false;
    }
}

/// How one event ended.
enum Outcome {
    Applied,
    DeadLettered,
    /// Stopped before an outcome (shutdown or revoke): do not store the offset.
    Abandoned,
}

pub(crate) async fn run<H: EventHandler>(
    shared: Arc<Shared<H>>,
    state: Arc<PartitionState>,
    mut rx: mpsc::UnboundedReceiver<OwnedMessage>,
) {
    while let Some(message) = rx.recv().await {
        state.busy.store(true, Ordering::Release);
        if state.revoked.load(Ordering::Acquire) {
            state.busy.store(false, Ordering::Release);
            break;
        }
        let started = Instant::now();
        let outcome = process(&shared, &state, &message).await;
        if !matches!(outcome, Outcome::Abandoned) {
            // rd_kafka_offset_store stores offset + 1: the next message to read.
            if let Err(e) =
                shared
                    .consumer
                    .store_offset(&state.topic, state.partition, message.offset())
            {
                tracing::debug!(error = %e, "offset not stored (partition revoked?)");
            }
            shared
                .metrics
                .event_processing_seconds
                .with_label_values(&[state.topic.as_str()])
                .observe(started.elapsed().as_secs_f64());
        }
        state.busy.store(false, Ordering::Release);
        state.queued.fetch_sub(1, Ordering::AcqRel);
        resume_if_drained(
            &shared.consumer,
            &state,
            shared.settings.max_queued_per_partition,
        );
        if matches!(outcome, Outcome::Abandoned) {
            break;
        }
    }
}

fn meta_of(message: &OwnedMessage, topic: Topic) -> EventMeta {
    let header = |name: &str| events::publish::header_str(message, name).map(str::to_owned);
    EventMeta {
        topic,
        partition: message.partition(),
        offset: message.offset(),
        key: message
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .map(str::to_owned),
        trace: TraceContext::from_header_or_new(header(events::headers::TRACEPARENT).as_deref()),
        producer: header(events::headers::PRODUCER),
        timestamp: message.timestamp().to_millis(),
    }
}

fn stopping(shared: &Shared<impl EventHandler>, state: &PartitionState) -> bool {
    shared.shutdown.is_triggered() || state.revoked.load(Ordering::Acquire)
}

async fn process<H: EventHandler>(
    shared: &Shared<H>,
    state: &PartitionState,
    message: &OwnedMessage,
) -> Outcome {
    let Ok(topic) = state.topic.parse::<Topic>() else {
        return dead_letter_or_abandon(
            shared,
            state,
            Topic::TaskCreated,
            message,
            "unknown_topic",
            "not a topic of the catalogue",
            1,
        )
        .await;
    };
    let meta = meta_of(message, topic);
    let span = tracing::info_span!(
        "event",
        trace_id = %meta.trace.trace_id(),
        topic = %topic,
        partition = meta.partition,
        offset = meta.offset,
    );
    async {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let result = match shared.codec.decode(topic.name(), message.payload()).await {
                Ok(event) => {
                    let received = Received {
                        event,
                        meta: meta.clone(),
                    };
                    shared.handler.handle(&received).await
                }
                Err(e) if e.is_retryable() => Err(HandleError::Unavailable(e.to_string())),
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable event");
                    return dead_letter_or_abandon(
                        shared,
                        state,
                        topic,
                        message,
                        e.kind(),
                        &e.to_string(),
                        attempt,
                    )
                    .await;
                }
            };
            let delay = match result {
                Ok(()) => {
                    shared
                        .metrics
                        .events_total
                        .with_label_values(&[topic.name(), "handled"])
                        .inc();
                    return Outcome::Applied;
                }
                Err(HandleError::Permanent(reason)) => {
                    tracing::warn!(%reason, "event failed permanently");
                    return dead_letter_or_abandon(
                        shared,
                        state,
                        topic,
                        message,
                        "permanent",
                        &reason,
                        attempt,
                    )
                    .await;
                }
                Err(HandleError::Retryable(reason)) => {
                    if attempt >= shared.settings.retry.max_attempts {
                        tracing::warn!(%reason, attempt, "retries exhausted");
                        return dead_letter_or_abandon(
                            shared,
                            state,
                            topic,
                            message,
                            "retries_exhausted",
                            &reason,
                            attempt,
                        )
                        .await;
                    }
                    tracing::info!(%reason, attempt, "retrying event");
                    shared.settings.retry.delay(attempt)
                }
                Err(HandleError::Unavailable(reason)) => {
                    tracing::warn!(%reason, attempt, "dependency unavailable; retrying");
                    shared
                        .settings
                        .retry
                        .delay(attempt)
                        .min(UNAVAILABLE_MAX_DELAY)
                }
            };
            shared
                .metrics
                .event_retries_total
                .with_label_values(&[topic.name()])
                .inc();
            if sleep_unless_stopping(shared, state, delay).await {
                return Outcome::Abandoned;
            }
        }
    }
    .instrument(span)
    .await
}

/// Sleep `delay`; `true` when the partition is being stopped instead.
async fn sleep_unless_stopping(
    shared: &Shared<impl EventHandler>,
    state: &PartitionState,
    delay: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + delay;
    loop {
        if stopping(shared, state) {
            return true;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        // Wake at least every 100 ms to notice a revoke, which has no async signal.
        tokio::select! {
            _ = shared.shutdown.wait() => return true,
            _ = tokio::time::sleep((deadline - now).min(Duration::from_millis(100))) => {}
        }
    }
}

/// Dead-letter the message, retrying the publish until the brokers take it (or the partition
/// stops, in which case the offset is not stored and the event comes back later).
async fn dead_letter_or_abandon(
    shared: &Shared<impl EventHandler>,
    state: &PartitionState,
    topic: Topic,
    message: &OwnedMessage,
    kind: &str,
    error: &str,
    attempts: u32,
) -> Outcome {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match shared
            .dead_letters
            .publish(topic, message, kind, error, attempts)
            .await
        {
            Ok(()) => {
                shared
                    .metrics
                    .dead_letters_total
                    .with_label_values(&[topic.name(), kind])
                    .inc();
                shared
                    .metrics
                    .events_total
                    .with_label_values(&[topic.name(), "dead_lettered"])
                    .inc();
                tracing::warn!(kind, error, "event sent to the dead-letter topic");
                return Outcome::DeadLettered;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot publish to the dead-letter topic; retrying");
                let delay = shared
                    .settings
                    .retry
                    .delay(attempt)
                    .min(UNAVAILABLE_MAX_DELAY);
                if sleep_unless_stopping(shared, state, delay).await {
                    return Outcome::Abandoned;
                }
            }
        }
    }
}
