//! The page subscribes to web push in a real headless Chromium (`tests/browser/run.sh`: Node,
//! playwright-core, Debian's `/usr/bin/chromium`), against a real task-api.
//!
//! Chromium's `pushManager.subscribe` goes through Google's GCM: a checkin, then a registration
//! whose token becomes the subscription's endpoint. GCM is not reachable here, so Chromium's
//! `--gcm-checkin-url` and `--gcm-registration-url` point at a stand-in this test runs: it
//! answers the checkin (a protobuf `AndroidCheckinResponse` with a device id and security
//! token) and each registration (`token=…`), and records the `sender` of each, which for a web
//! push subscription is the application server's VAPID public key. The browser script checks
//! that task-api stored exactly what the browser returned; this side checks that the page
//! subscribed with the server's key and that the stored endpoint carries the token issued.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use diesel::prelude::*;
use service_kit::testing::Backend;
use support::*;

/// A registration the stand-in answered: who asked (`sender`) and the token it gave.
#[derive(Debug, Clone)]
struct Registration {
    sender: String,
    token: String,
}

type Registrations = Arc<Mutex<Vec<Registration>>>;

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// `AndroidCheckinResponse` (Chromium's google_apis/gcm/protocol/checkin.proto): stats_ok = 1
/// (field 1), time_msec (3), android_id (7, fixed64), security_token (8, fixed64); Chromium
/// refuses a checkin without a non-zero id and token.
fn checkin_response() -> Vec<u8> {
    let mut body = vec![0x08, 0x01, 0x18];
    body.extend(varint(events::now_millis() as u64));
    body.push(0x39);
    body.extend(1_234_567_890_123u64.to_le_bytes());
    body.push(0x41);
    body.extend(9_876_543_210_987u64.to_le_bytes());
    body
}

async fn register(body: web::Bytes, seen: web::Data<Mutex<Vec<Registration>>>) -> HttpResponse {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let sender = form
        .iter()
        .find(|(k, _)| k == "sender")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let token = format!("test-token-{}", uuid::Uuid::new_v4().simple());
    seen.lock().unwrap().push(Registration {
        sender,
        token: token.clone(),
    });
    HttpResponse::Ok()
        .content_type("text/plain")
        .body(format!("token={token}"))
}

fn gcm_stand_in() -> (String, Registrations, actix_web::dev::ServerHandle) {
    let seen: Registrations = Arc::default();
    let data = web::Data::from(seen.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route(
                "/checkin",
                web::post().to(|| async {
                    HttpResponse::Ok()
                        .content_type("application/x-protobuf")
                        .body(checkin_response())
                }),
            )
            .route("/register", web::post().to(register))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}"), seen, handle)
}

fn artifact_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ARTIFACT_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("task-api-browser")
}

#[tokio::test]
async fn the_page_subscribes_to_push_in_chromium_and_task_api_stores_that_subscription() {
    let vapid = p256::SecretKey::from_slice(&[0x42; 32]).unwrap();
    let vapid_public = service_kit::push::vapid_public_key_text(&vapid);
    let mut opts = Options::new(Backend::Sqlite);
    opts.vapid_public_key = Some(vapid_public.clone());
    let app = spawn_with(opts).await;
    let (gcm_url, registrations, gcm) = gcm_stand_in();

    let artifacts = artifact_dir();
    std::fs::create_dir_all(&artifacts).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/run.sh");
    let mut command = std::process::Command::new("bash");
    command
        .arg(&script)
        .env("TASK_API_URL", &app.address)
        .env("GCM_URL", &gcm_url)
        .env("ARTIFACT_DIR", &artifacts)
        .stdin(std::process::Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run.sh starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    gcm.stop(false).await;
    assert!(
        output.status.success(),
        "push.test.mjs failed ({}):\n{stdout}\n{stderr}",
        output.status
    );

    let ours: Vec<Registration> = registrations
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.sender == vapid_public)
        .cloned()
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "one registration with the server's VAPID key"
    );
    let endpoints: Vec<String> = app
        .db
        .run(|conn| {
            Ok(task_api::storage::schema::push_subscriptions::table
                .select(task_api::storage::schema::push_subscriptions::endpoint)
                .load::<String>(conn)?)
        })
        .await
        .unwrap();
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    assert!(
        endpoints[0].ends_with(&format!("/{}", ours[0].token)),
        "the stored endpoint {} carries the issued token {}",
        endpoints[0],
        ours[0].token
    );
    app.stop().await;
}
