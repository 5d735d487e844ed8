//! Topic administration from the catalogue: create what is missing, repair settings that drifted,
//! and describe what the brokers hold. Idempotent: running it twice changes nothing the second time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::catalogue::{DeadLetterTopic, REPLICATION_FACTOR, Topic};

/// A topic as it must exist on the brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub configs: BTreeMap<String, String>,
}

impl DesiredTopic {
    pub fn of(topic: Topic) -> Self {
        Self {
            name: topic.name().to_owned(),
            partitions: topic.spec().partitions,
            replication_factor: REPLICATION_FACTOR,
            configs: topic
                .configs()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }
    }

    pub fn dead_letter(dlq: DeadLetterTopic) -> Self {
        Self {
            name: dlq.name(),
            partitions: dlq.partitions(),
            replication_factor: REPLICATION_FACTOR,
            configs: dlq
                .configs()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }
    }

    /// The catalogue's topics followed by every dead-letter topic.
    pub fn everything() -> Vec<Self> {
        Topic::ALL
            .into_iter()
            .map(Self::of)
            .chain(DeadLetterTopic::all().map(Self::dead_letter))
            .collect()
    }
}

/// A topic as the brokers report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    pub name: String,
    pub partitions: i32,
    /// Smallest replica count over the partitions.
    pub replication_factor: i32,
    /// Smallest in-sync replica count over the partitions.
    pub min_isr_seen: i32,
    /// The configs named in the catalogue, as the brokers hold them.
    pub configs: BTreeMap<String, String>,
}

/// What [`TopicAdmin::ensure`] did to one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    Unchanged,
    /// Configs or partition count were repaired.
    Repaired,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("creating topic {0} failed: {1:?}")]
    Create(String, RDKafkaErrorCode),
    #[error("topic {topic}: {problem}")]
    Mismatch { topic: String, problem: String },
    #[error("describing {0} failed: {1:?}")]
    Describe(String, RDKafkaErrorCode),
    #[error("metadata task failed: {0}")]
    Join(String),
}

/// Broker of the cluster, from metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
}

pub struct TopicAdmin {
    admin: Arc<AdminClient<DefaultClientContext>>,
    timeout: Duration,
}

impl TopicAdmin {
    /// An admin client over `client` (where the brokers are and how to authenticate;
    /// `service_kit::kafka` builds it).
    pub fn connect(client: &ClientConfig) -> Result<Self, KafkaError> {
        let admin = client.create()?;
        Ok(Self {
            admin: Arc::new(admin),
            timeout: Duration::from_secs(30),
        })
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .operation_timeout(Some(self.timeout))
            .request_timeout(Some(self.timeout))
    }

