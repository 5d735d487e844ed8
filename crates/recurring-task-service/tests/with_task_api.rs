//! End to end with task-api running: recurring tasks created and completed through REST, next
//! occurrences read back from `GET /api/tasks`.
#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

mod support;

use std::time::{Duration, Instant};

use chrono::{Datelike, Duration as Days, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use service_kit::config::CommonConfig;
use service_kit::shutdown::Shutdown;
use service_kit::testing::{self, Backend};
use support::*;

/// task-api in-process on a fresh database, its ingest group at the end of task.created.
struct TaskApi {
    address: String,
    keys: (String, String),
    shutdown: Shutdown,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    http: reqwest::Client,
}

impl TaskApi {
    async fn spawn(backend: Backend) -> Self {
        let keys = service_kit::auth::generate_keypair().unwrap();
        let group = testing::unique_group("task-api-e2e");
        let g = group.clone();
        tokio::task::spawn_blocking(move || {
            testing::position_group_at_end(&g, &[events::Topic::TaskCreated])
        })
        .await
        .unwrap();
        let config = task_api::config::Config {
            common: CommonConfig {
                kafka: service_kit::testing::kafka_access(),
                registry: service_kit::testing::registry_access(),
                database_url: testing::fresh_database(backend),
                bind_addr: "127.0.0.1:0".parse().unwrap(),
                shutdown_timeout: Duration::from_secs(10),
            },
            signer: service_kit::auth::TokenSigner::from_pem(&keys.0, 3600).unwrap(),
            verifier: service_kit::auth::TokenVerifier::from_pem(&keys.1).unwrap(),
            webhook_key: service_kit::webhook::WebhookKey::new(
                "recurring-e2e-webhook-signing-key-32chars",
            ),
            sms: None,
            ws_public_url: "ws://127.0.0.1:8001".into(),
            vapid_public_key: None,
            consumer_group: group,
            login_limits: task_api::config::LoginLimits::default(),
            client_address: Default::default(),
            outbox: task_api::config::OutboxSettings {
                poll_interval: Duration::from_millis(200),
                ..task_api::config::OutboxSettings::default()
            },
        };
        let app = task_api::startup::Application::build(config).await.unwrap();
        let address = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown_handle();
        let handle = tokio::spawn(app.run_until_stopped());
        Self {
            address,
            keys,
            shutdown,
            handle,
            http: reqwest::Client::new(),
        }
    }

    /// Register and log in a user: (id, token).
    async fn new_user(&self) -> (String, String) {
        let email = format!("recurring-{}@example.com", uuid::Uuid::new_v4().simple());
        let password = "correct horse battery";
        let r = self
            .http
            .post(format!("{}/api/auth/register", self.address))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "register");
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = self
            .http
            .post(format!("{}/api/auth/login", self.address))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login");
        let token = r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        (id, token)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Every task of the user in one series.
    async fn series_tasks(&self, token: &str, series_id: &str) -> Vec<Value> {
        let (status, page) = self
            .call(reqwest::Method::GET, "/api/tasks?limit=100", token, None)
            .await;
        assert_eq!(status, 200, "{page}");
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["series_id"] == series_id)
            .cloned()
            .collect()
    }

    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(40), self.handle)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// The recurring-task-service following exactly `user`'s series, verifying task-api's tokens.
