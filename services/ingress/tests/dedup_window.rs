//! Events young enough for the JetStream duplicate window are deduplicated
//! by JetStream alone: Redis is written but not asked. Everything else is
//! looked up in Redis as before. Redis's own command counters are the proof.

mod support;

use std::time::Duration;

use support::{LONG_AGO, TestApp, ticket_event_at};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn at(offset: time::Duration) -> String {
    match (OffsetDateTime::now_utc() + offset).format(&Rfc3339) {
        Ok(t) => t,
        Err(e) => panic!("cannot format a time: {e}"),
    }
}

fn now() -> String {
    at(time::Duration::ZERO)
}

#[tokio::test]
async fn fresh_events_are_not_looked_up_and_their_copies_are_caught_by_jetstream() {
    let app = TestApp::start().await;
    let body = ticket_event_at("e-fresh", 5, &now());
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    // Zendesk's retry: same signed body.
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);

    assert_eq!(app.stream_messages().await, 1);
    assert_eq!(
        app.metric("zengate_ingress_dedup_hits_total{source=\"jetstream\"}")
            .await,
        1.0
    );
    assert_eq!(
        app.metric("zengate_ingress_redis_lookups_skipped_total")
            .await,
        2.0
    );
    assert_eq!(app.redis_calls("MGET").await, 0, "redis was asked");
    // Written all the same, for copies that come after the window.
    app.wait_remembered("42:e-fresh").await;

    // An old event is looked up.
    let old = ticket_event_at("e-old", 6, LONG_AGO);
    assert_eq!(app.signed(&old).send().await.unwrap().status(), 200);
    assert_eq!(app.redis_calls("MGET").await, 1);
    assert_eq!(
        app.metric("zengate_ingress_redis_lookups_skipped_total")
            .await,
        2.0
    );
}

#[tokio::test]
async fn a_window_no_longer_than_the_skew_looks_every_event_up() {
    let app = TestApp::start_with(|c| {
        c.stream.duplicate_window = Duration::from_secs(60);
        c.dedup_clock_skew = Duration::from_secs(60);
    })
    .await;
    let body = ticket_event_at("e-short", 5, &now());
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    assert_eq!(app.redis_calls("MGET").await, 1);
    assert_eq!(
        app.metric("zengate_ingress_redis_lookups_skipped_total")
            .await,
        0.0
    );
}

#[tokio::test]
async fn events_dated_beyond_the_skew_are_looked_up() {
    let app = TestApp::start().await;
    // Default skew 60 s, window 10 min.
    let ahead = ticket_event_at("e-ahead", 5, &at(time::Duration::minutes(5)));
    let past = ticket_event_at(
        "e-past",
        6,
        &at(time::Duration::minutes(-9) - time::Duration::seconds(30)),
    );
    let young = ticket_event_at("e-young", 7, &at(time::Duration::minutes(-8)));
    for body in [&ahead, &past, &young] {
        assert_eq!(app.signed(body).send().await.unwrap().status(), 200);
    }
    assert_eq!(app.redis_calls("MGET").await, 2);
    assert_eq!(
        app.metric("zengate_ingress_redis_lookups_skipped_total")
            .await,
        1.0
    );
}
