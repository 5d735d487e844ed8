//! The web page in a real headless Chromium, against a real task-api and ws-gateway on the
//! real cluster: `tests/browser/run.sh` drives the browser (Node, playwright-core, Debian's
//! `/usr/bin/chromium`); this harness starts the services and answers the script's requests
//! on a small control endpoint (publish a reminder for a user, stop and start the gateway).
//! Screenshots land in `$CARGO_TARGET_DIR/ws-gateway-browser/` (or `ARTIFACT_DIR`).
//!
//! Two scripts, one browser at a time (the machine has few cores and each waits with bounds):
//! `browser.test.mjs` (one user's windows, reminders, reconnects) on SQLite, and
//! `sharing.test.mjs` (three users: sharing, assignment, who hears what) on SQLite and on
//! PostgreSQL, a task-api each, both behind the one gateway. The sharing run also starts a
//! notification-service and checks in Mailpit (`TEST_MAILPIT_API`, SMTP at `TEST_SMTP_URL`)
//! that the assignee is mailed.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use events::{EventCodec, EventPublisher, NotificationChannel, ReminderTriggeredEvent, Service};
use service_kit::auth::{TokenVerifier, generate_keypair};
use service_kit::config::CommonConfig;
use service_kit::shutdown::Shutdown;
use service_kit::testing::{self, Backend};
use support::services::{free_port, start_gateway_for, start_task_api_on};
use tokio::sync::{Mutex, mpsc, oneshot};

mod support;

/// What the browser script may ask of the harness.
enum Command {
    Reminder {
        user_id: String,
        task_id: String,
        task_title: String,
    },
    StopGateway,
    StartGateway,
}

type Request = (Command, oneshot::Sender<Result<(), String>>);

#[derive(serde::Deserialize)]
struct ReminderRequest {
    user_id: String,
    task_id: String,
    task_title: String,
}

async fn forward(tx: &mpsc::Sender<Request>, command: Command) -> HttpResponse {
    let (reply, answer) = oneshot::channel();
    if tx.send((command, reply)).await.is_err() {
        return HttpResponse::ServiceUnavailable().finish();
    }
    match answer.await {
        Ok(Ok(())) => HttpResponse::NoContent().finish(),
        Ok(Err(e)) => HttpResponse::InternalServerError().body(e),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// The control endpoint: `POST /reminder`, `POST /gateway/stop`, `POST /gateway/start`.
fn control_server(tx: mpsc::Sender<Request>) -> (u16, actix_web::dev::Server) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tx = web::Data::new(tx);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(tx.clone())
            .route(
                "/reminder",
                web::post().to(
                    |tx: web::Data<mpsc::Sender<Request>>,
                     body: web::Json<ReminderRequest>| async move {
                        let body = body.into_inner();
                        forward(
                            &tx,
                            Command::Reminder {
                                user_id: body.user_id,
                                task_id: body.task_id,
                                task_title: body.task_title,
                            },
                        )
                        .await
                    },
                ),
            )
            .route(
                "/gateway/stop",
                web::post().to(|tx: web::Data<mpsc::Sender<Request>>| async move {
                    forward(&tx, Command::StopGateway).await
                }),
            )
            .route(
                "/gateway/start",
                web::post().to(|tx: web::Data<mpsc::Sender<Request>>| async move {
                    forward(&tx, Command::StartGateway).await
                }),
            )
    })
    .disable_signals()
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    (port, server)
}

fn reminder_event(user_id: String, task_id: String, task_title: String) -> ReminderTriggeredEvent {
    let now = events::now_millis();
    ReminderTriggeredEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_timestamp: now,
        reminder_id: uuid::Uuid::new_v4().to_string(),
        user_id,
        task_id,
        task_version: 1,
        task_title,
        due_date: Some(now + 30 * 60_000),
        remind_at: now,
        fired_at: now,
        channel: NotificationChannel::InApp,
        late: false,
    }
}

fn artifact_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ARTIFACT_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("ws-gateway-browser")
}

/// One browser test at a time in this binary.
static ONE_BROWSER: Mutex<()> = Mutex::const_new(());

/// What a browser script needs running.
struct Setup {
    /// The script in `tests/browser/`.
    script: &'static str,
    /// A second task-api on a fresh PostgreSQL database (`TASK_API_URL_POSTGRES`) beside the
    /// SQLite one (`TASK_API_URL`).
    postgres: bool,
    /// A notification-service, so that the script may check the mails it sends.
    notifications: bool,
}

fn mailpit_api() -> String {
    std::env::var("TEST_MAILPIT_API").unwrap_or_else(|_| "http://127.0.0.1:8025/api/v1".into())
}

fn smtp_url() -> String {
    std::env::var("TEST_SMTP_URL").unwrap_or_else(|_| "smtp://127.0.0.1:1025".into())
}

