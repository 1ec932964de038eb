//! `bus::connect` (what the services use) keeps retrying instead of failing,
//! so a refusal shows only as "never connected" plus an error log on every
//! attempt. This proves both, and that the log never holds the password.
//! Its own test binary: the log capture is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use zengate_runtime::bus;
use zengate_runtime::{Env, NatsConfig};
use zengate_testkit::{LogCapture, NatsServer, eventually};

#[tokio::test]
async fn services_keep_retrying_refused_credentials_and_say_so() {
    let logs = LogCapture::install(zengate_runtime::telemetry::log_filter("trace").unwrap());
    let server = NatsServer::start_with_config(
        r#"authorization { users = [ { user: svc, password: "retry-right-pw" } ] }"#,
    )
    .await;
    let config = |pw: &str| {
        NatsConfig::from_env(&Env::from_pairs([
            ("NATS_URL", server.url()),
            ("NATS_USER", "svc".to_owned()),
            ("NATS_PASSWORD", pw.to_owned()),
        ]))
        .unwrap()
    };

    let refused = bus::connect(&config("retry-wrong-pw"), "zg-refused")
        .await
        .expect("retrying connect returns a client at once");
    // The refusal is observable as an event, not as a timeout.
    eventually("the refusal to be logged", Duration::from_secs(10), || {
        let text = logs.text();
        async move {
            text.contains("NATS refused the connection's credentials")
                .then_some(())
        }
    })
    .await;
    assert!(!bus::is_connected(&refused));

    // The same server accepts the right password meanwhile.
    let accepted = bus::connect(&config("retry-right-pw"), "zg-accepted")
        .await
        .unwrap();
    eventually(
        "the right password to connect",
        Duration::from_secs(10),
        || {
            let ok = bus::is_connected(&accepted);
            async move { ok.then_some(()) }
        },
    )
    .await;
    accepted.flush().await.unwrap();
    // Still refused after the other client connected: it never got in.
    assert!(!bus::is_connected(&refused));

    let text = logs.text();
    assert!(!text.contains("retry-wrong-pw"), "password logged");
    assert!(!text.contains("retry-right-pw"), "password logged");
}
