//! Dead letters: a message given up on is published to
//! `zengate.dlq.<original subject>` with its body, headers and the reason, so
//! it can be inspected and replayed (`zengate dlq replay`), and whatever it
//! blocked can move on.

use async_nats::HeaderMap;
use async_nats::jetstream::Message;
use base64::Engine as _;
use time::OffsetDateTime;
use zengate_core::events::{DeadLetter, V1, dlq_subject};

use super::{PublishError, Publisher};

/// Headers JetStream adds when sourcing; not part of the original message.
const SOURCING_HEADERS: [&str; 1] = ["Nats-Stream-Source"];

/// The dead letter for `msg`, first published on `original_subject`.
pub fn letter(msg: &Message, original_subject: &str, reason: &str) -> DeadLetter {
    let (stream, stream_sequence, deliveries) = msg
        .info()
        .map(|i| {
            (
                i.stream.to_owned(),
                i.stream_sequence,
                i.delivered.max(0).unsigned_abs(),
            )
        })
        .unwrap_or_default();
    DeadLetter {
        v: V1,
        original_subject: original_subject.to_owned(),
        stream,
        stream_sequence,
        deliveries,
        reason: reason.to_owned(),
        headers: original_headers(msg.headers.as_ref()),
        body_base64: base64::engine::general_purpose::STANDARD.encode(&msg.payload),
        failed_at: OffsetDateTime::now_utc(),
    }
}

fn original_headers(headers: Option<&HeaderMap>) -> Vec<(String, String)> {
    let Some(map) = headers else {
        return Vec::new();
    };
    map.iter()
        .filter(|(k, _)| {
            !SOURCING_HEADERS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(k.as_ref()))
        })
        .flat_map(|(k, values)| {
            values
                .iter()
                .map(move |v| (k.to_string(), v.as_str().to_owned()))
        })
        .collect()
}

/// Publishes `letter` on `ZENGATE` and waits for the PubAck. The message id
/// makes a retried dead-lettering of the same message a no-op.
pub async fn publish(publisher: &Publisher, letter: &DeadLetter) -> Result<(), PublishError> {
    let msg_id = format!("dlq:{}:{}", letter.stream, letter.stream_sequence);
    publisher
        .json(dlq_subject(&letter.original_subject), &msg_id, letter)
        .await
        .map(drop)
}
