//! `serve` against hostile clients: half-sent headers, too many connections,
//! oversized header blocks, too many requests at once, HTTP/2 cleartext
//! prefaces and bodies that trickle in; and a graceful drain at shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use zengate_runtime::{Background, HttpLimits, Shutdown, serve};
use zengate_testkit::eventually;

/// Requests held in `/hold` until the test adds permits to `gate`.
#[derive(Clone)]
struct Held {
    gate: Arc<Semaphore>,
    inside: Arc<AtomicUsize>,
}

struct Server {
    addr: SocketAddr,
    held: Held,
    shutdown: Shutdown,
    join: tokio::task::JoinHandle<()>,
}

async fn start(limits: HttpLimits) -> Server {
    zengate_testkit::init_telemetry();
    let held = Held {
        gate: Arc::new(Semaphore::new(0)),
        inside: Arc::new(AtomicUsize::new(0)),
    };
    let router = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .route(
            "/hold",
            get(|State(h): State<Held>| async move {
                h.inside.fetch_add(1, Ordering::SeqCst);
                h.gate.acquire().await.unwrap().forget();
                "released"
            }),
        )
        .with_state(held.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let s = shutdown.clone();
    let join = tokio::spawn(async move {
        serve(listener, router, &limits, Background::default(), s).await;
    });
    Server {
        addr,
        held,
        shutdown,
        join,
    }
}

/// Everything the server sends until it closes the connection (or `within`
/// passes, which fails the test).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "connection still open after {within:?}");
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Sends `raw` on a new connection; what comes back until the server closes.
async fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(raw).await.unwrap();
    text(&read_until_closed(&mut c, Duration::from_secs(5)).await)
}

fn assert_status(answer: &str, status: u16) {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status} ")),
        "expected {status}: {answer}"
    );
}

const GET_OK: &[u8] = b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn half_sent_request_is_closed_after_the_header_timeout() {
    let server = start(HttpLimits {
        header_read_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    })
    .await;
    let answer = exchange(server.addr, b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n").await;
    assert!(!answer.contains("200 OK"), "{answer}");
    // The same request sent whole is served.
    assert_status(&exchange(server.addr, GET_OK).await, 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout() {
    let server = start(HttpLimits {
        keepalive_timeout: Duration::from_millis(300),
        header_read_timeout: Duration::from_secs(30),
        ..HttpLimits::default()
    })
    .await;
    // No `Connection: close`: the server closes once the idle time is up.
    let answer = exchange(server.addr, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_status(&answer, 200);
}

#[tokio::test]
async fn a_connection_beyond_the_cap_waits_until_one_closes() {
    let server = start(HttpLimits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(30),
        ..HttpLimits::default()
    })
    .await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let _second = TcpStream::connect(server.addr).await.unwrap();
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(GET_OK).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "a third connection was served: {early:?}");
    drop(first);
    let answer = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert_status(&text(&answer), 200);
}

#[tokio::test]
async fn an_oversized_header_block_gets_431() {
    let server = start(HttpLimits {
        max_header_bytes: 8192,
        ..HttpLimits::default()
    })
    .await;
    let big = "a".repeat(20_000);
    let raw = format!("GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    assert_status(&exchange(server.addr, raw.as_bytes()).await, 431);
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_get_503_with_retry_after() {
    let server = start(HttpLimits {
        max_in_flight: 2,
        ..HttpLimits::default()
    })
    .await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/hold", server.addr);
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(http.get(&url).send()))
        .collect();
    let inside = server.held.inside.clone();
    eventually("two requests held", Duration::from_secs(5), || async {
        (inside.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    let refused = http.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "overloaded");
    assert_eq!(server.held.inside.load(Ordering::SeqCst), 2);
    server.held.gate.add_permits(2);
    for h in held {
        assert_eq!(h.await.unwrap().unwrap().status(), 200);
    }
    // Slots are free again.
    server.held.gate.add_permits(1);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
}

/// The HTTP/2 connection preface followed by an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[tokio::test]
async fn an_h2c_preface_is_refused_unless_enabled() {
    let server = start(HttpLimits::default()).await;
    let answer = exchange(server.addr, H2_PREFACE).await;
    // Closed, or an HTTP/1.1 refusal; never an HTTP/2 SETTINGS frame.
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 "),
        "{answer:?}"
    );

    let server = start(HttpLimits {
        h2c: true,
        ..HttpLimits::default()
    })
    .await;
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    c.write_all(H2_PREFACE).await.unwrap();
    let mut head = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head[3], 0x04, "first frame is SETTINGS when h2c is on");
}

#[tokio::test]
async fn a_trickling_body_is_cut_at_the_body_timeout() {
    let server = start(HttpLimits {
        body_read_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    })
    .await;
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    let (mut rd, mut wr) = c.into_split();
    // One byte every 100 ms: the whole body would take 100 s.
    let trickle = tokio::spawn(async move {
        for _ in 0..1000 {
            if wr.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !text(&answer).contains("body_timeout") {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    trickle.abort();
    assert!(read.is_ok(), "no answer to a trickling body");
    let answer = text(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
}

#[tokio::test]
async fn shutdown_drains_requests_in_flight() {
    let server = start(HttpLimits::default()).await;
    let url = format!("http://{}/hold", server.addr);
    let pending = tokio::spawn(reqwest::get(url.clone()));
    let inside = server.held.inside.clone();
    eventually("request held", Duration::from_secs(5), || async {
        (inside.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    server.shutdown.trigger();
    // New connections are no longer accepted once the listener is closed.
    eventually("listener closed", Duration::from_secs(5), || async {
        TcpStream::connect(server.addr).await.is_err().then_some(())
    })
    .await;
    server.held.gate.add_permits(1);
    let res = pending.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "released");
    tokio::time::timeout(Duration::from_secs(5), server.join)
        .await
        .expect("serve returns once drained")
        .unwrap();
}

#[tokio::test]
async fn an_idle_connection_outlives_the_header_timeout() {
    let server = start(HttpLimits {
        keepalive_timeout: Duration::from_secs(30),
        header_read_timeout: Duration::from_millis(200),
        ..HttpLimits::default()
    })
    .await;
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = c.read(&mut buf).await.unwrap();
    assert_status(&text(&buf[..n]), 200);
    // Waiting between requests is governed by the keep-alive timeout only.
    let idle = tokio::time::timeout(Duration::from_millis(600), c.read(&mut buf)).await;
    assert!(idle.is_err(), "idle connection closed early: {idle:?}");
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = c.read(&mut buf).await.unwrap();
    assert_status(&text(&buf[..n]), 200);
}
