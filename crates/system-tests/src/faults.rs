//! Faults injected into the shared infrastructure, each with its healing.

use std::process::Command;
use std::time::{Duration, Instant};

use events::admin::{DesiredTopic, TopicAdmin};

fn script(name: &str, args: &[&str]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(name);
    let status = Command::new(&path)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(status.success(), "scripts/{name} {args:?} failed");
}

pub fn kill_broker(id: u8) {
    script("kafka.sh", &["kill-broker", &id.to_string()]);
}

pub fn start_broker(id: u8) {
    script("kafka.sh", &["start-broker", &id.to_string()]);
}

/// Start whatever brokers are down (`kafka.sh start` leaves running ones alone).
pub fn start_brokers() {
    script("kafka.sh", &["start"]);
}

pub fn stop_registry() {
    script("registry.sh", &["stop"]);
}

pub fn start_registry() {
    script("registry.sh", &["start"]);
}

/// Wait until the cluster has three brokers and every catalogue topic its full ISR.
pub async fn wait_cluster_whole(bound: Duration) {
    let admin = TopicAdmin::connect(&service_kit::testing::kafka_config()).unwrap();
    let desired = DesiredTopic::everything();
    let names: Vec<&str> = desired.iter().map(|d| d.name.as_str()).collect();
    let deadline = Instant::now() + bound;
    loop {
        let brokers = admin.brokers().await.map(|b| b.len()).unwrap_or(0);
        let whole = admin
            .describe(&names)
            .await
            .map(|s| s.iter().all(|t| t.min_isr_seen == 3))
            .unwrap_or(false);
        if brokers == 3 && whole {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster not whole after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Make a PostgreSQL database refuse connections and drop the open ones; `false` undoes it.
pub async fn block_database(url: &str, blocked: bool) {
    let name = url.rsplit('/').next().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        use diesel::{Connection, RunQueryDsl};
        let mut conn =
            diesel::PgConnection::establish(&service_kit::testing::postgres_server_url()).unwrap();
        diesel::sql_query(format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS {}",
            !blocked
        ))
        .execute(&mut conn)
        .unwrap();
        if blocked {
            diesel::sql_query(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ))
            .execute(&mut conn)
            .unwrap();
        }
    })
    .await
    .unwrap();
}
