//! Logging with `tracing`, W3C trace context, and OpenTelemetry traces.
//!
//! Logs are JSON (one object a line, with the fields of the current span, so every line of a
//! request or event carries its `trace_id`) unless `LOG_FORMAT=pretty`. The level comes from
//! `RUST_LOG` (default `info`).
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the spans started with [`continue_trace`] (a
//! request, an outbox write, a relay publish, an event's handling) are also OpenTelemetry
//! spans, exported over OTLP/HTTP (protobuf) to `<endpoint>/v1/traces` by a batch processor
//! with `service.name` = the service. Unset, no exporter is built and [`continue_trace`] only
//! carries the W3C context along. Either way the `trace_id` logged is the trace's id.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{self, ConfigError};

/// The setting that turns traces on.
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The provider to flush and shut down at exit; `None` when traces are off.
static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);
/// Whether a provider was installed: read on hot paths, where the mutex would cost.
static TRACES: AtomicBool = AtomicBool::new(false);

/// Install the global subscriber, with the OTLP exporter when `OTEL_EXPORTER_OTLP_ENDPOINT`
/// is set (a bad value stops the process with one line naming the setting). Safe to call more
/// than once (tests): later calls do nothing. Call [`shutdown`] before exiting.
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,actix_server=warn"));
    let pretty = std::env::var("LOG_FORMAT").is_ok_and(|f| f == "pretty");
    let provider = config::exit_on_error(otlp_provider(service));
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service))
            .with_threads(false)
            .with_location(false)
    });
    let (pretty_fmt, json_fmt) = if pretty {
        (
            Some(tracing_subscriber::fmt::layer().with_target(false)),
            None,
        )
    } else {
        let json = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true);
        (None, Some(json))
    };
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(pretty_fmt)
        .with(json_fmt)
        .with(otel)
        .try_init();
    if result.is_ok() {
        let traces = provider.is_some();
        if let Some(p) = provider {
            *PROVIDER.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
            TRACES.store(true, Ordering::Relaxed);
        }
        tracing::info!(service, traces, "logging initialised");
    } else if let Some(p) = provider {
        // Another subscriber was installed first (tests): this exporter would see nothing.
        let _ = p.shutdown();
    }
}

/// Whether spans are exported (`OTEL_EXPORTER_OTLP_ENDPOINT` was set at [`init`]).
pub fn traces_enabled() -> bool {
    TRACES.load(Ordering::Relaxed)
}

/// Export the spans still buffered and stop the exporter; what `main` does before it exits,
/// so the last spans are not lost. Does nothing when traces are off.
pub async fn shutdown() {
    let provider = PROVIDER.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(provider) = provider else { return };
    TRACES.store(false, Ordering::Relaxed);
    // Shutting down waits for the last export (a blocking HTTP call): off the executor.
    let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    if let Ok(Err(e)) = done {
        tracing::warn!(error = %e, "traces: shutting the exporter down");
    }
}

/// The OTLP/HTTP tracer provider when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The exporter reads
/// the standard `OTEL_EXPORTER_OTLP_*` settings itself (endpoint, headers, timeout); the batch
/// processor exports from a thread of its own with a blocking client, so a slow collector
/// never holds an executor thread.
fn otlp_provider(service: &'static str) -> Result<Option<SdkTracerProvider>, ConfigError> {
    let Some(endpoint) = config::optional(OTLP_ENDPOINT) else {
        return Ok(None);
    };
    check_endpoint(&endpoint)?;
    if let Some(protocol) = config::optional("OTEL_EXPORTER_OTLP_PROTOCOL")
        && protocol.trim() != "http/protobuf"
    {
        return Err(ConfigError::new(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "only http/protobuf is supported",
        ));
    }
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| ConfigError::new(OTLP_ENDPOINT, e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    Ok(Some(provider))
}

/// The exporter would take a relative or scheme-less value and fail on every export: refuse
/// it at start instead.
fn check_endpoint(endpoint: &str) -> Result<(), ConfigError> {
    let endpoint = endpoint.trim();
    let host = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"));
    if host.is_none_or(|h| h.is_empty() || h.starts_with('/') || h.contains(char::is_whitespace)) {
        return Err(ConfigError::new(
            OTLP_ENDPOINT,
            "must be an http:// or https:// URL (the collector's OTLP/HTTP base, e.g. http://otel-collector:4318)",
        ));
    }
    Ok(())
}

/// Make `span` a step of the trace `parent` (a context that arrived in a `traceparent`
/// header or an outbox row), or the first span of a new trace when there is none; returns the
/// span's own context, which what it causes carries on. Records the span's `trace_id` field
/// (declare it `tracing::field::Empty`), so the id logged is the exported trace's.
pub fn continue_trace(span: &tracing::Span, parent: Option<TraceContext>) -> TraceContext {
    let own = if span.is_disabled() {
        None
    } else {
        if let Some(p) = parent {
            let cx = opentelemetry::Context::new().with_remote_span_context(p.span_context());
            // Fails only when no OpenTelemetry layer is installed: traces are off.
            let _ = span.set_parent(cx);
        }
        let cx = span.context();
        TraceContext::of_span(cx.span().span_context())
    };
    // Without an OpenTelemetry layer the span has no context: carry the W3C one by hand.
    let own = own.unwrap_or_else(|| parent.map_or_else(TraceContext::new_root, |p| p.child()));
    span.record("trace_id", own.trace_id());
    own
}

/// A W3C trace context (`traceparent: 00-<trace id>-<parent span id>-<flags>`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    sampled: bool,
}

