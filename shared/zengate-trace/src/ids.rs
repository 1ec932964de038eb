//! [`TraceIds`]: W3C ids for spans when no OpenTelemetry SDK makes spans.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use tracing::span::{Attributes, Id};
use tracing::{Dispatch, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, Registry};

/// Gives every span it sees a trace context: its parent's trace id, flags
/// and state with a new span id, or, for a root, a new sampled trace. The
/// context lives in the span's registry extensions; nothing is exported.
///
/// Install it on a `tracing_subscriber::Registry` (read back through the
/// registry), with the filter that chooses which spans have a context.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceIds;

/// A span's context, as its registry extension.
struct Ids(SpanContext);

impl<S> Layer<S> for TraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // The nearest ancestor this layer saw (its filter applies).
        let inherited = span
            .parent()
            .and_then(|p| p.extensions().get::<Ids>().map(|ids| ids.0.clone()));
        let sc = match inherited {
            Some(parent) => within(&parent, new_span_id()),
            None => SpanContext::new(
                new_trace_id(),
                new_span_id(),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
        };
        span.extensions_mut().insert(Ids(sc));
    }
}

/// A local span `span_id` in `parent`'s trace.
fn within(parent: &SpanContext, span_id: SpanId) -> SpanContext {
    SpanContext::new(
        parent.trace_id(),
        span_id,
        parent.trace_flags(),
        false,
        parent.trace_state().clone(),
    )
}

fn new_trace_id() -> TraceId {
    loop {
        let id = fastrand::u128(..);
        if id != 0 {
            return TraceId::from(id);
        }
    }
}

fn new_span_id() -> SpanId {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return SpanId::from(id);
        }
    }
}

/// What [`of`] found.
pub(crate) enum Found {
    /// [`TraceIds`] is installed: the span's context, if it has one.
    Ids(Option<SpanContext>),
    /// [`TraceIds`] is not installed (the OpenTelemetry layer may be).
    NotInstalled,
}

/// `span`'s context as [`TraceIds`] gave it.
pub(crate) fn of(span: &tracing::Span) -> Found {
    span.with_subscriber(|(id, dispatch)| {
        let registry = installed(dispatch)?;
        let sc = registry
            .span(id)
            .and_then(|s| s.extensions().get::<Ids>().map(|ids| ids.0.clone()));
        Some(sc)
    })
    .flatten()
    .map_or(Found::NotInstalled, Found::Ids)
}

/// Moves `span` into `parent`'s trace; `false` when [`TraceIds`] is not
/// installed.
pub(crate) fn set_parent(span: &tracing::Span, parent: &SpanContext) -> bool {
    span.with_subscriber(|(id, dispatch)| {
        let registry = installed(dispatch)?;
        if let Some(s) = registry.span(id) {
            let mut ext = s.extensions_mut();
            if let Some(ids) = ext.get_mut::<Ids>() {
                ids.0 = within(parent, ids.0.span_id());
            }
        }
        Some(())
    })
    .flatten()
    .is_some()
}

/// The registry holding [`TraceIds`]' contexts, when the layer is part of
/// `dispatch`.
fn installed(dispatch: &Dispatch) -> Option<&Registry> {
    if dispatch.is::<TraceIds>() {
        dispatch.downcast_ref::<Registry>()
    } else {
        None
    }
}
