//! Issuance audits on the ZENGATE stream, and their buffering while NATS is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::TestApp;
use zengate_core::events::{JwtIssued, short_hash};
use zengate_testkit::eventually;

#[tokio::test]
async fn every_issuance_is_audited_with_a_short_hash_only() {
    let app = TestApp::start_with(support::with_messaging).await;
    let token = app
        .add_user("Audit", "audit@example.com", Some("ext-audit"))
        .await;
    let jwts = [
        TestApp::jwt_of(app.widget(&token).await).await,
        TestApp::jwt_of(app.chat(&token).await).await,
        TestApp::jwt_of(
            app.http
                .post(app.url(&format!("/webhook/messaging-jwt?user_token={token}")))
                .send()
                .await
                .unwrap(),
        )
        .await,
    ];
    let audits = eventually("three audits", Duration::from_secs(10), || async {
        let a = app.audits().await;
        (a.len() == 3).then_some(a)
    })
    .await;
    let subjects: Vec<&str> = audits.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "zengate.auth.jwt_issued.widget",
            "zengate.auth.jwt_issued.chat",
            "zengate.auth.jwt_issued.messaging"
        ]
    );
    for ((_, body), jwt) in audits.iter().zip(&jwts) {
        let raw = body.to_string();
        assert!(!raw.contains(&token), "user_token in audit");
        assert!(!raw.contains(jwt.as_str()), "jwt in audit");
        let ev: JwtIssued = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(ev.v, 1);
        assert_eq!(ev.user_token_hash, short_hash(&token));
        assert_eq!(ev.client_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(ev.external_id.as_deref(), Some("ext-audit"));
        assert_eq!(ev.exp - ev.iat, 300);
        if ev.kind == "messaging" {
            assert_eq!(ev.kid.as_deref(), Some(support::MSG_KID));
        } else {
            let (_, claims) = support::decode(jwt, support::SECRET).unwrap();
            assert_eq!(claims["jti"].as_str().unwrap(), ev.jti);
            assert_eq!(claims["iat"].as_i64().unwrap(), ev.iat);
            assert!(ev.kid.is_none());
        }
    }
}

#[tokio::test]
async fn nats_outage_buffers_audits_without_blocking_issuance() {
    let mut app = TestApp::start().await;
    let token = app.add_user("Outage", "outage@example.com", None).await;
    TestApp::jwt_of(app.widget(&token).await).await;
    eventually("first audit", Duration::from_secs(10), || async {
        (app.audit_count().await == 1).then_some(())
    })
    .await;

    app.infra.nats.stop().await;
    let mut jtis = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let jwt = TestApp::jwt_of(app.chat(&token).await).await;
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "issuance must not wait for NATS"
        );
        let (_, claims) = support::decode(&jwt, support::SECRET).unwrap();
        jtis.push(claims["jti"].as_str().unwrap().to_owned());
    }
    assert!(app.metric("zengate_auth_audit_buffered").await >= 1.0);

    app.infra.nats.restart().await;
    let audits = eventually(
        "buffered audits published",
        Duration::from_secs(20),
        || async {
            let a = app.audits().await;
            (a.len() == 21).then_some(a)
        },
    )
    .await;
    let published: Vec<String> = audits
        .iter()
        .map(|(_, v): &(String, Value)| v["jti"].as_str().unwrap().to_owned())
        .collect();
    for jti in &jtis {
        assert!(published.contains(jti), "audit for {jti} missing");
    }
    eventually("buffer drained", Duration::from_secs(5), || async {
        (app.metric("zengate_auth_audit_buffered").await == 0.0).then_some(())
    })
    .await;
    assert_eq!(app.metric("zengate_auth_audit_dropped_total").await, 0.0);
}

#[tokio::test]
async fn full_buffer_drops_are_counted() {
    let mut app = TestApp::start_with(|c| c.audit_buffer = 3).await;
    let token = app.add_user("Full", "full@example.com", None).await;
    app.infra.nats.stop().await;
    for _ in 0..6 {
        assert_eq!(app.widget(&token).await.status(), 200);
    }
    assert_eq!(app.metric("zengate_auth_audit_dropped_total").await, 3.0);
    assert_eq!(app.metric("zengate_auth_audit_buffered").await, 3.0);
    app.infra.nats.restart().await;
    eventually(
        "the three kept audits arrive",
        Duration::from_secs(20),
        || async { (app.audit_count().await == 3).then_some(()) },
    )
    .await;
}
