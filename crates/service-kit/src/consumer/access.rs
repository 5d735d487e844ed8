//! Whether the brokers accept the consumer: what `/readyz` needs to see a refusal that only
//! the consumer meets. The readiness client asks for the topics' metadata, which a user with
//! topic ACLs but none for its consumer group passes; joining the group is refused only to the
//! consumer itself (GroupAuthorizationFailed from the coordinator), and it stays refused until
//! an ACL is granted, so it gates readiness like a topic refusal does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::error::KafkaError;

/// The consumer's last refusal, from the poll loop; cleared when it is let in again
/// (partitions assigned, or a message received). Cloned handles share one state.
#[derive(Clone, Default)]
pub struct ConsumerAccess {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    // Read on every polled message, so the common case (never refused) is one atomic load.
    refused: AtomicBool,
    why: Mutex<Option<String>>,
}

impl ConsumerAccess {
    pub(crate) fn refused(&self, error: &KafkaError) {
        if let Ok(mut why) = self.inner.why.lock() {
            *why = Some(error.to_string());
        }
        self.inner.refused.store(true, Ordering::Release);
    }

    pub(crate) fn accepted(&self) {
        if self.inner.refused.swap(false, Ordering::AcqRel)
            && let Ok(mut why) = self.inner.why.lock()
        {
            *why = None;
        }
    }

    /// `Err` naming the refusal while the brokers refuse this consumer.
    pub fn check(&self) -> Result<(), String> {
        if !self.inner.refused.load(Ordering::Acquire) {
            return Ok(());
        }
        let why = self
            .inner
            .why
            .lock()
            .ok()
            .and_then(|w| w.clone())
            .unwrap_or_default();
        Err(format!(
            "kafka refused this service's consumer ({why}): grant its user READ on its group and topics"
        ))
    }
}
