//! With one of the three brokers killed (SIGKILL), producing with acks=all and consuming still
//! work; after it restarts the cluster is whole again. Its own test binary, so no other test of
//! this crate runs while a broker is down.

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use events::admin::{DesiredTopic, TopicAdmin};
use events::{AnyEvent, Event, Topic, sample};
use rdkafka::Message;
use support::*;

const KILLED: &str = "3";

fn kafka_script(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/kafka.sh");
    let status = Command::new(script)
        .args(args)
        .status()
        .expect("run scripts/kafka.sh");
    assert!(status.success(), "scripts/kafka.sh {args:?} failed");
}

/// Restarts the killed broker however the test ends, so later tests find a whole cluster.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        kafka_script(&["start-broker", KILLED]);
    }
}

async fn wait_until_whole(admin: &TopicAdmin) {
    let desired = DesiredTopic::everything();
    let names: Vec<&str> = desired.iter().map(|d| d.name.as_str()).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let brokers = admin.brokers().await.map(|b| b.len()).unwrap_or(0);
        let full_isr = admin
            .describe(&names)
            .await
            .map(|states| states.iter().all(|s| s.min_isr_seen == 3))
            .unwrap_or(false);
        if brokers == 3 && full_isr {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster not whole again after 120 s (brokers: {brokers})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn producing_and_consuming_survive_the_loss_of_one_broker() {
    let admin = TopicAdmin::connect(&client_config()).unwrap();
    wait_until_whole(&admin).await;
    let codec = codec();
    let publisher = publisher(codec.clone());
    codec.register_all(&Topic::ALL).await.unwrap();

    kafka_script(&["kill-broker", KILLED]);
    let restart = Restart;

    // Every partition of task.created and task.updated gets writes (random keys), so some land
    // on partitions whose leader just died and must fail over.
    let user = user();
    let mut sent: Vec<(AnyEvent, events::Delivered)> = Vec::new();
    for _ in 0..30 {
        let created = sample::task_created(&uuid::Uuid::new_v4().to_string());
        let delivered = publisher
            .publish(&created, None)
            .await
            .expect("publish with a broker down");
        sent.push((created.into_any(), delivered));
        let updated = sample::task_updated(&user);
        let delivered = publisher
            .publish(&updated, None)
            .await
            .expect("publish with a broker down");
        sent.push((updated.into_any(), delivered));
    }
    for (event, delivered) in &sent {
        let topic = event.topic().name();
        let message = fetch(topic, delivered.partition, delivered.offset);
        assert_eq!(
            &codec.decode(topic, message.payload()).await.unwrap(),
            event
        );
    }
    let partitions: std::collections::HashSet<_> =
        sent.iter().map(|(e, d)| (e.topic(), d.partition)).collect();
    assert!(partitions.len() >= 4, "writes reached only {partitions:?}");

    drop(restart);
    wait_until_whole(&admin).await;
    let after = sample::task_deleted(&user);
    let delivered = publisher.publish(&after, None).await.unwrap();
    let message = fetch(
        Topic::TaskDeleted.name(),
        delivered.partition,
        delivered.offset,
    );
    assert_eq!(message.key(), Some(after.key().as_bytes()));
}
