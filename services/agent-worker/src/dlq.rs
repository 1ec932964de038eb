//! Dead letters: a message given up on is published to
//! `zengate.dlq.<original subject>` with its body, headers and the reason, so
//! it can be inspected and replayed (`zengate dlq replay`), and the ordered
//! partition it blocked can move on.

use async_nats::HeaderMap;
use base64::Engine as _;
use time::OffsetDateTime;
use zengate_core::events::{DeadLetter, V1, dlq_subject};
use zengate_runtime::bus::{PublishError, Publisher};

/// Headers JetStream adds when sourcing; not part of the original message.
const SOURCING_HEADERS: [&str; 1] = ["Nats-Stream-Source"];

/// Builds the dead letter for one message.
pub fn dead_letter(
    original_subject: &str,
    stream: &str,
    stream_sequence: u64,
    deliveries: u64,
    reason: &str,
    headers: Option<&HeaderMap>,
    body: &[u8],
) -> DeadLetter {
    let headers = headers
        .map(|map| {
            map.iter()
                .filter(|(k, _)| {
                    !SOURCING_HEADERS
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(k.as_ref()))
                })
                .flat_map(|(k, values)| {
                    values
                        .iter()
                        .map(|v| (k.to_string(), v.as_str().to_owned()))
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default();
    DeadLetter {
        v: V1,
        original_subject: original_subject.to_owned(),
        stream: stream.to_owned(),
        stream_sequence,
        deliveries,
        reason: reason.to_owned(),
        headers,
        body_base64: base64::engine::general_purpose::STANDARD.encode(body),
        failed_at: OffsetDateTime::now_utc(),
    }
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