    /// Create every desired topic that is missing and repair those that differ. Partitions can
    /// only grow; a topic with more partitions or another replication factor than desired is an
    /// error to fix by hand, never silently "repaired" by deleting data.
    pub async fn ensure(
        &self,
        desired: &[DesiredTopic],
    ) -> Result<Vec<(String, Ensured)>, AdminError> {
        let new_topics: Vec<NewTopic<'_>> = desired
            .iter()
            .map(|d| {
                d.configs.iter().fold(
                    NewTopic::new(
                        &d.name,
                        d.partitions,
                        TopicReplication::Fixed(d.replication_factor),
                    ),
                    |t, (k, v)| t.set(k, v),
                )
            })
            .collect();
        let mut created = Vec::new();
        // Right after a cluster starts the controller may not know every broker yet: retry
        // "not enough brokers" for a bounded time.
        let deadline = Instant::now() + self.timeout;
        let mut pending: Vec<&NewTopic<'_>> = new_topics.iter().collect();
        while !pending.is_empty() {
            let results = self
                .admin
                .create_topics(pending.iter().copied(), &self.options())
                .await?;
            let mut retry = Vec::new();
            for (topic, result) in pending.iter().zip(results) {
                match result {
                    Ok(name) => created.push(name),
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((_, RDKafkaErrorCode::InvalidReplicationFactor))
                        if Instant::now() < deadline =>
                    {
                        retry.push(*topic)
                    }
                    Err((name, code)) => return Err(AdminError::Create(name, code)),
                }
            }
            if !retry.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            pending = retry;
        }

        let names: Vec<&str> = desired.iter().map(|d| d.name.as_str()).collect();
        // A topic just created may not be in every broker's metadata yet: wait for it (bounded).
        let deadline = Instant::now() + self.timeout;
        let states = loop {
            match self.describe(&names).await {
                Err(AdminError::Mismatch { ref problem, .. })
                    if problem == "does not exist" && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => break other?,
            }
        };
        let mut outcome = Vec::with_capacity(desired.len());
        for (d, state) in desired.iter().zip(&states) {
            if created.contains(&d.name) {
                outcome.push((d.name.clone(), Ensured::Created));
                continue;
            }
            if state.replication_factor != d.replication_factor {
                return Err(AdminError::Mismatch {
                    topic: d.name.clone(),
                    problem: format!(
                        "replication factor {} (catalogue: {})",
                        state.replication_factor, d.replication_factor
                    ),
                });
            }
            if state.partitions > d.partitions {
                return Err(AdminError::Mismatch {
                    topic: d.name.clone(),
                    problem: format!(
                        "{} partitions (catalogue: {})",
                        state.partitions, d.partitions
                    ),
                });
            }
            let mut repaired = false;
            if state.partitions < d.partitions {
                let grow = NewPartitions::new(&d.name, d.partitions as usize);
                for r in self
                    .admin
                    .create_partitions([&grow], &self.options())
                    .await?
                {
                    r.map_err(|(n, c)| AdminError::Create(n, c))?;
                }
                repaired = true;
            }
            if state.configs != d.configs {
                let alter = d.configs.iter().fold(
                    AlterConfig::new(ResourceSpecifier::Topic(&d.name)),
                    |a, (k, v)| a.set(k, v),
                );
                for r in self.admin.alter_configs([&alter], &self.options()).await? {
                    r.map_err(|(_, c)| AdminError::Describe(d.name.clone(), c))?;
                }
                repaired = true;
            }
            outcome.push((
                d.name.clone(),
                if repaired {
                    Ensured::Repaired
                } else {
                    Ensured::Unchanged
                },
            ));
        }
        Ok(outcome)
    }

    /// Partitions, replication and the catalogue's configs of the named topics.
    pub async fn describe(&self, names: &[&str]) -> Result<Vec<TopicState>, AdminError> {
        let admin = self.admin.clone();
        let timeout = self.timeout;
        // librdkafka's metadata call blocks; keep it off the async executor.
        let metadata =
            tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, timeout))
                .await
                .map_err(|e| AdminError::Join(e.to_string()))??;
        let specs: Vec<ResourceSpecifier<'_>> =
            names.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
        let configs = self
            .admin
            .describe_configs(specs.iter(), &self.options())
            .await?;
        let mut states = Vec::with_capacity(names.len());
        for (name, config) in names.iter().zip(configs) {
            let config = config.map_err(|c| AdminError::Describe((*name).to_owned(), c))?;
            let topic = metadata
                .topics()
                .iter()
                .find(|t| t.name() == *name)
                .filter(|t| t.error().is_none())
                .ok_or_else(|| AdminError::Mismatch {
                    topic: (*name).to_owned(),
                    problem: "does not exist".to_owned(),
                })?;
            let partitions = topic.partitions();
            let wanted = ["min.insync.replicas", "retention.ms", "compression.type"];
            states.push(TopicState {
                name: (*name).to_owned(),
                partitions: partitions.len() as i32,
                replication_factor: partitions
                    .iter()
                    .map(|p| p.replicas().len() as i32)
                    .min()
                    .unwrap_or(0),
                min_isr_seen: partitions
                    .iter()
                    .map(|p| p.isr().len() as i32)
                    .min()
                    .unwrap_or(0),
                configs: config
                    .entries
                    .iter()
                    .filter(|e| wanted.contains(&e.name.as_str()))
                    .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                    .collect(),
            });
        }
        Ok(states)
    }

    /// The brokers the cluster reports.
    pub async fn brokers(&self) -> Result<Vec<BrokerInfo>, AdminError> {
        let admin = self.admin.clone();
        let timeout = self.timeout;
        let metadata =
            tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, timeout))
                .await
                .map_err(|e| AdminError::Join(e.to_string()))??;
        let mut brokers: Vec<BrokerInfo> = metadata
            .brokers()
            .iter()
            .map(|b| BrokerInfo {
                id: b.id(),
                host: b.host().to_owned(),
                port: b.port(),
            })
            .collect();
        brokers.sort_by_key(|b| b.id);
        Ok(brokers)
    }
}
