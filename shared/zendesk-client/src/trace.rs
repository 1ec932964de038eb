//! The W3C `traceparent` of the current span, so each Zendesk request joins
//! the caller's trace (the services' telemetry gives every span an
//! OpenTelemetry context; without one, no header is sent).

use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// `00-<trace id>-<span id>-<flags>` of the current span, if it has a valid
/// context.
pub(crate) fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}
