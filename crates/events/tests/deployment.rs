//! The deployment files (Dockerfile, docker-compose.yml, deploy/k8s, deploy/monitoring) are
//! checked here with the tools that run without Docker or a cluster (deploy/README.md):
//! kustomize + kubeconform (strict, custom resources against deploy/k8s/schemas) +
//! kubernetes-validate, promtool, hadolint, Docker Compose's own validation; and against the
//! code: every environment variable set is one the service reads, every metric the alerts and
//! the dashboard use is one a service exports.

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod deploy;

use deploy::{SERVICES, repo};

#[test]
fn every_overlay_renders_and_passes_strict_validation() {
    let files: Vec<_> = deploy::rendered_overlays()
        .values()
        .map(|(file, _)| file.clone())
        .collect();
    let output = deploy::run_ok(
        Command::new(repo().join("scripts/k8s.sh"))
            .arg("validate")
            .args(&files),
        "scripts/k8s.sh validate (kubeconform -strict, kubernetes-validate --strict)",
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        summary.contains("Invalid: 0, Errors: 0, Skipped: 0"),
        "kubeconform: {summary}"
    );
}

/// The requirements of each service's Kubernetes objects, in every overlay.
#[test]
fn every_service_has_probes_limits_hardening_and_its_companions() {
    for (overlay, (_, docs)) in deploy::rendered_overlays() {
        for service in SERVICES {
            let at = format!("{overlay}/{service}");
            let deployment = deploy::named(docs, "Deployment", service);
            let pod = &deployment["spec"]["template"]["spec"];
            let container = &pod["containers"][0];
            assert_eq!(
                container["readinessProbe"]["httpGet"]["path"], "/readyz",
                "{at}"
            );
            assert_eq!(
                container["livenessProbe"]["httpGet"]["path"], "/healthz",
                "{at}"
            );
            assert!(
                container["resources"]["requests"]["cpu"].is_string(),
                "{at}"
            );
            assert!(
                container["resources"]["limits"]["memory"].is_string(),
                "{at}"
            );
            let security = &container["securityContext"];
            assert_eq!(security["readOnlyRootFilesystem"], true, "{at}");
            assert_eq!(security["allowPrivilegeEscalation"], false, "{at}");
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{at}");
            assert!(
                pod["securityContext"]["runAsUser"].as_i64().unwrap() > 0,
                "{at}"
            );
            deploy::named(docs, "Service", service);
            deploy::named(docs, "PodDisruptionBudget", service);
            deploy::named(docs, "ServiceMonitor", service);
            if matches!(service, "task-api" | "ws-gateway") {
                // Request-driven (ws-gateway: every instance reads every event, so lag says
                // nothing about how many are needed): CPU.
                let hpa = deploy::named(docs, "HorizontalPodAutoscaler", service);
                assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], service, "{at}");
            } else {
                consumer_scales_on_lag_and_cpu(docs, service, &at);
            }
        }
        for kind in ["Kafka", "KafkaNodePool", "PrometheusRule"] {
            assert!(
                deploy::of_kind(docs, kind).count() >= 1,
                "{overlay}: {kind}"
            );
        }
        deploy::named(docs, "Deployment", "schema-registry");
        let ui = deploy::of_kind(docs, "Deployment").find(|d| d["metadata"]["name"] == "kafka-ui");
        if overlay == "prod" {
            assert!(ui.is_none(), "prod: no Kafka UI");
        } else {
            let ui = ui.unwrap_or_else(|| panic!("{overlay}: kafka-ui"));
            let env = &ui["spec"]["template"]["spec"]["containers"][0]["env"];
            let value = |name: &str| {
                env.as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["name"] == name)
                    .cloned()
                    .unwrap_or_else(|| panic!("{overlay}: kafka-ui {name}"))
            };
            assert_eq!(value("KAFKA_CLUSTERS_0_READONLY")["value"], "true");
            assert_eq!(value("AUTH_TYPE")["value"], "LOGIN_FORM");
        }
    }
}