impl TraceContext {
    /// A new trace, for work that did not arrive with one.
    pub fn new_root() -> Self {
        Self {
            trace_id: nonzero_u128(),
            span_id: nonzero_u64(),
            sampled: true,
        }
    }

    /// Parse a `traceparent` header; `None` for anything malformed (then start a new trace).
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2
            || version == "ff"
            || trace.len() != 32
            || span.len() != 16
            || flags.len() != 2
        {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|&t| t != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|&s| s != 0)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The context from a header if it is valid, else a new root.
    pub fn from_header_or_new(header: Option<&str>) -> Self {
        header.and_then(Self::parse).unwrap_or_else(Self::new_root)
    }

    /// A new span in the same trace: what work caused by this one should carry.
    pub fn child(&self) -> Self {
        Self {
            span_id: nonzero_u64(),
            ..*self
        }
    }

    /// The 32-hex-digit trace id, as logged.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The `traceparent` header value.
    pub fn header(&self) -> String {
        self.to_string()
    }

    /// The same context as an OpenTelemetry remote parent.
    fn span_context(&self) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes(self.trace_id.to_be_bytes()),
            SpanId::from_bytes(self.span_id.to_be_bytes()),
            if self.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::default(),
        )
    }

    /// The context of an OpenTelemetry span; `None` for the invalid context of a span no
    /// OpenTelemetry layer saw.
    fn of_span(cx: &SpanContext) -> Option<Self> {
        if !cx.is_valid() {
            return None;
        }
        Some(Self {
            trace_id: u128::from_be_bytes(cx.trace_id().to_bytes()),
            span_id: u64::from_be_bytes(cx.span_id().to_bytes()),
            sampled: cx.is_sampled(),
        })
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn nonzero_u128() -> u128 {
    loop {
        let v = fastrand::u128(..);
        if v != 0 {
            return v;
        }
    }
}

fn nonzero_u64() -> u64 {
    loop {
        let v = fastrand::u64(..);
        if v != 0 {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tc = TraceContext::parse(h).unwrap();
        assert_eq!(tc.header(), h);
        assert_eq!(tc.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = tc.child();
        assert_eq!(child.trace_id(), tc.trace_id());
        assert_ne!(child.header(), tc.header());
    }

    #[test]
    fn otlp_endpoints_must_be_http_urls() {
        for ok in [
            "http://collector:4318",
            "https://otel.example.com",
            " http://127.0.0.1:4318/ ",
        ] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "collector:4318",
            "http://",
            "https:///v1",
            "grpc://c:4317",
            "http://a b",
        ] {
            assert_eq!(
                check_endpoint(bad).unwrap_err().name,
                OTLP_ENDPOINT,
                "{bad}"
            );
        }
    }

    #[test]
    fn without_an_exporter_a_span_carries_the_w3c_context_by_hand() {
        let parent =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let span = tracing::info_span!("step", trace_id = tracing::field::Empty);
        let own = continue_trace(&span, Some(parent));
        assert_eq!(own.trace_id(), parent.trace_id());
        assert_ne!(own, parent);
        let root = continue_trace(&span, None);
        assert_ne!(root.trace_id(), parent.trace_id());
    }

    #[test]
    fn contexts_convert_to_opentelemetry_and_back() {
        let tc =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let cx = tc.span_context();
        assert!(cx.is_remote() && cx.is_sampled());
        assert_eq!(TraceContext::of_span(&cx), Some(tc));
        assert_eq!(TraceContext::of_span(&SpanContext::empty_context()), None);
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for h in [
            "",
            "00-xyz-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(h).is_none(), "{h}");
        }
    }
}
