//! Starts a real audit-service (in-process, or as its own process for crash tests) against the
//! real cluster, registry and a fresh database.

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use audit_service::config::Config;
use audit_service::startup::Application;
use events::{Event, EventCodec, EventPublisher, Service};
use service_kit::auth::TokenSigner;
use service_kit::config::{CommonConfig, DatabaseUrl};
use service_kit::shutdown::Shutdown;
use service_kit::testing::{self, Backend};

pub struct TestApp {
    pub address: String,
    pub signer: TokenSigner,
    pub verifier: service_kit::auth::TokenVerifier,
    pub db_url: DatabaseUrl,
    pub group: String,
    pub shutdown: Shutdown,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub publisher: EventPublisher,
    pub http: reqwest::Client,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let db_url = testing::fresh_database(backend);
    let (signer, verifier, _) = testing::token_pair();
    let group = testing::unique_group("audit");
    let topics = Service::AuditService.consumes().to_vec();
    let g = group.clone();
    tokio::task::spawn_blocking(move || testing::position_group_at_end(&g, &topics))
        .await
        .unwrap();
    spawn_instance(db_url, group, signer, verifier).await
}

/// Another instance of `app`: same database, same consumer group, same token keys.
pub async fn spawn_another(app: &TestApp) -> TestApp {
    spawn_instance(
        app.db_url.clone(),
        app.group.clone(),
        app.signer.clone(),
        app.verifier.clone(),
    )
    .await
}

async fn spawn_instance(
    db_url: DatabaseUrl,
    group: String,
    signer: TokenSigner,
    verifier: service_kit::auth::TokenVerifier,
) -> TestApp {
    let config = Config {
        common: CommonConfig {
            kafka: service_kit::testing::kafka_access(),
            registry: service_kit::testing::registry_access(),
            database_url: db_url.clone(),
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            shutdown_timeout: Duration::from_secs(10),
        },
        verifier: verifier.clone(),
        consumer_group: group.clone(),
    };
    let app = Application::build(config).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_handle();
    let handle = tokio::spawn(app.run_until_stopped());
    let codec = Arc::new(EventCodec::connect(&service_kit::testing::registry_access()).unwrap());
    let publisher =
        EventPublisher::connect(service_kit::testing::kafka_config(), codec, "audit-tests")
            .unwrap();
    TestApp {
        address,
        signer,
        verifier,
        db_url,
        group,
        shutdown,
        handle,
        publisher,
        http: reqwest::Client::new(),
    }
}

impl TestApp {
    pub fn token(&self, user: &str) -> String {
        self.signer.issue(user).unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.address));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn get_json(&self, path: &str, user: &str) -> serde_json::Value {
        let resp = self.get(path, Some(&self.token(user))).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    /// All of a user's audit items (every page).
    pub async fn all_events(&self, user: &str) -> Vec<serde_json::Value> {
        let mut items = Vec::new();
        let mut path = "/api/audit/events?limit=500".to_owned();
        loop {
            let page = self.get_json(&path, user).await;
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/api/audit/events?limit=500&cursor={c}"),
                None => return items,
            }
        }
    }

    /// Wait until the user has exactly `n` audit items (bounded).
    pub async fn wait_for_events(&self, user: &str, n: usize) -> Vec<serde_json::Value> {
        testing::wait_for(
            &format!("{n} audit events of {user}"),
            Duration::from_secs(60),
            || async {
                let items = self.all_events(user).await;
                (items.len() >= n).then_some(items)
            },
        )
        .await
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn publish<E: Event>(&self, event: &E) {
        self.publisher.publish(event, None).await.expect("publish");
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("stops within 30 s")
            .unwrap()
            .unwrap();
    }
}

/// The audit-service binary running as its own process, for crash and signal tests.
pub struct ServiceProcess {
    pub child: std::process::Child,
    pub address: String,
    pub log: std::path::PathBuf,
}

pub struct ProcessEnv {
    pub db_url: DatabaseUrl,
    pub group: String,
    pub public_key: String,
    pub signer: TokenSigner,
}

impl ProcessEnv {
    pub async fn new(backend: Backend) -> Self {
        let (signer, _, public_key) = testing::token_pair();
        let group = testing::unique_group("audit-proc");
        let topics = Service::AuditService.consumes().to_vec();
        let g = group.clone();
        tokio::task::spawn_blocking(move || testing::position_group_at_end(&g, &topics))
            .await
            .unwrap();
        Self {
            db_url: testing::fresh_database(backend),
            group,
            public_key,
            signer,
        }
    }

    pub async fn start(&self) -> ServiceProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!("audit-service-{}.log", uuid::Uuid::new_v4()));
        let database_url = match &self.db_url {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{p}"),
            DatabaseUrl::Postgres(u) => u.clone(),
        };
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_audit-service"))
            .env("KAFKA_BOOTSTRAP_SERVERS", testing::bootstrap_servers())
            .env("SCHEMA_REGISTRY_URL", testing::registry_url())
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("JWT_PUBLIC_KEY", &self.public_key)
            .env("CONSUMER_GROUP", &self.group)
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start audit-service");
        let address = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        testing::wait_for("audit-service /readyz", Duration::from_secs(60), || async {
            let r = http.get(format!("{address}/readyz")).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        ServiceProcess {
            child,
            address,
            log,
        }
    }

    /// Stored audit entries, read straight from the database.
    pub async fn stored(&self) -> i64 {
        let url = self.db_url.clone();
        tokio::task::spawn_blocking(move || {
            let db = service_kit::db::Database::connect(&url, audit_service::startup::MIGRATIONS)
                .unwrap();
            let mut conn = db.pool().get().unwrap();
            audit_service::storage::count(&mut conn).unwrap()
        })
        .await
        .unwrap()
    }

    /// Event ids stored, read straight from the database.
    pub async fn stored_ids(&self) -> Vec<String> {
        use diesel::prelude::*;
        let url = self.db_url.clone();
        tokio::task::spawn_blocking(move || {
            let db = service_kit::db::Database::connect(&url, audit_service::startup::MIGRATIONS)
                .unwrap();
            let mut conn = db.pool().get().unwrap();
            audit_service::storage::audit_events::table
                .select(audit_service::storage::audit_events::event_id)
                .load::<String>(&mut conn)
                .unwrap()
        })
        .await
        .unwrap()
    }
}
