//! Redis outages cost the intake nothing but the long-horizon dedup: whether
//! Redis refuses connections, accepts them and never answers, or answers too
//! slowly, every delivery is answered `200`, copies are still published once
//! (JetStream's duplicate window), and the breaker says it is open. When Redis
//! answers again the breaker closes and Redis dedup resumes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures::future::join_all;
use support::redis_faults::{self, Fault};
use support::{TestApp, ticket_event};

const OPEN: &str = "zengate_ingress_redis_breaker_open";
const TRIPS: &str = "zengate_ingress_redis_breaker_trips_total";
const DEGRADED: &str = "zengate_ingress_redis_degraded_total";

/// 20 unique events, each delivered twice at once and once more afterwards:
/// every answer is `200` and the stream holds each event once.
async fn intake_stays_exact(app: &TestApp, tag: &str) {
    let bodies: Vec<Vec<u8>> = (0..20)
        .map(|i| ticket_event(42, &format!("{tag}-{i}"), 100 + i, "created"))
        .collect();
    let copies = bodies
        .iter()
        .flat_map(|b| [app.signed(b).send(), app.signed(b).send()]);
    for r in join_all(copies).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    for b in &bodies {
        assert_eq!(app.signed(b).send().await.unwrap().status(), 200);
    }
    assert_eq!(app.stream_messages().await, 20);
}

async fn ready(app: &TestApp) -> u16 {
    app.http
        .get(format!("{}/readyz", app.base()))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn refused_redis_skips_redis_and_keeps_intake_exact() {
    let url = redis_faults::refused_url();
    let app = TestApp::start_with(|c| c.redis = url.as_str().into()).await;
    app.wait_metric(OPEN, 1.0).await;
    intake_stays_exact(&app, "e-refused").await;
    assert_eq!(app.metric(DEGRADED).await, 60.0);
    assert_eq!(ready(&app).await, 200, "redis is optional for readiness");
}

#[tokio::test]
async fn black_holed_redis_skips_redis_and_keeps_intake_exact() {
    let hole = Fault::black_hole().await;
    let url = hole.url();
    let app = TestApp::start_with(|c| c.redis = url.as_str().into()).await;
    app.wait_metric(OPEN, 1.0).await;
    intake_stays_exact(&app, "e-hole").await;
    assert_eq!(app.metric(DEGRADED).await, 60.0);
    assert_eq!(ready(&app).await, 200);
}

#[tokio::test]
async fn slow_redis_opens_the_breaker_and_recovers_when_fast_again() {
    let (app, proxy) = TestApp::start_behind_slow_proxy(Duration::from_millis(500)).await;
    app.wait_metric(OPEN, 1.0).await;
    intake_stays_exact(&app, "e-slow").await;
    assert!(
        !app.remembered("42:e-slow-0").await,
        "nothing reached redis"
    );

    proxy.set_delay(Duration::ZERO);
    app.wait_metric(OPEN, 0.0).await;
    let body = ticket_event(42, "e-fast-again", 7, "created");
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    app.wait_remembered("42:e-fast-again").await;
    // Ids acknowledged during the outage are recorded once Redis is back.
    app.wait_remembered("42:e-slow-19").await;
    assert_eq!(app.stream_messages().await, 21);
}

#[tokio::test]
async fn redis_lost_mid_traffic_trips_the_breaker_and_recovery_resumes_redis_dedup() {
    // A 1 s JetStream window: after it, only Redis catches a redelivery.
    let mut app = TestApp::start_with(|c| c.stream.duplicate_window = Duration::from_secs(1)).await;
    assert_eq!(app.metric(OPEN).await, 0.0);
    let first = ticket_event(42, "e-before", 5, "created");
    assert_eq!(app.signed(&first).send().await.unwrap().status(), 200);
    app.wait_remembered("42:e-before").await;

    app.infra.redis.stop().await;
    let during = ticket_event(42, "e-during", 5, "comment_added");
    for _ in 0..3 {
        assert_eq!(app.signed(&during).send().await.unwrap().status(), 200);
    }
    app.wait_metric(OPEN, 1.0).await;
    assert_eq!(app.metric(TRIPS).await, 1.0);
    assert_eq!(app.stream_messages().await, 2);

    // Redis comes back empty: the breaker closes, and the id of the event
    // acknowledged during the outage is written from the backlog.
    app.infra.redis.restart().await;
    app.wait_metric(OPEN, 0.0).await;
    app.wait_remembered("42:e-during").await;
    // Past the JetStream window, a redelivery is caught by Redis again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let res = app
        .signed_at(&during, "2030-01-01T00:00:00Z")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.stream_messages().await, 2);
    assert_eq!(
        app.metric("zengate_ingress_dedup_hits_total{source=\"redis\"}")
            .await,
        1.0
    );
}
