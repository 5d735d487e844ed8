//! The REST API against the real cluster: listing, idempotency, validation, isolation, tokens,
//! the web page and the OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};
use service_kit::testing::Backend;
use support::*;

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn filters_and_sorting(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let r = app
        .req(Method::POST, "/api/categories", Some(&user.token))
        .json(&json!({"name": "Errands"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let category = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t1 = app
        .create_task(
            &user,
            json!({"title": "Buy milk", "priority": "high", "tags": ["shop"],
            "due_at": "2026-12-01T10:00:00Z", "category_id": category}),
        )
        .await;
    let t2 = app
        .create_task(
            &user,
            json!({"title": "Write report", "description": "Quarterly MILK numbers",
            "priority": "low", "tags": ["work"], "due_at": "2026-12-05T10:00:00Z"}),
        )
        .await;
    let t3 = app
        .create_task(
            &user,
            json!({"title": "Call mom", "priority": "critical", "tags": ["family", "shop"]}),
        )
        .await;
    let t4 = app
        .create_task(
            &user,
            json!({"title": "Pay rent", "due_at": "2026-11-30T10:00:00Z"}),
        )
        .await;
    let id = |t: &Value| t["id"].as_str().unwrap().to_owned();
    let r = app
        .req(
            Method::POST,
            &format!("/api/tasks/{}/complete", id(&t4)),
            Some(&user.token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (t1, t2, t3, t4) = (id(&t1), id(&t2), id(&t3), id(&t4));

    let set = |v: Vec<String>| v.into_iter().collect::<HashSet<_>>();
    let cases: Vec<(&str, Vec<&String>)> = vec![
        ("status=completed", vec![&t4]),
        ("status=open", vec![&t1, &t2, &t3]),
        ("priority=critical", vec![&t3]),
        ("priority=MEDIUM", vec![&t4]),
        ("tag=shop", vec![&t1, &t3]),
        ("category_id=", vec![]),
        ("due_before=2026-12-02T00:00:00Z", vec![&t1, &t4]),
        ("due_after=2026-12-01T00:00:00Z", vec![&t1, &t2]),
        (
            "due_after=2026-12-01T00:00:00Z&due_before=2026-12-02T00:00:00Z",
            vec![&t1],
        ),
        ("q=milk", vec![&t1, &t2]),
        ("q=MoM", vec![&t3]),
        ("q=100%25", vec![]),
        ("tag=shop&priority=high", vec![&t1]),
        ("tag=shop&status=completed", vec![]),
    ];
    for (query, expected) in cases {
        let query = if query == "category_id=" {
            format!("category_id={category}")
        } else {
            query.to_owned()
        };
        let expected: Vec<&String> = if query.starts_with("category_id") {
            vec![&t1]
        } else {
            expected
        };
        let got = set(ids(&app.all_tasks(&user, &query).await));
        let want = set(expected.into_iter().cloned().collect());
        assert_eq!(got, want, "{query}");
    }
    let order = |q: &'static str| {
        let app = &app;
        let user = &user;
        async move { ids(&app.all_tasks(user, q).await) }
    };
    assert_eq!(
        order("sort=priority").await,
        vec![t2.clone(), t4.clone(), t1.clone(), t3.clone()]
    );
    assert_eq!(
        order("sort=-priority").await,
        vec![t3.clone(), t1.clone(), t4.clone(), t2.clone()]
    );
    assert_eq!(
        order("sort=due_at").await,
        vec![t4.clone(), t1.clone(), t2.clone(), t3.clone()]
    );
    assert_eq!(
        order("sort=created_at").await,
        vec![t1.clone(), t2.clone(), t3.clone(), t4.clone()]
    );
    assert_eq!(
        order("sort=-created_at").await,
        vec![t4.clone(), t3.clone(), t2.clone(), t1.clone()]
    );
    assert_eq!(order("sort=-updated_at").await[0], t4, "completed last");
    assert_eq!(
        order("sort=due_at&limit=1").await.len(),
        4,
        "cursor pages of one"
    );

    for bad in [
        "foo=1",
        "limit=0",
        "limit=abc",
        "sort=title",
        "status=done",
        "due_before=soon",
        "cursor=zz",
    ] {
        let r = app
            .req(Method::GET, &format!("/api/tasks?{bad}"), Some(&user.token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    // Categories in use cannot be deleted; unknown ones cannot be used.
    let r = app
        .req(
            Method::DELETE,
            &format!("/api/categories/{category}"),
            Some(&user.token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    app.stop().await;
}

#[tokio::test]
async fn filters_and_sorting_on_sqlite() {
    filters_and_sorting(Backend::Sqlite).await;
}

#[tokio::test]
async fn filters_and_sorting_on_postgres() {
    filters_and_sorting(Backend::Postgres).await;
}

async fn paging_while_tasks_are_added(backend: Backend, sort: &str) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let mut originals = Vec::new();
    for i in 0..25 {
        let t = app
            .create_task(&user, json!({"title": format!("task {i}")}))
            .await;
        originals.push(t["id"].as_str().unwrap().to_owned());
    }
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let mut path = format!("/api/tasks?limit=10&sort={sort}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get_json(&user, &path).await;
        seen.extend(ids(page["items"].as_array().unwrap()));
        // Others keep adding tasks between pages.
        for _ in 0..3 {
            app.create_task(&user, json!({"title": format!("added {added}")}))
                .await;
            added += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(added < 100, "paging never ends");
    }
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "no task twice ({sort})");
    for id in &originals {
        assert!(distinct.contains(id), "task {id} skipped ({sort})");
    }
    app.stop().await;
}

#[tokio::test]
async fn paging_newest_first_while_tasks_are_added_skips_and_repeats_nothing() {
    paging_while_tasks_are_added(Backend::Sqlite, "-created_at").await;
}

#[tokio::test]
async fn paging_oldest_first_while_tasks_are_added_skips_and_repeats_nothing_on_postgres() {
    paging_while_tasks_are_added(Backend::Postgres, "created_at").await;
}

async fn idempotency_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let body = json!({"title": "Only once", "tags": ["a"]});
    let send = |key: &str, body: &Value, token: &str| {
        app.req(Method::POST, "/api/tasks", Some(token))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let first = send("key-1", &body, &user.token).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send("key-1", &body, &user.token).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        first,
        "the first response, again"
    );
    let other = send("key-1", &json!({"title": "Something else"}), &user.token)
        .await
        .unwrap();
    assert_eq!(other.status(), 422);
    assert_eq!(
        other.json::<Value>().await.unwrap()["type"],
        "https://todo-platform.dev/problems/idempotency-key-reused"
    );
    // Keys are per user.
    let bob = app.new_user().await;
    let bobs = send("key-1", &body, &bob.token).await.unwrap();
    assert_eq!(bobs.status(), 201);
    assert_ne!(bobs.json::<Value>().await.unwrap()["id"], first["id"]);
    // Concurrent retries with one key create one task.
    let racing = json!({"title": "Raced"});
    let answers =
        futures::future::join_all((0..6).map(|_| send("key-2", &racing, &user.token))).await;
    let mut created = HashSet::new();
    for a in answers {
        let a = a.unwrap();
        assert_eq!(a.status(), 201);
        created.insert(
            a.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(created.len(), 1, "one task for one key");
    assert_eq!(app.all_tasks(&user, "").await.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn idempotency_keys_on_sqlite() {
    idempotency_keys(Backend::Sqlite).await;
}

#[tokio::test]
async fn idempotency_keys_on_postgres() {
    idempotency_keys(Backend::Postgres).await;
}

#[tokio::test]
async fn bad_inputs_get_4xx_problem_documents_never_5xx() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let task = app.create_task(&user, json!({"title": "target"})).await;
    let task_path = format!("/api/tasks/{}", task["id"].as_str().unwrap());
    let big = format!("{{\"title\": \"{}\"}}", "x".repeat(10 * 1024 * 1024));
    let json_ = "application/json";
    // (method, path, content type, body, expected status)
    let cases: Vec<(Method, String, &str, String, u16)> = vec![
        (Method::POST, "/api/tasks".into(), json_, json!({"title": ""}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "   "}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x".repeat(201)}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, big, 413),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "priority": "urgent"}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "due_at": "tomorrow"}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "due_at": "1970-01-01T00:00:00Z"}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "recurrence": {"rrule": "FREQ=DAILY", "timezone": "Mars/Olympus_Mons"}}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "recurrence": {"rrule": "FREQ=SOMETIMES"}}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "recurrence": {"cron": "61 * * * *"}}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "recurrence": {"cron": "0 9 * * MON", "rrule": "FREQ=DAILY"}}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "recurrence": {"rrule": "FREQ=DAILY", "mode": "sometimes"}}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "recurrence": {"rrule": "FREQ=DAILY", "count": 0}}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "reminders": [{"before_due": 5, "channel": "pigeon"}]}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "reminders": [{"channel": "email"}]}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "reminders": [{"before_due": 5, "channel": "email"}]}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "category_id": uuid::Uuid::new_v4()}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "tags": [""]}).to_string(), 422),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": 5}).to_string(), 400),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "tags": "home"}).to_string(), 400),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "reminders": {"before_due": 5}}).to_string(), 400),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "colour": "red"}).to_string(), 400),
        (Method::POST, "/api/tasks".into(), json_, json!({"title": "x", "due_at": 1764000000000i64}).to_string(), 400),
        (Method::POST, "/api/tasks".into(), json_, json!([1, 2]).to_string(), 400),
        (Method::POST, "/api/tasks".into(), json_, "{\"title\": ".into(), 400),
        (Method::POST, "/api/tasks".into(), json_, "".into(), 400),
        (Method::POST, "/api/tasks".into(), "text/plain", "title=x".into(), 415),
        (Method::PATCH, task_path.clone(), json_, json!({"priority": "urgent"}).to_string(), 422),
        (Method::PATCH, task_path.clone(), json_, json!({"status": "completed"}).to_string(), 400),
        (Method::PUT, task_path.clone(), json_, "{}".into(), 405),
        (Method::GET, "/api/tasks/not-a-uuid".into(), json_, "".into(), 404),
        (Method::GET, format!("/api/tasks/{}", uuid::Uuid::new_v4()), json_, "".into(), 404),
        (Method::GET, "/api/nowhere".into(), json_, "".into(), 404),
        (Method::PATCH, "/api/me".into(), json_, json!({"timezone": "Nowhere/Never"}).to_string(), 422),
        (Method::PATCH, "/api/me".into(), json_, json!({"notification_channels": ["fax"]}).to_string(), 422),
        (Method::PATCH, "/api/me".into(), json_, json!({"webhook_url": "ftp://example.com"}).to_string(), 422),
        (Method::PATCH, "/api/me".into(), json_, json!({"notification_channels": ["webhook"]}).to_string(), 422),
        (Method::POST, "/api/categories".into(), json_, json!({"name": ""}).to_string(), 422),
        (Method::POST, "/api/categories".into(), json_, json!({"name": 1}).to_string(), 400),
    ];
    for (method, path, content_type, body, expected) in cases {
        let shown = format!(
            "{method} {path} {}",
            body.chars().take(120).collect::<String>()
        );
        let r = app
            .req(method, &path, Some(&user.token))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert_eq!(status, expected, "{shown}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{shown}"
        );
        let problem: Value = r.json().await.unwrap();
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .starts_with("https://todo-platform.dev/problems/"),
            "{shown}: {problem}"
        );
        assert_eq!(problem["status"], expected, "{shown}");
        if expected == 422 {
            assert!(
                !problem["errors"].as_array().unwrap().is_empty(),
                "{shown}: {problem}"
            );
        }
    }
    // Registration and login inputs.
    for (body, expected) in [
        (json!({"email": "not-an-email", "password": PASSWORD}), 422),
        (json!({"email": unique_email(), "password": "short"}), 422),
        (
            json!({"email": unique_email(), "password": PASSWORD, "timezone": "Atlantis/Capital"}),
            422,
        ),
        (json!({"email": unique_email()}), 400),
        (
            json!({"email": unique_email(), "password": PASSWORD, "admin": true}),
            400,
        ),
    ] {
        let r = app
            .http
            .post(app.url("/api/auth/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected, "{body}");
    }
    let r = app
        .req(Method::PATCH, &task_path, Some(&user.token))
        .header("If-Match", "abc")
        .json(&json!({"title": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "bad If-Match");
    let r = app
        .req(Method::POST, "/api/tasks", Some(&user.token))
        .header("Idempotency-Key", "x".repeat(300))
        .json(&json!({"title": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "bad Idempotency-Key");
    let metrics = app.metrics().await;
    assert_eq!(
        service_kit::testing::metric_sum(&metrics, "http_requests_total", &["status=\"5"]),
        0.0,
        "no 5xx at all"
    );
    app.stop().await;
}

#[tokio::test]
async fn another_user_gets_404_for_my_tasks_on_every_route() {
    let app = spawn_app(Backend::Postgres).await;
    let (alice, bob) = (app.new_user().await, app.new_user().await);
    let task = app.create_task(&alice, json!({"title": "Alice's"})).await;
    let path = format!("/api/tasks/{}", task["id"].as_str().unwrap());
    let category = app
        .req(Method::POST, "/api/categories", Some(&alice.token))
        .json(&json!({"name": "Private"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, p) in [
        (Method::GET, path.clone()),
        (Method::PATCH, path.clone()),
        (Method::DELETE, path.clone()),
        (Method::POST, format!("{path}/complete")),
        (Method::POST, format!("{path}/reopen")),
        (Method::PATCH, format!("/api/categories/{category}")),
        (Method::DELETE, format!("/api/categories/{category}")),
    ] {
        let r = app
            .req(method.clone(), &p, Some(&bob.token))
            .json(&if p.contains("categories") {
                json!({"name": "Bob's"})
            } else {
                json!({"title": "Bob was here"})
            })
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {p}");
    }
    assert!(app.all_tasks(&bob, "").await.is_empty());
    let r = app
        .req(Method::GET, "/api/categories", Some(&bob.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["items"], json!([]));
    let r = app
        .req(Method::POST, "/api/tasks", Some(&bob.token))
        .json(&json!({"title": "x", "category_id": category}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "someone else's category");
    let mine = app.get_json(&alice, &path).await;
    assert_eq!(
        (mine["title"].as_str(), mine["version"].as_i64()),
        (Some("Alice's"), Some(1))
    );
    app.stop().await;
}

/// base64url without padding, for hand-made tokens.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn missing_malformed_expired_foreign_and_forged_tokens_get_401() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let now = chrono::Utc::now().timestamp();
    let expired = app
        .signer
        .issue_at(&user.id, now - 7200, now - 3600)
        .unwrap();
    let (other_private, _) = service_kit::auth::generate_keypair().unwrap();
    let foreign = service_kit::auth::TokenSigner::from_pem(&other_private, 3600)
        .unwrap()
        .issue(&user.id)
        .unwrap();
    let claims = json!({"sub": user.id, "iss": "task-api", "aud": "todo-platform",
        "iat": now, "exp": now + 3600, "jti": "x"});
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    // The classic confusion: HMAC "signed" with the public key as the secret.
    let confused = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(app.keys.1.as_bytes()),
    )
    .unwrap();
    let mut tampered = user.token.clone();
    tampered.insert(tampered.len() - 5, 'A');
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("malformed", Some("Bearer not.a.jwt".into())),
        ("not bearer", Some(format!("Basic {}", user.token))),
        ("expired", Some(format!("Bearer {expired}"))),
        ("foreign key", Some(format!("Bearer {foreign}"))),
        ("alg none", Some(format!("Bearer {none}"))),
        (
            "HS256 with the public key",
            Some(format!("Bearer {confused}")),
        ),
        ("tampered", Some(format!("Bearer {tampered}"))),
    ];
    for (what, header) in cases {
        for path in ["/api/me", "/api/tasks"] {
            let mut r = app.http.get(app.url(path));
            if let Some(h) = &header {
                r = r.header("authorization", h);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 401, "{what} on {path}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }
    }
    let ok = app
        .req(Method::GET, "/api/me", Some(&user.token))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn the_web_page_its_config_and_the_api_docs_are_served() {
    let app = spawn_app(Backend::Sqlite).await;
    let r = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        csp.contains("connect-src 'self' ws://127.0.0.1:8001"),
        "{csp}"
    );
    assert!(r.text().await.unwrap().contains("/app.js"));
    // The script is ES modules: the entry and every module it imports, however deep, served.
    let mut wanted = vec!["/app.js".to_owned()];
    let mut served = std::collections::BTreeSet::new();
    while let Some(path) = wanted.pop() {
        if !served.insert(path.clone()) {
            continue;
        }
        let r = app.http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        let body = r.text().await.unwrap();
        for import in body.split("from './").skip(1) {
            let module = import.split('\'').next().unwrap();
            wanted.push(format!("/{module}"));
        }
    }
    assert!(served.len() >= 5, "{served:?}");
    let r = app.http.get(app.url("/app.css")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
    let config: Value = app
        .http
        .get(app.url("/api/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["ws_url"], "ws://127.0.0.1:8001");
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/api/tasks",
        "/api/tasks/{id}",
        "/api/tasks/{id}/complete",
        "/api/auth/login",
        "/api/me",
        "/api/categories",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} documented");
    }
    assert!(doc["components"]["schemas"].get("TaskView").is_some());
    assert!(doc["components"]["securitySchemes"].get("bearer").is_some());
    let r = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}
