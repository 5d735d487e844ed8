//! The system on a secured cluster (`make dev KAFKA_SECURITY=sasl_ssl`'s): SASL_SSL listeners,
//! SCRAM-SHA-512, every service as its own user with ACLs for exactly its topics and its group.
//! The end-to-end story runs through all five services, and a service whose user has no ACL
//! is refused: one clear error line, `/readyz` 503 naming the topics, and the process stays up
//! (no crash loop); one whose user may read its topics but not join its consumer group is not
//! ready either. Every service reaches the schema registry with basic-auth credentials, through
//! a gate that refuses requests without them. The cluster is `scripts/secured-cluster.sh`'s (started once; `make test`
//! starts it before the build and stops it at the end; this test starts it if it is not up).

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use service_kit::kafka::{KafkaAccess, SecurityProtocol};
use service_kit::testing::{Backend, wait_for};
use system_tests::client::task_of;
use system_tests::registry_gate::RegistryGate;
use system_tests::system::KafkaSettings;
use system_tests::{Svc, System, UserClient, WsClient};

const BOUND: Duration = Duration::from_secs(60);

fn script(args: &[&str]) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts").join(args[0]))
        .args(&args[1..])
        .current_dir(&root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/{} failed", args.join(" "));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The settings of `user` on the secured cluster, and the registry's credentials, as its
/// services get them.
fn user_env(
    user: &str,
    bootstrap: &(String, String),
    registry: &RegistryGate,
) -> Vec<(String, String)> {
    let mut env = script(&["kafka-security.sh", "env", user]);
    env.push(bootstrap.clone());
    env.extend(registry.env());
    env
}

/// Wait until the instance at `url` answers `/readyz` with 503 and its check `check` failing;
/// returns the check's error.
async fn not_ready_because(url: &str, check: &str) -> String {
    let http = reqwest::Client::new();
    wait_for(
        &format!("{url}/readyz failing on {check}"),
        BOUND,
        || async {
            let r = http.get(format!("{url}/readyz")).send().await.ok()?;
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.ok()?;
            let error = body["checks"][check]["error"].as_str()?.to_owned();
            (status == 503).then_some(error)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_runs_on_sasl_ssl_with_a_user_per_service_and_a_user_without_acls_is_refused() {
    let cluster = script(&["secured-cluster.sh", "up"]);
    let bootstrap = cluster
        .iter()
        .find(|(k, _)| k == "KAFKA_BOOTSTRAP_SERVERS")
        .cloned()
        .unwrap();
    let registry = RegistryGate::start(&service_kit::testing::registry_url());
    let admin = KafkaAccess::from_settings(&user_env("admin", &bootstrap, &registry)).unwrap();
    assert_eq!(admin.protocol, SecurityProtocol::SaslSsl);
    let service_env: HashMap<Svc, Vec<(String, String)>> = Svc::ALL
        .iter()
        .map(|svc| (*svc, user_env(svc.name(), &bootstrap, &registry)))
        .collect();
    let system = System::start_with(
        Backend::Postgres,
        KafkaSettings {
            access: admin,
            service_env,
        },
    )
    .await;

    // A user without ACLs: an audit-service started as it is refused, says so once, stays up
    // and not ready. Started first, so its refusal is seen while the story runs.
    let refused_env = user_env("no-acls", &bootstrap, &registry);
    let (mut refused, refused_url, refused_log) =
        system.spawn_variant(Svc::Audit, "audit-service-no-acls", &refused_env);
    // A user with audit-service's topic ACLs but none for a consumer group: its topics are
    // visible, joining its group is refused.
    let groupless_env = user_env("no-group", &bootstrap, &registry);
    let (mut groupless, groupless_url, groupless_log) =
        system.spawn_variant(Svc::Audit, "audit-service-no-group", &groupless_env);

    // The story through all five services, each connected as its own user.
    let alice = UserClient::register(&system, "alice").await;
    let alice_ws = WsClient::connect(&system, &alice.token).await;
    let now = chrono::Utc::now();
    let due = chrono::DateTime::from_timestamp(now.timestamp() + 6, 0).unwrap();
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let task = alice
        .post(
            "/api/tasks",
            json!({
                "title": "Rotate the broker certificates",
                "due_at": rfc(due),
                "recurrence": {"rrule": "FREQ=WEEKLY", "timezone": "UTC", "mode": "fixed"},
                "reminders": [{"at": rfc(now + chrono::Duration::seconds(2)), "channel": "in_app"}]
            }),
        )
        .await;
    let task_id = task["id"].as_str().unwrap().to_owned();
    let series_id = task["series_id"].as_str().unwrap().to_owned();
    // ws-gateway read task.created; notification-service read it, fired the reminder and
    // reported the delivery (writes to reminder.triggered and notification.sent).
    alice_ws
        .wait_for(
            "task_created, reminder_triggered and notification_sent live",
            BOUND,
            |m| {
                ["task_created", "reminder_triggered", "notification_sent"]
                    .iter()
                    .all(|kind| {
                        m.iter()
                            .any(|x| x["type"] == *kind && task_of(x) == Some(task_id.as_str()))
                    })
            },
        )
        .await;
    // recurring-task-service read task.completed and wrote the next occurrence to task.created,
    // which task-api ingested.
    alice
        .post(&format!("/api/tasks/{task_id}/complete"), json!({}))
        .await;
    wait_for(
        "the next occurrence, through the recurring engine",
        BOUND,
        || async {
            alice
                .tasks("status=open")
                .await
                .into_iter()
                .find(|t| t["series_id"] == series_id.as_str() && t["id"] != task_id.as_str())
        },
    )
    .await;
    // audit-service read every topic.
    wait_for(
        "the task's whole life in the audit history",
        BOUND,
        || async {
            let h = alice
                .get(Svc::Audit, &format!("/api/audit/tasks/{task_id}/history"))
                .await;
            let types: Vec<&str> = h["items"]
                .as_array()?
                .iter()
                .filter_map(|i| i["event_type"].as_str())
                .collect();
            [
                "task_created",
                "reminder_triggered",
                "notification_sent",
                "task_completed",
            ]
            .iter()
            .all(|t| types.contains(t))
            .then_some(())
        },
    )
    .await;

    // Every service reached the registry with its credentials; none went without.
    let (forwarded, unauthenticated) = registry.counts();
    assert!(
        forwarded > 0,
        "the services used the registry through its gate"
    );
    assert_eq!(
        unauthenticated, 0,
        "no registry request without credentials"
    );

    // The refused instance: not ready, naming what it may not see; one clear log line; alive.
    let http = reqwest::Client::new();
    let readiness = not_ready_because(&refused_url, "kafka_access").await;
    assert!(readiness.contains("task.created"), "{readiness}");

    // The instance without a group ACL: its topics pass, its consumer's refusal gates.
    let group_refusal = not_ready_because(&groupless_url, "kafka_consumer").await;
    assert!(
        group_refusal.to_lowercase().contains("group"),
        "{group_refusal}"
    );
    let groupless_readyz: serde_json::Value = http
        .get(format!("{groupless_url}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        groupless_readyz["checks"]["kafka_access"]["status"], "ok",
        "its topics are visible to it: {groupless_readyz}"
    );
    let groupless_text = std::fs::read_to_string(&groupless_log).unwrap();
    assert!(
        groupless_text.contains("kafka refused this consumer"),
        "the group refusal is logged:\n{groupless_text}"
    );
    assert!(
        !groupless_text.contains(registry.user_info.split_once(':').unwrap().1),
        "the log holds no registry password"
    );
    groupless.kill().unwrap();
    groupless.wait().unwrap();
    let log = wait_for("the refusal in its log", BOUND, || async {
        let log = std::fs::read_to_string(&refused_log).ok()?;
        log.contains("kafka refused this").then_some(log)
    })
    .await;
    let healthz = http
        .get(format!("{refused_url}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200, "the refused instance stays alive");
    assert!(
        refused.try_wait().unwrap().is_none(),
        "the refused instance is still running (no crash loop); log:\n{log}"
    );
    let refusals = log
        .lines()
        .filter(|l| l.contains("kafka refused this consumer"))
        .count();
    assert!(
        refusals <= 3,
        "a refusal is logged once, not in a loop ({refusals} lines):\n{log}"
    );
    for (_, secret_file) in refused_env
        .iter()
        .filter(|(k, _)| k.ends_with("_PASSWORD_FILE"))
    {
        let secret = std::fs::read_to_string(secret_file).unwrap();
        assert!(!log.contains(secret.trim()), "the log holds no password");
    }
    refused.kill().unwrap();
    refused.wait().unwrap();
    system.stop().await;
    registry.stop().await;
}
