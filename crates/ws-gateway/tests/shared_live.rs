//! A shared task, live (issue 20): every message about it reaches the owner and each
//! collaborator, each with their own role; removing a share stops delivery to that user at
//! once; a stranger receives nothing at any moment. Real task-api, real cluster, real gateway.

#![allow(clippy::unwrap_used)]

use futures::StreamExt;
use serde_json::{Value, json};
use service_kit::auth::generate_keypair;
use support::services::{free_port, start_gateway, start_task_api};
use support::{BOUND, Ws, open};
use tokio_tungstenite::tungstenite::Message;

mod support;

struct User {
    id: String,
    email: String,
    token: String,
    ws: Ws,
}

/// The next event message (not `ready`).
async fn next_event(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(BOUND, ws.next())
            .await
            .expect("a message within the bound")
            .expect("the connection stays open")
            .unwrap();
        if let Message::Text(text) = message {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] != "ready" {
                return v;
            }
        }
    }
}

async fn user(http: &reqwest::Client, api: &str, gateway: &str) -> User {
    let email = format!("shared-live-{}@example.com", uuid::Uuid::new_v4());
    let password = "correct horse battery";
    let registered: Value = http
        .post(format!("{api}/api/auth/register"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let mut ws = open(gateway, &format!("token={token}"), None)
        .await
        .unwrap();
    let ready = tokio::time::timeout(BOUND, ws.next()).await.unwrap();
    assert!(ready.unwrap().unwrap().to_text().unwrap().contains("ready"));
    User {
        id: registered["id"].as_str().unwrap().to_owned(),
        email,
        token,
        ws,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_task_reaches_every_collaborator_live_and_no_one_else() {
    let keys = generate_keypair().unwrap();
    let (api_port, gateway_port) = (free_port(), free_port());
    let gateway = start_gateway(gateway_port, api_port, &keys.1).await;
    let (api_shutdown, api_handle) = start_task_api(api_port, gateway_port, &keys).await;
    let api = format!("http://127.0.0.1:{api_port}");
    let ws_base = format!("ws://127.0.0.1:{gateway_port}");
    let http = reqwest::Client::new();
    let mut a = user(&http, &api, &ws_base).await;
    let mut b = user(&http, &api, &ws_base).await;
    let mut c = user(&http, &api, &ws_base).await;
    let send = |method: reqwest::Method, path: String, token: String, body: Option<Value>| {
        let (http, api) = (http.clone(), api.clone());
        async move {
            let mut r = http
                .request(method, format!("{api}{path}"))
                .bearer_auth(token);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    use reqwest::Method as M;

    let (s, task) = send(
        M::POST,
        "/api/tasks".into(),
        a.token.clone(),
        Some(json!({"title": "Paint the fence"})),
    )
    .await;
    assert_eq!(s, 201);
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(next_event(&mut a.ws).await["type"], "task_created");

    let (s, _) = send(
        M::POST,
        format!("/api/tasks/{id}/shares"),
        a.token.clone(),
        Some(json!({"email": b.email, "role": "editor"})),
    )
    .await;
    assert_eq!(s, 201);
    let b_id = b.id.clone();
    for (u, role) in [(&mut a, "owner"), (&mut b, "editor")] {
        let m = next_event(&mut u.ws).await;
        assert_eq!(m["type"], "task_shared");
        assert_eq!(m["share"], json!({"user_id": b_id, "role": "editor"}));
        assert_eq!(m["data"]["id"], id.as_str());
        assert_eq!(m["data"]["role"], role);
        assert_eq!(m["data"]["title"], "Paint the fence");
    }

    // The editor completes it: the owner sees it live, and so does the editor.
    let (s, _) = send(
        M::POST,
        format!("/api/tasks/{id}/complete"),
        b.token.clone(),
        None,
    )
    .await;
    assert_eq!(s, 200);
    for u in [&mut a, &mut b] {
        let m = next_event(&mut u.ws).await;
        assert_eq!(m["type"], "task_completed");
        assert_eq!(m["data"]["status"], "completed");
    }
    // The owner assigns it to the editor.
    let (s, _) = send(
        M::PATCH,
        format!("/api/tasks/{id}"),
        a.token.clone(),
        Some(json!({"assignee_id": b.id})),
    )
    .await;
    assert_eq!(s, 200);
    for u in [&mut a, &mut b] {
        let m = next_event(&mut u.ws).await;
        assert_eq!(m["type"], "task_assigned");
        assert_eq!(m["data"]["assignee_id"], b_id.as_str());
        assert_eq!(m["previous_assignee_id"], Value::Null);
    }

    // The share is removed: B hears once that it is gone, then nothing more about it.
    let (s, _) = send(
        M::DELETE,
        format!("/api/tasks/{id}/shares/{}", b.id),
        a.token.clone(),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let m = next_event(&mut a.ws).await;
    assert_eq!(
        (m["type"].as_str(), m["share"]["role"].as_str()),
        (Some("task_shared"), Some("none"))
    );
    assert_eq!(
        m["data"]["assignee_id"],
        Value::Null,
        "unsharing the assignee unassigns"
    );
    let m = next_event(&mut b.ws).await;
    assert_eq!(
        (m["type"].as_str(), m["share"]["role"].as_str()),
        (Some("task_shared"), Some("none"))
    );
    assert_eq!(m["data"]["id"], id.as_str());
    assert!(m["data"].get("title").is_none(), "nothing of the task: {m}");
    let (s, _) = send(
        M::PATCH,
        format!("/api/tasks/{id}"),
        a.token.clone(),
        Some(json!({"title": "Paint the gate"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(next_event(&mut a.ws).await["type"], "task_updated");
    // B's and C's next messages are about their own new tasks: nothing of A's came before.
    for u in [&mut b, &mut c] {
        let (s, own) = send(
            M::POST,
            "/api/tasks".into(),
            u.token.clone(),
            Some(json!({"title": "Mine"})),
        )
        .await;
        assert_eq!(s, 201);
        let m = next_event(&mut u.ws).await;
        assert_eq!(m["type"], "task_created");
        assert_eq!(
            m["data"]["id"], own["id"],
            "no message about the task before this one"
        );
    }
    // And B's resync (the REST list) no longer has it.
    let (_, page) = send(M::GET, "/api/tasks".into(), b.token.clone(), None).await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != id.as_str())
    );

    api_shutdown.trigger();
    tokio::time::timeout(BOUND, api_handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    gateway.stop().await;
}
