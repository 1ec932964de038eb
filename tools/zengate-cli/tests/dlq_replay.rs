//! `zengate dlq replay` against a real NATS server: a dead letter goes back
//! only to the subject it came from, and a release only while it still
//! matches an approved item.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, kv};
use base64::Engine as _;
use futures::TryStreamExt;
use time::OffsetDateTime;
use zengate_core::events::{
    Action, ApprovalReleased, DeadLetter, FieldChanges, V1, ZENGATE_STREAM, dlq_subject,
};
use zengate_core::release;
use zengate_runtime::bus;
use zengate_testkit::NatsServer;

async fn setup(nats: &NatsServer) -> jetstream::Context {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    bus::ensure_stream(&js, bus::zengate_stream_config())
        .await
        .unwrap();
    bus::ensure_stream(&js, bus::zendesk_stream_config(&Default::default()))
        .await
        .unwrap();
    js
}

/// Publishes `body` on `subject` with message id `id` (and extra headers),
/// as the message a dead letter was later made from.
async fn original(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    for (k, v) in extra {
        headers.insert(*k, *v);
    }
    js.publish_with_headers(subject.to_owned(), headers, body.to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

fn released(ticket: &str) -> ApprovalReleased {
    ApprovalReleased {
        v: V1,
        approval_id: "7".repeat(32),
        account_id: "42".into(),
        action: Action::Reply {
            ticket_id: ticket.into(),
            body: "approved reply".into(),
            fields: FieldChanges::default(),
        },
        approved_by: "grace".into(),
        approved_at: OffsetDateTime::now_utc(),
    }
}

/// Publishes a dead letter on `dlq_subject_of` claiming `original`; returns
/// its stream sequence.
async fn dead_letter(
    js: &jetstream::Context,
    dlq_subject_of: &str,
    original: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> u64 {
    let letter = DeadLetter {
        v: V1,
        original_subject: original.to_owned(),
        stream: ZENGATE_STREAM.into(),
        stream_sequence: 1,
        deliveries: 5,
        reason: "gave up".into(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body_base64: base64::engine::general_purpose::STANDARD.encode(body),
        failed_at: OffsetDateTime::now_utc(),
    };
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", uuid::Uuid::new_v4().to_string().as_str());
    js.publish_with_headers(
        dlq_subject(dlq_subject_of),
        headers,
        serde_json::to_vec(&letter).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap()
    .sequence
}

fn zengate(nats: &NatsServer, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_zengate"))
        .args(args)
        .env("NATS_URL", nats.url())
        .output()
        .unwrap()
}

/// Messages on subjects matching `filter` in `ZENGATE`.
async fn count(js: &jetstream::Context, filter: &str) -> usize {
    let stream = js.get_stream(ZENGATE_STREAM).await.unwrap();
    let mut subjects = stream.info_with_subjects(filter).await.unwrap();
    let mut n = 0;
    while let Some((_, c)) = subjects.try_next().await.unwrap() {
        n += c;
    }
    n
}

#[tokio::test]
async fn replay_refuses_a_letter_aimed_at_another_subject() {
    let nats = NatsServer::start().await;
    let js = setup(&nats).await;
    let r = released("7");
    let body = serde_json::to_vec(&r).unwrap();
    // Dead-lettered from a provider event, but names a release subject.
    let seq = dead_letter(
        &js,
        "zendesk.42.ticket.7.created",
        "zengate.approval.released.42.7",
        &[("Nats-Msg-Id", "orig-1")],
        &body,
    )
    .await;
    let out = zengate(&nats, &["dlq", "replay", &seq.to_string()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to replay"), "{err}");
    assert_eq!(count(&js, "zengate.approval.released.>").await, 0);
}

#[tokio::test]
async fn a_release_is_replayed_only_while_its_item_is_approved() {
    let nats = NatsServer::start().await;
    let js = setup(&nats).await;
    let r = released("7");
    let body = serde_json::to_vec(&r).unwrap();
    let subject = "zengate.approval.released.42.7";
    original(&js, subject, "orig-1", &[], &body).await;

    // No item at all: refused.
    let seq = dead_letter(&js, subject, subject, &[("Nats-Msg-Id", "orig-1")], &body).await;
    let out = zengate(&nats, &["dlq", "replay", &seq.to_string()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no approval item"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An item that was rejected: refused.
    let kv = bus::ensure_kv(
        &js,
        kv::Config {
            bucket: release::APPROVALS_BUCKET.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let item = |state: &str| {
        serde_json::to_vec(&serde_json::json!({
            "id": r.approval_id, "state": state,
            "request": {"account_id": "42"}, "final_action": r.action,
        }))
        .unwrap()
    };
    kv.put(&r.approval_id, item("rejected").into())
        .await
        .unwrap();
    let out = zengate(&nats, &["dlq", "replay", &seq.to_string()]);
    assert!(!out.status.success());
    assert_eq!(count(&js, subject).await, 1, "only the original");

    // Failed (the write did not land) and still the approved action: replayed.
    kv.put(&r.approval_id, item("failed").into()).await.unwrap();
    let out = zengate(&nats, &["dlq", "replay", &seq.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&js, subject).await, 2, "the original and its replay");
}

#[tokio::test]
async fn only_what_was_really_received_is_replayed() {
    let nats = NatsServer::start().await;
    let js = setup(&nats).await;
    let subject = "zendesk.42.ticket.7.comment_added";
    let genuine = br#"{"id":"evt-1","type":"zen:event-type:ticket.comment_added"}"#;
    original(
        &js,
        subject,
        "42:evt-1",
        &[("Zendesk-Webhook-Signature", "sig-of-evt-1")],
        genuine,
    )
    .await;

    // A letter planted by hand with a body zengate never received.
    let forged =
        br#"{"id":"evt-1","type":"zen:event-type:ticket.comment_added","detail":"forged"}"#;
    let seq = dead_letter(
        &js,
        subject,
        subject,
        &[("Nats-Msg-Id", "42:evt-1")],
        forged,
    )
    .await;
    let out = zengate(&nats, &["dlq", "replay", &seq.to_string()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not match anything zengate received"),
        "{err}"
    );
    assert_eq!(count_in(&js, "ZENDESK_EVENTS", subject).await, 1);

    // The genuine letter is replayed as the stream holds it: its own headers,
    // `Zengate-Replay-Of` naming the original whatever the letter says.
    let planted = [
        ("Nats-Msg-Id", "42:evt-1"),
        ("Zengate-Replay-Of", "42:someone-elses-event"),
        ("Zendesk-Webhook-Signature", "planted"),
    ];
    let seq = dead_letter(&js, subject, subject, &planted, genuine).await;
    let out = zengate(&nats, &["dlq", "replay", &seq.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stream = js.get_stream("ZENDESK_EVENTS").await.unwrap();
    let replayed = stream
        .get_last_raw_message_by_subject(subject)
        .await
        .unwrap();
    assert_eq!(replayed.payload.as_ref(), genuine);
    let header = |name: &str| replayed.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(header("Zengate-Replay-Of").as_deref(), Some("42:evt-1"));
    assert_eq!(
        header("Zendesk-Webhook-Signature").as_deref(),
        Some("sig-of-evt-1")
    );
    assert!(
        header("Nats-Msg-Id")
            .unwrap()
            .starts_with("42:evt-1:replay:")
    );
}

/// Messages on subjects matching `filter` in `stream`.
async fn count_in(js: &jetstream::Context, stream: &str, filter: &str) -> usize {
    let stream = js.get_stream(stream).await.unwrap();
    let mut subjects = stream.info_with_subjects(filter).await.unwrap();
    let mut n = 0;
    while let Some((_, c)) = subjects.try_next().await.unwrap() {
        n += c;
    }
    n
}
