//! The web page in a real headless Chromium, against a real task-api and ws-gateway on the
//! real cluster: `tests/browser/run.sh` drives the browser (Node, playwright-core, Debian's
//! `/usr/bin/chromium`); this harness starts the services and answers the script's requests
//! on a small control endpoint (publish a reminder for a user, stop and start the gateway).
//! Screenshots land in `$CARGO_TARGET_DIR/ws-gateway-browser/` (or `ARTIFACT_DIR`).

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use events::{EventCodec, EventPublisher, NotificationChannel, ReminderTriggeredEvent, Topic};
use service_kit::auth::{TokenSigner, TokenVerifier, generate_keypair};
use service_kit::config::CommonConfig;
use service_kit::shutdown::Shutdown;
use service_kit::testing::{self, Backend};
use tokio::sync::{mpsc, oneshot};
use ws_gateway::config::{AllowedOrigins, Config, ConnectionSettings, ReplayLimits};
use ws_gateway::startup::Application;

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct RunningGateway {
    shutdown: Shutdown,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start_gateway(port: u16, api_port: u16, public_key: &str) -> RunningGateway {
    let config = Config {
        kafka_bootstrap_servers: testing::bootstrap_servers(),
        schema_registry_url: testing::registry_url(),
        bind_addr: format!("127.0.0.1:{port}").parse().unwrap(),
        shutdown_timeout: Duration::from_secs(10),
        verifier: TokenVerifier::from_pem(public_key).unwrap(),
        origins: AllowedOrigins::parse(&format!(
            "http://127.0.0.1:{api_port},http://localhost:{api_port}"
        ))
        .unwrap(),
        connection: ConnectionSettings::default(),
        replay: ReplayLimits::default(),
        consumer_group_prefix: "ws-gateway-browser-test".into(),
    };
    let app = Application::build(config).await.expect("gateway builds");
    RunningGateway {
        shutdown: app.shutdown_handle(),
        handle: tokio::spawn(app.run_until_stopped()),
    }
}

impl RunningGateway {
    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("gateway stops")
            .unwrap()
            .unwrap();
    }
}

async fn start_task_api(
    port: u16,
    gateway_port: u16,
    keys: &(String, String),
) -> (Shutdown, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let group = testing::unique_group("task-api-browser");
    let g = group.clone();
    tokio::task::spawn_blocking(move || testing::position_group_at_end(&g, &[Topic::TaskCreated]))
        .await
        .unwrap();
    let config = task_api::config::Config {
        common: CommonConfig {
            kafka_bootstrap_servers: testing::bootstrap_servers(),
            schema_registry_url: testing::registry_url(),
            database_url: testing::fresh_database(Backend::Sqlite),
            bind_addr: format!("127.0.0.1:{port}").parse().unwrap(),
            shutdown_timeout: Duration::from_secs(10),
        },
        signer: TokenSigner::from_pem(&keys.0, 3600).unwrap(),
        verifier: TokenVerifier::from_pem(&keys.1).unwrap(),
        webhook_key: service_kit::webhook::WebhookKey::new(
            "browser-test-webhook-signing-key-0123456789",
        ),
        ws_public_url: format!("ws://127.0.0.1:{gateway_port}"),
        consumer_group: group,
        login_limits: task_api::config::LoginLimits {
            per_email: 50,
            per_ip: 10_000,
            window: Duration::from_secs(60),
        },
        outbox: task_api::config::OutboxSettings {
            poll_interval: Duration::from_millis(200),
            ..Default::default()
        },
    };
    let app = task_api::startup::Application::build(config)
        .await
        .expect("task-api builds");
    let shutdown = app.shutdown_handle();
    (shutdown, tokio::spawn(app.run_until_stopped()))
}

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

#[tokio::test]
async fn the_page_stays_live_across_windows_in_a_real_chromium() {
    let keys = generate_keypair().unwrap();
    let (api_port, gateway_port) = (free_port(), free_port());
    let mut gateway = Some(start_gateway(gateway_port, api_port, &keys.1).await);
    let (api_shutdown, api_handle) = start_task_api(api_port, gateway_port, &keys).await;
    let codec = Arc::new(EventCodec::new(&testing::registry_url()).unwrap());
    let publisher = EventPublisher::connect(
        &testing::bootstrap_servers(),
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
        .env("TASK_API_URL", format!("http://127.0.0.1:{api_port}"))
        .env("GATEWAY_URL", format!("http://127.0.0.1:{gateway_port}"))
        .env("CONTROL_URL", format!("http://127.0.0.1:{control_port}"))
        .env("ARTIFACT_DIR", &artifacts)
        .stdin(std::process::Stdio::null());
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
                            gateway = Some(start_gateway(gateway_port, api_port, &keys.1).await);
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
    api_shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(30), api_handle).await;
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
