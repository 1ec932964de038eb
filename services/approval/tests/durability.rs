//! Durability and time: restarts of NATS and of the service, expiry with two
//! replicas, escalation, the reconciler finishing an unpublished release, and
//! store growth: settled items age out of the bucket (`APPROVAL_RETENTION`)
//! while open ones stay, the memory index keeps only open + recent items,
//! history pages come from the bucket, and an old bucket gets its retention.
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

async fn json(svc: &Svc, path: &str) -> serde_json::Value {
    let res = svc.get(path, Some(ALICE)).send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

fn ids(page: &serde_json::Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn decide(svc: &Svc, id: &str, verb: &str) {
    assert_eq!(svc.act(id, verb, ALICE).await, 200, "{verb} {id}");
}

#[tokio::test]
async fn history_pages_from_the_bucket_beyond_the_memory_index() {
    let infra = Infra::start().await;
    let svc = Svc::start_with(&infra, |c| c.recent_limit = 3).await;
    let mut tickets = Vec::new();
    let mut rejected = Vec::new();
    let words = [
        "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "heron",
    ];
    for (n, word) in words.iter().enumerate() {
        let t = unique_ticket();
        let r = reply_request(&t, &format!("answer about {word}"));
        infra.publish_request(&r).await;
        svc.wait_item(&r.approval_id, Some("pending")).await;
        if n < 6 {
            decide(&svc, &r.approval_id, "reject").await;
            rejected.push(r.approval_id.clone());
        }
        tickets.push((t, r.approval_id));
    }
    let pending: Vec<String> = tickets[6..].iter().map(|(_, id)| id.clone()).collect();
    for id in &pending {
        svc.wait_listed(id, "pending").await;
    }
    // Memory: every open item, only the newest 3 settled ones.
    let listed = json(&svc, "/v1/approvals?state=rejected&limit=500").await;
    let newest: Vec<String> = rejected.iter().rev().take(3).cloned().collect();
    assert_eq!(ids(&listed), newest);
    assert_eq!(
        ids(&json(&svc, "/v1/approvals?state=pending&limit=500").await).len(),
        2
    );

    // The bucket: all six, most recently changed first, in pages of 4.
    let page1 = json(&svc, "/v1/approvals/history?state=rejected&limit=4").await;
    let want: Vec<String> = rejected.iter().rev().cloned().collect();
    assert_eq!(ids(&page1), want[..4]);
    let before = page1["next_before"].as_u64().expect("a next page");
    let page2 = json(
        &svc,
        &format!("/v1/approvals/history?state=rejected&limit=4&before={before}"),
    )
    .await;
    assert_eq!(ids(&page2), want[4..]);
    assert!(page2["next_before"].is_null(), "{page2}");

    // Every state, and the filters.
    let all = json(&svc, "/v1/approvals/history?limit=500").await;
    assert_eq!(ids(&all).len(), 8);
    let (t3, id3) = &tickets[3];
    let one = json(&svc, &format!("/v1/approvals/history?ticket={t3}")).await;
    assert_eq!(ids(&one), std::slice::from_ref(id3));
    let found = json(&svc, "/v1/approvals/history?q=ANSWER%20Fjord").await;
    assert_eq!(ids(&found), std::slice::from_ref(&tickets[5].1));
    let none = json(&svc, "/v1/approvals/history?q=no-such-words").await;
    assert!(ids(&none).is_empty() && none["next_before"].is_null());
    let res = svc
        .get("/v1/approvals/history?state=bogus", Some(ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // A restarted replica indexes the same bounded set.
    svc.stop().await;
    let svc = Svc::start_with(&infra, |c| c.recent_limit = 3).await;
    for id in &pending {
        svc.wait_listed(id, "pending").await;
    }
    svc.wait_listed(&rejected[5], "rejected").await;
    let listed = json(&svc, "/v1/approvals?limit=500").await;
    assert_eq!(ids(&listed).len(), 5, "{listed}");
    svc.stop().await;
}

#[tokio::test]
async fn retention_drops_settled_items_and_keeps_open_ones() {
    let infra = Infra::start().await;
    let retention = Duration::from_secs(3);
    let svc = Svc::start_with(&infra, |c| c.retention = retention).await;
    let kv = infra.js.get_key_value("approvals").await.unwrap();
    let stream = infra.js.get_stream("KV_approvals").await.unwrap();
    assert_eq!(stream.get_info().await.unwrap().config.max_age, retention);

    let (t_open, t_gone, t_failed) = (unique_ticket(), unique_ticket(), unique_ticket());
    let open = reply_request(&t_open, "still waiting");
    let gone = reply_request(&t_gone, "rejected long ago");
    let failed = reply_request(&t_failed, "write failed");
    for r in [&open, &gone, &failed] {
        infra.publish_request(r).await;
        svc.wait_item(&r.approval_id, Some("pending")).await;
    }
    decide(&svc, &gone.approval_id, "reject").await;
    decide(&svc, &failed.approval_id, "approve").await;
    svc.wait_item(&failed.approval_id, Some("released")).await;
    infra
        .publish_outcome(&failed.approval_id, &t_failed, Some("422 invalid ticket"))
        .await;
    svc.wait_item(&failed.approval_id, Some("failed")).await;

    // The settled item leaves the bucket once its retention is over...
    eventually(
        "the rejected item ages out",
        Duration::from_secs(20),
        || async {
            kv.get(&gone.approval_id)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    // ... and, from then on, the index and the history.
    eventually("the index forgets it", Duration::from_secs(10), || async {
        let listed = json(&svc, "/v1/approvals?limit=500").await;
        (!ids(&listed).contains(&gone.approval_id)).then_some(())
    })
    .await;
    let all = json(&svc, "/v1/approvals/history?limit=500").await;
    assert!(!ids(&all).contains(&gone.approval_id));
    // Open items outlive several retentions: pending and failed are kept
    // (rewritten by the sweeper), untouched otherwise.
    let old = eventually(
        "two retentions pass for the open items",
        Duration::from_secs(20),
        || async {
            let entry = kv.entry(&open.approval_id).await.unwrap()?;
            let item: approval::item::Item = serde_json::from_slice(&entry.value).unwrap();
            (OffsetDateTime::now_utc() - item.created_at > retention * 2).then_some(item)
        },
    )
    .await;
    assert_eq!(old.state, State::Pending);
    let kept: approval::item::Item =
        serde_json::from_slice(&kv.get(&failed.approval_id).await.unwrap().unwrap()).unwrap();
    assert_eq!(kept.state, State::Failed);
    assert_eq!(kept.history.len(), 4, "kept unchanged: {:?}", kept.history);
    // Both still work: a decision and a retry.
    decide(&svc, &open.approval_id, "approve").await;
    infra.wait_count(&released_subject(&t_open), 1).await;
    assert_eq!(svc.act(&failed.approval_id, "retry", ALICE).await, 200);
    infra.wait_count(&released_subject(&t_failed), 2).await;
    svc.stop().await;
}

#[tokio::test]
async fn a_bucket_without_retention_gets_it_at_start() {
    let infra = Infra::start().await;
    infra
        .js
        .create_key_value(approval::bucket_config_for(Duration::ZERO))
        .await
        .unwrap();
    let stream = infra.js.get_stream("KV_approvals").await.unwrap();
    assert_eq!(
        stream.get_info().await.unwrap().config.max_age,
        Duration::ZERO
    );
    let svc = Svc::start(&infra).await;
    assert_eq!(
        stream.get_info().await.unwrap().config.max_age,
        approval::retention::DEFAULT
    );
    svc.stop().await;
    // Zero keeps everything again.
    let svc = Svc::start_with(&infra, |c| c.retention = Duration::ZERO).await;
    assert_eq!(
        stream.get_info().await.unwrap().config.max_age,
        Duration::ZERO
    );
    svc.stop().await;
}
