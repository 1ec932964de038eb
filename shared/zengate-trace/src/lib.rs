//! The W3C trace context (`traceparent`, `tracestate`) of `tracing` spans:
//! what the services write on the bus and send to Zendesk, and read back.
//!
//! Every span at INFO and above has a trace context, so `traceparent` flows
//! between services even without a collector. Two layers provide it, and
//! the functions here read and set it the same way under either:
//!
//! - with a collector, `tracing-opentelemetry`: each span is an OpenTelemetry
//!   SDK span, exported when it closes;
//! - without one, [`TraceIds`]: each span only gets ids (its parent's trace
//!   id or a new one, its own span id). Building and closing an SDK span that
//!   nobody exports cost about a twentieth of the ingress's CPU per event.

mod ids;
mod w3c;

use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub use ids::TraceIds;
pub use opentelemetry::propagation::Extractor;
pub use opentelemetry::trace::SpanContext;
pub use w3c::{extract, traceparent};

/// The current span's trace context, if it has a valid one.
pub fn current() -> Option<SpanContext> {
    of(&tracing::Span::current())
}

/// `span`'s trace context, if it has a valid one.
pub fn of(span: &tracing::Span) -> Option<SpanContext> {
    match ids::of(span) {
        ids::Found::Ids(sc) => sc,
        ids::Found::NotInstalled => {
            let cx = span.context();
            let sc = cx.span().span_context().clone();
            sc.is_valid().then_some(sc)
        }
    }
}

/// Makes `span` continue the trace of `parent` (a remote context read with
/// [`extract`]): same trace id and flags, `parent`'s span as its parent.
/// Call it before the span has children.
pub fn set_parent(span: &tracing::Span, parent: &SpanContext) {
    if !ids::set_parent(span, parent) {
        let cx = opentelemetry::Context::new().with_remote_span_context(parent.clone());
        let _ = span.set_parent(cx);
    }
}

/// `traceparent` of the current span, for an outgoing request.
pub fn current_traceparent() -> Option<String> {
    current().map(|sc| traceparent(&sc))
}
