//! One task per assigned partition: takes its events in order, runs each to an outcome
//! (applied, or dead-lettered), then stores its offset. Events already waiting are handled as
//! one batch when the handler allows it.

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
use crate::metrics::Metrics;
use crate::telemetry::{self, TraceContext};

/// A queue falls back under this fraction of its bound before its partition resumes.
const RESUME_DIVISOR: usize = 2;
/// Upper bound of the delay between attempts while a dependency is unavailable.
const UNAVAILABLE_MAX_DELAY: Duration = Duration::from_secs(5);

pub(crate) fn pause(consumer: &KafkaConsumer, state: &PartitionState, metrics: &Metrics) {
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
            metrics
                .partition_pauses_total
                .with_label_values(&[state.topic.as_str()])
                .inc();
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

/// How an event (or a batch) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    let max_batch = shared.handler.max_batch().max(1);
    let mut batch: Vec<OwnedMessage> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        state.busy.store(true, Ordering::Release);
        if state.revoked.load(Ordering::Acquire) {
            state.busy.store(false, Ordering::Release);
            break;
        }
        let started = Instant::now();
        shared
            .metrics
            .batch_size
            .with_label_values(&[state.topic.as_str()])
            .observe(batch.len() as f64);
        let (done, outcome) = process_batch(&shared, &state, &batch).await;
        if done > 0 {
            let last = &batch[done - 1];
            // rd_kafka_offset_store stores offset + 1: the next message to read.
            if let Err(e) =
                shared
                    .consumer
                    .store_offset(&state.topic, state.partition, last.offset())
            {
                tracing::debug!(error = %e, "offset not stored (partition revoked?)");
            }
            let per_event = started.elapsed().as_secs_f64() / done as f64;
            let histogram = shared
                .metrics
                .event_processing_seconds
                .with_label_values(&[state.topic.as_str()]);
            for _ in 0..done {
                histogram.observe(per_event);
            }
        }
        state.busy.store(false, Ordering::Release);
        state.queued.fetch_sub(batch.len(), Ordering::AcqRel);
        batch.clear();
        resume_if_drained(
            &shared.consumer,
            &state,
            shared.settings.max_queued_per_partition,
        );
        if outcome == Outcome::Abandoned {
            break;
        }
    }
}

fn meta_of(message: &OwnedMessage, topic: Topic) -> EventMeta {
    let header = |name: &str| events::publish::header_str(message, name).map(str::to_owned);
    let schema_id = message
        .payload()
        .filter(|p| p.len() >= 5 && p[0] == 0)
        .map(|p| u32::from_be_bytes([p[1], p[2], p[3], p[4]]));
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
        schema_id,
    }
}

fn stopping(shared: &Shared<impl EventHandler>, state: &PartitionState) -> bool {
    shared.shutdown.is_triggered() || state.revoked.load(Ordering::Acquire)
}

/// Process a batch in order. Returns how many leading messages reached an outcome (their
/// offsets may be stored) and whether the partition was abandoned.
async fn process_batch<H: EventHandler>(
    shared: &Shared<H>,
    state: &PartitionState,
    batch: &[OwnedMessage],
) -> (usize, Outcome) {
    let Ok(topic) = state.topic.parse::<Topic>() else {
        tracing::error!(topic = %state.topic, "subscribed to a topic outside the catalogue");
        return (0, Outcome::Abandoned);
    };
    if batch.len() == 1 {
        let outcome = process_one(shared, state, topic, &batch[0]).await;
        return (usize::from(outcome != Outcome::Abandoned), outcome);
    }
    // Decode everything first: a message that does not decode is handled alone below.
    let mut received = Vec::with_capacity(batch.len());
    for message in batch {
        match shared.codec.decode(topic.name(), message.payload()).await {
            Ok(event) => received.push(Received {
                event,
                meta: meta_of(message, topic),
            }),
            Err(_) => return process_each(shared, state, topic, batch).await,
        }
    }
    let span = tracing::info_span!("batch", topic = %topic, partition = state.partition, first_offset = batch[0].offset(), size = batch.len());
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let delay = match shared
            .handler
            .handle_batch(&received)
            .instrument(span.clone())
            .await
        {
            Ok(()) => {
                shared
                    .metrics
                    .events_total
                    .with_label_values(&[topic.name(), "handled"])
                    .inc_by(batch.len() as u64);
                return (batch.len(), Outcome::Applied);
            }
            Err(HandleError::Unavailable(reason)) => {
                span.in_scope(
                    || tracing::warn!(%reason, attempt, "dependency unavailable; retrying batch"),
                );
                shared
                    .settings
                    .retry
                    .delay(attempt)
                    .min(UNAVAILABLE_MAX_DELAY)
            }
            Err(HandleError::Retryable(_)) if attempt < 3 => shared.settings.retry.delay(attempt),
            Err(e) => {
                span.in_scope(
                    || tracing::info!(error = %e, "batch failed; handling its events one by one"),
                );
                return process_each(shared, state, topic, batch).await;
            }
        };
        shared
            .metrics
            .event_retries_total
            .with_label_values(&[topic.name()])
            .inc();
        if sleep_unless_stopping(shared, state, delay).await {
            return (0, Outcome::Abandoned);
        }
    }
}

async fn process_each<H: EventHandler>(
    shared: &Shared<H>,
    state: &PartitionState,
    topic: Topic,
    batch: &[OwnedMessage],
) -> (usize, Outcome) {
    for (i, message) in batch.iter().enumerate() {
        if process_one(shared, state, topic, message).await == Outcome::Abandoned {
            return (i, Outcome::Abandoned);
        }
    }
    (batch.len(), Outcome::Applied)
}

async fn process_one<H: EventHandler>(
    shared: &Shared<H>,
    state: &PartitionState,
    topic: Topic,
    message: &OwnedMessage,
) -> Outcome {
    let mut meta = meta_of(message, topic);
    let span = tracing::info_span!(
        "event",
        trace_id = tracing::field::Empty,
        topic = %topic,
        partition = meta.partition,
        offset = meta.offset,
    );
    // Handling is a step of the producer's trace; what the handler causes carries this span's
    // context on.
    let parent = events::publish::header_str(message, events::headers::TRACEPARENT)
        .and_then(TraceContext::parse);
    meta.trace = telemetry::continue_trace(&span, parent);
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
