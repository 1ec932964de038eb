//! Webhook deliveries: signed exactly like Zendesk's, parseable by zengate's
//! envelope, sent for end-user and API activity, retried like Zendesk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::*;
use zengate_core::Envelope;
use zengate_core::Secret;
use zengate_core::signature::{Signature, verify};
use zengate_testkit::eventually;

/// Verifies a delivery with the signing secret and parses the envelope.
fn verified(r: &Received) -> Envelope {
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("user-agent"), "Zendesk Webhook");
    assert_eq!(r.header("x-zendesk-account-id"), ACCOUNT.to_string());
    assert_eq!(r.header("x-zendesk-webhook-id"), WEBHOOK_ID);
    assert!(!r.header("x-zendesk-webhook-invocation-id").is_empty());
    let ts = r.header("x-zendesk-webhook-signature-timestamp");
    assert!(
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok()
            && ts.ends_with('Z'),
        "{ts}"
    );
    let sig = Signature::parse(r.header("x-zendesk-webhook-signature").as_bytes()).unwrap();
    verify(&[Secret::new(SIGNING_SECRET)], ts.as_bytes(), &r.body, &sig)
        .expect("signature verifies with the secret");
    assert!(
        verify(
            &[Secret::new("another-secret")],
            ts.as_bytes(),
            &r.body,
            &sig
        )
        .is_err(),
        "a wrong secret must not verify"
    );
    Envelope::parse(&r.body).expect("a valid Zendesk envelope")
}

#[tokio::test]
async fn end_user_and_api_activity_is_delivered_signed() {
    let mut rx = receiver(vec![]).await;
    let sim = sim(Some(rx.target())).await;

    let ticket = sim.create_enduser_ticket("Help", "My order is late", "Ada", "ada@example.test");
    let created = rx.next().await;
    let env = verified(&created);
    assert_eq!(env.head.ticket_id(), Some(ticket.id));
    assert!(ticket.id > (1u64 << 53));
    let body = created.json();
    assert_eq!(body["type"], "zen:event-type:ticket.created");
    assert_eq!(body["subject"], format!("zen:ticket:{}", ticket.id));
    assert_eq!(body["account_id"], ACCOUNT);
    assert_eq!(body["detail"]["id"], ticket.id.to_string());
    assert_eq!(body["detail"]["status"], "NEW");
    assert_eq!(body["zendesk_event_version"], "2022-11-06");

    let comment = sim.add_enduser_comment(ticket.id, "Any news?").unwrap();
    let added = rx.next().await;
    verified(&added);
    let body = added.json();
    assert_eq!(body["type"], "zen:event-type:ticket.comment_added");
    let c = &body["event"]["comment"];
    assert_eq!(c["id"], comment.id.to_string());
    assert_eq!(c["body"], "Any news?");
    assert_eq!(c["is_public"], true);
    assert_eq!(c["author"]["is_staff"], false);
    assert_eq!(c["author"]["id"], ticket.requester_id.to_string());

    // An agent comment written through the API is reported as staff, by the
    // API user: that is what lets a consumer recognise its own writes.
    let http = reqwest::Client::new();
    let resp = http
        .put(format!(
            "{}/api/v2/tickets/{}.json",
            sim.base_url(),
            ticket.id
        ))
        .header("authorization", basic(EMAIL, TOKEN))
        .json(&serde_json::json!({"ticket": {"comment": {"body": "On its way", "public": true}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let agent = rx.next().await;
    verified(&agent);
    let c = &agent.json()["event"]["comment"];
    assert_eq!(c["author"]["is_staff"], true);
    assert_eq!(c["author"]["id"], sim.api_user().id.to_string());

    // Different deliveries carry different event ids.
    let ids: Vec<String> = [&created, &added, &agent]
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2]);
    eventually(
        "three deliveries recorded",
        Duration::from_secs(5),
        || async {
            let d = sim.deliveries();
            (d.len() == 3 && d.iter().all(|d| d.delivered && d.attempts == 1)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn deliveries_are_retried_like_zendesk() {
    // 503 with a short Retry-After is retried; then 200.
    let mut rx = receiver(vec![(503, Some(0)), (429, Some(0))]).await;
    let sim = sim(Some(rx.target())).await;
    sim.create_enduser_ticket("Help", "body", "Ada", "ada@example.test");
    let first = rx.next().await;
    let second = rx.next().await;
    let third = rx.next().await;
    assert_eq!(first.body, third.body, "the same signed payload is resent");
    assert_eq!(second.body, third.body);
    assert_ne!(
        first.header("x-zendesk-webhook-invocation-id"),
        third.header("x-zendesk-webhook-invocation-id"),
        "each attempt has its own invocation id"
    );
    verified(&third);
    eventually(
        "delivered after 3 attempts",
        Duration::from_secs(5),
        || async {
            let d = sim.deliveries();
            (d.len() == 1 && d[0].delivered && d[0].attempts == 3).then_some(())
        },
    )
    .await;

    // A Retry-After of 60 s or more is not retried, nor is a 500.
    let mut rx = receiver(vec![(503, Some(60)), (500, None)]).await;
    sim.set_webhook(Some(rx.target()));
    let t = sim.create_enduser_ticket("Again", "body", "Ada", "ada@example.test");
    rx.next().await;
    sim.add_enduser_comment(t.id, "more").unwrap();
    let second = rx.next().await;
    assert_eq!(second.json()["type"], "zen:event-type:ticket.comment_added");
    eventually("two failed deliveries", Duration::from_secs(5), || async {
        let d = sim.deliveries();
        (d.len() == 3
            && d[1..]
                .iter()
                .all(|d| !d.delivered && d.attempts == 1 && d.status.is_some()))
        .then_some(())
    })
    .await;
    assert!(
        rx.rx.try_recv().is_err(),
        "no retry after a refusal Zendesk gives up on"
    );
}

#[tokio::test]
async fn api_activity_does_not_block_on_a_slow_receiver() {
    // A receiver that does not exist: delivery fails and retries in the
    // background while the API answers at once.
    let port = zengate_testkit::free_port();
    let target = zendesk_sim::WebhookTarget {
        url: format!("http://127.0.0.1:{port}/hook"),
        secret: Secret::new(SIGNING_SECRET),
        webhook_id: WEBHOOK_ID.into(),
    };
    let sim = sim(Some(target)).await;
    let started = std::time::Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2/tickets.json", sim.base_url()))
        .header("authorization", basic(EMAIL, TOKEN))
        .json(&serde_json::json!({"ticket": {"subject": "s", "comment": {"body": "b", "public": true}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(started.elapsed() < Duration::from_secs(2));
    eventually(
        "retrying the unreachable receiver",
        Duration::from_secs(10),
        || async {
            let d = sim.deliveries();
            (d.len() == 1 && d[0].attempts >= 2 && !d[0].delivered).then_some(())
        },
    )
    .await;
}
