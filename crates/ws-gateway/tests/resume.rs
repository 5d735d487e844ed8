//! Resume on any instance (issue 21): a client that was served by one gateway reconnects to
//! another with its cursor and gets exactly what it missed, with no resync: from the other
//! instance's buffer when it was running all along, read back from Kafka when it started
//! after the client's last message.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use serde_json::Value;
use support::*;

/// A task's life in three events: created, then two updates (same task, same partition).
fn a_task_in_three_versions(user: &str) -> Vec<events::AnyEvent> {
    use events::Event;
    let c = created(user);
    let mut versions = vec![c.clone().into_any()];
    for version in 2..=3 {
        let mut u = updated(user);
        u.task_id = c.task_id.clone();
        u.version = version;
        u.title = format!("version {version}");
        versions.push(u.into_any());
    }
    versions
}

async fn publish_all(gw: &TestGateway, events: &[events::AnyEvent]) {
    for e in events {
        gw.publisher.publish_any(e, None).await.unwrap();
    }
}

fn event_ids(events: &[events::AnyEvent]) -> Vec<String> {
    let mut ids: Vec<String> = events.iter().map(|e| e.event_id().to_owned()).collect();
    ids.sort();
    ids
}

/// The replayed messages' event ids (sorted), after checking that each task's messages come
/// in version order (a replay is in event order).
fn checked_ids(messages: &[Value]) -> Vec<String> {
    let mut last_version: HashMap<&str, i64> = HashMap::new();
    for m in messages {
        let (task, version) = (
            m["data"]["id"].as_str().unwrap(),
            m["data"]["version"].as_i64().unwrap(),
        );
        let before = last_version.insert(task, version).unwrap_or(0);
        assert!(
            before < version,
            "task {task}: version {version} after {before}"
        );
    }
    let mut ids: Vec<String> = messages
        .iter()
        .map(|m| m["event_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_client_resumes_on_another_instance_and_on_one_started_since() {
    let (one, two) = (spawn_gateway().await, spawn_gateway().await);
    let user = new_user();
    let (mut tab, _) = one.connect(&user).await;
    let (mut witness, _) = two.connect(&user).await;
    let before = a_task_in_three_versions(&user);
    publish_all(&one, &before).await;
    let seen = take(&mut tab, 3).await;
    take(&mut witness, 3).await;
    // Live, topics are read in parallel: a task's update may overtake its creation (a replay
    // puts them back in order, checked below).
    let mut live_ids: Vec<String> = seen
        .iter()
        .map(|m| m["event_id"].as_str().unwrap().to_owned())
        .collect();
    live_ids.sort();
    assert_eq!(live_ids, event_ids(&before));
    // The cursor of the last message received: everything before it was received.
    let cursor = seen[2]["cursor"].as_str().unwrap().to_owned();
    drop(tab);

    // Missed while away: two more tasks' lives, spread over partitions.
    let mut missed = a_task_in_three_versions(&user);
    missed.extend(a_task_in_three_versions(&user));
    publish_all(&one, &missed).await;
    take(&mut witness, missed.len()).await;

    // Instance two was running all along: served from its buffer.
    let (mut ws, replay, ready) = resume(&two.ws_base, &two.token(&user), &cursor).await;
    assert_eq!(checked_ids(&replay), event_ids(&missed));
    assert_eq!(ready["replayed"], missed.len());
    // The live stream goes on there, with nothing repeated.
    let live = deleted(&user);
    two.publish(&live).await;
    assert_eq!(next_json(&mut ws).await["event_id"], live.event_id.as_str());

    // Instance three starts after all of it: what the client missed is read back from Kafka.
    let three = spawn_gateway().await;
    let (_ws, replay, ready) = resume(&three.ws_base, &three.token(&user), &cursor).await;
    let mut expected = missed.clone();
    expected.push(events::Event::into_any(live.clone()));
    assert_eq!(checked_ids(&replay), event_ids(&expected));
    assert_eq!(ready["replayed"], expected.len());
    let metrics = three.metrics().await;
    assert_eq!(
        service_kit::testing::metric_sum(&metrics, "ws_read_backs_total", &[r#"outcome="served""#]),
        1.0
    );

    // The cursor from instance three resumes on instance one: the cursor is the same language
    // everywhere.
    let from_three = replay.last().unwrap()["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_ws, replay, _) = resume(&one.ws_base, &one.token(&user), &from_three).await;
    assert!(replay.is_empty(), "nothing new: {replay:?}");
    for gw in [one, two, three] {
        gw.stop().await;
    }
}
