//! Logs carry the event id, account and ticket, and never a secret or a
//! signature, even at TRACE.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{SECRET, TestApp, ticket_event};
use zengate_testkit::LogCapture;

#[tokio::test]
async fn logs_identify_events_without_secrets_or_signatures() {
    let logs = LogCapture::install(zengate_runtime::telemetry::log_filter("trace").unwrap());
    let app = TestApp::start().await;

    let body = ticket_event(42, "e-logged-1", 5158, "created");
    let good = app.sign("2025-01-08T10:12:08Z", &body);
    assert_eq!(app.signed(&body).send().await.unwrap().status(), 200);
    let forged = zengate_core::signature::sign(&zengate_core::Secret::new("wrong"), "ts", &body);
    let res = app
        .delivery(&body, Some(&forged), "ts")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let bad = ticket_event(43, "e-logged-2", 7, "created");
    assert_eq!(app.signed(&bad).send().await.unwrap().status(), 403);

    let text = logs.text();
    assert!(text.contains("e-logged-1"), "event id missing from logs");
    assert!(text.contains("5158"), "ticket id missing from logs");
    assert!(
        text.contains("\"account_id\":42"),
        "account missing from logs"
    );
    for secret in [SECRET, good.as_str(), forged.as_str()] {
        let line = text
            .lines()
            .find(|l| l.contains(secret))
            .unwrap_or_default();
        assert!(!text.contains(secret), "logs contain {secret}: {line}");
    }
}