/// An in-process notification-service on a fresh SQLite database, its consumer group at the
/// end of its topics (it hears only what happens from now on, such as this test's users
/// registering), mailing to the test SMTP server.
async fn start_notification_service(
    public_key: &str,
) -> (Shutdown, tokio::task::JoinHandle<anyhow::Result<()>>) {
    use notification_service::config::{
        Config, DEFAULT_FROM, DeliverySettings, ScheduleSettings, SmtpSettings, WebhookSettings,
    };
    let group = testing::unique_group("notification-for-browser");
    let (g, topics) = (
        group.clone(),
        Service::NotificationService.consumes().to_vec(),
    );
    tokio::task::spawn_blocking(move || testing::position_group_at_end(&g, &topics))
        .await
        .unwrap();
    let config = Config {
        common: CommonConfig {
            kafka: service_kit::testing::kafka_access(),
            registry: service_kit::testing::registry_access(),
            database_url: testing::fresh_database(Backend::Sqlite),
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            shutdown_timeout: Duration::from_secs(10),
        },
        verifier: TokenVerifier::from_pem(public_key).unwrap(),
        consumer_group: group,
        smtp: SmtpSettings::parse(
            &smtp_url(),
            DEFAULT_FROM.parse().unwrap(),
            Duration::from_secs(5),
        )
        .unwrap(),
        webhook: WebhookSettings {
            key: service_kit::webhook::WebhookKey::new(
                "browser-test-webhook-signing-key-0123456789",
            ),
            timeout: Duration::from_secs(2),
        },
        sms: None,
        push: None,
        app_base_url: "http://127.0.0.1:8000".into(),
        schedule: ScheduleSettings::defaults(),
        delivery: DeliverySettings {
            retry: service_kit::consumer::RetryPolicy {
                initial: Duration::from_millis(200),
                max_delay: Duration::from_secs(1),
                max_attempts: 4,
            },
            concurrency: 4,
            lease: DeliverySettings::DEFAULT_LEASE,
        },
    };
    let app = notification_service::startup::Application::build(config)
        .await
        .expect("notification-service builds");
    (app.shutdown_handle(), tokio::spawn(app.run_until_stopped()))
}

type RunningApi = (Shutdown, tokio::task::JoinHandle<anyhow::Result<()>>);

async fn stop(services: Vec<RunningApi>) {
    for (shutdown, handle) in services {
        shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(30), handle).await;
    }
}

/// Start what `setup` needs, run its script to the end while answering its control requests,
/// stop everything and fail with the script's output if it failed.
async fn run_in_chromium(setup: Setup) {
    let keys = generate_keypair().unwrap();
    let (api_port, gateway_port) = (free_port(), free_port());
    let pg_port = setup.postgres.then(free_port);
    let api_ports: Vec<u16> = std::iter::once(api_port).chain(pg_port).collect();
    let mut gateway = Some(start_gateway_for(gateway_port, &api_ports, &keys.1).await);
    let mut services =
        vec![start_task_api_on(Backend::Sqlite, api_port, gateway_port, &keys).await];
    if let Some(port) = pg_port {
        services.push(start_task_api_on(Backend::Postgres, port, gateway_port, &keys).await);
    }
    if setup.notifications {
        services.push(start_notification_service(&keys.1).await);
    }
    let codec = Arc::new(EventCodec::connect(&service_kit::testing::registry_access()).unwrap());
    let publisher = EventPublisher::connect(
        service_kit::testing::kafka_config(),
        codec,
        "ws-gateway-browser-test",
    )
    .unwrap();
    let (tx, mut rx) = mpsc::channel::<Request>(8);
    let (control_port, control) = control_server(tx);
    let control_handle = control.handle();
    tokio::spawn(control);

    let artifacts = artifact_dir();
    std::fs::create_dir_all(&artifacts).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/run.sh");
    let mut command = std::process::Command::new("bash");
    command
        .arg(&script)
        .arg(setup.script)
        .env("TASK_API_URL", format!("http://127.0.0.1:{api_port}"))
        .env("GATEWAY_URL", format!("http://127.0.0.1:{gateway_port}"))
        .env("CONTROL_URL", format!("http://127.0.0.1:{control_port}"))
        .env("ARTIFACT_DIR", &artifacts)
        .env("MAILPIT_API", mailpit_api())
        .env(
            "ASSIGNMENT_MAIL",
            if setup.notifications { "1" } else { "0" },
        )
        .stdin(std::process::Stdio::null());
    if let Some(port) = pg_port {
        command.env("TASK_API_URL_POSTGRES", format!("http://127.0.0.1:{port}"));
    }
    let mut browser_test = tokio::task::spawn_blocking(move || command.output());

    let output = loop {
        tokio::select! {
            done = &mut browser_test => break done.unwrap().expect("run.sh starts"),
            Some((command, reply)) = rx.recv() => {
                let result = match command {
                    Command::Reminder { user_id, task_id, task_title } => publisher
                        .publish(&reminder_event(user_id, task_id, task_title), None)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Command::StopGateway => {
                        if let Some(g) = gateway.take() {
                            g.stop().await;
                        }
                        Ok(())
                    }
                    Command::StartGateway => {
                        if gateway.is_none() {
                            gateway = Some(start_gateway_for(gateway_port, &api_ports, &keys.1).await);
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    println!("screenshots in {}", artifacts.display());

    control_handle.stop(true).await;
    if let Some(g) = gateway.take() {
        g.stop().await;
    }
    stop(services).await;
    assert!(
        output.status.success(),
        "{} failed ({}):\n{stdout}\n{stderr}",
        setup.script,
        output.status
    );
}

#[tokio::test]
async fn the_page_stays_live_across_windows_in_a_real_chromium() {
    let _one = ONE_BROWSER.lock().await;
    run_in_chromium(Setup {
        script: "browser.test.mjs",
        postgres: false,
        notifications: false,
    })
    .await;
}

#[tokio::test]
async fn sharing_and_assignment_reach_exactly_the_people_involved_live() {
    let _one = ONE_BROWSER.lock().await;
    run_in_chromium(Setup {
        script: "sharing.test.mjs",
        postgres: true,
        notifications: true,
    })
    .await;
}
