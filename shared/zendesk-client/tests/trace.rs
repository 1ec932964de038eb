//! Trace context flows from the caller's span into the Zendesk request.
//! A separate test binary because it installs the global subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;
use tracing::Instrument;
use zengate_runtime::{Env, telemetry};

#[tokio::test]
async fn requests_carry_a_traceparent_of_the_callers_trace() {
    let _guard = telemetry::init(
        "zendesk-client-test",
        &Env::from_pairs([("RUST_LOG", "off")]),
    )
    .unwrap();
    let sim = sim().await;
    let id = enduser_ticket(&sim);
    let client = client(&sim);

    let parent = tracing::info_span!("handle_event", ticket_id = id);
    let parent_tp = async {
        let tp = telemetry::current_traceparent().expect("the parent span has a trace");
        client.get_ticket(id).await.unwrap();
        tp
    }
    .instrument(parent)
    .await;

    let sent = sim.requests()[0]
        .header("traceparent")
        .expect("traceparent header sent")
        .to_owned();
    let parent_parts: Vec<&str> = parent_tp.split('-').collect();
    let sent_parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(sent_parts.len(), 4, "{sent}");
    assert_eq!(sent_parts[1], parent_parts[1], "same trace id");
    assert_ne!(
        sent_parts[2], parent_parts[2],
        "a child span: the zendesk.request span"
    );
}