async fn spawn_for(api: &TaskApi, user: &str, backend: Backend) -> TestApp {
    let group = testing::unique_group("recurring-e2e");
    let g = group.clone();
    tokio::task::spawn_blocking(move || {
        testing::position_group_at_end(&g, events::Service::RecurringTaskService.consumes())
    })
    .await
    .unwrap();
    spawn_app_verifying(
        testing::fresh_database(backend),
        group,
        user.to_owned(),
        service_kit::auth::TokenSigner::from_pem(&api.keys.0, 3600).unwrap(),
        service_kit::auth::TokenVerifier::from_pem(&api.keys.1).unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekly_task_completed_through_rest_gets_its_next_occurrence_in_the_task_list_once() {
    let api = TaskApi::spawn(Backend::Sqlite).await;
    let (user, token) = api.new_user().await;
    let service = spawn_for(&api, &user, Backend::Postgres).await;
    let berlin = Tz::Europe__Berlin;
    let monday = monday_on_or_after(Utc::now().with_timezone(&berlin).date_naive() + Days::days(1));
    let due = local_ms(berlin, monday.year(), monday.month(), monday.day(), 9, 0);
    let (status, task) = api
        .call(
            reqwest::Method::POST,
            "/api/tasks",
            &token,
            Some(json!({
                "title": "Weekly review",
                "due_at": rfc3339(due),
                "recurrence": {"rrule": "FREQ=WEEKLY;BYDAY=MO", "timezone": "Europe/Berlin", "mode": "fixed"},
                "reminders": [{"before_due": 15, "channel": "in_app"}],
            })),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    let task_id = task["id"].as_str().unwrap().to_owned();
    let series_id = task["series_id"]
        .as_str()
        .expect("a recurring task has a series")
        .to_owned();

    let (status, done) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/tasks/{task_id}/complete"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let next_id = events::ids::occurrence_task_id(&series_id, 1).to_string();
    let next = testing::wait_for(
        "the next occurrence in task-api",
        Duration::from_secs(60),
        || async {
            let (status, body) = api
                .call(
                    reqwest::Method::GET,
                    &format!("/api/tasks/{next_id}"),
                    &token,
                    None,
                )
                .await;
            (status == 200).then_some(body)
        },
    )
    .await;
    let following = monday + Days::days(7);
    assert_eq!(
        next["due_at"],
        rfc3339(local_ms(
            berlin,
            following.year(),
            following.month(),
            following.day(),
            9,
            0
        ))
    );
    assert_eq!(next["status"], "open");
    assert_eq!(next["title"], "Weekly review");
    assert_eq!(next["series_id"], series_id.as_str());
    assert_eq!(next["recurrence"]["rrule"], "FREQ=WEEKLY;BYDAY=MO");
    assert_eq!(next["reminders"][0]["before_due"], 15);

    // Completing again, and reopening then completing: still one next occurrence.
    api.call(
        reqwest::Method::POST,
        &format!("/api/tasks/{task_id}/complete"),
        &token,
        None,
    )
    .await;
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/tasks/{task_id}/reopen"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/tasks/{task_id}/complete"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    testing::wait_for(
        "the second completion handled",
        Duration::from_secs(60),
        || async {
            let m = service.metrics().await;
            (testing::metric_sum(&m, "recurring_completions_without_next_total", &[]) >= 1.0)
                .then_some(())
        },
    )
    .await;
    let tasks = api.series_tasks(&token, &series_id).await;
    assert_eq!(
        tasks.len(),
        2,
        "the first task and one next occurrence: {tasks:#?}"
    );

    // The series as the recurring-task-service shows it, to the same token.
    let resp = service
        .get(&format!("/api/series/{series_id}"), Some(&token))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["occurrences"].as_array().unwrap().len(), 2);
    service.stop().await;
    api.stop().await;
}

/// How long from the completion's response to the next occurrence being readable in task-api,
/// over a few hundred completions one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_occurrences_appear_in_task_api_within_a_bound_after_completion() {
    const N: usize = 300;
    let api = TaskApi::spawn(Backend::Postgres).await;
    let (user, token) = api.new_user().await;
    let service = spawn_for(&api, &user, Backend::Postgres).await;
    let mut tasks = Vec::new();
    for i in 0..N {
        let (status, task) = api
            .call(
                reqwest::Method::POST,
                "/api/tasks",
                &token,
                Some(json!({
                    "title": format!("Daily {i}"),
                    "due_at": rfc3339(utc_ms("2026-12-01T09:00:00Z")),
                    "recurrence": {"rrule": "FREQ=DAILY", "timezone": "UTC", "mode": "fixed"},
                })),
            )
            .await;
        assert_eq!(status, 201, "{task}");
        tasks.push((
            task["id"].as_str().unwrap().to_owned(),
            task["series_id"].as_str().unwrap().to_owned(),
        ));
    }
    let mut latencies = Vec::with_capacity(N);
    for (task_id, series_id) in &tasks {
        let (status, _) = api
            .call(
                reqwest::Method::POST,
                &format!("/api/tasks/{task_id}/complete"),
                &token,
                None,
            )
            .await;
        assert_eq!(status, 200);
        let completed = Instant::now();
        let next_id = events::ids::occurrence_task_id(series_id, 1).to_string();
        loop {
            let (status, _) = api
                .call(
                    reqwest::Method::GET,
                    &format!("/api/tasks/{next_id}"),
                    &token,
                    None,
                )
                .await;
            if status == 200 {
                break;
            }
            assert!(
                completed.elapsed() < Duration::from_secs(30),
                "{next_id} not visible"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(completed.elapsed());
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    eprintln!(
        "completion response -> next occurrence readable in GET /api/tasks, {N} completions: \
         p50 {:?}, p99 {:?}, max {:?}",
        pct(0.5),
        pct(0.99),
        latencies[latencies.len() - 1]
    );
    assert!(pct(0.99) < Duration::from_secs(5));
    service.stop().await;
    api.stop().await;
}

/// A shared recurring task (issue 20): an editor completes it, and the next occurrence is the
/// editor's to see too, with the same role and assignee, without anyone sharing it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_occurrence_of_a_shared_task_keeps_its_collaborators_and_assignee() {
    let api = TaskApi::spawn(Backend::Postgres).await;
    let (owner, owner_token) = api.new_user().await;
    let (editor, editor_token) = api.new_user().await;
    let service = spawn_for(&api, &owner, Backend::Sqlite).await;
    let (status, task) = api
        .call(
            reqwest::Method::POST,
            "/api/tasks",
            &owner_token,
            Some(json!({
                "title": "Water the garden",
                "due_at": rfc3339(events::now_millis() + 86_400_000),
                "recurrence": {"rrule": "FREQ=DAILY", "timezone": "UTC"},
            })),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    let (task_id, series_id) = (
        task["id"].as_str().unwrap().to_owned(),
        task["series_id"].as_str().unwrap().to_owned(),
    );
    let editor_email = {
        let (status, me) = api
            .call(reqwest::Method::GET, "/api/me", &editor_token, None)
            .await;
        assert_eq!(status, 200);
        me["email"].as_str().unwrap().to_owned()
    };
    let (status, share) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/tasks/{task_id}/shares"),
            &owner_token,
            Some(json!({"email": editor_email, "role": "editor"})),
        )
        .await;
    assert_eq!(status, 201, "{share}");
    let (status, assigned) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/tasks/{task_id}"),
            &owner_token,
            Some(json!({"assignee_id": editor})),
        )
        .await;
    assert_eq!(status, 200, "{assigned}");
    let (status, done) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/tasks/{task_id}/complete"),
            &editor_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{done}");

    let next_id = events::ids::occurrence_task_id(&series_id, 1).to_string();
    let next = testing::wait_for(
        "the next occurrence, seen by the editor",
        Duration::from_secs(60),
        || async {
            let (status, body) = api
                .call(
                    reqwest::Method::GET,
                    &format!("/api/tasks/{next_id}"),
                    &editor_token,
                    None,
                )
                .await;
            (status == 200).then_some(body)
        },
    )
    .await;
    assert_eq!(next["role"], "editor");
    assert_eq!(next["owner_id"], owner.as_str());
    assert_eq!(next["assignee_id"], editor.as_str());
    assert_eq!(
        next["collaborators"],
        json!([{"user_id": editor, "role": "editor"}])
    );
    let shared = api.series_tasks(&editor_token, &series_id).await;
    assert_eq!(shared.len(), 2, "both occurrences under the editor's list");
    service.stop().await;
    api.stop().await;
}
