//! `zengate dlq`: inspect and replay dead letters (`zengate.dlq.>` on the
//! `ZENGATE` stream).
//!
//! A replay republishes the original body and headers to the original
//! subject, so the message flows through its consumers again, then deletes
//! the dead letter. The replay gets a fresh `Nats-Msg-Id`
//! (`<original>:replay:<dlq sequence>`, so JetStream's duplicate window does
//! not swallow it) and carries the original id in `Zengate-Replay-Of`, which
//! the worker uses so the replay maps to the same approval as the original.
//!
//! A replay is refused when the letter's `original_subject` is not the
//! subject its own DLQ subject encodes, or when its body and message id do
//! not match a message its stream really holds (what is republished is that
//! message, with its own headers); a release
//! (`zengate.approval.released.>`) is replayed only while it still matches
//! an approved item.

use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer};
use base64::Engine as _;
use clap::Subcommand;
use futures::StreamExt;
use zengate_core::events::{ApprovalReleased, DeadLetter, ZENDESK_STREAM, ZENGATE_STREAM};
use zengate_core::headers as h;
use zengate_core::release::{self, ApprovalRecord, Permit};

/// Header naming the original message id of a replay (read by the worker).
const REPLAY_OF: &str = "Zengate-Replay-Of";
/// Every dead letter's subject starts with this.
const DLQ_PREFIX: &str = "zengate.dlq.";
/// Releases get re-verified before a replay.
const RELEASED_PREFIX: &str = "zengate.approval.released.";

#[derive(Debug, Subcommand)]
pub enum Dlq {
    /// Print dead letters: stream sequence, original subject, deliveries, reason.
    List {
        #[arg(
            long,
            env = "NATS_URL",
            hide_env_values = true,
            default_value = "nats://127.0.0.1:4222"
        )]
        nats_url: String,
        /// Only entries whose subject matches, e.g. `zengate.dlq.zendesk.42.ticket.5.>`.
        #[arg(long, default_value = "zengate.dlq.>")]
        subject_filter: String,
    },
    /// Republish dead letters to their original subject and delete them.
    Replay {
        #[arg(
            long,
            env = "NATS_URL",
            hide_env_values = true,
            default_value = "nats://127.0.0.1:4222"
        )]
        nats_url: String,
        /// Stream sequence of the dead letter (from `dlq list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        seq: Option<u64>,
        /// Replay every entry matching --subject-filter.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value = "zengate.dlq.>")]
        subject_filter: String,
    },
}

