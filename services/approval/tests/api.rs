//! The approver API against real NATS JetStream and Redis: authentication,
//! intake, decisions (with edits), the compare-and-set race, outcomes, and
//! retries of failed writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{
    ALICE, BOB, Infra, RELEASE_KEY, Svc, decided_subject, released_subject, reply_request,
    unique_ticket,
};
use time::OffsetDateTime;
use zengate_core::events::{ActionOutcome, ApprovalReleased, V1, action_outcome_subject};
use zengate_core::release::{self, ReleaseKeys};
use zengate_testkit::eventually;

#[tokio::test]
async fn approver_auth_is_required_and_names_the_approver() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    let ticket = unique_ticket();
    let req = reply_request(&ticket, "We are on it.");
    infra.publish_request(&req).await;
    let id = req.approval_id.clone();
    svc.wait_item(&id, Some("pending")).await;

    for path in [
        "/v1/approvals?state=pending".to_owned(),
        format!("/v1/approvals/{id}"),
    ] {
        let res = svc.get(&path, None).send().await.unwrap();
        assert_eq!(res.status(), 401, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
        let res = svc.get(&path, Some("not-a-token")).send().await.unwrap();
        assert_eq!(res.status(), 401, "{path}");
    }
    // a malformed scheme is no token either
    let res = svc
        .http
        .post(svc.url(&format!("/v1/approvals/{id}/approve")))
        .header("authorization", format!("Basic {ALICE}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = svc
        .post(&format!("/v1/approvals/{id}/reject"), Some("tok-alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // nothing was decided by the refused calls
    assert_eq!(svc.item(&id).await.unwrap()["state"], "pending");

    let res = svc
        .post(&format!("/v1/approvals/{id}/reject"), Some(BOB))
        .json(&json!({"reason": "wrong tone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let item: Value = res.json().await.unwrap();
    assert_eq!(item["state"], "rejected");
    assert_eq!(item["decision"]["by"], "bob");
    let last = item["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["by"], "bob");
    assert_eq!(last["what"], "rejected");
    assert_eq!(last["reason"], "wrong tone");

    infra.wait_count(&decided_subject(&ticket), 1).await;
    let decided = infra.last(&decided_subject(&ticket)).await;
    assert_eq!(decided["decision"], "rejected");
    assert_eq!(decided["decided_by"], "bob");
    assert_eq!(decided["reason"], "wrong tone");
    // a rejection releases nothing
    assert_eq!(infra.count(&released_subject(&ticket)).await, 0);
}

#[tokio::test]
async fn same_request_published_twice_is_one_item() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    let ticket = unique_ticket();
    let req = reply_request(&ticket, "Hello");
    infra.publish_request(&req).await;
    infra.publish_request(&req).await;
    let mut later = req.clone();
    later.action = zengate_core::events::Action::Reply {
        ticket_id: ticket.clone(),
        body: "A different draft for the same event".into(),
        fields: Default::default(),
    };
    infra.publish_request(&later).await;
    eventually(
        "three requests consumed",
        Duration::from_secs(10),
        || async {
            let stored = svc
                .metric("zengate_approval_intake_total{outcome=\"stored\"}")
                .await;
            let dup = svc
                .metric("zengate_approval_intake_total{outcome=\"duplicate\"}")
                .await;
            (stored + dup >= 3.0).then_some(())
        },
    )
    .await;
    assert_eq!(
        svc.metric("zengate_approval_intake_total{outcome=\"stored\"}")
            .await,
        1.0
    );
    let res: Value = svc
        .get("/v1/approvals?state=pending", Some(ALICE))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = res["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["request"]["action"]["body"], "Hello");
    assert_eq!(items[0]["id"], req.approval_id.as_str());

    // a request whose id does not match its source is refused (DLQ)
    let mut forged = reply_request(&unique_ticket(), "x");
    forged.approval_id = "0".repeat(32);
    infra.publish_request(&forged).await;
    infra.wait_count("zengate.dlq.>", 1).await;
    assert!(svc.item(&forged.approval_id).await.is_none());
}

#[tokio::test]
async fn edit_then_approve_releases_the_edited_action_once() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    let ticket = unique_ticket();
    let req = reply_request(&ticket, "Hello\nWe will look into it.\nBye");
    infra.publish_request(&req).await;
    let id = req.approval_id.clone();
    svc.wait_item(&id, Some("pending")).await;
    let item = svc.item(&id).await.unwrap();
    assert!(
        item["links"]["approve"]
            .as_str()
            .unwrap()
            .contains("decision=approve")
    );
    assert!(item["expires_at"].is_string() && item["created_at"].is_string());

    let res = svc
        .post(&format!("/v1/approvals/{id}/approve"), Some(ALICE))
        .json(&json!({"body": "Hello\nWe fixed it.\nBye", "reason": "more precise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let item: Value = res.json().await.unwrap();
    assert!(
        item["state"] == "released" || item["state"] == "approved",
        "{item}"
    );
    assert_eq!(item["decision"]["by"], "alice");

    infra.wait_count(&released_subject(&ticket), 1).await;
    let released = infra.last(&released_subject(&ticket)).await;
    assert_eq!(released["approval_id"], id.as_str());
    assert_eq!(released["approved_by"], "alice");
    assert_eq!(released["action"]["type"], "reply");
    assert_eq!(released["action"]["body"], "Hello\nWe fixed it.\nBye");
    assert_eq!(released["action"]["ticket_id"], ticket.as_str());
    // Signed with the release key, and backed by the stored item exactly as
    // the executor will check it.
    let msg = infra.last_message(&released_subject(&ticket)).await;
    let event: ApprovalReleased = serde_json::from_slice(&msg.payload).unwrap();
    let signature = msg
        .headers
        .get(release::SIGNATURE_HEADER)
        .map(|v| v.as_str().to_owned());
    let keys = ReleaseKeys::single(RELEASE_KEY);
    assert_eq!(
        release::verify_signature(&keys, &event, signature.as_deref()),
        Ok(())
    );
    let mut edited = event.clone();
    edited.approval_id = "0".repeat(32);
    assert!(release::verify_signature(&keys, &edited, signature.as_deref()).is_err());
    let kv = infra
        .js
        .get_key_value(release::APPROVALS_BUCKET)
        .await
        .unwrap();
    let stored: release::ApprovalRecord =
        serde_json::from_slice(&kv.get(&id).await.unwrap().unwrap()).unwrap();
    assert_eq!(
        release::check_record(Some(&stored), &event),
        Ok(release::Permit::Execute)
    );
    let decided = infra.last(&decided_subject(&ticket)).await;
    assert_eq!(decided["decision"], "approved");
    assert_eq!(decided["reason"], "more precise");
    let edits = decided["edits"].as_str().unwrap();
    assert!(
        edits.contains("- We will look into it.") && edits.contains("+ We fixed it."),
        "{edits}"
    );

    // deciding again: 409, and still exactly one release
    for verb in ["approve", "reject"] {
        let res = svc
            .post(&format!("/v1/approvals/{id}/{verb}"), Some(BOB))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 409, "{verb}");
    }
    svc.wait_item(&id, Some("released")).await;
    assert_eq!(infra.count(&released_subject(&ticket)).await, 1);

    // the worker's outcome completes the item
    let outcome = ActionOutcome {
        v: V1,
        approval_id: id.clone(),
        account_id: "42".into(),
        ticket_id: Some(ticket.clone()),
        action_type: "reply".into(),
        applied: true,
        error: None,
        result_id: Some("991".into()),
        at: OffsetDateTime::now_utc(),
    };
    infra
        .js
        .publish(
            action_outcome_subject(true, "42", Some(&ticket)),
            serde_json::to_vec(&outcome).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let item = svc.wait_item(&id, Some("applied")).await;
    assert_eq!(item["outcome"]["result_id"], "991");
    let whats: Vec<&str> = item["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["what"].as_str().unwrap())
        .collect();
    assert_eq!(whats, ["proposed reply", "approved", "released", "applied"]);
}

#[tokio::test]
async fn racing_approvers_one_wins() {
    let infra = Infra::start().await;
    let a = Svc::start(&infra).await;
    let b = Svc::start(&infra).await;
    for round in 0..5 {
        let ticket = unique_ticket();
        let req = reply_request(&ticket, &format!("draft {round}"));
        infra.publish_request(&req).await;
        let id = req.approval_id.clone();
        a.wait_item(&id, Some("pending")).await;
        let path = format!("/v1/approvals/{id}/approve");
        let (r1, r2) = tokio::join!(
            a.post(&path, Some(ALICE)).send(),
            b.post(&path, Some(BOB)).send(),
        );
        let mut codes = [r1.unwrap().status().as_u16(), r2.unwrap().status().as_u16()];
        codes.sort_unstable();
        assert_eq!(codes, [200, 409], "round {round}");
        infra.wait_count(&released_subject(&ticket), 1).await;
        a.wait_item(&id, Some("released")).await;
        assert_eq!(infra.count(&released_subject(&ticket)).await, 1);
        assert_eq!(infra.count(&decided_subject(&ticket)).await, 1);
    }
    assert!(
        a.metric("zengate_approval_conflicts_total").await
            + b.metric("zengate_approval_conflicts_total").await
            >= 5.0
    );
}

#[tokio::test]
async fn list_filters_orders_and_pages() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let req = reply_request(&unique_ticket(), &format!("n{i}"));
        infra.publish_request(&req).await;
        svc.wait_listed(&req.approval_id, "pending").await;
        ids.push(req.approval_id.clone());
    }
    let res = svc
        .post(&format!("/v1/approvals/{}/reject", ids[0]), Some(ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    svc.wait_listed(&ids[0], "rejected").await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/approvals?state=pending&limit=4".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let v: Value = svc
            .get(&path, Some(ALICE))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for i in v["items"].as_array().unwrap() {
            assert_eq!(i["state"], "pending");
            seen.push(i["id"].as_str().unwrap().to_owned());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut expected: Vec<String> = ids[1..].to_vec();
    expected.reverse(); // newest first
    assert_eq!(seen, expected);
    assert_eq!(svc.metric("zengate_approval_pending").await, 6.0);
    let res = svc
        .get("/v1/approvals?state=bogus", Some(ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = svc
        .get(&format!("/v1/approvals/{}", "f".repeat(32)), Some(ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = svc
        .post(
            &format!("/v1/approvals/{}/approve", "f".repeat(32)),
            Some(ALICE),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// Every route the router serves, as (method, OpenAPI path).
const SERVED: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/assets/console.js"),
    ("get", "/assets/console.css"),
    ("get", "/assets/page.css"),
    ("get", "/v1/approvals"),
    ("get", "/v1/approvals/{id}"),
    ("post", "/v1/approvals/{id}/approve"),
    ("post", "/v1/approvals/{id}/reject"),
    ("get", "/v1/events"),
    ("post", "/v1/events/ticket"),
    ("post", "/v1/ticket-requests"),
    ("get", "/v1/approvals/history"),
    ("post", "/v1/approvals/{id}/retry"),
    ("get", "/webhook/resume/{id}"),
    ("post", "/webhook/resume/{id}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

#[tokio::test]
async fn openapi_documents_every_route() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    let res = svc.get("/openapi.json", None).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["title"], "zengate approval");

    // Documented operations are exactly the served routes (the document
    // itself excepted), and each served route answers (no 404/405 from the
    // router) even without credentials.
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> = SERVED
        .iter()
        .filter(|(_, p)| *p != "/openapi.json")
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);
    for (method, path) in SERVED {
        let url = path.replace("{id}", "no-such-item");
        let req = if *method == "get" {
            svc.get(&url, None)
        } else {
            svc.post(&url, None)
        };
        let status = req.send().await.unwrap().status();
        assert!(
            status != 404 && status != 405,
            "{method} {path} not served: {status}"
        );
    }

    // Statuses each handler can answer are described.
    let statuses = |method: &str, path: &str| -> Vec<String> {
        let mut s: Vec<String> = doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has no responses"))
            .keys()
            .cloned()
            .collect();
        s.sort();
        s
    };
    assert_eq!(
        statuses("get", "/v1/approvals"),
        ["200", "400", "401", "429"]
    );
    assert_eq!(
        statuses("get", "/v1/approvals/{id}"),
        ["200", "401", "404", "429", "503"]
    );
    for op in ["approve", "reject"] {
        assert_eq!(
            statuses("post", &format!("/v1/approvals/{{id}}/{op}")),
            ["200", "400", "401", "404", "409", "413", "429", "503"]
        );
    }
    assert_eq!(
        statuses("get", "/v1/approvals/history"),
        ["200", "400", "401", "429", "503"]
    );
    assert_eq!(
        statuses("post", "/v1/approvals/{id}/retry"),
        ["200", "401", "404", "409", "429", "503"]
    );
    assert_eq!(
        statuses("post", "/v1/events/ticket"),
        ["200", "401", "429", "503"]
    );
    assert_eq!(statuses("get", "/v1/events"), ["200", "401", "429", "503"]);
    assert_eq!(
        statuses("post", "/v1/ticket-requests"),
        ["202", "400", "401", "409", "413", "429", "503"]
    );
    for method in ["get", "post"] {
        assert_eq!(
            statuses(method, "/webhook/resume/{id}"),
            ["200", "401", "404", "409", "410", "503"]
        );
    }

    // Credentials: approver bearer on the /v1/approvals routes and for stream
    // tickets, a single-use ticket on the event stream, a visitor JWT on
    // ticket requests, none on the signed links.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["approver_token"]["scheme"], "bearer");
    assert_eq!(schemes["stream_ticket"]["in"], "query");
    assert_eq!(schemes["stream_ticket"]["name"], "ticket");
    assert!(schemes.get("approver_query_token").is_none());
    assert_eq!(schemes["visitor_jwt"]["bearerFormat"], "JWT");
    let security = |method: &str, path: &str| doc["paths"][path][method]["security"].clone();
    assert_eq!(
        security("post", "/v1/approvals/{id}/approve"),
        json!([{"approver_token": []}])
    );
    assert_eq!(
        security("get", "/v1/events"),
        json!([{"stream_ticket": []}])
    );
    assert_eq!(
        security("post", "/v1/events/ticket"),
        json!([{"approver_token": []}])
    );
    assert_eq!(
        security("post", "/v1/ticket-requests"),
        json!([{"visitor_jwt": []}])
    );
    assert!(security("post", "/webhook/resume/{id}").is_null());

    // The item schema names its fields and states.
    let schemas = &doc["components"]["schemas"];
    for field in ["id", "state", "request", "history", "links", "expires_at"] {
        assert!(
            schemas["Item"]["properties"].get(field).is_some(),
            "Item.{field}"
        );
    }
    assert_eq!(schemas["State"]["enum"].as_array().unwrap().len(), 8);
    svc.stop().await;
}

/// An approved item written into the bucket by anyone but this service (say,
/// through a stream that republishes onto `$KV.approvals.>`) carries no valid
/// seal: the reconciler never releases it, and nothing about it is published.
#[tokio::test]
async fn an_item_approved_outside_the_service_is_never_released() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    let ticket = unique_ticket();
    let req = reply_request(&ticket, "Drafted reply");
    infra.publish_request(&req).await;
    let id = req.approval_id.clone();
    svc.wait_item(&id, Some("pending")).await;

    let kv = infra
        .js
        .get_key_value(release::APPROVALS_BUCKET)
        .await
        .unwrap();
    let mut item: Value = serde_json::from_slice(&kv.get(&id).await.unwrap().unwrap()).unwrap();
    let at = "2020-01-01T00:00:00Z";
    item["state"] = json!("approved");
    item["final_action"] = json!({"type": "reply", "ticket_id": ticket, "body": "forged reply"});
    item["decision"] =
        json!({"decision": "approved", "by": "mallory", "at": at, "published": false});
    item["release_seal"] = json!("v1=AAAA");
    kv.put(&id, serde_json::to_vec(&item).unwrap().into())
        .await
        .unwrap();

    eventually(
        "the reconciler to see the unsealed item",
        Duration::from_secs(10),
        || async { (svc.metric("zengate_approval_unsealed_total").await >= 1.0).then_some(()) },
    )
    .await;
    assert_eq!(infra.count(&released_subject(&ticket)).await, 0);
    assert_eq!(infra.count(&decided_subject(&ticket)).await, 0);
    svc.stop().await;
}

#[tokio::test]
async fn only_failed_writes_are_retried_and_each_retry_records_its_outcome() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    let ticket = unique_ticket();
    let req = reply_request(&ticket, "Retry me.");
    let id = req.approval_id.clone();
    infra.publish_request(&req).await;
    svc.wait_item(&id, Some("pending")).await;

    let retry = || svc.post(&format!("/v1/approvals/{id}/retry"), Some(ALICE));
    // The error code of a retry that must be refused with 409.
    let refused = || async {
        let res = retry().send().await.unwrap();
        assert_eq!(res.status(), 409);
        res.json::<Value>().await.unwrap()["error"].clone()
    };
    assert_eq!(refused().await, "not_failed");
    let anon = svc
        .post(&format!("/v1/approvals/{id}/retry"), None)
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    assert_eq!(svc.act(&"0".repeat(32), "retry", ALICE).await, 404);

    assert_eq!(svc.act(&id, "approve", ALICE).await, 200);
    svc.wait_item(&id, Some("released")).await;
    // Released but not failed: still nothing to retry.
    assert_eq!(refused().await, "not_failed");
    infra
        .publish_outcome(&id, &ticket, Some("422 comment body invalid"))
        .await;
    svc.wait_item(&id, Some("failed")).await;

    // First retry: re-released once under its own id, then fails again.
    let item: Value = retry().send().await.unwrap().json().await.unwrap();
    assert_eq!(item["retry"]["attempt"], 1);
    infra.wait_count(&released_subject(&ticket), 2).await;
    let signed = |m: &async_nats::jetstream::message::StreamMessage| {
        m.headers
            .get(release::SIGNATURE_HEADER)
            .map(|v| v.as_str().to_owned())
    };
    let again = infra.last_message(&released_subject(&ticket)).await;
    let event: ApprovalReleased = serde_json::from_slice(&again.payload).unwrap();
    assert_eq!(
        release::verify_signature(
            &ReleaseKeys::single(RELEASE_KEY),
            &event,
            signed(&again).as_deref()
        ),
        Ok(())
    );
    assert_eq!(refused().await, "retry_in_flight");
    infra
        .publish_outcome(&id, &ticket, Some("422 still invalid"))
        .await;
    let item = eventually(
        "the retry's failure is recorded",
        Duration::from_secs(10),
        || async {
            let item = svc.item(&id).await?;
            (item["retry"]["settled"] == true).then_some(item)
        },
    )
    .await;
    assert_eq!(item["state"], "failed");
    assert_eq!(item["outcome"]["error"], "422 still invalid");
    let whats: Vec<&str> = item["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        whats,
        [
            "proposed reply",
            "approved",
            "released",
            "failed",
            "retry requested",
            "failed"
        ]
    );

    // Second retry: a new message id, then the write lands.
    let item: Value = retry().send().await.unwrap().json().await.unwrap();
    assert_eq!(item["retry"]["attempt"], 2);
    infra.wait_count(&released_subject(&ticket), 3).await;
    let last = infra.last_message(&released_subject(&ticket)).await;
    assert_eq!(
        last.headers.get("Nats-Msg-Id").unwrap().as_str(),
        format!("{id}:released:retry2")
    );
    infra.publish_outcome(&id, &ticket, None).await;
    svc.wait_item(&id, Some("applied")).await;
    assert_eq!(refused().await, "not_failed");
    assert_eq!(infra.count(&released_subject(&ticket)).await, 3);
}
