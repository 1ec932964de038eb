//! Pre-signed, unique ~2 KB ticket events as complete HTTP/1.1 requests, built
//! before a phase is timed so timings hold transport and server work only.

use bytes::Bytes;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zengate_core::Secret;
use zengate_core::signature;

pub const SECRET: &str = "bench-signing-secret";
pub const ACCOUNT: u64 = 42;
const TIMESTAMP: &str = "2025-01-08T10:12:08Z";

/// The `time` of events older than any duplicate window: the ingress looks
/// each one up in Redis.
pub const OLD: &str = "2025-01-08T10:12:07Z";

/// The `time` of an event that just happened, as Zendesk delivers most: the
/// JetStream duplicate window covers it.
pub fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| OLD.to_owned())
}

/// The ticket of event `i`: 500 tickets, as many subjects.
pub fn ticket(i: usize) -> usize {
    1000 + i % 500
}

/// A ticket event whose id is unique to `tag` and `i`, which happened at
/// `time`.
pub fn event(tag: &str, i: usize, time: &str) -> Vec<u8> {
    let ticket = ticket(i);
    let filler = "x".repeat(1700);
    format!(
        r#"{{"account_id":{ACCOUNT},"id":"bench-{tag}-{i}","type":"zen:event-type:ticket.comment_added","subject":"zen:ticket:{ticket}","time":"{time}","zendesk_event_version":"2022-11-06","detail":{{"id":"{ticket}","subject":"Bench ticket","description":"{filler}"}},"event":{{"comment":{{"id":"{i}","body":"hello","is_public":true,"author":{{"id":"7","is_staff":false,"name":"Bench"}}}}}}}}"#
    )
    .into_bytes()
}

/// A complete webhook delivery: headers, then `body`, signed with `sig`.
pub fn request(path: &str, invocation: &str, sig: &str, body: &[u8]) -> Bytes {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nx-zendesk-account-id: {ACCOUNT}\r\n\
         x-zendesk-webhook-id: 01BENCH\r\nx-zendesk-webhook-invocation-id: {invocation}\r\n\
         x-zendesk-webhook-signature-timestamp: {TIMESTAMP}\r\n\
         x-zendesk-webhook-signature: {sig}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    Bytes::from(req)
}

/// `n` correctly signed deliveries of unique events for `tag` that just
/// happened.
pub fn signed(path: &str, tag: &str, n: usize) -> Vec<Bytes> {
    signed_at(path, tag, n, &now())
}

/// `n` correctly signed deliveries of unique events for `tag` that happened
/// at `time`.
pub fn signed_at(path: &str, tag: &str, n: usize, time: &str) -> Vec<Bytes> {
    let secret = Secret::new(SECRET);
    (0..n)
        .map(|i| {
            let body = event(tag, i, time);
            let sig = signature::sign(&secret, TIMESTAMP, &body);
            request(path, &format!("inv-{tag}-{i}"), &sig, &body)
        })
        .collect()
}

/// A 1 MiB well-formed envelope with a well-formed but forged signature.
pub fn forged_mib(path: &str, i: usize) -> Bytes {
    const MIB: usize = 1 << 20;
    let head = format!(
        r#"{{"account_id":{ACCOUNT},"id":"forged-{i}","type":"zen:event-type:ticket.created","subject":"zen:ticket:1","time":"t","zendesk_event_version":"v","detail":{{"id":"1","pad":""#
    );
    let tail = r#""},"event":{}}"#;
    let mut body = head.into_bytes();
    body.resize(MIB - tail.len(), b'x');
    body.extend_from_slice(tail.as_bytes());
    let forged = signature::sign(&Secret::new("not-the-secret"), TIMESTAMP, &body);
    request(path, &format!("forged-{i}"), &forged, &body)
}
