//! A stream or bucket that republishes (or mirrors, or sources) can put
//! messages on any subject, the `approvals` bucket included, past every
//! publish permission. zengate never configures that on its own streams, so
//! provisioning refuses one that has it instead of adopting it. Real NATS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_nats::jetstream::{self, kv, stream};
use zengate_runtime::bus;
use zengate_testkit::NatsServer;

async fn js(nats: &NatsServer) -> jetstream::Context {
    jetstream::new(async_nats::connect(nats.url()).await.unwrap())
}

#[tokio::test]
async fn a_stream_made_to_republish_is_refused() {
    let nats = NatsServer::start().await;
    let js = js(&nats).await;
    // Someone allowed to create ZENGATE got there first, with a republish
    // from a subject they may publish onto the approvals bucket.
    let mut planted = bus::zengate_stream_config();
    planted.republish = Some(stream::Republish {
        source: "zengate.auth.jwt_issued.a1".into(),
        destination: "$KV.approvals.planted".into(),
        headers_only: false,
    });
    js.create_stream(planted).await.unwrap();
    let e = bus::ensure_stream(&js, bus::zengate_stream_config())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("republish") && e.contains("refusing"), "{e}");

    // A clean stream is adopted as before.
    js.delete_stream("ZENGATE").await.unwrap();
    bus::ensure_stream(&js, bus::zengate_stream_config())
        .await
        .unwrap();
    bus::ensure_stream(&js, bus::zengate_stream_config())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_bucket_made_to_republish_is_refused() {
    let nats = NatsServer::start().await;
    let js = js(&nats).await;
    let wanted = kv::Config {
        bucket: "approvals".into(),
        ..Default::default()
    };
    js.create_key_value(kv::Config {
        republish: Some(stream::Republish {
            source: "$KV.approvals.x".into(),
            destination: "zengate.approval.released.42.7".into(),
            headers_only: false,
        }),
        ..wanted.clone()
    })
    .await
    .unwrap();
    let e = bus::ensure_kv(&js, wanted.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("republish"), "{e}");

    js.delete_key_value("approvals").await.unwrap();
    bus::ensure_kv(&js, wanted.clone()).await.unwrap();
    bus::ensure_kv(&js, wanted).await.unwrap();
}
