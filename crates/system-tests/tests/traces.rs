//! Traces across Kafka: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, one create's trace holds the
//! HTTP request, the outbox write and the relay's publish in task-api, and the handling of the
//! event in each of the four consuming services, every span a child of the one before it. The
//! services are real processes exporting over OTLP/HTTP to a receiver this test runs.

#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::json;
use service_kit::testing::{self, Backend, wait_for};
use system_tests::system::KafkaSettings;
use system_tests::{Svc, System, UserClient};

const BOUND: Duration = Duration::from_secs(60);

/// One exported span, as the receiver decoded it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

type Spans = Arc<Mutex<Vec<Span>>>;

/// POST /v1/traces in the OTLP/HTTP protobuf encoding.
async fn receive(body: web::Bytes, spans: web::Data<Spans>) -> HttpResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return HttpResponse::BadRequest().finish();
    };
    let mut decoded = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref()?.value.as_ref())
            .map(|v| match v {
                AnyValue::StringValue(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
            decoded.push(Span {
                service: service.clone(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
            });
        }
    }
    spans.lock().unwrap().extend(decoded);
    HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .finish()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The receiver's base URL (what `OTEL_EXPORTER_OTLP_ENDPOINT` is set to) and what it got.
fn start_receiver() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let data = web::Data::new(spans.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .route("/v1/traces", web::post().to(receive))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}"), spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_create_is_one_trace_through_task_api_the_relay_and_the_four_consumers() {
    let (endpoint, spans) = start_receiver();
    let otel = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), endpoint),
        // Export within a fraction of a second instead of the default five.
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "200".to_owned()),
    ];
    let mut service_env: HashMap<Svc, Vec<(String, String)>> =
        Svc::ALL.iter().map(|s| (*s, otel.clone())).collect();
    // task-api logs every request at debug: the line the trace id is looked for in.
    service_env.get_mut(&Svc::TaskApi).unwrap().push((
        "RUST_LOG".to_owned(),
        "info,service_kit::http=debug".to_owned(),
    ));
    let kafka = KafkaSettings {
        access: testing::kafka_access(),
        service_env,
    };
    let system = System::start_with(Backend::Postgres, kafka).await;
    let alice = UserClient::register(&system, "alice").await;

    // The create continues the caller's trace: the response names a span of that trace.
    let trace_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let caller_span = "00f067aa0ba902b7";
    let resp = reqwest::Client::new()
        .post(format!("{}/api/tasks", system.url(Svc::TaskApi)))
        .bearer_auth(&alice.token)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({"title": "Follow the trace", "priority": "low"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let echoed = resp.headers()["traceparent"].to_str().unwrap().to_owned();
    assert!(
        echoed.starts_with(&format!("00-{trace_id}-")),
        "response traceparent {echoed} is not in trace {trace_id}"
    );

    // task-api's three steps and one handling span in each consumer, all in this trace.
    let consumers = [
        Svc::Notification,
        Svc::Recurring,
        Svc::Audit,
        Svc::WsGateway,
    ];
    let trace = wait_for("the create's trace from all five services", BOUND, || {
        let spans = spans.clone();
        let trace_id = trace_id.clone();
        async move {
            let trace: Vec<Span> = spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect();
            let has = |svc: Svc, name: &str| {
                trace
                    .iter()
                    .any(|s| s.service == svc.name() && s.name == name)
            };
            let whole = ["request", "outbox write", "outbox publish"]
                .iter()
                .all(|n| has(Svc::TaskApi, n))
                && consumers.iter().all(|c| has(*c, "event"));
            whole.then_some(trace)
        }
    })
    .await;

    // The chain: caller → request → outbox write → publish → each consumer's handling.
    let by_id: HashMap<&str, &Span> = trace.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let one = |svc: Svc, name: &str| {
        trace
            .iter()
            .find(|s| s.service == svc.name() && s.name == name)
            .unwrap()
    };
    let request = one(Svc::TaskApi, "request");
    assert_eq!(request.parent_span_id, caller_span, "{request:?}");
    assert_eq!(
        echoed,
        format!("00-{trace_id}-{}-01", request.span_id),
        "the response names the request's span"
    );
    let write = one(Svc::TaskApi, "outbox write");
    assert_eq!(write.parent_span_id, request.span_id, "{write:?}");
    let publish = trace
        .iter()
        .find(|s| s.name == "outbox publish" && s.parent_span_id == write.span_id)
        .unwrap_or_else(|| panic!("no publish under the outbox write: {trace:#?}"));
    assert_eq!(publish.service, Svc::TaskApi.name());
    for consumer in consumers {
        let handled = trace
            .iter()
            .filter(|s| s.service == consumer.name() && s.name == "event")
            .find(|s| {
                by_id
                    .get(s.parent_span_id.as_str())
                    .map(|p| p.span_id.as_str())
                    == Some(publish.span_id.as_str())
            });
        assert!(
            handled.is_some(),
            "{} handled task.created outside the publish span: {trace:#?}",
            consumer.name()
        );
    }

    // What the services log is the same trace id (task-api's log names it).
    let log = std::fs::read_to_string(system.log_path(Svc::TaskApi)).unwrap();
    assert!(
        log.contains(&format!("\"trace_id\":\"{trace_id}\"")),
        "task-api's log has no line with trace_id {trace_id}"
    );
}