/// A consumer of one group scales on its group's Kafka lag as well as on CPU: a KEDA
/// ScaledObject (which makes and owns the HPA, so there is no HPA of ours beside it) with a cpu
/// trigger and a kafka trigger on the service's own group, connecting as the service's own
/// KafkaUser; never more pods than partitions, where one would idle.
fn consumer_scales_on_lag_and_cpu(docs: &[Value], service: &str, at: &str) {
    assert!(
        deploy::of_kind(docs, "HorizontalPodAutoscaler")
            .all(|h| h["spec"]["scaleTargetRef"]["name"] != service),
        "{at}: an HPA beside the ScaledObject (KEDA owns the HPA)"
    );
    let scaled = deploy::named(docs, "ScaledObject", service);
    let spec = &scaled["spec"];
    assert_eq!(spec["scaleTargetRef"]["name"], service, "{at}");
    let max = spec["maxReplicaCount"].as_i64().unwrap();
    assert!(max <= 3, "{at}: maxReplicaCount {max} > partitions");
    assert!(spec["minReplicaCount"].as_i64().unwrap() >= 1, "{at}");
    let triggers = spec["triggers"].as_array().unwrap();
    let of_type = |t: &str| triggers.iter().find(|x| x["type"] == t);
    let cpu = of_type("cpu").unwrap_or_else(|| panic!("{at}: no cpu trigger"));
    assert_eq!(cpu["metricType"], "Utilization", "{at}");
    let kafka = of_type("kafka").unwrap_or_else(|| panic!("{at}: no kafka trigger"));
    let meta = &kafka["metadata"];
    assert_eq!(
        meta["consumerGroup"], service,
        "{at}: the service's own group"
    );
    assert!(
        meta["lagThreshold"]
            .as_str()
            .and_then(|l| l.parse::<u64>().ok())
            .is_some_and(|l| l > 0),
        "{at}: lagThreshold"
    );
    assert_eq!(meta["allowIdleConsumers"], "false", "{at}");
    assert_eq!(meta["sasl"], "scram_sha512", "{at}");
    assert_eq!(meta["tls"], "enable", "{at}");
    let deployment = deploy::named(docs, "Deployment", service);
    let config_map = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]
        ["configMapRef"]["name"]
        .as_str()
        .unwrap();
    let config = deploy::named(docs, "ConfigMap", config_map);
    let bootstrap = config["data"]["KAFKA_BOOTSTRAP_SERVERS"].as_str().unwrap();
    assert_eq!(
        meta["bootstrapServers"], bootstrap,
        "{at}: the pods' brokers"
    );
    assert_eq!(
        config["data"]["KAFKA_SASL_USERNAME"], service,
        "{at}: the pods' user"
    );
    let auth_name = kafka["authenticationRef"]["name"].as_str().unwrap();
    let auth = &deploy::named(docs, "TriggerAuthentication", auth_name)["spec"];
    let param = |p: &str, source: &str| -> Value {
        auth[source]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["parameter"] == p).cloned())
            .unwrap_or_else(|| panic!("{at}: {auth_name} has no {p} from {source}"))
    };
    assert_eq!(
        param("username", "env")["name"],
        "KAFKA_SASL_USERNAME",
        "{at}"
    );
    let password = param("password", "secretTargetRef");
    assert_eq!(
        password["name"], service,
        "{at}: Strimzi's secret of the user"
    );
    assert_eq!(password["key"], "password", "{at}");
    assert_eq!(
        param("ca", "secretTargetRef")["name"],
        "todo-kafka-cluster-ca-cert",
        "{at}"
    );
}

