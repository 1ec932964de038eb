//! A simulator on a free port and a tiny webhook receiver.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use zendesk_sim::{SimConfig, SimHandle, Simulator, WebhookTarget};
use zengate_core::Secret;

pub const EMAIL: &str = "agent@acme.test";
pub const TOKEN: &str = "sim-token-Zq9xS3CRET";
pub const ACCOUNT: u64 = 22_129_848;
pub const SIGNING_SECRET: &str = "dGVzdC1zaWduaW5nLXNlY3JldC1mb3Itc2lt";
pub const WEBHOOK_ID: &str = "01HWEBHOOKTEST";

pub async fn sim(webhook: Option<WebhookTarget>) -> SimHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut config = SimConfig::new(EMAIL, TOKEN, ACCOUNT);
    config.webhook = webhook;
    Simulator::start(config, listener).await.expect("start")
}

pub fn basic(email: &str, token: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{email}/token:{token}"))
    )
}

/// One delivery as received.
#[derive(Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Scripted answers (status, Retry-After).
type Script = Arc<Mutex<VecDeque<(u16, Option<u64>)>>>;

#[derive(Clone)]
struct ReceiverState {
    tx: mpsc::UnboundedSender<Received>,
    /// Scripted answers (status, Retry-After); `200` once exhausted.
    script: Script,
}

pub struct Receiver {
    pub url: String,
    pub rx: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("a delivery within 10 s")
            .expect("receiver open")
    }

    pub fn target(&self) -> WebhookTarget {
        WebhookTarget {
            url: self.url.clone(),
            secret: Secret::new(SIGNING_SECRET),
            webhook_id: WEBHOOK_ID.to_owned(),
        }
    }
}

async fn hook(State(s): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> Response {
    let _ = s.tx.send(Received { headers, body });
    let next = s.script.lock().unwrap().pop_front();
    match next {
        None => StatusCode::OK.into_response(),
        Some((status, retry_after)) => {
            let status = StatusCode::from_u16(status).unwrap();
            match retry_after {
                Some(secs) => (status, [("retry-after", secs.to_string())]).into_response(),
                None => status.into_response(),
            }
        }
    }
}

/// Starts a receiver answering `script` first, then `200`.
pub async fn receiver(script: Vec<(u16, Option<u64>)>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let state = ReceiverState {
        tx,
        script: Arc::new(Mutex::new(script.into())),
    };
    let app = Router::new().route("/hook", post(hook)).with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://{addr}/hook"),
        rx,
    }
}
