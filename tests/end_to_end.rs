//! The whole path against real NATS JetStream, real Redis and the Zendesk
//! simulator: an end user opens a ticket → the simulator sends a signed
//! webhook → ingress makes it durable → an agent worker proposes a reply →
//! the approval service holds it → an approver approves over the API → the
//! worker's executor writes exactly one comment to Zendesk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use support::{APPROVER, Stack, simulator, stack_env};
use zengate_testkit::{NatsServer, RedisServer};

#[tokio::test]
async fn signed_webhook_to_one_approved_comment_in_zendesk() {
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let sim = simulator().await;
    let stack = Stack::start(&sim, |_| stack_env(&nats, &redis, &sim, &[])).await;

    // Every HTTP service describes itself.
    for svc in [&stack.approval, &stack.worker] {
        let doc: serde_json::Value = svc
            .get("/openapi.json", None)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            doc["paths"].get("/readyz").is_some(),
            "{}: {doc}",
            svc.base()
        );
    }

    // Watch what is released and applied on the bus.
    let bus = async_nats::connect(nats.url()).await.unwrap();
    let mut released = bus.subscribe("zengate.approval.released.>").await.unwrap();
    let mut applied = bus.subscribe("zengate.action.applied.>").await.unwrap();

    // An end user opens a ticket.
    let ticket = sim.create_enduser_ticket(
        "Printer on fire",
        "Smoke everywhere, please help!",
        "Dana Customer",
        "dana@example.com",
    );
    let comments_before = sim.comments(ticket.id).len();

    // The proposal reaches the approval service as a pending item.
    let id = stack.wait_pending(ticket.id).await;
    // Nothing was written to Zendesk while the proposal waits.
    assert_eq!(sim.comments(ticket.id).len(), comments_before);

    // Unauthenticated approval is refused; the approver's is accepted once.
    let path = format!("/v1/approvals/{id}/approve");
    let refused = stack.approval.post(&path, None).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let res = stack
        .approve(&id, "We are on it: please unplug the printer.")
        .await;
    assert_eq!(res.status(), 200);
    let again = stack.approval.post(&path, Some(APPROVER)).send().await;
    assert_eq!(again.unwrap().status(), 409);

    // Exactly one release and one applied outcome for this approval.
    let msg = tokio::time::timeout(Duration::from_secs(20), released.next())
        .await
        .unwrap()
        .unwrap();
    let rel: zengate_core::events::ApprovalReleased = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(rel.approval_id, id);
    assert_eq!(rel.approved_by, "erin");
    let msg = tokio::time::timeout(Duration::from_secs(20), applied.next())
        .await
        .unwrap()
        .unwrap();
    let out: zengate_core::events::ActionOutcome = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(out.approval_id, id);
    assert!(out.applied);

    // Exactly one new comment, by the API user, with the approver's edit.
    let comments = sim.comments(ticket.id);
    assert_eq!(comments.len(), comments_before + 1, "{comments:?}");
    let last = comments.last().unwrap();
    assert_eq!(last.body, "We are on it: please unplug the printer.");
    assert_eq!(last.author_id, sim.api_user().id);

    // The item's history ends in `applied`.
    assert_eq!(stack.wait_applied(&id).await["state"], "applied");

    // The worker's own comment came back as a webhook and yielded no new proposal.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), released.next())
            .await
            .is_err(),
        "no second release"
    );
    assert_eq!(sim.comments(ticket.id).len(), comments_before + 1);
    stack.stop().await;
}
