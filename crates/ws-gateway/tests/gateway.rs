//! The gateway against the real cluster and registry, seen through real WebSocket clients.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use events::sample;
use serde_json::Value;
use service_kit::testing;
use support::*;
use ws_gateway::cursor::{Layout, Position};

fn ids(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["event_id"].as_str().unwrap().to_owned())
        .collect()
}

fn layout() -> Layout {
    Layout::of(events::Service::WsGateway.consumes())
}

fn cursor_of(message: &Value) -> Position {
    layout().parse(message["cursor"].as_str().unwrap()).unwrap()
}

/// Publish one event of every forwarded kind for `user` (and a user event that is not
/// forwarded); returns the forwarded events' ids by type.
async fn publish_one_of_each(gw: &TestGateway, user: &str) -> Vec<(String, String)> {
    let created = created(user);
    let updated = updated(user);
    let completed = completed(user);
    let deleted = deleted(user);
    let reminder = sample::reminder_triggered(user);
    let notification = sample::notification_sent(user);
    gw.publish(&sample::user_registered(user)).await;
    gw.publish(&created).await;
    gw.publish(&updated).await;
    gw.publish(&completed).await;
    gw.publish(&deleted).await;
    gw.publish(&reminder).await;
    gw.publish(&notification).await;
    vec![
        ("task_created".into(), created.event_id),
        ("task_updated".into(), updated.event_id),
        ("task_completed".into(), completed.event_id),
        ("task_deleted".into(), deleted.event_id),
        ("reminder_triggered".into(), reminder.event_id),
        ("notification_sent".into(), notification.event_id),
    ]
}

