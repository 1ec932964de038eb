//! Logs (JSON or pretty), spans, and W3C trace context across NATS.
//!
//! Spans always get trace ids (so `traceparent` flows between services even
//! without a collector): OpenTelemetry SDK spans exported over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, otherwise only ids
//! ([`zengate_trace::TraceIds`]). Log lines are formatted by `log_line` and
//! written to stdout by the thread in `log_writer`.

mod log_line;
mod log_writer;

use log_line::{JsonLine, SpanFields};

use async_nats::HeaderMap;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{FilterExt as _, LevelFilter, Targets, filter_fn};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use zengate_core::headers as h;
use zengate_trace::{Extractor, TraceIds};

use crate::config::{ConfigError, Env};

/// Flushes and stops span export, and writes out the log lines still
/// queued, when dropped (end of `main`).
#[derive(Debug)]
pub struct TelemetryGuard {
    /// Set while spans are exported.
    provider: Option<SdkTracerProvider>,
    _logs: WorkerGuard,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = &self.provider {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber from `RUST_LOG`, `LOG_FORMAT`,
/// `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_SERVICE_NAME`. A second call (tests,
/// the all-in-one process) keeps the first subscriber.
pub fn init(default_service: &str, env: &Env) -> Result<TelemetryGuard, ConfigError> {
    let json = match env.string_or("LOG_FORMAT", "json").as_str() {
        "json" => true,
        "pretty" => false,
        _ => {
            return Err(ConfigError::invalid(
                "LOG_FORMAT",
                "expected json or pretty",
            ));
        }
    };
    let filter = log_filter(&env.string_or("RUST_LOG", "info"))
        .map_err(|e| ConfigError::invalid("RUST_LOG", e))?;
    let service = env.string_or("OTEL_SERVICE_NAME", default_service);

    // Spans at INFO and above always have a trace context (it must flow
    // even when RUST_LOG hides them); RUST_LOG filters only what is printed.
    // With a collector they are OpenTelemetry SDK spans, and log events are
    // copied onto them; without one they only carry ids. Source location,
    // thread and busy/idle attributes and activating an OTel context on every
    // poll were a measurable share of each request on the hot paths and
    // nobody reads them; the tracing span tree carries the parent.
    let (context, provider) = match env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Some(endpoint) => {
            let provider = exporting_provider(&endpoint, service.clone())?;
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer(service))
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_context_activation(false)
                .with_filter(LevelFilter::INFO);
            (layer.boxed(), Some(provider))
        }
        None => {
            let spans = LevelFilter::INFO.and(filter_fn(|meta| meta.is_span()));
            (TraceIds.with_filter(spans).boxed(), None)
        }
    };
    let registry = tracing_subscriber::registry().with(context);
    let (writer, logs) = log_writer::log_writer();
    let _ = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .fmt_fields(SpanFields)
                    .event_format(JsonLine)
                    .with_filter(filter),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_filter(filter),
            )
            .try_init()
    };
    Ok(TelemetryGuard {
        provider,
        _logs: logs,
    })
}

/// A tracer provider exporting spans of `service` to the OTLP/HTTP collector
/// at `endpoint`, in batches.
fn exporting_provider(endpoint: &str, service: String) -> Result<SdkTracerProvider, ConfigError> {
    use opentelemetry_otlp::WithExportConfig;
    // The exporter's HTTP client needs the process's TLS provider, and
    // telemetry starts before anything else has installed it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces)
        .build()
        .map_err(|e| ConfigError::invalid("OTEL_EXPORTER_OTLP_ENDPOINT", e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(exporter)
        .build())
}

/// The log filter for `RUST_LOG`, with one cap that no setting lifts: the
/// NATS client prints published headers at TRACE, and provider events carry
/// Zendesk's signature in their headers, so `async_nats` stops at DEBUG. The
/// cap only lowers: `RUST_LOG=info` keeps the client at INFO.
pub fn log_filter<S>(rust_log: &str) -> Result<impl Filter<S> + Send + Sync + 'static, String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let requested = EnvFilter::try_new(rust_log).map_err(|e| e.to_string())?;
    let cap = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("async_nats", LevelFilter::DEBUG);
    Ok(requested.and(cap))
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Writes the current span's context as `traceparent`, and `tracestate` when
/// it has entries. Written directly (the names are static, the value is
/// formatted once and moved in): this runs for every published message.
pub fn inject_trace_context(headers: &mut HeaderMap) {
    use async_nats::header::{HeaderName, HeaderValue};
    let Some(sc) = zengate_trace::current() else {
        return;
    };
    headers.insert(
        HeaderName::from_static(h::TRACEPARENT),
        HeaderValue::from(zengate_trace::traceparent(&sc)),
    );
    let state = sc.trace_state().header();
    if !state.is_empty() {
        headers.insert(
            HeaderName::from_static(h::TRACESTATE),
            HeaderValue::from(state),
        );
    }
}

/// Makes `span` a child of the trace carried in `headers`, if any.
pub fn continue_trace(span: &tracing::Span, headers: Option<&HeaderMap>) {
    if let Some(parent) = headers.and_then(|h| zengate_trace::extract(&HeaderExtractor(h))) {
        zengate_trace::set_parent(span, &parent);
    }
}

/// The current span's `traceparent` value, for HTTP calls.
pub fn current_traceparent() -> Option<String> {
    zengate_trace::current_traceparent()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::Level;

    use super::*;

    type Seen = Arc<Mutex<Vec<(String, Level)>>>;

    /// Records the target and level of every event that passes its filter.
    struct Record(Seen);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Record {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if let Ok(mut seen) = self.0.lock() {
                let meta = event.metadata();
                seen.push((meta.target().to_owned(), *meta.level()));
            }
        }
    }

    fn printed(rust_log: &str) -> Vec<(String, Level)> {
        let seen = Seen::default();
        let Ok(filter) = log_filter(rust_log) else {
            panic!("{rust_log} should parse");
        };
        let subscriber =
            tracing_subscriber::registry().with(Record(seen.clone()).with_filter(filter));
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "async_nats::connection", "headers");
            tracing::debug!(target: "async_nats::connection", "flushing");
            tracing::info!(target: "async_nats", "connected");
            tracing::debug!(target: "ingress", "parsed");
            tracing::trace!(target: "ingress", "bytes");
        });
        seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn pairs(list: &[(&str, Level)]) -> Vec<(String, Level)> {
        list.iter().map(|(t, l)| ((*t).to_owned(), *l)).collect()
    }

    #[test]
    fn trace_never_reaches_the_nats_client() {
        assert_eq!(
            printed("trace"),
            pairs(&[
                ("async_nats::connection", Level::DEBUG),
                ("async_nats", Level::INFO),
                ("ingress", Level::DEBUG),
                ("ingress", Level::TRACE),
            ])
        );
        assert_eq!(
            printed("async_nats=trace"),
            pairs(&[
                ("async_nats::connection", Level::DEBUG),
                ("async_nats", Level::INFO),
            ])
        );
    }

    #[test]
    fn the_cap_never_raises_a_level() {
        assert_eq!(printed("info"), pairs(&[("async_nats", Level::INFO)]));
        assert_eq!(
            printed("debug,async_nats=warn"),
            pairs(&[("ingress", Level::DEBUG)])
        );
    }

    #[test]
    fn bad_directives_are_refused() {
        assert!(log_filter::<tracing_subscriber::Registry>("ingress=loud").is_err());
    }
}
