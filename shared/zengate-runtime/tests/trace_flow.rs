//! A message's trace continues through its consumer: what the handler
//! publishes carries the same trace id and sampled flag under a span id of
//! its own. Its own test binary: it installs the global subscriber (ids
//! only, no collector, as the services run by default).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use zengate_runtime::bus::{self, Publisher};
use zengate_runtime::bus::{Backoff, Pull, Settler, Verdict};
use zengate_runtime::{Env, Shutdown, telemetry};
use zengate_testkit::NatsServer;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn handlers_publish_within_the_trace_they_consumed() {
    let _telemetry =
        telemetry::init("trace-flow-test", &Env::from_pairs([("RUST_LOG", "off")])).unwrap();
    let nats = NatsServer::start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = bus::jetstream(client, Duration::from_secs(5));
    let mut config = bus::zengate_stream_config();
    config.subjects = vec!["flow.>".to_owned()];
    bus::ensure_stream(&js, config.clone()).await.unwrap();

    // Two incoming messages, sampled and not, plus one without a trace.
    for (i, flags) in ["01", "00"].iter().enumerate() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("traceparent", format!("00-{TRACE}-{SPAN}-{flags}").as_str());
        headers.insert("tracestate", "vendor=1");
        js.publish_with_headers(format!("flow.in.{i}"), headers, "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    js.publish("flow.in.2", "x".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let stream = js.get_stream(&config.name).await.unwrap();
    let pull = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("flow".to_owned()),
            filter_subject: "flow.in.>".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    let publisher = Publisher::new(js.clone(), Duration::from_secs(5));
    let settler = Settler::new(
        publisher.clone(),
        3,
        Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
        },
    );
    let shutdown = Shutdown::new();
    let handled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handler = |msg: Arc<jetstream::Message>| {
        let (publisher, shutdown, handled) = (publisher.clone(), shutdown.clone(), handled.clone());
        async move {
            let out = msg.subject.replace("flow.in.", "flow.out.");
            publisher
                .json(out, &format!("out-{}", msg.subject), &"handled")
                .await
                .unwrap();
            if handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2 {
                shutdown.trigger();
            }
            Verdict::Done("handled")
        }
    };
    let work = bus::consume(
        &pull,
        Pull {
            batch: 1,
            concurrency: 1,
            fetch_wait: Duration::from_millis(200),
            lease: None,
        },
        &settler,
        &shutdown,
        handler,
    );
    tokio::time::timeout(Duration::from_secs(20), work)
        .await
        .expect("all three handled");

    let out = |i: usize| {
        let stream = &config.name;
        let js = js.clone();
        async move {
            let msg = js
                .get_stream(stream)
                .await
                .unwrap()
                .get_last_raw_message_by_subject(&format!("flow.out.{i}"))
                .await
                .unwrap();
            let tp = msg
                .headers
                .get("traceparent")
                .map(|v| v.as_str().to_owned());
            let ts = msg.headers.get("tracestate").map(|v| v.as_str().to_owned());
            (tp, ts)
        }
    };
    for (i, flags) in ["01", "00"].iter().enumerate() {
        let (tp, ts) = out(i).await;
        let tp = tp.expect("traceparent published");
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!(parts[1], TRACE, "the consumed trace continues");
        assert_ne!(parts[2], SPAN, "under a span of its own");
        assert_eq!(parts[3], *flags, "the sampled flag is kept");
        assert_eq!(ts.as_deref(), Some("vendor=1"), "tracestate travels along");
    }
    // Without an incoming trace, the consumer's span starts one.
    let (tp, ts) = out(2).await;
    let tp = tp.expect("traceparent published");
    assert_ne!(tp.split('-').nth(1), Some(TRACE));
    assert_eq!(ts, None);
}
