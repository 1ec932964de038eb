//! The W3C `traceparent` of the current span, so each Zendesk request joins
//! the caller's trace (the services' telemetry gives every span a trace
//! context; without one, no header is sent).

/// `00-<trace id>-<span id>-<flags>` of the current span, if it has a valid
/// context.
pub(crate) fn current_traceparent() -> Option<String> {
    zengate_trace::current_traceparent()
}
