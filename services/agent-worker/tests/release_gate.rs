//! The executor writes to Zendesk only for a release that the approval
//! service signed and that matches an approved item in the `approvals`
//! bucket. Forged, altered, re-targeted or undecided releases are refused:
//! dead-lettered with the reason, counted, and never written. Real NATS,
//! Redis and the Zendesk simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use agent_worker::{Role, WorkerConfig};
use support::{ACCOUNT, Harness, RELEASE_KEY, RecordingDrafter, Worker};
use time::OffsetDateTime;
use zengate_core::Secret;
use zengate_core::events::{
    Action, ApprovalReleased, DeadLetter, FieldChanges, V1, ZENGATE_STREAM,
    approval_released_subject,
};
use zengate_core::release;

fn reply(ticket: u64, body: &str) -> Action {
    Action::Reply {
        ticket_id: ticket.to_string(),
        body: body.to_owned(),
        fields: FieldChanges {
            status: Some("solved".to_owned()),
            ..Default::default()
        },
    }
}

fn release_of(approval_id: &str, action: Action) -> ApprovalReleased {
    ApprovalReleased {
        v: V1,
        approval_id: approval_id.to_owned(),
        account_id: ACCOUNT.to_string(),
        action,
        approved_by: "grace".to_owned(),
        approved_at: OffsetDateTime::now_utc(),
    }
}

fn subject_of(r: &ApprovalReleased) -> String {
    approval_released_subject(&r.account_id, r.action.ticket_id())
}

fn sign(r: &ApprovalReleased) -> String {
    release::sign(&Secret::new(RELEASE_KEY), r)
}

fn executor_config(h: &Harness) -> WorkerConfig {
    let mut c = h.config();
    c.role = Role::Executor;
    c.ack_wait = Duration::from_secs(5);
    c.max_deliver = 3;
    c
}

async fn executor(h: &Harness) -> Worker {
    let (drafter, _) = RecordingDrafter::new(Duration::ZERO);
    Worker::start(executor_config(h), drafter).await
}

/// Comments written by zengate's API user on `ticket`.
fn written(h: &Harness, ticket: u64) -> usize {
    let me = h.sim.api_user().id;
    h.sim
        .comments(ticket)
        .iter()
        .filter(|c| c.author_id == me)
        .count()
}

async fn dead_letters(h: &Harness) -> Vec<DeadLetter> {
    h.read_all(ZENGATE_STREAM, "zengate.dlq.>")
        .await
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect()
}

