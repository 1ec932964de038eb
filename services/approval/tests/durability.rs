//! Durability and time: restarts of NATS and of the service, expiry with two
//! replicas, escalation, and the reconciler finishing an unpublished release.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use approval::OnTimeout;
use approval::item::{DecisionRecord, HistoryEntry, Item, ResumeLinks, State};
use support::{ALICE, Infra, Svc, decided_subject, released_subject, reply_request, unique_ticket};
use time::OffsetDateTime;
use zengate_core::events::Decision;
use zengate_testkit::eventually;

#[tokio::test]
async fn items_survive_restarts_of_nats_and_the_service() {
    let mut infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    let (t1, t2, t3) = (unique_ticket(), unique_ticket(), unique_ticket());
    let (r1, r2, r3) = (
        reply_request(&t1, "one"),
        reply_request(&t2, "two"),
        reply_request(&t3, "three"),
    );
    infra.publish_request(&r1).await;
    infra.publish_request(&r2).await;
    svc.wait_item(&r1.approval_id, Some("pending")).await;
    svc.wait_item(&r2.approval_id, Some("pending")).await;

    // NATS crashes and comes back with its data; the running service recovers.
    infra.nats.restart().await;
    let res = eventually(
        "approve after the NATS restart",
        Duration::from_secs(20),
        || async {
            let res = svc
                .post(
                    &format!("/v1/approvals/{}/approve", r1.approval_id),
                    Some(ALICE),
                )
                .send()
                .await
                .ok()?;
            (res.status() == 200).then_some(res)
        },
    )
    .await;
    assert_eq!(res.status(), 200);
    infra.wait_count(&released_subject(&t1), 1).await;
    // the consumer resumed too
    infra.publish_request(&r3).await;
    svc.wait_item(&r3.approval_id, Some("pending")).await;

    // the service restarts: a new process rebuilds its index from the bucket
    svc.stop().await;
    let svc = Svc::start(&infra).await;
    svc.wait_listed(&r2.approval_id, "pending").await;
    svc.wait_listed(&r3.approval_id, "pending").await;
    svc.wait_listed(&r1.approval_id, "released").await;
    let res = svc
        .post(
            &format!("/v1/approvals/{}/reject", r2.approval_id),
            Some(ALICE),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = svc
        .post(
            &format!("/v1/approvals/{}/approve", r1.approval_id),
            Some(ALICE),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    // requests already consumed are not consumed again
    infra.publish_request(&r1).await;
    svc.wait_item(&r3.approval_id, Some("pending")).await;
    assert_eq!(infra.count(&released_subject(&t1)).await, 1);
    svc.stop().await;
}

async fn sweeps(svc: &Svc) -> f64 {
    svc.metric("zengate_approval_sweeps_total").await
}

#[tokio::test]
async fn expiry_happens_once_across_two_replicas() {
    let infra = Infra::start().await;
    let tweak = |c: &mut approval::ApprovalConfig| {
        c.timeout = Duration::from_millis(800);
        c.sweep_interval = Duration::from_millis(50);
    };
    let a = Svc::start_with(&infra, tweak).await;
    let b = Svc::start_with(&infra, tweak).await;
    let tickets: Vec<String> = (0..4).map(|_| unique_ticket()).collect();
    let mut ids = Vec::new();
    for t in &tickets {
        let r = reply_request(t, "late");
        infra.publish_request(&r).await;
        ids.push(r.approval_id);
    }
    for id in &ids {
        let item = a.wait_item(id, Some("expired")).await;
        assert_eq!(item["decision"]["by"], "system");
    }
    // let both replicas sweep several more times after the last expiry
    let (sa, sb) = (sweeps(&a).await, sweeps(&b).await);
    eventually(
        "more sweeps on both replicas",
        Duration::from_secs(10),
        || async { (sweeps(&a).await >= sa + 3.0 && sweeps(&b).await >= sb + 3.0).then_some(()) },
    )
    .await;
    for t in &tickets {
        assert_eq!(infra.count(&decided_subject(t)).await, 1, "ticket {t}");
        assert_eq!(infra.last(&decided_subject(t)).await["decision"], "expired");
        assert_eq!(infra.count(&released_subject(t)).await, 0);
    }
    let total = a.metric("zengate_approval_expiries_total").await
        + b.metric("zengate_approval_expiries_total").await;
    assert_eq!(total, 4.0);
    // an expired item cannot be approved
    let res = b
        .post(&format!("/v1/approvals/{}/approve", ids[0]), Some(ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
}

#[tokio::test]
async fn escalated_items_stay_decidable() {
    let infra = Infra::start().await;
    let svc = Svc::start_with(&infra, |c| {
        c.timeout = Duration::from_millis(300);
        c.sweep_interval = Duration::from_millis(50);
        c.on_timeout = OnTimeout::Escalate;
    })
    .await;
    let t = unique_ticket();
    let r = reply_request(&t, "needs a supervisor");
    infra.publish_request(&r).await;
    svc.wait_item(&r.approval_id, Some("escalated")).await;
    infra.wait_count(&decided_subject(&t), 1).await;
    assert_eq!(
        infra.last(&decided_subject(&t)).await["decision"],
        "escalated"
    );
    let res = svc
        .post(
            &format!("/v1/approvals/{}/approve", r.approval_id),
            Some(ALICE),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    infra.wait_count(&released_subject(&t), 1).await;
    infra.wait_count(&decided_subject(&t), 2).await;
    assert_eq!(
        infra.last(&decided_subject(&t)).await["decision"],
        "approved"
    );
}

#[tokio::test]
async fn reconciler_publishes_a_release_that_was_not_published() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    let t = unique_ticket();
    let req = reply_request(&t, "approved while the bus was away");
    let now = OffsetDateTime::now_utc();
    // What a replica leaves behind when it crashed between the CAS and the publish.
    let mut item = Item::new(
        req.clone(),
        now - Duration::from_secs(60),
        now + Duration::from_secs(3600),
        ResumeLinks {
            approve: "x".into(),
            reject: "y".into(),
        },
    );
    item.state = State::Approved;
    item.final_action = Some(req.action.clone());
    item.decision = Some(DecisionRecord {
        decision: Decision::Approved,
        by: "alice".into(),
        at: now - Duration::from_secs(30),
        reason: None,
        edits: None,
        published: false,
    });
    item.history.push(HistoryEntry {
        at: now - Duration::from_secs(30),
        by: "alice".into(),
        what: "approved".into(),
        reason: None,
        edits: None,
    });
    // The service sealed it inside the same compare-and-set.
    let event = zengate_core::events::ApprovalReleased {
        v: zengate_core::events::V1,
        approval_id: item.id.clone(),
        account_id: req.account_id.clone(),
        action: req.action.clone(),
        approved_by: "alice".into(),
        approved_at: now - Duration::from_secs(30),
    };
    item.release_seal = Some(zengate_core::release::sign(
        &zengate_core::Secret::new(support::RELEASE_KEY),
        &event,
    ));
    let kv = infra.js.get_key_value("approvals").await.unwrap();
    kv.create(&item.id, item.to_bytes().unwrap()).await.unwrap();

    let stored = svc.wait_item(&item.id, Some("released")).await;
    assert_eq!(stored["decision"]["published"], true);
    infra.wait_count(&released_subject(&t), 1).await;
    infra.wait_count(&decided_subject(&t), 1).await;
    assert_eq!(
        infra.last(&released_subject(&t)).await["approved_by"],
        "alice"
    );
    assert!(svc.metric("zengate_approval_republished_total").await >= 1.0);
    // a repeat with the same Nats-Msg-Id (a second reconciler) is dropped by JetStream
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("{}:released", item.id).as_str());
    let ack = infra
        .js
        .publish_with_headers(released_subject(&t), headers, "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ack.duplicate);
    assert_eq!(infra.count(&released_subject(&t)).await, 1);
}
