//! Shared set-up: a simulator on a free loopback port and a client for it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine as _;
use tokio::net::TcpListener;
use zendesk_client::{ClientConfig, Credentials, ZendeskClient};
use zendesk_sim::{SimConfig, SimHandle, Simulator};
use zengate_core::Secret;

pub const EMAIL: &str = "agent@acme.test";
pub const TOKEN: &str = "sim-token-Zq9xS3CRET";
pub const ACCOUNT: u64 = 22_129_848;

pub async fn sim() -> SimHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    Simulator::start(SimConfig::new(EMAIL, TOKEN, ACCOUNT), listener)
        .await
        .expect("start simulator")
}

/// A configuration for `sim` with fast backoff so retry tests stay short.
pub fn config(sim: &SimHandle) -> ClientConfig {
    let mut c = ClientConfig::new(
        "acme",
        Credentials::ApiToken {
            email: EMAIL.to_owned(),
            token: Secret::new(TOKEN),
        },
    );
    c.base_url_override = Some(sim.base_url());
    c.timeout = Duration::from_secs(5);
    c.max_backoff = Duration::from_millis(50);
    c
}

pub fn client(sim: &SimHandle) -> ZendeskClient {
    ZendeskClient::new(config(sim)).expect("client")
}

/// The exact `Authorization` header Zendesk expects for the test user.
pub fn expected_basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}/token:{TOKEN}"))
    )
}

pub fn enduser_ticket(sim: &SimHandle) -> u64 {
    sim.create_enduser_ticket(
        "Printer on fire",
        "It is on fire. Please help.",
        "Ada Requester",
        "ada@example.test",
    )
    .id
}
