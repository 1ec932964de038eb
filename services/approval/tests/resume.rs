//! Signed resume links: bound to item and decision, single use, expiring.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use approval::links;
use serde_json::Value;
use support::{
    Infra, RESUME_SECRET, Svc, decided_subject, released_subject, reply_request, unique_ticket,
};
use zengate_core::Secret;

/// The path and query of an absolute link stored in an item.
fn path_of(link: &str) -> String {
    let i = link.find("/webhook/").unwrap();
    link[i..].to_owned()
}

fn replace_param(path: &str, name: &str, value: &str) -> String {
    let (base, query) = path.split_once('?').unwrap();
    let q: Vec<String> = query
        .split('&')
        .map(|kv| {
            let (k, _) = kv.split_once('=').unwrap();
            if k == name {
                format!("{k}={value}")
            } else {
                kv.to_owned()
            }
        })
        .collect();
    format!("{base}?{}", q.join("&"))
}

async fn held(infra: &Infra, svc: &Svc) -> (String, String, Value) {
    let ticket = unique_ticket();
    let req = reply_request(&ticket, "Resume me");
    infra.publish_request(&req).await;
    let item = svc.wait_item(&req.approval_id, Some("pending")).await;
    (req.approval_id, ticket, item)
}

#[tokio::test]
async fn tampered_wrong_decision_reused_unknown_and_expired() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    let (id, ticket, item) = held(&infra, &svc).await;
    let approve = path_of(item["links"]["approve"].as_str().unwrap());
    let reject = path_of(item["links"]["reject"].as_str().unwrap());

    // tampered signature, missing signature, swapped decision, stretched expiry
    let sig = approve.split("signature=").nth(1).unwrap().to_owned();
    let mut flipped = sig.clone().into_bytes();
    flipped[0] = if flipped[0] == b'a' { b'b' } else { b'a' };
    let tampered = [
        replace_param(
            &approve,
            "signature",
            std::str::from_utf8(&flipped).unwrap(),
        ),
        approve.split("&signature=").next().unwrap().to_owned(),
        replace_param(&approve, "decision", "reject"),
        replace_param(&reject, "signature", &sig),
        replace_param(&approve, "expires", "99999999999"),
        replace_param(&approve, "signature", "not-hex"),
    ];
    for path in &tampered {
        let res = svc.post(path, None).send().await.unwrap();
        assert_eq!(res.status(), 401, "{path}");
        let res = svc.get(path, None).send().await.unwrap();
        assert_eq!(res.status(), 401, "GET {path}");
    }
    // a link for one item does not open another
    let (other, _, _) = held(&infra, &svc).await;
    let res = svc
        .post(&approve.replace(&id, &other), None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(svc.item(&id).await.unwrap()["state"], "pending");

    // GET shows a confirmation page and decides nothing
    let res = svc
        .get(&approve, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Resume me") && html.contains("method=\"post\""),
        "{html}"
    );
    assert_eq!(svc.item(&id).await.unwrap()["state"], "pending");

    // the real link works once
    let res = svc.post(&approve, None).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["state"] == "released" || body["state"] == "approved");
    infra.wait_count(&released_subject(&ticket), 1).await;
    let decided = infra.last(&decided_subject(&ticket)).await;
    assert_eq!(decided["decided_by"], "resume-link");

    // reuse, and the other decision's link, answer 409
    assert_eq!(svc.post(&approve, None).send().await.unwrap().status(), 409);
    assert_eq!(svc.post(&reject, None).send().await.unwrap().status(), 409);
    assert_eq!(svc.get(&reject, None).send().await.unwrap().status(), 409);
    assert_eq!(infra.count(&released_subject(&ticket)).await, 1);

    // a correctly signed link for an unknown item
    let secret = Secret::new(RESUME_SECRET);
    let unknown = "a".repeat(32);
    let far = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let link = path_of(&links::url(
        "http://x",
        &secret,
        &unknown,
        links::APPROVE,
        far,
    ));
    assert_eq!(svc.post(&link, None).send().await.unwrap().status(), 404);

    // an expired (but correctly signed) link
    let past = time::OffsetDateTime::now_utc().unix_timestamp() - 1;
    let link = path_of(&links::url(
        "http://x",
        &secret,
        &other,
        links::REJECT,
        past,
    ));
    assert_eq!(svc.post(&link, None).send().await.unwrap().status(), 410);
    assert_eq!(svc.item(&other).await.unwrap()["state"], "pending");

    // reject link on the other item: a browser gets a page
    let other_item = svc.item(&other).await.unwrap();
    let res = svc
        .post(
            &path_of(other_item["links"]["reject"].as_str().unwrap()),
            None,
        )
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("rejected"));
    svc.wait_item(&other, Some("rejected")).await;
}

#[tokio::test]
async fn links_are_absolute_and_expire_with_the_item() {
    let infra = Infra::start().await;
    let svc = Svc::start_with(&infra, |c| {
        c.public_url = "https://approvals.example.test".into();
        c.timeout = Duration::from_secs(600);
    })
    .await;
    let (id, _, item) = held(&infra, &svc).await;
    let link = item["links"]["approve"].as_str().unwrap();
    assert!(link.starts_with(&format!(
        "https://approvals.example.test/webhook/resume/{id}?decision=approve&expires="
    )));
    let expires: i64 = link
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let expires_at = time::OffsetDateTime::parse(
        item["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires, expires_at.unix_timestamp());
}
