//! Body limits and framing, over raw TCP so the test controls exactly what is
//! sent (a declared length without a body, chunked bodies, bad headers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: usize = 2048;

async fn app() -> TestApp {
    TestApp::start_with(|c| c.body_limit = LIMIT).await
}

fn head(app: &TestApp, extra: &str) -> String {
    format!(
        "POST /channels/zendesk/webhook HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\nx-zendesk-account-id: 42\r\nx-zendesk-webhook-id: w\r\nx-zendesk-webhook-invocation-id: i\r\nx-zendesk-webhook-signature-timestamp: ts\r\nx-zendesk-webhook-signature: {}\r\nconnection: close\r\n{extra}\r\n",
        app.addr,
        "A".repeat(43) + "="
    )
}

/// Sends `bytes` and reads the status code of the response.
async fn status_of(app: &TestApp, bytes: &[u8]) -> u16 {
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_status(&mut s).await
}

async fn read_status(s: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn declared_length_over_limit_is_refused_without_reading_the_body() {
    let app = app().await;
    // Only headers are sent: the answer must come without any body byte.
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let req = head(&app, &format!("content-length: {}\r\n", LIMIT + 1));
    s.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(read_status(&mut s).await, 413);
}

#[tokio::test]
async fn chunked_body_passing_the_limit_is_refused() {
    let app = app().await;
    let mut req = head(&app, "transfer-encoding: chunked\r\n").into_bytes();
    for _ in 0..3 {
        req.extend_from_slice(format!("{:x}\r\n", 1000).as_bytes());
        req.extend_from_slice(&[b' '; 1000]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(status_of(&app, &req).await, 413);
}

#[tokio::test]
async fn chunked_body_under_the_limit_is_read() {
    let app = app().await;
    let body = support::ticket_event(42, "e-chunked", 5, "created");
    let ts = "2025-01-08T10:12:08Z";
    let sig = app.sign(ts, &body);
    let mut req = format!(
        "POST /channels/zendesk/webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-zendesk-account-id: 42\r\nx-zendesk-webhook-id: w\r\nx-zendesk-webhook-invocation-id: i\r\nx-zendesk-webhook-signature-timestamp: {ts}\r\nx-zendesk-webhook-signature: {sig}\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for part in body.chunks(50) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(status_of(&app, &req).await, 200);
    assert_eq!(app.last_message().await.payload.as_ref(), body.as_slice());
}

#[tokio::test]
async fn malformed_content_length_is_400() {
    let app = app().await;
    for bad in ["abc", "-1", "1 2", "0x10"] {
        let req = head(&app, &format!("content-length: {bad}\r\n"));
        assert_eq!(status_of(&app, req.as_bytes()).await, 400, "{bad}");
    }
}

#[tokio::test]
async fn exactly_at_the_limit_is_accepted_one_over_is_not() {
    let app = app().await;
    let exact = support::padded_ticket_event("e-exact", LIMIT);
    assert_eq!(exact.len(), LIMIT);
    assert_eq!(app.signed(&exact).send().await.unwrap().status(), 200);
    let over = support::padded_ticket_event("e-over", LIMIT + 1);
    assert_eq!(app.signed(&over).send().await.unwrap().status(), 413);
    assert_eq!(app.stream_messages().await, 1);
}
