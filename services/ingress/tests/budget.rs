//! The in-flight body budget: bytes held by request bodies never exceed
//! `max_inflight_bytes`. A delivery that does not fit (by its declared length,
//! or while a chunked body streams in) is answered `503` with `Retry-After`,
//! nothing of it is published, and it is accepted once the budget is free.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BUDGET: usize = 4096;
const INFLIGHT: &str = "zengate_ingress_inflight_body_bytes";
const TS: &str = "2025-01-08T10:12:08Z";

async fn app() -> TestApp {
    TestApp::start_with(|c| {
        c.body_limit = BUDGET;
        c.max_inflight_bytes = BUDGET;
    })
    .await
}

fn head(app: &TestApp, body: &[u8], framing: &str) -> Vec<u8> {
    format!(
        "POST /channels/zendesk/webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-zendesk-account-id: 42\r\nx-zendesk-webhook-id: w\r\nx-zendesk-webhook-invocation-id: i\r\nx-zendesk-webhook-signature-timestamp: {TS}\r\nx-zendesk-webhook-signature: {}\r\nconnection: close\r\n{framing}\r\n",
        app.sign(TS, body)
    )
    .into_bytes()
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut c = format!("{:x}\r\n", data.len()).into_bytes();
    c.extend_from_slice(data);
    c.extend_from_slice(b"\r\n");
    c
}

async fn status(s: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn declared_lengths_reserve_the_budget_before_the_body_is_read() {
    let app = app().await;
    // A holds 4000 bytes of budget while its body is still on the way.
    let big = support::padded_ticket_event("e-big", 4000);
    let mut a = TcpStream::connect(app.addr).await.unwrap();
    let mut req = head(&app, &big, &format!("content-length: {}\r\n", big.len()));
    req.extend_from_slice(&big[..100]);
    a.write_all(&req).await.unwrap();
    app.wait_metric(INFLIGHT, 4000.0).await;

    // B does not fit: 503 with Retry-After, nothing published.
    let small = support::ticket_event(42, "e-small", 6, "created");
    let res = app.signed(&small).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "2");
    let err: serde_json::Value = res.json().await.unwrap();
    assert_eq!(err["error"], "busy");
    assert_eq!(
        app.metric("zengate_ingress_rejections_total{reason=\"busy\"}")
            .await,
        1.0
    );
    assert_eq!(app.stream_messages().await, 0);

    // A completes and frees the budget; B's retry is accepted.
    a.write_all(&big[100..]).await.unwrap();
    assert_eq!(status(&mut a).await, 200);
    app.wait_metric(INFLIGHT, 0.0).await;
    assert_eq!(app.signed(&small).send().await.unwrap().status(), 200);
    assert_eq!(app.stream_messages().await, 2);
}

#[tokio::test]
async fn streamed_bodies_count_against_the_budget_as_they_arrive() {
    let app = app().await;
    let big = support::padded_ticket_event("e-chunked-big", 3500);
    let mut a = TcpStream::connect(app.addr).await.unwrap();
    let mut req = head(&app, &big, "transfer-encoding: chunked\r\n");
    req.extend_from_slice(&chunk(&big[..3000]));
    a.write_all(&req).await.unwrap();
    app.wait_metric(INFLIGHT, 3000.0).await;

    // B streams 1500 bytes: past the budget while it arrives.
    let other = support::padded_ticket_event("e-chunked-other", 1500);
    let mut b = TcpStream::connect(app.addr).await.unwrap();
    let mut req = head(&app, &other, "transfer-encoding: chunked\r\n");
    req.extend_from_slice(&chunk(&other));
    req.extend_from_slice(b"0\r\n\r\n");
    b.write_all(&req).await.unwrap();
    assert_eq!(status(&mut b).await, 503);
    app.wait_metric(INFLIGHT, 3000.0).await;

    let mut rest = chunk(&big[3000..]);
    rest.extend_from_slice(b"0\r\n\r\n");
    a.write_all(&rest).await.unwrap();
    assert_eq!(status(&mut a).await, 200);
    app.wait_metric(INFLIGHT, 0.0).await;
    assert_eq!(app.stream_messages().await, 1);
    assert_eq!(app.last_message().await.payload.as_ref(), big.as_slice());
}
