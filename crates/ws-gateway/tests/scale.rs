//! A thousand concurrent connections, each receiving exactly its own user's events.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use support::*;

const USERS: usize = 250;
const PER_USER: usize = 4;

#[tokio::test]
async fn a_thousand_connections_each_get_their_users_events() {
    let gw = spawn_gateway().await;
    let users: Vec<String> = (0..USERS).map(|_| new_user()).collect();
    let started = Instant::now();
    let wanted: Vec<(usize, String)> = users
        .iter()
        .enumerate()
        .flat_map(|(i, u)| std::iter::repeat_n((i, u.clone()), PER_USER))
        .collect();
    let connections: Vec<(usize, Ws)> = futures::stream::iter(wanted)
        .map(|(i, user)| {
            let gw = &gw;
            async move {
                let (ws, _) = gw.connect(&user).await;
                Ok::<_, ()>((i, ws))
            }
        })
        .buffer_unordered(64)
        .try_collect()
        .await
        .unwrap();
    let connect_time = started.elapsed();
    gw.wait_for_stats(USERS * PER_USER, USERS).await;

    // Two events per user, so every partition of task.created and task.completed is used.
    let created: Vec<_> = users.iter().map(|u| created(u)).collect();
    let completed: Vec<_> = users.iter().map(|u| completed(u)).collect();
    let published = Instant::now();
    let (a, b) = futures::future::join(
        futures::future::join_all(created.iter().map(|e| gw.publisher.publish(e, None))),
        futures::future::join_all(completed.iter().map(|e| gw.publisher.publish(e, None))),
    )
    .await;
    for r in a.into_iter().chain(b) {
        r.unwrap();
    }

    let readers = connections.into_iter().map(|(i, mut ws)| {
        let mut expected = vec![created[i].event_id.clone(), completed[i].event_id.clone()];
        async move {
            let mut got: Vec<String> = take(&mut ws, 2)
                .await
                .iter()
                .map(|m| m["event_id"].as_str().unwrap().to_owned())
                .collect();
            got.sort();
            expected.sort();
            assert_eq!(got, expected, "connection of user {i}");
            ws
        }
    });
    let connections = tokio::time::timeout(BOUND, futures::future::join_all(readers))
        .await
        .expect("every connection got its events");
    let delivered = published.elapsed();
    println!(
        "{} connections opened in {connect_time:?}; {} events delivered to all of them in {delivered:?}",
        connections.len(),
        created.len() + completed.len()
    );
    let metrics = gw.metrics().await;
    assert_eq!(
        service_kit::testing::metric_sum(&metrics, "ws_messages_sent_total", &[]),
        (USERS * PER_USER * 2) as f64
    );
    drop(connections);
    gw.wait_for_stats(0, 0).await;
    tokio::time::timeout(Duration::from_secs(30), gw.stop())
        .await
        .unwrap();
}