impl Dlq {
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Dlq::List {
                nats_url,
                subject_filter,
            } => {
                let js = connect(&nats_url).await?;
                let entries = list(&js, &subject_filter).await?;
                if entries.is_empty() {
                    println!("no dead letters");
                }
                for (seq, letter) in entries {
                    println!(
                        "{seq}\t{}\t{}\t{}",
                        letter.original_subject,
                        letter.deliveries,
                        letter.reason.replace(['\n', '\t'], " ")
                    );
                }
                Ok(())
            }
            Dlq::Replay {
                nats_url,
                seq,
                all,
                subject_filter,
            } => {
                let js = connect(&nats_url).await?;
                let seqs: Vec<u64> = if all {
                    list(&js, &subject_filter)
                        .await?
                        .into_iter()
                        .map(|(s, _)| s)
                        .collect()
                } else {
                    seq.into_iter().collect()
                };
                for seq in seqs {
                    let target = replay(&js, seq).await?;
                    println!("{seq}\treplayed to {target}");
                }
                Ok(())
            }
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<jetstream::Context> {
    Ok(jetstream::new(crate::nats::connect(url).await?))
}

fn check_filter(filter: &str) -> anyhow::Result<()> {
    if filter != "zengate.dlq.>" && !filter.starts_with(DLQ_PREFIX) {
        bail!("--subject-filter must start with {DLQ_PREFIX}");
    }
    Ok(())
}

/// All dead letters matching `filter`, in stream order.
pub async fn list(js: &jetstream::Context, filter: &str) -> anyhow::Result<Vec<(u64, DeadLetter)>> {
    check_filter(filter)?;
    let stream = js
        .get_stream(ZENGATE_STREAM)
        .await
        .context("stream ZENGATE not found")?;
    let mut consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: filter.to_owned(),
            ack_policy: consumer::AckPolicy::None,
            deliver_policy: consumer::DeliverPolicy::All,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .context("cannot read the dead letters")?;
    let mut remaining = consumer.info().await?.num_pending;
    let mut out = Vec::new();
    while remaining > 0 {
        let mut batch = consumer
            .fetch()
            .max_messages(remaining.min(500) as usize)
            .expires(Duration::from_secs(2))
            .messages()
            .await?;
        let mut got = 0;
        while let Some(msg) = batch.next().await {
            let msg = msg.map_err(|e| anyhow::anyhow!("{e}"))?;
            let info = msg.info().map_err(|e| anyhow::anyhow!("{e}"))?;
            let seq = info.stream_sequence;
            remaining = info.pending;
            got += 1;
            match serde_json::from_slice::<DeadLetter>(&msg.payload) {
                Ok(letter) => out.push((seq, letter)),
                Err(e) => eprintln!("{seq}\tunreadable dead letter on {}: {e}", msg.subject),
            }
        }
        if got == 0 {
            break;
        }
    }
    Ok(out)
}

/// A dead letter may only go back where it came from: the subject it names
/// must be the one its own subject encodes (`zengate.dlq.<original>`), so a
/// letter published by hand cannot aim a replay at an arbitrary subject.
fn check_origin(dlq_subject: &str, letter: &DeadLetter) -> anyhow::Result<()> {
    let encoded = dlq_subject.strip_prefix(DLQ_PREFIX).unwrap_or_default();
    if encoded.is_empty() || letter.original_subject != encoded {
        bail!(
            "dead letter on {dlq_subject} names {:?} as its original subject; refusing to replay it",
            letter.original_subject
        );
    }
    Ok(())
}

/// A release goes back to the executor only if it still matches an approved
/// item in the `approvals` bucket (the executor checks the signature and the
/// item again before writing).
async fn reverify_release(
    js: &jetstream::Context,
    subject: &str,
    body: &[u8],
) -> anyhow::Result<()> {
    let released: ApprovalReleased =
        serde_json::from_slice(body).context("the release in it is unreadable")?;
    release::check_subject(subject, &released)?;
    let kv = match js.get_key_value(release::APPROVALS_BUCKET).await {
        Ok(kv) => Some(kv),
        // No bucket: no approval was ever recorded (JetStream error 10059).
        Err(e) if e.to_string().contains("10059") => None,
        Err(e) => return Err(e).context("cannot open the approvals bucket"),
    };
    let bytes = match kv {
        Some(kv) => kv
            .get(&released.approval_id)
            .await
            .context("cannot read the approval item")?,
        None => None,
    };
    let record: Option<ApprovalRecord> = bytes
        .map(|b| serde_json::from_slice(&b))
        .transpose()
        .context("unreadable approval item")?;
    match release::check_record(record.as_ref(), &released)? {
        Permit::Execute | Permit::Retry => Ok(()),
        Permit::AlreadyApplied => bail!(
            "approval {} is already applied; replaying it would write twice",
            released.approval_id
        ),
    }
}

/// Most messages one subject is searched through for a letter's original.
const ORIGINAL_SEARCH_LIMIT: usize = 10_000;

/// The stream message a dead letter was made from: on its original subject,
/// with its `Nats-Msg-Id`, byte for byte the letter's body. Provider events
/// live in `ZENDESK_EVENTS`, zengate's own in `ZENGATE`.
async fn find_original(
    js: &jetstream::Context,
    subject: &str,
    msg_id: &str,
    body: &[u8],
) -> anyhow::Result<jetstream::message::StreamMessage> {
    let name = if subject.starts_with("zendesk.") {
        ZENDESK_STREAM
    } else {
        ZENGATE_STREAM
    };
    let stream = js
        .get_stream(name)
        .await
        .with_context(|| format!("stream {name} not found"))?;
    let mut next = 1;
    for _ in 0..ORIGINAL_SEARCH_LIMIT {
        let Ok(msg) = stream
            .raw_message_builder()
            .sequence(next)
            .next_by_subject(subject.to_owned())
            .send()
            .await
        else {
            break;
        };
        let id = msg.headers.get(h::NATS_MSG_ID).map(|v| v.as_str());
        if id == Some(msg_id) && msg.payload.as_ref() == body {
            return Ok(msg);
        }
        next = msg.sequence + 1;
    }
    bail!(
        "no message {msg_id} with this body on {subject} in {name}: the letter does not match anything zengate received (or it has aged out)"
    )
}

/// Republishes dead letter `seq` and deletes it; returns the target subject.
pub async fn replay(js: &jetstream::Context, seq: u64) -> anyhow::Result<String> {
    let stream = js
        .get_stream(ZENGATE_STREAM)
        .await
        .context("stream ZENGATE not found")?;
    let raw = stream
        .get_raw_message(seq)
        .await
        .with_context(|| format!("no message {seq} in ZENGATE"))?;
    if !raw.subject.as_str().starts_with(DLQ_PREFIX) {
        bail!("message {seq} is on {}, not a dead letter", raw.subject);
    }
    let letter: DeadLetter =
        serde_json::from_slice(&raw.payload).context("unreadable dead letter")?;
    check_origin(raw.subject.as_str(), &letter)?;
    let body = base64::engine::general_purpose::STANDARD
        .decode(&letter.body_base64)
        .context("dead letter body is not base64")?;
    let original_id = letter
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(h::NATS_MSG_ID))
        .map(|(_, v)| v.clone())
        .with_context(|| {
            format!("dead letter {seq} names no Nats-Msg-Id; its original cannot be found")
        })?;
    // What goes back on the bus is the original as its stream holds it, not
    // what the letter claims: a letter published by hand replays nothing.
    let original = find_original(js, &letter.original_subject, &original_id, &body)
        .await
        .with_context(|| format!("dead letter {seq} not replayed"))?;
    if letter.original_subject.starts_with(RELEASED_PREFIX) {
        reverify_release(js, &letter.original_subject, &body)
            .await
            .with_context(|| format!("dead letter {seq} not replayed"))?;
    }
    let mut headers = HeaderMap::new();
    for (name, values) in original.headers.iter() {
        let name = name.to_string();
        if name.eq_ignore_ascii_case(h::NATS_MSG_ID) || name.eq_ignore_ascii_case(REPLAY_OF) {
            continue;
        }
        for value in values {
            headers.append(name.as_str(), value.as_str());
        }
    }
    let replay_of = original
        .headers
        .get(REPLAY_OF)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_else(|| original_id.clone());
    headers.insert(REPLAY_OF, replay_of.as_str());
    headers.insert(
        h::NATS_MSG_ID,
        format!("{original_id}:replay:{seq}").as_str(),
    );
    let body = original.payload;
    js.publish_with_headers(letter.original_subject.clone(), headers, body)
        .await
        .context("cannot publish the replay")?
        .await
        .context("replay not acknowledged")?;
    stream
        .delete_message(seq)
        .await
        .with_context(|| format!("replayed, but cannot delete dead letter {seq}"))?;
    Ok(letter.original_subject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use zengate_core::events::V1;

    fn letter(original: &str) -> DeadLetter {
        DeadLetter {
            v: V1,
            original_subject: original.to_owned(),
            stream: "ZENGATE".into(),
            stream_sequence: 1,
            deliveries: 5,
            reason: "test".into(),
            headers: vec![],
            body_base64: String::new(),
            failed_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_letter_replays_only_to_the_subject_it_was_dead_lettered_from() {
        let ok = letter("zendesk.42.ticket.7.created");
        assert!(check_origin("zengate.dlq.zendesk.42.ticket.7.created", &ok).is_ok());
        let aimed = letter("zengate.approval.released.42.7");
        let e = check_origin("zengate.dlq.zendesk.42.ticket.7.created", &aimed).unwrap_err();
        assert!(e.to_string().contains("refusing to replay"), "{e}");
        assert!(check_origin("zengate.dlq.", &letter("")).is_err());
    }
}
