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
use events::{EventCodec, EventPublisher, NotificationChannel, ReminderTriggeredEvent};
use service_kit::auth::generate_keypair;
use support::services::{free_port, start_gateway, start_task_api};
use tokio::sync::{mpsc, oneshot};

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

#[tokio::test]
async fn the_page_stays_live_across_windows_in_a_real_chromium() {
    let keys = generate_keypair().unwrap();
    let (api_port, gateway_port) = (free_port(), free_port());
    let mut gateway = Some(start_gateway(gateway_port, api_port, &keys.1).await);
    let (api_shutdown, api_handle) = start_task_api(api_port, gateway_port, &keys).await;
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