/// Least privilege on Kafka: every listener authenticates, ACLs are enforced, and each
/// service's KafkaUser grants exactly what `Service::acls` derives from the catalogue
/// (regenerate deploy/k8s/base/kafka/users.yaml with generate-users.sh after a change); each
/// service has a NetworkPolicy for both directions and connects as its own user.
#[test]
fn every_service_is_its_own_kafka_user_with_exactly_its_acls_and_a_network_policy() {
    use events::Service;
    use events::access::{Operation, Resource};
    for (overlay, (_, docs)) in deploy::rendered_overlays() {
        let kafka = deploy::of_kind(docs, "Kafka").next().unwrap();
        assert_eq!(
            kafka["spec"]["kafka"]["authorization"]["type"], "simple",
            "{overlay}"
        );
        for listener in kafka["spec"]["kafka"]["listeners"].as_array().unwrap() {
            assert_eq!(listener["tls"], true, "{overlay}: {listener}");
            assert!(
                listener["authentication"]["type"].is_string(),
                "{overlay}: unauthenticated listener {listener}"
            );
        }
        for service in Service::ALL {
            let name = service.name();
            let user = deploy::named(docs, "KafkaUser", name);
            assert_eq!(user["spec"]["authentication"]["type"], "scram-sha-512");
            let mut granted: Vec<(String, String, String, String)> = user["spec"]["authorization"]
                ["acls"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|acl| {
                    let r = &acl["resource"];
                    acl["operations"].as_array().unwrap().iter().map(move |op| {
                        (
                            r["type"].as_str().unwrap().to_owned(),
                            r["patternType"].as_str().unwrap_or("literal").to_owned(),
                            r["name"].as_str().unwrap().to_owned(),
                            op.as_str().unwrap().to_owned(),
                        )
                    })
                })
                .collect();
            let mut wanted: Vec<(String, String, String, String)> = service
                .acls()
                .into_iter()
                .map(|acl| {
                    let (kind, pattern, name) = match acl.resource {
                        Resource::Topic(n) => ("topic", "literal", n),
                        Resource::GroupPrefix(n) => ("group", "prefix", n),
                    };
                    let op = match acl.operation {
                        Operation::Read => "Read",
                        Operation::Write => "Write",
                    };
                    (kind.to_owned(), pattern.to_owned(), name, op.to_owned())
                })
                .collect();
            granted.sort();
            wanted.sort();
            assert_eq!(granted, wanted, "{overlay}: KafkaUser {name}");
            let policy = deploy::named(docs, "NetworkPolicy", name);
            assert_eq!(
                policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"], name,
                "{overlay}"
            );
            assert_eq!(
                policy["spec"]["policyTypes"],
                serde_json::json!(["Ingress", "Egress"]),
                "{overlay}"
            );
            let deployment = deploy::named(docs, "Deployment", name);
            let config = deploy::of_kind(docs, "ConfigMap")
                .find(|c| {
                    c["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{name}-config"))
                })
                .unwrap();
            assert_eq!(config["data"]["KAFKA_SASL_USERNAME"], name, "{overlay}");
            assert_eq!(
                config["data"]["KAFKA_SECURITY_PROTOCOL"], "SASL_SSL",
                "{overlay}"
            );
            let volumes = deployment["spec"]["template"]["spec"]["volumes"].to_string();
            assert!(
                volumes.contains(&format!("\"secretName\":\"{name}\"")),
                "{overlay}: {name} mounts its KafkaUser's Secret: {volumes}"
            );
        }
    }
}

/// Environment variables a service's code can read: the identifier-like literals of its own
/// crate, plus those of the service-kit parts it uses (found by what its code calls).
fn variables_read_by(service: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let kit = repo().join("crates/service-kit/src");
    let own = repo().join("crates").join(service).join("src");
    let code: String = deploy::rust_files(&own)
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let mut sources = vec![own.clone()];
    for (marker, file) in [
        ("CommonConfig::from_env", "config.rs"),
        ("CommonConfig::from_env", "kafka.rs"),
        ("KafkaAccess::from_env", "kafka.rs"),
        ("TokenVerifier::from_env", "auth.rs"),
        ("WebhookKey::from_env", "webhook.rs"),
        ("SmsGatewaySettings::from_env", "sms.rs"),
        ("telemetry::", "telemetry.rs"),
        ("Database::", "db.rs"),
    ] {
        if code.contains(marker) {
            sources.push(kit.join(file));
        }
    }
    let mut read = BTreeSet::new();
    let mut required = BTreeSet::new();
    for source in &sources {
        let texts: Vec<String> = if source.is_dir() {
            deploy::rust_files(source)
                .iter()
                .map(|f| std::fs::read_to_string(f).unwrap())
                .collect()
        } else {
            vec![std::fs::read_to_string(source).unwrap()]
        };
        for text in texts {
            // tracing-subscriber's EnvFilter reads RUST_LOG
            if text.contains("from_default_env") {
                read.insert("RUST_LOG".to_owned());
            }
            for (i, _) in text.match_indices("required(\"") {
                let rest = &text[i + "required(\"".len()..];
                required.insert(rest[..rest.find('"').unwrap()].to_owned());
            }
        }
        let dir = if source.is_dir() {
            source.clone()
        } else {
            // quoted_identifiers walks a directory: give it a copy holding only this file
            let tmp = std::env::temp_dir().join(format!(
                "todo-env-{}-{}",
                std::process::id(),
                source.file_name().unwrap().to_string_lossy()
            ));
            std::fs::create_dir_all(&tmp).unwrap();
            std::fs::copy(source, tmp.join("lib.rs")).unwrap();
            tmp
        };
        read.extend(deploy::quoted_identifiers(&dir).into_iter().filter(|w| {
            w.len() > 2
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        }));
    }
    assert!(read.is_superset(&required));
    (read, required)
}

fn check_environment(place: &str, service: &str, set: &BTreeSet<String>) {
    let (read, required) = variables_read_by(service);
    let unknown: Vec<_> = set.difference(&read).collect();
    assert!(
        unknown.is_empty(),
        "{place}: {service} is given {unknown:?}, which its code never reads (read: {read:?})"
    );
    let missing: Vec<_> = required.difference(set).collect();
    assert!(
        missing.is_empty(),
        "{place}: {service} requires {missing:?}, which is not set"
    );
}

