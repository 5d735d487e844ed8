//! One task view: the REST API's answer for a task version and the WebSocket message's `data`
//! for the same version are the same JSON, byte for byte. A real task-api publishes through its
//! outbox to the real cluster; a real gateway consumes and forwards.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use service_kit::auth::generate_keypair;
use support::services::{free_port, start_gateway, start_task_api};
use support::{BOUND, Ws, open};
use tokio_tungstenite::tungstenite::Message;

mod support;

/// The next event frame (not `ready`), as the raw text the gateway sent.
async fn next_event_frame(ws: &mut Ws) -> String {
    loop {
        let message = tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("a message within the bound")
            .expect("the connection stays open")
            .unwrap();
        if let Message::Text(text) = message {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] != "ready" {
                return text.to_string();
            }
        }
    }
}

/// `data` of a frame, as the exact bytes the gateway sent (it is the envelope's last member).
fn raw_data(frame: &str) -> &str {
    let (_, data) = frame.split_once(r#","data":"#).expect("the frame has data");
    data.strip_suffix('}').expect("data closes the envelope")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_and_websocket_show_a_task_version_as_the_same_bytes() {
    let keys = generate_keypair().unwrap();
    let (api_port, gateway_port) = (free_port(), free_port());
    let gateway = start_gateway(gateway_port, api_port, &keys.1).await;
    let (api_shutdown, api_handle) = start_task_api(api_port, gateway_port, &keys).await;
    let api = format!("http://127.0.0.1:{api_port}");
    let http = reqwest::Client::new();

    let email = format!("same-json-{}@example.com", uuid::Uuid::new_v4());
    let password = "correct horse battery";
    let registered = http
        .post(format!("{api}/api/auth/register"))
        .json(&json!({"email": email, "password": password, "timezone": "Europe/Berlin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let login: Value = http
        .post(format!("{api}/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();

    // Connected and registered with the hub (ready) before anything happens.
    let mut ws = open(
        &format!("ws://127.0.0.1:{gateway_port}"),
        &format!("token={token}"),
        None,
    )
    .await
    .unwrap();
    let ready = tokio::time::timeout(BOUND, ws.next()).await.unwrap();
    assert!(ready.unwrap().unwrap().to_text().unwrap().contains("ready"));

    let created = http
        .post(format!("{api}/api/tasks"))
        .bearer_auth(&token)
        .json(&json!({
            "title": "Water the plants",
            "description": "Both balconies",
            "priority": "high",
            "due_at": "2027-03-01T08:00:00Z",
            "tags": ["home"],
            "recurrence": {"rrule": "FREQ=WEEKLY;BYDAY=MO,WE,FR"},
            "reminders": [{"before_due": 30, "channel": "email"}, {"at": "2027-02-28T18:00:00Z", "channel": "in_app"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created_body = created.text().await.unwrap();
    let task: Value = serde_json::from_str(&created_body).unwrap();
    let id = task["id"].as_str().unwrap().to_owned();

    let frame = next_event_frame(&mut ws).await;
    let message: Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(message["type"], "task_created");
    assert_eq!(message["data"]["id"], id.as_str());
    let read = http
        .get(format!("{api}/api/tasks/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(raw_data(&frame), read, "task_created data vs GET");
    assert_eq!(raw_data(&frame), created_body, "task_created data vs 201");

    let updated = http
        .patch(format!("{api}/api/tasks/{id}"))
        .bearer_auth(&token)
        .json(&json!({"title": "Water the plants and the lawn", "priority": "critical"}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    let updated_body = updated.text().await.unwrap();
    let frame = next_event_frame(&mut ws).await;
    let message: Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(message["type"], "task_updated");
    assert_eq!(message["changed_fields"], json!(["title", "priority"]));
    assert_eq!(raw_data(&frame), updated_body, "task_updated data vs PATCH");

    let completed = http
        .post(format!("{api}/api/tasks/{id}/complete"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status(), 200);
    let completed_body = completed.text().await.unwrap();
    let frame = next_event_frame(&mut ws).await;
    assert!(frame.contains(r#""type":"task_completed""#), "{frame}");
    assert_eq!(
        raw_data(&frame),
        completed_body,
        "task_completed data vs POST"
    );

    let deleted = http
        .delete(format!("{api}/api/tasks/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let message: Value = serde_json::from_str(&next_event_frame(&mut ws).await).unwrap();
    assert_eq!(message["type"], "task_deleted");
    assert_eq!(message["data"]["id"], id.as_str());
    assert_eq!(message["data"]["version"], 4);

    api_shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), api_handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    gateway.stop().await;
}
