//! Ingress behaviour against a real NATS JetStream and a real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures::future::join_all;
use support::{TestApp, event, ticket_event, ticket_event_at};
use zengate_core::Secret;
use zengate_testkit::eventually;

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let app = TestApp::start().await;
    let res = app.http.get(app.url()).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    let res = app.http.put(app.url()).send().await.unwrap();
    assert_eq!(res.status(), 405);
}

#[tokio::test]
async fn media_type_must_be_json() {
    let app = TestApp::start().await;
    let body = ticket_event(42, "e-media", 5, "created");
    for bad in [
        None,
        Some("text/plain"),
        Some("application/jsonx"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let res = app
            .signed_without(&body, "content-type", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 415, "{bad:?}");
    }
    // two media types are ambiguous
    let res = app
        .signed(&body)
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let res = app
        .signed_without(
            &body,
            "content-type",
            Some("APPLICATION/Json ; charset=UTF-8"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.stream_messages().await, 1);
}

#[tokio::test]
async fn signature_checks() {
    let app = TestApp::start().await;
    let body = ticket_event(42, "e-sig", 5, "created");
    // missing
    let res = app
        .delivery(&body, None, "2025-01-01T00:00:00Z")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // wrong secret
    let bad = zengate_core::signature::sign(&Secret::new("wrong"), "2025-01-01T00:00:00Z", &body);
    let res = app
        .delivery(&body, Some(&bad), "2025-01-01T00:00:00Z")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // not 44 chars / url-safe alphabet
    let good = app.sign("2025-01-01T00:00:00Z", &body);
    let res = app
        .delivery(
            &body,
            Some(good.trim_end_matches('=')),
            "2025-01-01T00:00:00Z",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let urlsafe = format!("{}-", &good[..42]);
    let res = app
        .delivery(&body, Some(&format!("{urlsafe}=")), "2025-01-01T00:00:00Z")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // signed over body-then-timestamp (the old documentation's order)
    let mut swapped = body.clone();
    swapped.extend_from_slice(b"2025-01-01T00:00:00Z");
    let wrong_order = zengate_core::signature::sign(&Secret::new(support::SECRET), "", &swapped);
    let res = app
        .delivery(&body, Some(&wrong_order), "2025-01-01T00:00:00Z")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // duplicated header, both valid
    let res = app
        .delivery(&body, Some(&good), "2025-01-01T00:00:00Z")
        .header("x-zendesk-webhook-signature", good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // a different timestamp than the one signed
    let res = app
        .delivery(&body, Some(&good), "2025-01-01T00:00:01Z")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let err: serde_json::Value = app
        .delivery(&body, None, "t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(err["error"], "bad_signature");
    assert_eq!(app.stream_messages().await, 0);
    // finally the right one passes
    let res = app
        .delivery(&body, Some(&good), "2025-01-01T00:00:00Z")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn rotation_any_configured_secret_verifies() {
    let app = TestApp::start_with(|c| {
        c.secrets = vec![Secret::new("old-secret"), Secret::new(support::SECRET)];
    })
    .await;
    let body = ticket_event(42, "e-rot-1", 5, "created");
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    let body2 = ticket_event(42, "e-rot-2", 5, "created");
    let old = zengate_core::signature::sign(&Secret::new("old-secret"), "ts", &body2);
    let res = app.delivery(&body2, Some(&old), "ts").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.stream_messages().await, 2);
}

#[tokio::test]
async fn zendesk_test_secret_only_when_enabled() {
    let body = ticket_event(42, "e-test-secret", 5, "created");
    let test_sig = zengate_core::signature::sign(
        &Secret::new(zengate_core::signature::ZENDESK_TEST_SIGNING_SECRET),
        "ts",
        &body,
    );
    let app = TestApp::start().await;
    let res = app
        .delivery(&body, Some(&test_sig), "ts")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let env = zengate_runtime::Env::from_pairs([
        ("ZENDESK_WEBHOOK_SIGNING_SECRET", support::SECRET),
        ("ZENDESK_ACCOUNT_ID", "42"),
        ("ZENDESK_ACCEPT_TEST_SIGNATURES", "true"),
    ]);
    let secrets = ingress::IngressConfig::from_env(&env).unwrap().secrets;
    let app = TestApp::start_with(move |c| c.secrets = secrets.clone()).await;
    let res = app
        .delivery(&body, Some(&test_sig), "ts")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn routing_headers_are_required() {
    let app = TestApp::start().await;
    let body = ticket_event(42, "e-hdr", 5, "created");
    for name in [
        "x-zendesk-account-id",
        "x-zendesk-webhook-id",
        "x-zendesk-webhook-invocation-id",
        "x-zendesk-webhook-signature-timestamp",
    ] {
        let res = app.signed_without(&body, name, None).send().await.unwrap();
        assert_eq!(res.status(), 400, "missing {name}");
        let res = app
            .signed_without(&body, name, Some(""))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "empty {name}");
        let err: serde_json::Value = app
            .signed_without(&body, name, None)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(err["message"].as_str().unwrap().contains(name), "{err}");
    }
    for bad in ["0", "-42", "42a", "042", "4 2"] {
        let res = app
            .signed_without(&body, "x-zendesk-account-id", Some(bad))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "account {bad:?}");
    }
    assert_eq!(app.stream_messages().await, 0);
}

#[tokio::test]
async fn body_is_validated_after_verification() {
    let app = TestApp::start().await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"\xff\xfe not utf8".to_vec(), "not_utf8"),
        (b"{not json".to_vec(), "bad_json"),
        (br#"{"account_id":42,"account_id":43}"#.to_vec(), "bad_json"),
        (br#"{"account_id":42}"#.to_vec(), "bad_envelope"),
        (
            br#"{"account_id":42.0,"id":"e","type":"zen:event-type:user.created","subject":"zen:user:1","time":"t","zendesk_event_version":"v","detail":{},"event":{}}"#.to_vec(),
            "bad_envelope",
        ),
        (ticket_event_with(42, "e-mismatch", "zen:ticket:5", "\"6\""), "bad_ticket_identity"),
        (ticket_event_with(42, "e-lead0", "zen:ticket:05", "\"5\""), "bad_ticket_identity"),
        (ticket_event_with(42, "e-neg", "zen:ticket:5", "-5"), "bad_ticket_identity"),
    ];
    for (body, reason) in cases {
        let res = app.signed(&body).send().await.unwrap();
        assert_eq!(res.status(), 400, "{}", String::from_utf8_lossy(&body));
        let err: serde_json::Value = res.json().await.unwrap();
        assert_eq!(err["error"], reason, "{err}");
        assert!(!err["message"].as_str().unwrap().is_empty());
    }
    let missing: serde_json::Value = app
        .signed(br#"{"account_id":42,"id":"x"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        missing["message"].as_str().unwrap().contains("`type`"),
        "{missing}"
    );
    assert_eq!(app.stream_messages().await, 0);
}

fn ticket_event_with(account: u64, id: &str, subject: &str, detail_id: &str) -> Vec<u8> {
    format!(
        r#"{{"account_id":{account},"id":"{id}","type":"zen:event-type:ticket.created","subject":"{subject}","time":"2025-01-08T10:12:07Z","zendesk_event_version":"2022-11-06","detail":{{"id":{detail_id}}},"event":{{}}}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn accounts_and_webhooks_must_match() {
    let app = TestApp::start_with(|c| c.webhook_id = Some("01WEBHOOK".into())).await;
    // payload account differs from header account
    let body = ticket_event(43, "e-acc", 5, "created");
    let res = app.signed(&body).send().await.unwrap();
    assert_eq!(res.status(), 403);
    // both agree but are not the configured account
    let res = app
        .signed_without(&body, "x-zendesk-account-id", Some("43"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // right account, wrong webhook
    let body = ticket_event(42, "e-hook", 5, "created");
    let res = app
        .signed_without(&body, "x-zendesk-webhook-id", Some("01OTHER"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(app.stream_messages().await, 0);
    let res = app
        .signed_without(&body, "x-zendesk-webhook-id", Some("01WEBHOOK"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn published_message_is_exact_with_headers() {
    let app = TestApp::start_with(|c| c.account_id = 9_223_372_036_854_775_807).await;
    // big ids, a BOM, unknown fields, odd spacing: all kept byte for byte
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(
        br#"{ "account_id" : 9223372036854775807, "id":"evt-big", "type":"zen:event-type:ticket.comment_added",
  "subject":"zen:ticket:7123498765123456789","time":"2025-01-08T10:12:07.672717030Z","zendesk_event_version":"2022-11-06",
  "detail":{"id":7123498765123456789,"requester_id":9007199254740993},"event":{"comment":{"id":"9007199254740995"}},"x_future":true}"#,
    );
    let res = app
        .delivery_for_account(&body, "9223372036854775807")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap().is_empty());
    let msg = app.last_message().await;
    assert_eq!(
        msg.subject.as_str(),
        "zendesk.9223372036854775807.ticket.7123498765123456789.comment_added"
    );
    assert_eq!(msg.payload.as_ref(), body.as_slice());
    let h = &msg.headers;
    assert_eq!(
        h.get("Nats-Msg-Id").unwrap().as_str(),
        "9223372036854775807:evt-big"
    );
    assert_eq!(
        h.get("Zendesk-Account-Id").unwrap().as_str(),
        "9223372036854775807"
    );
    assert_eq!(h.get("Zendesk-Webhook-Id").unwrap().as_str(), "01TESTHOOK");
    assert!(h.get("Zendesk-Webhook-Invocation-Id").is_some());
    assert!(h.get("Zendesk-Webhook-Signature-Timestamp").is_some());
    // a consumer can re-verify end to end
    let sig = h.get("Zendesk-Webhook-Signature").unwrap().as_str();
    let ts = h
        .get("Zendesk-Webhook-Signature-Timestamp")
        .unwrap()
        .as_str();
    let parsed = zengate_core::signature::Signature::parse(sig.as_bytes()).unwrap();
    assert!(
        zengate_core::signature::verify(
            &[Secret::new(support::SECRET)],
            ts.as_bytes(),
            &msg.payload,
            &parsed
        )
        .is_ok()
    );
    let received = h.get("Zengate-Received-At").unwrap().as_str();
    assert!(
        time::OffsetDateTime::parse(received, &time::format_description::well_known::Rfc3339)
            .is_ok()
    );
    let tp = h.get("traceparent").unwrap().as_str();
    assert_eq!(tp.split('-').count(), 4, "{tp}");
}

#[tokio::test]
async fn unknown_event_types_and_hostile_tokens_are_published_safely() {
    let app = TestApp::start().await;
    let body = event(
        42,
        "e-future",
        "zen:event-type:messaging.ai_handoff.requested",
        "zen:messaging:x",
        "{}",
    );
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    assert_eq!(
        app.last_message().await.subject.as_str(),
        "zendesk.42.messaging._.ai_handoff_requested"
    );
    let body = event(
        42,
        "e-hostile",
        "zen:event-type:us er.*.>",
        "zen:us er:1",
        "{}",
    );
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    assert_eq!(
        app.last_message().await.subject.as_str(),
        "zendesk.42.us_er._.___"
    );
    let body = event(
        42,
        "e-user",
        "zen:event-type:user.created",
        "zen:user:441",
        "{}",
    );
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    assert_eq!(
        app.last_message().await.subject.as_str(),
        "zendesk.42.user.441.created"
    );
}

#[tokio::test]
async fn ids_recorded_by_the_earlier_key_form_still_count_as_seen() {
    // An upgrade must not forget what the previous version recorded, one
    // key per id, within the horizon.
    let app = TestApp::start().await;
    app.remember_as_before("42:e-before-upgrade").await;
    let old = ticket_event_at("e-before-upgrade", 5, "2020-01-01T00:00:00Z");
    assert_eq!(app.signed(&old).send().await.unwrap().status(), 200);
    assert_eq!(app.stream_messages().await, 0, "not published again");
    assert_eq!(
        app.metric("zengate_ingress_dedup_hits_total{source=\"redis\"}")
            .await,
        1.0
    );
    // A new one is recorded in today's set, not as a key of its own.
    let fresh = ticket_event_at("e-after-upgrade", 6, "2020-01-01T00:00:00Z");
    assert_eq!(app.signed(&fresh).send().await.unwrap().status(), 200);
    app.wait_remembered("42:e-after-upgrade").await;
    assert!(!app.remembered("42:e-before-upgrade").await);
}

#[tokio::test]
async fn redelivery_is_deduplicated_beyond_the_jetstream_window() {
    // A 1 s JetStream window: only Redis can catch the later redelivery.
    let app = TestApp::start_with(|c| c.stream.duplicate_window = Duration::from_secs(1)).await;
    let body = ticket_event(42, "e-dup", 5, "created");
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    app.wait_remembered("42:e-dup").await;
    // Past the JetStream window (no event exists for "window elapsed").
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Zendesk's retry: same signed body, new invocation id and timestamp.
    let res = app
        .signed_at(&body, "2030-01-01T00:00:00Z")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.stream_messages().await, 1);
    assert!(
        app.metric("zengate_ingress_dedup_hits_total{source=\"redis\"}")
            .await
            >= 1.0
    );
}

#[tokio::test]
async fn concurrent_copies_yield_one_message() {
    let app = TestApp::start().await;
    let body = ticket_event(42, "e-race", 77, "created");
    let sends = (0..16).map(|_| app.signed(&body).send());
    let results = join_all(sends).await;
    for r in results {
        assert_eq!(r.unwrap().status(), 200);
    }
    assert_eq!(app.stream_messages().await, 1);
}

#[tokio::test]
async fn redis_down_degrades_but_keeps_intake() {
    let mut app = TestApp::start().await;
    app.infra.redis.stop().await;
    let body = ticket_event(42, "e-noredis", 5, "created");
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    // the JetStream window still catches a quick redelivery
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    assert_eq!(app.stream_messages().await, 1);
    assert!(app.metric("zengate_ingress_redis_degraded_total").await >= 2.0);
    let ready = app
        .http
        .get(format!("{}/readyz", app.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "redis is optional for ingress readiness"
    );
    // Redis back: dedup by Redis resumes.
    app.infra.redis.restart().await;
    let body = ticket_event(42, "e-redis-back", 5, "created");
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    app.wait_remembered("42:e-redis-back").await;
}

#[tokio::test]
async fn nats_outage_answers_503_and_intake_resumes() {
    let mut app = TestApp::start_with(|c| c.publish_timeout = Duration::from_millis(800)).await;
    app.infra.nats.stop().await;
    let body = ticket_event(42, "e-outage", 9, "created");
    let res = app.signed(&body).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry < 60);
    // never remembered as seen: the failed publish must not block the retry
    assert!(!app.remembered("42:e-outage").await);
    let ready = app
        .http
        .get(format!("{}/readyz", app.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    app.infra.nats.restart().await;
    // Zendesk retries until the bus is back; the first 200 means durable.
    let status = eventually("intake to resume", Duration::from_secs(20), || {
        let req = app.signed(&body);
        async move {
            let s = req.send().await.ok()?.status();
            (s == 200).then_some(s)
        }
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.stream_messages().await,
        1,
        "exactly one copy after retries"
    );
}

#[tokio::test]
async fn two_replicas_provision_the_stream_together() {
    let nats = zengate_testkit::NatsServer::start().await;
    let redis = zengate_testkit::RedisServer::start().await;
    let build = |_: u8| {
        let mut c = support::config(&nats.url(), &redis.url());
        c.addr = "127.0.0.1:0".parse().unwrap();
        ingress::Application::build(c)
    };
    let (a, b) = tokio::join!(build(1), build(2));
    assert!(a.is_ok() && b.is_ok());
    // and a restart with a new retention converges the existing stream
    let mut c = support::config(&nats.url(), &redis.url());
    c.stream.max_age = Duration::from_secs(3600);
    assert!(ingress::Application::build(c).await.is_ok());
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream("ZENDESK_EVENTS").await.unwrap();
    let info = s.info().await.unwrap();
    assert_eq!(info.config.max_age, Duration::from_secs(3600));
    assert_eq!(
        info.config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let app = TestApp::start().await;
    let base = app.base();
    assert_eq!(
        app.http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = app.http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let report: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(report["ready"], true);
    let body = ticket_event(42, "e-metrics", 5, "created");
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    let _ = app.delivery(&body, None, "ts").send().await.unwrap();
    assert!(
        app.metric("zengate_ingress_requests_total{status=\"200\"}")
            .await
            >= 1.0
    );
    assert!(
        app.metric("zengate_ingress_requests_total{status=\"401\"}")
            .await
            >= 1.0
    );
    assert!(
        app.metric("zengate_ingress_rejections_total{reason=\"bad_signature\"}")
            .await
            >= 1.0
    );
    assert!(app.metric("zengate_ingress_publish_seconds_count").await >= 1.0);
    assert!(app.metric("zengate_ingress_published_total").await >= 1.0);
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let app = TestApp::start().await;
    let doc: serde_json::Value = app
        .http
        .get(format!("{}/openapi.json", app.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/channels/zendesk/webhook",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
    let webhook = &doc["paths"]["/channels/zendesk/webhook"]["post"]["responses"];
    for status in ["200", "400", "401", "403", "413", "415", "503"] {
        assert!(
            webhook.get(status).is_some(),
            "status {status} undocumented"
        );
    }
}

#[tokio::test]
async fn graceful_shutdown_drains_and_stops() {
    let app = TestApp::start().await;
    let body = ticket_event(42, "e-shutdown", 5, "created");
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    app.shutdown.trigger();
    let finished = tokio::time::timeout(Duration::from_secs(10), app.wait_stopped()).await;
    assert!(finished.is_ok(), "server did not stop after shutdown");
}
