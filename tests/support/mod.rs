//! The whole stack for cross-service tests: the Zendesk simulator, and the
//! ingress, approval service and agent worker built from an environment,
//! each on port 0; plus the approver's side of the path (wait for the
//! pending proposal, approve it, wait until it is applied).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use zendesk_sim::{SimConfig, SimHandle, Simulator, WebhookTarget};
use zengate_core::Secret;
use zengate_runtime::Env;
use zengate_testkit::{NatsServer, RedisServer, TestService, eventually};

pub const SECRET: &str = "e2e-signing-secret";
pub const APPROVER: &str = "e2e-approver-token-0123456789abcdef";

/// The simulator, with the API user the worker signs in as.
pub async fn simulator() -> SimHandle {
    zengate_testkit::init_telemetry();
    Simulator::start(
        SimConfig::new("agent@acme.test", Secret::new("api-token"), 42),
        "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap(),
    )
    .await
    .unwrap()
}

/// What every service reads, plus `extra` (NATS credentials and the like).
pub fn stack_env(
    nats: &NatsServer,
    redis: &RedisServer,
    sim: &SimHandle,
    extra: &[(&str, &str)],
) -> Env {
    let mut pairs: Vec<(String, String)> = [
        ("NATS_URL", nats.url()),
        ("REDIS_URL", redis.url()),
        ("ZENDESK_ACCOUNT_ID", "42".into()),
        ("ZENDESK_WEBHOOK_SIGNING_SECRET", SECRET.into()),
        ("ZENDESK_SUBDOMAIN", "acme".into()),
        ("ZENDESK_EMAIL", "agent@acme.test".into()),
        ("ZENDESK_API_TOKEN", "api-token".into()),
        ("ZENDESK_API_BASE_URL", sim.base_url()),
        ("ZENDESK_JWT_SHARED_SECRET", "jwt-shared-secret".into()),
        ("APPROVER_TOKENS", format!("erin:{APPROVER}")),
        (
            "APPROVAL_RESUME_SECRET",
            "e2e-resume-secret-0123456789".into(),
        ),
        ("INGRESS_ADDR", "127.0.0.1:0".into()),
        ("APPROVAL_ADDR", "127.0.0.1:0".into()),
        ("WORKER_ADDR", "127.0.0.1:0".into()),
        ("WORKER_PARTITIONS", "4".into()),
        (
            "ZENGATE_RELEASE_SIGNING_SECRET",
            "e2e-release-signing-key-0123456789abcdef".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    pairs.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Env::from_pairs(pairs)
}

/// Ingress (receiving the simulator's webhooks), approval and worker.
pub struct Stack {
    pub ingress: TestService,
    pub approval: TestService,
    pub worker: TestService,
    pub http: reqwest::Client,
}

impl Stack {
    /// Starts the three services; `env(service)` is each one's environment.
    pub async fn start(sim: &SimHandle, env: impl Fn(&str) -> Env) -> Self {
        let config = ingress::IngressConfig::from_env(&env("ingress")).unwrap();
        let app = ingress::Application::build(config).await.unwrap();
        let ingress = TestService::spawn(app.local_addr().unwrap(), |s| app.run(s));
        sim.set_webhook(Some(WebhookTarget {
            url: ingress.url(ingress::WEBHOOK_PATH),
            secret: Secret::new(SECRET),
            webhook_id: "01E2E".into(),
        }));
        let config = approval::ApprovalConfig::from_env(&env("approval")).unwrap();
        let app = approval::Application::build(config).await.unwrap();
        let approval = TestService::spawn(app.local_addr().unwrap(), |s| app.run(s));
        let config = agent_worker::WorkerConfig::from_env(&env("agent-worker")).unwrap();
        let app = agent_worker::Application::build(config).await.unwrap();
        let worker = TestService::spawn(app.local_addr().unwrap(), |s| app.run(s));
        Self {
            ingress,
            approval,
            worker,
            http: reqwest::Client::new(),
        }
    }

    /// The id of the pending approval proposed for `ticket`.
    pub async fn wait_pending(&self, ticket: u64) -> String {
        let item = eventually(
            "a pending approval for the ticket",
            Duration::from_secs(30),
            || {
                let req = self
                    .approval
                    .get("/v1/approvals?state=pending", Some(APPROVER));
                let ticket_id = ticket.to_string();
                async move {
                    let body: Value = req.send().await.ok()?.json().await.ok()?;
                    body["items"]
                        .as_array()?
                        .iter()
                        .find(|i| i.to_string().contains(&ticket_id))
                        .cloned()
                }
            },
        )
        .await;
        item["id"].as_str().unwrap().to_owned()
    }

    /// Approves `id` with an edited reply `body`.
    pub async fn approve(&self, id: &str, body: &str) -> reqwest::Response {
        self.approval
            .post(&format!("/v1/approvals/{id}/approve"), Some(APPROVER))
            .json(&serde_json::json!({ "body": body }))
            .send()
            .await
            .unwrap()
    }

    /// Waits until the item's history ends in `applied`.
    pub async fn wait_applied(&self, id: &str) -> Value {
        eventually("the item to be applied", Duration::from_secs(30), || {
            let req = self
                .approval
                .get(&format!("/v1/approvals/{id}"), Some(APPROVER));
            async move {
                let body: Value = req.send().await.ok()?.json().await.ok()?;
                (body["state"] == "applied").then_some(body)
            }
        })
        .await
    }

    pub async fn stop(self) {
        tokio::join!(
            self.ingress.stop(),
            self.approval.stop(),
            self.worker.stop()
        );
    }
}
