//! The Kafka UI of `make dev` (kaskade served by textual-serve, scripts/kafka-ui.sh) against the
//! local cluster: it starts on a port of its own, bound to 127.0.0.1, and a headless Chromium
//! finds the catalogue's topics on its page (scripts/kafka-ui.sh check).

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn script(args: &[&str]) -> std::process::Output {
    Command::new(repo().join("scripts/kafka-ui.sh"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_kafka_ui_of_make_dev_lists_the_topics_in_a_browser() {
    let install = script(&["install"]);
    assert!(
        install.status.success(),
        "scripts/kafka-ui.sh install: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let cache = std::env::var("TODO_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/todo-platform")
        });
    let log = std::env::temp_dir().join(format!("kafka-ui-{port}.log"));
    let mut ui = Command::new(cache.join("venv/bin/python"))
        .arg(repo().join("deploy/containers/kafka-ui/serve.py"))
        .env(
            "KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS",
            service_kit::testing::bootstrap_servers(),
        )
        .env(
            "KAFKA_CLUSTERS_0_SCHEMAREGISTRY",
            service_kit::testing::registry_url(),
        )
        .env("KAFKA_UI_HOST", "127.0.0.1")
        .env("SERVER_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // serve.py binds KAFKA_UI_HOST (127.0.0.1) only; wait (bounded) until it listens there
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the Kafka UI did not listen within 60 s (log {})",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let check = script(&["check", &url]);
    let _ = ui.kill();
    let _ = ui.wait();
    assert!(
        check.status.success(),
        "the browser check failed:\n{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