async fn refused(w: &Worker, reason: &str) -> f64 {
    w.metric(&format!(
        "zengate_worker_releases_refused_total{{reason=\"{reason}\"}}"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_altered_and_retargeted_releases_write_nothing() {
    let h = Harness::start().await;
    let ticket = h.ticket("Attack target");
    let other = h.ticket("Another customer's ticket");
    let w = executor(&h).await;

    // 1. Forged: no approval anywhere, no signature.
    let forged = release_of(&"f".repeat(32), reply(ticket, "forged reply"));
    h.publish_release_as(&subject_of(&forged), &forged, "forged", None)
        .await;
    // 2. Signed with a key the approval service does not use.
    let wrong_key = release_of(&"e".repeat(32), reply(ticket, "wrong key"));
    h.record_approval(&wrong_key, "released").await;
    let bad = release::sign(
        &Secret::new("attacker-key-0123456789abcdef0123456"),
        &wrong_key,
    );
    h.publish_release_as(&subject_of(&wrong_key), &wrong_key, "bad", Some(&bad))
        .await;
    // 3. A genuine release whose action was edited on the way (the stored
    //    item and the signature both say something else).
    let genuine = release_of(&"d".repeat(32), reply(ticket, "approved text"));
    h.record_approval(&genuine, "released").await;
    let signature = sign(&genuine);
    let mut edited = genuine.clone();
    edited.action = reply(ticket, "edited text");
    h.publish_release_as(&subject_of(&edited), &edited, "edited", Some(&signature))
        .await;
    // 4. The genuine release replayed against another ticket: same
    //    signature, other ticket id.
    let mut retargeted = genuine.clone();
    retargeted.action = reply(other, "approved text");
    h.publish_release_as(
        &subject_of(&retargeted),
        &retargeted,
        "retarget",
        Some(&signature),
    )
    .await;
    // 5. The genuine, untouched release published on another ticket's subject.
    let other_subject = approval_released_subject(&genuine.account_id, Some(&other.to_string()));
    h.publish_release_as(&other_subject, &genuine, "subject", Some(&signature))
        .await;
    // 6. A key holder releasing an item nobody approved.
    let rejected = release_of(&"c".repeat(32), reply(ticket, "rejected text"));
    h.record_approval(&rejected, "rejected").await;
    h.publish_release_as(
        &subject_of(&rejected),
        &rejected,
        "rejected",
        Some(&sign(&rejected)),
    )
    .await;
    // 7. A key holder changing the action but not the stored item.
    let mut mismatch = genuine.clone();
    mismatch.approval_id = "b".repeat(32);
    h.record_approval(&mismatch, "released").await;
    mismatch.action = reply(ticket, "not what was approved");
    h.publish_release_as(
        &subject_of(&mismatch),
        &mismatch,
        "mismatch",
        Some(&sign(&mismatch)),
    )
    .await;

    h.wait_for("zengate.dlq.>", 7, Duration::from_secs(30))
        .await;
    let letters = dead_letters(&h).await;
    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    for expected in [
        "no Zengate-Release-Signature header",
        "does not verify",
        "published on",
        "is rejected, not approved",
        "differs from the approved one",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "no dead letter says {expected:?}: {reasons:#?}"
        );
    }
    assert!(
        letters
            .iter()
            .all(|l| l.reason.starts_with("release refused: "))
    );
    assert_eq!(refused(&w, "unsigned").await, 1.0);
    assert_eq!(refused(&w, "bad_signature").await, 3.0);
    assert_eq!(refused(&w, "wrong_subject").await, 1.0);
    assert_eq!(refused(&w, "not_approved").await, 1.0);
    assert_eq!(refused(&w, "action_mismatch").await, 1.0);
    assert_eq!(written(&h, ticket), 0);
    assert_eq!(written(&h, other), 0);
    assert_ne!(h.sim.ticket(ticket).unwrap().status, "solved");
    assert_eq!(h.count(ZENGATE_STREAM, "zengate.action.>").await, 0);

    // The genuine release, as the approval service publishes it, is applied.
    h.publish_release_as(
        &subject_of(&genuine),
        &genuine,
        "released",
        Some(&signature),
    )
    .await;
    h.wait_for("zengate.action.applied.>", 1, Duration::from_secs(20))
        .await;
    assert_eq!(written(&h, ticket), 1);
    assert_eq!(written(&h, other), 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_release_without_an_item_is_retried_then_refused() {
    let h = Harness::start().await;
    let ticket = h.ticket("No item");
    let w = executor(&h).await;
    let orphan = release_of(&"a".repeat(32), reply(ticket, "orphan"));
    h.publish_release_as(
        &subject_of(&orphan),
        &orphan,
        "released",
        Some(&sign(&orphan)),
    )
    .await;
    h.wait_for("zengate.dlq.>", 1, Duration::from_secs(30))
        .await;
    let letter = dead_letters(&h).await.remove(0);
    assert!(
        letter.reason.contains("no approval item"),
        "{}",
        letter.reason
    );
    assert_eq!(letter.deliveries, 3, "looked again before refusing");
    assert_eq!(refused(&w, "no_record").await, 1.0);
    assert_eq!(written(&h, ticket), 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_recorded_as_applied_is_never_written_again() {
    let h = Harness::start().await;
    let ticket = h.ticket("Already done");
    let w = executor(&h).await;
    let done = release_of(&"9".repeat(32), reply(ticket, "done once"));
    h.record_approval(&done, "applied").await;
    // The executor's own records are gone (say Redis was flushed): only the
    // item tells that the write happened.
    h.publish_release_as(&subject_of(&done), &done, "replay", Some(&sign(&done)))
        .await;
    zengate_testkit::eventually(
        "the replay to be recognised",
        Duration::from_secs(20),
        || async {
            (w.metric("zengate_worker_executions_total{outcome=\"replayed\"}")
                .await
                == 1.0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(written(&h, ticket), 0);
    assert_eq!(h.count(ZENGATE_STREAM, "zengate.dlq.>").await, 0);
    w.stop().await;
}

/// An item the approval service marked `failed` may have had its write land
/// anyway (a timeout after Zendesk accepted it). Replayed after the
/// executor's own records are gone, the release looks on the ticket first
/// and does not post the reply twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_item_is_checked_on_the_ticket_before_writing_again() {
    let h = Harness::start().await;
    let ticket = h.ticket("Did it land?");
    let retry = release_of(&"8".repeat(32), reply(ticket, "landed after all"));
    h.record_approval(&retry, "failed").await;
    h.zendesk
        .update_ticket(
            ticket,
            &zendesk_client::TicketUpdate {
                comment: Some(zendesk_client::CommentInput {
                    body: "landed after all".to_owned(),
                    public: true,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let w = executor(&h).await;
    h.publish_release_as(&subject_of(&retry), &retry, "replay", Some(&sign(&retry)))
        .await;
    h.wait_for("zengate.action.applied.>", 1, Duration::from_secs(20))
        .await;
    assert_eq!(written(&h, ticket), 1, "the reply is not posted twice");
    assert_eq!(
        w.metric("zengate_worker_executions_total{outcome=\"recovered\"}")
            .await,
        1.0
    );
    w.stop().await;
}

/// A verified release for another account, met on the shared executor
/// consumer, is left alone: no record, no outcome, no write; after the last
/// delivery it is dead-lettered for an operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_release_is_left_alone() {
    let h = Harness::start().await;
    let ticket = h.ticket("Not ours");
    let mut foreign = release_of(&"6".repeat(32), reply(ticket, "for account 43"));
    foreign.account_id = "43".to_owned();
    h.record_approval(&foreign, "released").await;
    let w = executor(&h).await;
    h.publish_release_as(
        &subject_of(&foreign),
        &foreign,
        "released",
        Some(&sign(&foreign)),
    )
    .await;
    h.wait_for("zengate.dlq.>", 1, Duration::from_secs(30))
        .await;
    let letter = dead_letters(&h).await.remove(0);
    assert!(
        letter.reason.contains("this worker serves 42"),
        "{}",
        letter.reason
    );
    assert_eq!(written(&h, ticket), 0);
    assert_eq!(h.count(ZENGATE_STREAM, "zengate.action.>").await, 0);
    w.stop().await;
}
