//! The same trace-context behaviour whichever layer gives spans their ids:
//! [`TraceIds`] (no collector) or the OpenTelemetry SDK (a collector).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use opentelemetry::trace::{TraceFlags, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Dispatch;
use tracing_subscriber::filter::{FilterExt as _, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{Layer as _, Registry};
use zengate_trace::{SpanContext, TraceIds};

/// Spans at INFO and above have a context; DEBUG spans and events do not
/// reach the layer (as the services install it).
fn filter() -> impl tracing_subscriber::layer::Filter<Registry> {
    LevelFilter::INFO.and(filter_fn(|meta| meta.is_span()))
}

fn with_ids() -> Dispatch {
    Dispatch::new(Registry::default().with(TraceIds.with_filter(filter())))
}

fn with_sdk() -> (Dispatch, SdkTracerProvider) {
    let provider = SdkTracerProvider::builder().build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("test"))
        .with_filter(filter());
    (Dispatch::new(Registry::default().with(layer)), provider)
}

/// A remote context as another service would send it.
fn remote(sampled: bool) -> SpanContext {
    let flags = if sampled { "01" } else { "00" };
    let carrier = HashMap::from([
        (
            "traceparent".to_owned(),
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}"),
        ),
        ("tracestate".to_owned(), "vendor=1".to_owned()),
    ]);
    zengate_trace::extract(&carrier).expect("valid traceparent")
}

fn scenario(dispatch: &Dispatch) {
    tracing::dispatcher::with_default(dispatch, || {
        // A root span starts a sampled trace; its children stay in it.
        let root = tracing::info_span!("root");
        let root_cx = zengate_trace::of(&root).expect("root has a context");
        assert!(root_cx.is_sampled());
        let (child_cx, current) = root.in_scope(|| {
            let child = tracing::info_span!("child");
            let cx = zengate_trace::of(&child).expect("child has a context");
            (cx, zengate_trace::current())
        });
        assert_eq!(
            current.as_ref().map(|c| c.span_id()),
            Some(root_cx.span_id())
        );
        assert_eq!(child_cx.trace_id(), root_cx.trace_id());
        assert_ne!(child_cx.span_id(), root_cx.span_id());

        // Another root is another trace.
        let other = zengate_trace::of(&tracing::info_span!("other")).unwrap();
        assert_ne!(other.trace_id(), root_cx.trace_id());

        // Spans the filter leaves out have none, and nothing outside a span.
        assert!(zengate_trace::of(&tracing::debug_span!("quiet")).is_none());
        assert!(zengate_trace::current().is_none());

        // Continuing a remote trace: its trace id, flags and state, a span
        // id of our own; children follow.
        for sampled in [true, false] {
            let parent = remote(sampled);
            let span = tracing::info_span!("consume");
            zengate_trace::set_parent(&span, &parent);
            let cx = zengate_trace::of(&span).unwrap();
            assert_eq!(cx.trace_id(), parent.trace_id());
            assert_ne!(cx.span_id(), parent.span_id());
            assert_eq!(cx.is_sampled(), sampled);
            assert_eq!(cx.trace_state().header(), "vendor=1");
            let (child, tp) = span.in_scope(|| {
                let child = tracing::info_span!("call");
                let tp = child.in_scope(zengate_trace::current_traceparent);
                (zengate_trace::of(&child).unwrap(), tp.unwrap())
            });
            assert_eq!(child.trace_id(), parent.trace_id());
            assert_eq!(
                child.trace_flags() & TraceFlags::SAMPLED,
                parent.trace_flags()
            );
            let flags = if sampled { "01" } else { "00" };
            assert_eq!(
                tp,
                format!("00-{}-{}-{flags}", parent.trace_id(), child.span_id())
            );
        }
    });
}

#[test]
fn ids_without_a_collector() {
    scenario(&with_ids());
}

#[test]
fn sdk_spans_with_a_collector() {
    let (dispatch, _provider) = with_sdk();
    scenario(&dispatch);
}

#[test]
fn no_layer_no_context() {
    tracing::dispatcher::with_default(&Dispatch::new(Registry::default()), || {
        let span = tracing::info_span!("plain");
        assert!(zengate_trace::of(&span).is_none());
        zengate_trace::set_parent(&span, &remote(true));
        assert!(zengate_trace::of(&span).is_none());
    });
}