/// Variables a Deployment's container gets: `env` and every `envFrom` ConfigMap/Secret.
fn kubernetes_environment(docs: &[Value], service: &str) -> BTreeSet<String> {
    let deployment = deploy::named(docs, "Deployment", service);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut names: BTreeSet<String> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let (kind, reference) = if source["configMapRef"].is_object() {
            ("ConfigMap", &source["configMapRef"])
        } else {
            ("Secret", &source["secretRef"])
        };
        let object = deploy::named(docs, kind, reference["name"].as_str().unwrap());
        let data = object["data"]
            .as_object()
            .or(object["stringData"].as_object())
            .unwrap();
        names.extend(data.keys().cloned());
    }
    names
}

#[test]
fn every_variable_in_compose_kubernetes_and_the_images_is_one_the_service_reads() {
    let compose = deploy::compose_config();
    for service in SERVICES {
        let env: BTreeSet<String> = compose["services"][service]["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("docker-compose.yml has no environment for {service}"))
            .keys()
            .cloned()
            .collect();
        check_environment("docker-compose.yml", service, &env);
    }
    for (overlay, (_, docs)) in deploy::rendered_overlays() {
        for service in SERVICES {
            let env = kubernetes_environment(docs, service);
            check_environment(&format!("deploy/k8s/overlays/{overlay}"), service, &env);
        }
    }
    // ENV lines of each service's image target
    for (target, lines) in dockerfile_stages() {
        if !SERVICES.contains(&target.as_str()) {
            continue;
        }
        let mut env: BTreeSet<String> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("ENV "))
            .map(|l| l.split('=').next().unwrap().trim().to_owned())
            .collect();
        // the runtime stage's ENV lines are inherited
        env.extend(
            dockerfile_stages()["runtime"]
                .iter()
                .filter_map(|l| l.strip_prefix("ENV "))
                .map(|l| l.split('=').next().unwrap().trim().to_owned()),
        );
        let (read, _) = variables_read_by(&target);
        let unknown: Vec<_> = env.difference(&read).collect();
        assert!(
            unknown.is_empty(),
            "Dockerfile target {target}: ENV {unknown:?} is never read"
        );
    }
}

/// The Dockerfile's stages: name -> instruction lines (continuations joined).
fn dockerfile_stages() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    let mut stages = BTreeMap::new();
    let mut current = String::new();
    for line in joined.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(from) = line.strip_prefix("FROM ") {
            current = from.rsplit(" AS ").next().unwrap().trim().to_owned();
            stages.insert(current.clone(), Vec::new());
        } else if !current.is_empty() {
            stages.get_mut(&current).unwrap().push(line.to_owned());
        }
    }
    stages
}

#[test]
fn dockerfile_passes_hadolint_and_has_a_hardened_target_per_service() {
    deploy::run_ok(
        Command::new(deploy::venv_bin("hadolint"))
            .current_dir(repo())
            .args(["--config", "deploy/docker/hadolint.yaml", "Dockerfile"]),
        "hadolint Dockerfile",
    );
    let stages = dockerfile_stages();
    let runtime = &stages["runtime"];
    assert!(
        runtime.iter().any(|l| l == "USER 10001:10001"),
        "the runtime stage runs as the non-root user"
    );
    let builder = stages["builder"].join("\n");
    assert!(
        builder.contains("cargo chef cook"),
        "a cached dependency layer"
    );
    for (service, port) in SERVICES.iter().zip(8000..) {
        let lines = stages
            .get(*service)
            .unwrap_or_else(|| panic!("no Dockerfile target {service}"));
        assert!(
            builder.contains(&format!("-p {service} ")),
            "{service} is built"
        );
        for expected in [
            format!("EXPOSE {port}"),
            format!("ENV BIND_ADDR=0.0.0.0:{port}"),
            format!("ENTRYPOINT [\"/usr/local/bin/{service}\"]"),
        ] {
            assert!(lines.contains(&expected), "{service}: {expected}");
        }
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("HEALTHCHECK") && l.contains(&format!("\"{port}\""))),
            "{service}: HEALTHCHECK on its port"
        );
        assert!(
            !lines.iter().any(|l| l.starts_with("USER")),
            "{service}: inherits the non-root user"
        );
    }
}

