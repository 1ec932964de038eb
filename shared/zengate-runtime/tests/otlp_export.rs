//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are OpenTelemetry spans
//! exported to the collector, and the `traceparent` the services send names
//! the exported span. A separate test binary: it installs the global
//! subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use zengate_runtime::{Env, telemetry};

/// A collector on a loopback port: answers every request `200` and hands
/// over each `(path, body)`.
fn collector() -> (String, mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let path = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .unwrap();
                let _ = tx.send((path, body));
            }
        }
    });
    (url, rx)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn spans_are_exported_under_the_ids_they_propagate() {
    let (url, received) = collector();
    let guard = telemetry::init(
        "otlp-test",
        &Env::from_pairs([
            ("RUST_LOG", "off"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
        ]),
    )
    .unwrap();
    let span = tracing::info_span!("exported_operation");
    let tp = span
        .in_scope(telemetry::current_traceparent)
        .expect("the span has a trace context");
    drop(span);
    // Dropping the guard flushes the batch to the collector.
    drop(guard);

    let (path, body) = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the collector received the span");
    assert_eq!(path, "/v1/traces");
    let parts: Vec<&str> = tp.split('-').collect();
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"exported_operation"), "span name exported");
    assert!(contains(&hex(parts[1])), "trace id of the traceparent");
    assert!(contains(&hex(parts[2])), "span id of the traceparent");
    assert!(contains(b"otlp-test"), "service name");
}