#[tokio::test]
async fn both_connections_of_a_user_get_its_events_and_another_user_gets_none() {
    let gw = spawn_gateway().await;
    let (a, b) = (new_user(), new_user());
    let (mut a1, _) = gw.connect(&a).await;
    let (mut a2, _) = gw.connect(&a).await;
    let (mut b1, _) = gw.connect(&b).await;

    let expected = publish_one_of_each(&gw, &a).await;
    let got1 = take(&mut a1, expected.len()).await;
    let got2 = take(&mut a2, expected.len()).await;
    assert_eq!(got1, got2, "both connections see the same messages");
    // Topics are read in parallel, so the order across types is not fixed.
    let seen: HashSet<(String, String)> = got1
        .iter()
        .map(|m| {
            (
                m["type"].as_str().unwrap().to_owned(),
                m["event_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(seen, expected.into_iter().collect());
    let cursors: Vec<Position> = got1.iter().map(cursor_of).collect();
    assert!(
        cursors
            .windows(2)
            .all(|w| w[1].covers(&w[0]) && w[1] != w[0]),
        "each cursor is further on than the one before"
    );
    for m in &got1 {
        assert!(m["data"].is_object(), "{m}");
    }

    // A's events are all routed by now; B's own marker must be the first thing B sees.
    let marker = created(&b);
    gw.publish(&marker).await;
    let first = next_json(&mut b1).await;
    assert_eq!(first["event_id"], marker.event_id.as_str(), "{first}");
    gw.stop().await;
}

#[tokio::test]
async fn a_token_speaks_only_for_its_own_user() {
    let gw = spawn_gateway().await;
    let (a, b) = (new_user(), new_user());
    // There is no way to name another user: unknown parameters are refused.
    let status = refused_status(
        &gw.ws_base,
        &format!("token={}&user_id={a}", gw.token(&b)),
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (mut b1, _) = gw.connect(&b).await;
    let (mut a1, _) = gw.connect(&a).await;
    let secret = created(&a);
    gw.publish(&secret).await;
    assert_eq!(
        next_json(&mut a1).await["event_id"],
        secret.event_id.as_str()
    );
    let mine = created(&b);
    gw.publish(&mine).await;
    assert_eq!(next_json(&mut b1).await["event_id"], mine.event_id.as_str());
    gw.stop().await;
}

#[tokio::test]
async fn bad_missing_and_expired_tokens_are_refused_before_the_upgrade() {
    let gw = spawn_gateway().await;
    let user = new_user();
    let now = chrono::Utc::now().timestamp();
    let expired = gw.signer.issue_at(&user, now - 7200, now - 3600).unwrap();
    let (foreign_signer, _, _) = testing::token_pair();
    let foreign = foreign_signer.issue(&user).unwrap();
    let mut tampered = gw.token(&user);
    tampered.insert(tampered.len() / 2, 'x');
    for query in [
        String::new(),
        "token=".to_owned(),
        "token=not-a-jwt".to_owned(),
        format!("token={expired}"),
        format!("token={foreign}"),
        format!("token={tampered}"),
    ] {
        assert_eq!(
            refused_status(&gw.ws_base, &query, None).await,
            401,
            "{query}"
        );
    }
    // The refusal is a problem document, not an upgrade.
    let response = gw
        .http
        .get(format!("{}/ws/tasks?token={expired}", gw.address))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("expired"));
    // A valid token without the WebSocket handshake is a 400, not a 500.
    let response = gw
        .http
        .get(format!("{}/ws/tasks?token={}", gw.address, gw.token(&user)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let metrics = gw.metrics().await;
    assert!(
        testing::metric_sum(
            &metrics,
            "ws_upgrades_rejected_total",
            &["reason=\"unauthorized\""]
        ) >= 6.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn browsers_from_other_origins_are_refused() {
    let gw = spawn_gateway().await;
    let user = new_user();
    let query = format!("token={}", gw.token(&user));
    assert_eq!(
        refused_status(&gw.ws_base, &query, Some("http://evil.example")).await,
        403
    );
    assert_eq!(refused_status(&gw.ws_base, &query, Some("null")).await, 403);
    for allowed in [
        Some("http://localhost:8000"),
        Some("http://127.0.0.1:8000"),
        None,
    ] {
        let mut ws = open(&gw.ws_base, &query, allowed).await.expect("allowed");
        assert_eq!(next_json(&mut ws).await["type"], "ready");
    }
    gw.stop().await;
}

#[tokio::test]
async fn text_ping_gets_pong() {
    let gw = spawn_gateway().await;
    let (mut ws, ready) = gw.connect(&new_user()).await;
    assert_eq!(ready["replayed"], 0);
    send_text(&mut ws, "ping").await;
    match next(&mut ws).await {
        Received::Text(t) => assert_eq!(t, "pong"),
        other => panic!("expected pong, got {other:?}"),
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_dropped() {
    let gw = spawn_with(|c| {
        c.connection.ping_interval = Duration::from_millis(200);
        c.connection.client_timeout = Duration::from_millis(1000);
    })
    .await;
    let user = new_user();
    let (mut silent, _) = gw.connect(&user).await;
    let (mut lively, _) = gw.connect(&user).await;
    // The lively one reads (so its client library answers every ping); the silent one
    // reads nothing, so it sends no pongs.
    let keep_reading = tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(4), async {
            loop {
                let _ = next(&mut lively).await;
            }
        })
        .await;
        lively
    });
    gw.wait_for_stats(1, 1).await;
    assert_eq!(close_code(&mut silent).await.0, 4002);
    let _lively = keep_reading.await.unwrap();
    assert_eq!(
        gw.stats().total_connections,
        1,
        "the answering client stays"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_reconnect_with_a_cursor_replays_exactly_what_was_missed() {
    let gw = spawn_gateway().await;
    let user = new_user();
    // The witness stays connected and sees everything, to compare with.
    let (mut witness, _) = gw.connect(&user).await;
    let (mut tab, _) = gw.connect(&user).await;

    let before: Vec<_> = (0..2).map(|_| created(&user)).collect();
    for e in &before {
        gw.publish(e).await;
    }
    let seen = take(&mut tab, 2).await;
    take(&mut witness, 2).await;
    let last = seen[1]["cursor"].as_str().unwrap().to_owned();
    drop(tab);
    gw.wait_for_stats(1, 1).await;

    let missed: Vec<_> = (0..3).map(|_| updated(&user)).collect();
    for e in &missed {
        gw.publish(e).await;
    }
    let witnessed = take(&mut witness, 3).await;

    let mut tab = open(
        &gw.ws_base,
        &format!("token={}&after={last}", gw.token(&user)),
        None,
    )
    .await
    .unwrap();
    let replayed = take(&mut tab, 3).await;
    let without_cursor = |messages: &[Value]| -> Vec<Value> {
        let mut v: Vec<Value> = messages.to_vec();
        for m in &mut v {
            m.as_object_mut().unwrap().remove("cursor");
        }
        v.sort_by_key(|m| m["event_id"].as_str().unwrap().to_owned());
        v
    };
    assert_eq!(
        without_cursor(&replayed),
        without_cursor(&witnessed),
        "the same messages"
    );
    let mut expected: Vec<String> = missed.iter().map(|e| e.event_id.clone()).collect();
    let mut got = ids(&replayed);
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    let ready = next_json(&mut tab).await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["replayed"], 3);
    assert!(cursor_of(&ready).covers(&cursor_of(&witnessed[2])));
    assert_eq!(
        ready["cursor"], replayed[2]["cursor"],
        "the last message's cursor is ready's"
    );

    // And the live stream goes on after the replay, with nothing repeated.
    let after = deleted(&user);
    gw.publish(&after).await;
    assert_eq!(
        next_json(&mut tab).await["event_id"],
        after.event_id.as_str()
    );
    let metrics = gw.metrics().await;
    assert!(testing::metric_sum(&metrics, "ws_messages_replayed_total", &[]) >= 3.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_cursor_older_than_the_buffer_is_read_back_from_kafka() {
    let gw = spawn_with(|c| c.replay.per_user = 2).await;
    let user = new_user();
    let (mut witness, _) = gw.connect(&user).await;
    gw.publish(&created(&user)).await;
    let old = next_json(&mut witness).await["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    // Four more: the buffer keeps two of them.
    let missed: Vec<_> = (0..4).map(|_| created(&user)).collect();
    for e in &missed {
        gw.publish(e).await;
    }
    let witnessed = take(&mut witness, 4).await;

    let (mut ws, replay) = reconnect(&gw, &user, &old, 4).await;
    let mut expected = ids(&witnessed);
    let mut got = ids(&replay);
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "exactly what was missed, nothing twice");
    // Each message's cursor moves on, and the last one has seen all the witness has.
    let cursors: Vec<Position> = replay.iter().map(cursor_of).collect();
    assert!(cursors.windows(2).all(|w| w[1].covers(&w[0])));
    let last = cursor_of(&witnessed[3]);
    assert!(cursors[3].covers(&last), "{cursors:?} vs {last:?}");
    let live = deleted(&user);
    gw.publish(&live).await;
    assert_eq!(next_json(&mut ws).await["event_id"], live.event_id.as_str());
    let metrics = gw.metrics().await;
    assert_eq!(
        testing::metric_sum(&metrics, "ws_read_backs_total", &[r#"outcome="served""#]),
        1.0
    );
    gw.stop().await;
}

/// Reconnect after `cursor`: the `n` replayed messages, checked to end with `ready`.
async fn reconnect(gw: &TestGateway, user: &str, cursor: &str, n: usize) -> (Ws, Vec<Value>) {
    let (ws, replay, ready) = resume(&gw.ws_base, &gw.token(user), cursor).await;
    assert_eq!(replay.len(), n, "{replay:?}");
    assert_eq!(ready["replayed"], n);
    (ws, replay)
}

#[tokio::test]
async fn a_cursor_beyond_the_read_back_bound_or_of_other_topics_gets_resync() {
    // Nothing may be read back: a cursor older than the buffer cannot be served.
    let gw = spawn_with(|c| {
        c.replay.per_user = 2;
        c.replay.read_back = 0;
    })
    .await;
    let user = new_user();
    let (mut witness, _) = gw.connect(&user).await;
    gw.publish(&created(&user)).await;
    let old = next_json(&mut witness).await["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        gw.publish(&created(&user)).await;
    }
    take(&mut witness, 3).await;

    let mut ws = open(
        &gw.ws_base,
        &format!("token={}&after={old}", gw.token(&user)),
        None,
    )
    .await
    .unwrap();
    let resync = next_json(&mut ws).await;
    assert_eq!(resync["type"], "resync", "{resync}");
    let ready = next_json(&mut ws).await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["replayed"], 0);
    assert_eq!(ready["cursor"], resync["cursor"]);

    // A cursor ahead of what Kafka holds (from topics since recreated): taken at its word it
    // would hide every new message, so it gets resync, and new messages flow.
    let beyond = layout().encode(&Position::from_offsets(vec![1 << 40; layout().len()]));
    let mut ws = open(
        &gw.ws_base,
        &format!("token={}&after={beyond}", gw.token(&user)),
        None,
    )
    .await
    .unwrap();
    let resync = next_json(&mut ws).await;
    assert_eq!(resync["type"], "resync", "{resync}");
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    let fresh = created(&user);
    gw.publish(&fresh).await;
    assert_eq!(
        next_json(&mut ws).await["event_id"],
        fresh.event_id.as_str()
    );

    // A cursor of gateways that followed other topics (before an upgrade).
    let other = Layout::of(&[events::Topic::TaskCreated]);
    let foreign = other.encode(&other.origin());
    let mut ws = open(
        &gw.ws_base,
        &format!("token={}&after={foreign}", gw.token(&user)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "resync");
    // Garbage is a bad request.
    for garbage in ["yesterday!", "00000000.1"] {
        assert_eq!(
            refused_status(
                &gw.ws_base,
                &format!("token={}&after={garbage}", gw.token(&user)),
                None
            )
            .await,
            400,
            "{garbage}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_slow_client_is_closed_with_4008_and_the_others_are_unaffected() {
    let gw = spawn_with(|c| {
        c.connection.send_queue = 16;
        c.connection.close_timeout = Duration::from_secs(60);
    })
    .await;
    let user = new_user();
    let (mut slow, _) = gw.connect(&user).await;
    let (mut fast, _) = gw.connect(&user).await;
    let (mut other, _) = gw.connect(&new_user()).await;

    // Large messages fill the socket buffers of a client that does not read. They go out in
    // batches smaller than the queue, each read by the fast client before the next, so only
    // the client that never reads falls behind.
    let big = "x".repeat(32 * 1024);
    let mut batches = 0;
    loop {
        let batch: Vec<_> = (0..10)
            .map(|_| {
                let mut e = created(&user);
                e.description = Some(big.clone());
                e
            })
            .collect();
        let sends = batch.iter().map(|e| gw.publisher.publish(e, None));
        for r in futures::future::join_all(sends).await {
            r.unwrap();
        }
        let mut expected: Vec<String> = batch.iter().map(|e| e.event_id.clone()).collect();
        let mut got = ids(&take(&mut fast, batch.len()).await);
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "the reading connection gets every message");
        batches += 1;
        let m = gw.metrics().await;
        if testing::metric_sum(&m, "ws_slow_clients_dropped_total", &[]) >= 1.0 {
            break;
        }
        assert!(batches < 200, "the slow client was never dropped");
    }
    assert_eq!(gw.stats().total_connections, 2);
    // Reading now, the slow client finds what had been buffered, then the close code.
    let (code, reason) = close_code(&mut slow).await;
    assert_eq!(code, 4008, "{reason}");

    // The other user's connection is alive and well.
    send_text(&mut other, "ping").await;
    assert!(matches!(next(&mut other).await, Received::Text(t) if t == "pong"));
    gw.stop().await;
}

#[tokio::test]
async fn stats_count_open_connections_and_distinct_users() {
    let gw = spawn_gateway().await;
    gw.wait_for_stats(0, 0).await;
    let (a, b) = (new_user(), new_user());
    let (a1, _) = gw.connect(&a).await;
    let (_a2, _) = gw.connect(&a).await;
    let (b1, _) = gw.connect(&b).await;
    gw.wait_for_stats(3, 2).await;
    drop(a1);
    gw.wait_for_stats(2, 2).await;
    drop(b1);
    gw.wait_for_stats(1, 1).await;
    let metrics = gw.metrics().await;
    assert_eq!(testing::metric_sum(&metrics, "ws_connections", &[]), 1.0);
    assert_eq!(
        testing::metric_sum(&metrics, "ws_connected_users", &[]),
        1.0
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_user_gets_429_past_the_connection_limit() {
    let gw = spawn_with(|c| c.connection.max_per_user = 2).await;
    let user = new_user();
    let _held = (gw.connect(&user).await, gw.connect(&user).await);
    let status = refused_status(&gw.ws_base, &format!("token={}", gw.token(&user)), None).await;
    assert_eq!(status, 429);
    gw.stop().await;
}

#[tokio::test]
async fn stopping_closes_every_connection_with_going_away() {
    let gw = spawn_gateway().await;
    let user = new_user();
    let (mut a, _) = gw.connect(&user).await;
    let (mut b, _) = gw.connect(&new_user()).await;
    let shutdown = gw.shutdown.clone();
    let stopping = tokio::spawn(gw.stop());
    shutdown.trigger();
    assert_eq!(close_code(&mut a).await.0, 1001);
    assert_eq!(close_code(&mut b).await.0, 1001);
    tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn delivery_latency_and_sent_messages_are_measured() {
    let gw = spawn_gateway().await;
    let user = new_user();
    let (mut ws, _) = gw.connect(&user).await;
    let e = sample::reminder_triggered(&user);
    gw.publish(&e).await;
    let m = next_json(&mut ws).await;
    assert_eq!(m["type"], "reminder_triggered");
    assert_eq!(m["data"]["task_title"], e.task_title.as_str());
    let metrics = gw.metrics().await;
    assert_eq!(
        testing::metric_sum(
            &metrics,
            "ws_messages_sent_total",
            &["type=\"reminder_triggered\""]
        ),
        1.0
    );
    assert_eq!(
        testing::metric_sum(&metrics, "ws_delivery_latency_seconds_count", &[]),
        1.0
    );
    assert!(
        testing::metric_sum(&metrics, "events_consumed_total", &[]) >= 1.0,
        "the runtime's own metrics are there too"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_connection_is_closed_when_its_token_expires() {
    let gw = spawn_gateway().await;
    let user = new_user();
    let now = chrono::Utc::now().timestamp();
    let token = gw.signer.issue_at(&user, now, now + 2).unwrap();
    let mut ws = open(&gw.ws_base, &format!("token={token}"), None)
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    let (code, reason) = close_code(&mut ws).await;
    assert_eq!(code, 4001, "{reason}");
    gw.stop().await;
}

#[tokio::test]
async fn an_oversized_client_frame_closes_with_1009() {
    let gw = spawn_gateway().await;
    let (mut ws, _) = gw.connect(&new_user()).await;
    send_text(&mut ws, &"x".repeat(10_000)).await;
    assert_eq!(close_code(&mut ws).await.0, 1009);
    gw.wait_for_stats(0, 0).await;
    gw.stop().await;
}