#[test]
fn prometheus_config_alert_rules_and_their_unit_tests_pass_promtool() {
    let monitoring = repo().join("deploy/monitoring");
    let promtool = |args: &[&str], what: &str| {
        deploy::run_ok(
            Command::new("promtool").current_dir(&monitoring).args(args),
            what,
        )
    };
    // the config also loads and checks the rule file it names (alerts.yml)
    promtool(
        &["check", "config", "prometheus.yml"],
        "promtool check config",
    );
    promtool(&["check", "rules", "alerts.yml"], "promtool check rules");
    promtool(&["test", "rules", "alerts.test.yml"], "promtool test rules");

    // The Kubernetes PrometheusRule carries the same groups, in every overlay.
    let alerts = deploy::yaml_documents(&monitoring.join("alerts.yml"));
    for (overlay, (_, docs)) in deploy::rendered_overlays() {
        let rule = deploy::named(docs, "PrometheusRule", "task-platform-alerts");
        assert_eq!(
            rule["spec"]["groups"], alerts[0]["groups"],
            "{overlay}: the PrometheusRule differs from deploy/monitoring/alerts.yml"
        );
    }
    // Every compose service is scraped, under its own name as the job.
    let config = deploy::yaml_documents(&monitoring.join("prometheus.yml"));
    let jobs: BTreeSet<&str> = config[0]["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["job_name"].as_str().unwrap())
        .collect();
    for (service, port) in SERVICES.iter().zip(8000..) {
        assert!(jobs.contains(service), "prometheus.yml scrapes {service}");
        let targets = config[0]["scrape_configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["job_name"] == *service)
            .unwrap()["static_configs"][0]["targets"]
            .clone();
        assert_eq!(targets, serde_json::json!([format!("{service}:{port}")]));
    }
}

/// Metric names in a PromQL expression (functions, keywords, label matchers, ranges and
/// grouping labels removed).
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut text = String::new();
    let mut depth = 0;
    for c in expr.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ if depth > 0 => {}
            _ => text.push(c),
        }
    }
    // drop `by (...)`, `without (...)`
    for keyword in ["by", "without", "on", "ignoring"] {
        while let Some(i) = find_word(&text, keyword) {
            let close = text[i..].find(')').map(|j| i + j + 1).unwrap_or(text.len());
            text.replace_range(i..close, " ");
        }
    }
    let mut metrics = BTreeSet::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_alphabetic() || chars[i] == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let keyword = [
                "and",
                "or",
                "unless",
                "bool",
                "offset",
                "group_left",
                "group_right",
            ];
            if next != Some(&'(') && !keyword.contains(&word.as_str()) {
                metrics.insert(word);
            }
        } else if chars[i].is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    metrics
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = text[..i].chars().last();
        let after = text[i + word.len()..].trim_start().chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') && after == Some('(')
    })
}

#[test]
fn alerts_and_dashboard_use_metrics_the_services_export() {
    let exported = deploy::quoted_identifiers(&repo().join("crates"));
    let known = |metric: &str| {
        metric == "up" // Prometheus' own
            || exported.contains(metric)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                metric
                    .strip_suffix(suffix)
                    .is_some_and(|base| exported.contains(base))
            })
    };
    let mut expressions = Vec::new();
    let alerts = deploy::yaml_documents(&repo().join("deploy/monitoring/alerts.yml"));
    for group in alerts[0]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            expressions.push((
                rule["alert"].as_str().unwrap().to_owned(),
                rule["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/monitoring/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut panels = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            panels += 1;
            expressions.push((
                format!("panel {}", panel["title"]),
                target["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert!(panels >= 10);
    for (what, expr) in &expressions {
        let metrics = metrics_in(expr);
        assert!(!metrics.is_empty(), "{what}: no metric found in {expr}");
        for metric in metrics {
            assert!(
                known(&metric),
                "{what} uses {metric}, which no service exports ({expr})"
            );
        }
    }
    // The dashboard's topics the issue names are there.
    let text = dashboard.to_string();
    for metric in [
        "events_consumed_total",
        "kafka_consumer_lag_messages",
        "dead_letters_total",
        "outbox_backlog_rows",
        "ws_connections",
        "http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(metric), "the dashboard shows {metric}");
    }
    // Every expression is valid PromQL: promtool checks them as recording rules.
    let rules = serde_json::json!({"groups": [{"name": "dashboard", "rules": expressions
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| serde_json::json!({"record": format!("dashboard:expr_{i}"), "expr": expr}))
        .collect::<Vec<_>>()}]});
    let file =
        std::env::temp_dir().join(format!("todo-dashboard-rules-{}.json", std::process::id()));
    // JSON is YAML: promtool reads it as a rule file
    std::fs::write(&file, rules.to_string()).unwrap();
    deploy::run_ok(
        Command::new("promtool").args(["check", "rules"]).arg(&file),
        "promtool check rules on the dashboard's expressions",
    );
    let _ = std::fs::remove_file(Path::new(&file));
}
