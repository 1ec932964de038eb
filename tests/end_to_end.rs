//! The whole path against real NATS JetStream, real Redis and the Zendesk
//! simulator: an end user opens a ticket → the simulator sends a signed
//! webhook → ingress makes it durable → an agent worker proposes a reply →
//! the approval service holds it → an approver approves over the API → the
//! worker's executor writes exactly one comment to Zendesk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use zengate_core::Secret;
use zengate_runtime::{Env, Shutdown};
use zengate_testkit::{NatsServer, RedisServer, eventually};

const SECRET: &str = "e2e-signing-secret";
const APPROVER: &str = "e2e-approver-token-0123456789abcdef";

fn env(nats: &NatsServer, redis: &RedisServer, sim_url: &str) -> Env {
    Env::from_pairs([
        ("NATS_URL", nats.url()),
        ("REDIS_URL", redis.url()),
        ("ZENDESK_ACCOUNT_ID", "42".into()),
        ("ZENDESK_WEBHOOK_SIGNING_SECRET", SECRET.into()),
        ("ZENDESK_SUBDOMAIN", "acme".into()),
        ("ZENDESK_EMAIL", "agent@acme.test".into()),
        ("ZENDESK_API_TOKEN", "api-token".into()),
        ("ZENDESK_API_BASE_URL", sim_url.into()),
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
    ])
}

#[tokio::test]
async fn signed_webhook_to_one_approved_comment_in_zendesk() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let shutdown = Shutdown::new();

    // Simulator first (the ingress URL is set once the ingress is bound).
    let sim = zendesk_sim::Simulator::start(
        zendesk_sim::SimConfig::new("agent@acme.test", Secret::new("api-token"), 42),
        "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap(),
    )
    .await
    .unwrap();
    let env = env(&nats, &redis, &sim.base_url());

    let ingress = ingress::Application::build(ingress::IngressConfig::from_env(&env).unwrap())
        .await
        .unwrap();
    let ingress_url = format!(
        "http://{}/channels/zendesk/webhook",
        ingress.local_addr().unwrap()
    );
    tokio::spawn(ingress.run(shutdown.clone()));
    sim.set_webhook(Some(zendesk_sim::WebhookTarget {
        url: ingress_url,
        secret: Secret::new(SECRET),
        webhook_id: "01E2E".into(),
    }));

    let approval = approval::Application::build(approval::ApprovalConfig::from_env(&env).unwrap())
        .await
        .unwrap();
    let approval_base = format!("http://{}", approval.local_addr().unwrap());
    tokio::spawn(approval.run(shutdown.clone()));
    let worker =
        agent_worker::Application::build(agent_worker::WorkerConfig::from_env(&env).unwrap())
            .await
            .unwrap();
    let worker_base = format!("http://{}", worker.local_addr().unwrap());
    tokio::spawn(worker.run(shutdown.clone()));

    // Every HTTP service describes itself.
    let http = reqwest::Client::new();
    for base in [&approval_base, &worker_base] {
        let doc: serde_json::Value = http
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(doc["paths"].get("/readyz").is_some(), "{base}: {doc}");
    }

    // Watch what is released and applied on the bus.
    let bus = async_nats::connect(nats.url()).await.unwrap();
    let mut released = bus.subscribe("zengate.approval.released.>").await.unwrap();
    let mut applied = bus.subscribe("zengate.action.applied.>").await.unwrap();

    // An end user opens a ticket.
    let ticket = sim.create_enduser_ticket(
        "Printer on fire",
        "Smoke everywhere, please help!",
        "Dana Customer",
        "dana@example.com",
    );
    let comments_before = sim.comments(ticket.id).len();

    // The proposal reaches the approval service as a pending item.
    let pending_url = format!("{approval_base}/v1/approvals?state=pending");
    let item = eventually(
        "a pending approval for the ticket",
        Duration::from_secs(30),
        || {
            let req = http.get(&pending_url).bearer_auth(APPROVER);
            let ticket_id = ticket.id.to_string();
            async move {
                let body: serde_json::Value = req.send().await.ok()?.json().await.ok()?;
                body["items"]
                    .as_array()?
                    .iter()
                    .find(|i| i.to_string().contains(&ticket_id))
                    .cloned()
            }
        },
    )
    .await;
    let id = item["id"].as_str().unwrap().to_owned();
    // Nothing was written to Zendesk while the proposal waits.
    assert_eq!(sim.comments(ticket.id).len(), comments_before);

    // Unauthenticated approval is refused; the approver's is accepted once.
    let url = format!("{approval_base}/v1/approvals/{id}/approve");
    assert_eq!(http.post(&url).send().await.unwrap().status(), 401);
    let res = http
        .post(&url)
        .bearer_auth(APPROVER)
        .json(&serde_json::json!({"body": "We are on it: please unplug the printer."}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let again = http.post(&url).bearer_auth(APPROVER).send().await.unwrap();
    assert_eq!(again.status(), 409);

    // Exactly one release and one applied outcome for this approval.
    let msg = tokio::time::timeout(Duration::from_secs(20), released.next())
        .await
        .unwrap()
        .unwrap();
    let rel: zengate_core::events::ApprovalReleased = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(rel.approval_id, id);
    assert_eq!(rel.approved_by, "erin");
    let msg = tokio::time::timeout(Duration::from_secs(20), applied.next())
        .await
        .unwrap()
        .unwrap();
    let out: zengate_core::events::ActionOutcome = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(out.approval_id, id);
    assert!(out.applied);

    // Exactly one new comment, by the API user, with the approver's edit.
    let comments = sim.comments(ticket.id);
    assert_eq!(comments.len(), comments_before + 1, "{comments:?}");
    let last = comments.last().unwrap();
    assert_eq!(last.body, "We are on it: please unplug the printer.");
    assert_eq!(last.author_id, sim.api_user().id);

    // The item's history ends in `applied`.
    let state = eventually("the item to be applied", Duration::from_secs(20), || {
        let req = http
            .get(format!("{approval_base}/v1/approvals/{id}"))
            .bearer_auth(APPROVER);
        async move {
            let body: serde_json::Value = req.send().await.ok()?.json().await.ok()?;
            (body["state"] == "applied").then_some(body)
        }
    })
    .await;
    assert_eq!(state["state"], "applied");

    // The worker's own comment came back as a webhook and yielded no new proposal.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), released.next())
            .await
            .is_err(),
        "no second release"
    );
    assert_eq!(sim.comments(ticket.id).len(), comments_before + 1);
    shutdown.trigger();
}
