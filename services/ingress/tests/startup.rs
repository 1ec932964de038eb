//! Start-up warnings: an ingress without a signature-age tolerance says so once
//! per start, naming the variable that sets it; one with a tolerance stays quiet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use ingress::config::SIGNATURE_MAX_AGE_VAR;
use support::TestApp;
use zengate_testkit::LogCapture;

/// The captured WARN events that name the signature-age variable.
fn tolerance_warnings(logs: &LogCapture) -> Vec<serde_json::Value> {
    logs.text()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| {
            event["level"] == "WARN" && event["fields"]["variable"] == SIGNATURE_MAX_AGE_VAR
        })
        .collect()
}

#[tokio::test]
async fn warns_once_at_start_up_only_without_a_signature_age_tolerance() {
    let logs = LogCapture::install(zengate_runtime::telemetry::log_filter("info").unwrap());

    let open = TestApp::start().await;
    assert!(open.config.signature_max_age.is_none());
    let warnings = tolerance_warnings(&logs);
    assert_eq!(warnings.len(), 1, "captured: {}", logs.text());
    let message = warnings[0]["fields"]["message"].as_str().unwrap();
    assert!(
        message.contains("ZENDESK_SIGNATURE_MAX_AGE is unset"),
        "{message}"
    );
    assert_eq!(warnings[0]["target"], "ingress::config");

    // Serving deliveries does not repeat it: it is a start-up message.
    let body = support::ticket_event(42, "e-startup-1", 1, "created");
    assert_eq!(open.signed(&body).send().await.unwrap().status(), 200);
    assert_eq!(tolerance_warnings(&logs).len(), 1);

    let bounded =
        TestApp::start_with(|c| c.signature_max_age = Some(Duration::from_secs(300))).await;
    assert!(bounded.config.signature_max_age.is_some());
    assert_eq!(
        tolerance_warnings(&logs).len(),
        1,
        "an ingress with a tolerance warned: {}",
        logs.text()
    );
}
