//! `zengate-stack`: ingress, auth, approval, two agent workers and the Zendesk
//! simulator in one process, wired together on embedded defaults. It seeds a
//! demo approver and a demo visitor, creates a ticket in the simulator so a
//! signed `ticket.created` flows through, and waits for the resulting pending
//! approval. NATS (JetStream) and Redis come from `NATS_URL` / `REDIS_URL` (plus the
//! `REDIS_*` credential and TLS variables).

mod defaults;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use zengate_runtime::RedisConfig;
use zengate_runtime::redis_store::RedisStore;
use zengate_runtime::{Shutdown, telemetry};

#[global_allocator]
static ALLOCATOR: zengate_runtime::Allocator = zengate_runtime::Allocator;

#[derive(Debug, Parser)]
#[command(
    name = "zengate-stack",
    about = "Run the whole zengate stack in one process"
)]
struct Args {
    /// Exit once the demo ticket has reached a pending approval.
    #[arg(long)]
    check: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = defaults::layered();
    let _telemetry = telemetry::init("zengate-stack", &env)?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let mut tasks = tokio::task::JoinSet::new();

    // Zendesk simulator, sending signed webhooks to the ingress.
    let sim_config = zendesk_sim::SimConfig::from_env(&env)?;
    let sim_addr = env.addr_or("ZENDESK_SIM_ADDR", defaults::SIM_ADDR)?;
    let sim = zendesk_sim::Simulator::start(sim_config, sim_addr)
        .await
        .context("zendesk simulator")?;

    let ingress = ingress::Application::build(ingress::IngressConfig::from_env(&env)?)
        .await
        .context("ingress")?;
    let ingress_addr = ingress.local_addr()?;
    tasks.spawn(named("ingress", ingress.run(shutdown.clone())));

    let auth = auth::Application::build(auth::AuthConfig::from_env(&env)?)
        .await
        .context("auth")?;
    let auth_addr = auth.local_addr()?;
    tasks.spawn(named("auth", auth.run(shutdown.clone())));

    let approval = approval::Application::build(approval::ApprovalConfig::from_env(&env)?)
        .await
        .context("approval")?;
    let approval_addr = approval.local_addr()?;
    tasks.spawn(named("approval", approval.run(shutdown.clone())));

    let worker_config = agent_worker::WorkerConfig::from_env(&env)?;
    let mut second = worker_config.clone();
    second.addr.set_port(worker_config.addr.port() + 1);
    for (name, config) in [
        ("agent-worker-1", worker_config),
        ("agent-worker-2", second),
    ] {
        let worker = agent_worker::Application::build(config)
            .await
            .with_context(|| name.to_owned())?;
        tasks.spawn(named(name, worker.run(shutdown.clone())));
    }

    // Demo data: a visitor user (auth) and a ticket from an end user (simulator).
    let redis = Arc::new(RedisStore::new(
        &RedisConfig::from_env(&env)?,
        Duration::from_secs(2),
    )?);
    let (user_token, _) = auth::users::RedisUsers::new(redis)
        .add(auth::users::NewUser {
            name: "Demo Visitor".into(),
            email: "visitor@example.com".into(),
            external_id: Some("demo-visitor".into()),
            email_verified: false,
        })
        .await
        .context("seeding the demo visitor")?;
    let ticket = sim.create_enduser_ticket(
        "My printer is on fire",
        "Smoke everywhere, please help!",
        "Dana Customer",
        "dana@example.com",
    );
    let approver_token = defaults::approver_token(&env);
    let pending = wait_for_pending(&approval_addr.to_string(), &approver_token, ticket.id).await?;

    println!();
    println!("  zengate is running (one process)");
    println!("  Console          : http://{approval_addr}/   (approver token: {approver_token})");
    println!("  Pending approval : {pending}");
    println!("  Simulator        : {}", sim.base_url());
    println!(
        "  Chat JWT         : curl -s -H 'Authorization: Bearer {}' http://{auth_addr}/webhook/chat-token",
        user_token.expose()
    );
    println!(
        "  Widget JWT       : curl -s -X POST 'http://{auth_addr}/webhook/zendesk-jwt?user_token={}'",
        user_token.expose()
    );
    println!(
        "  Webhook          : target/debug/zengate sign-event --secret {} --account {} --url http://{ingress_addr}/channels/zendesk/webhook deploy/samples/ticket-created.json",
        env.string_or("ZENDESK_WEBHOOK_SIGNING_SECRET", ""),
        env.string_or("ZENDESK_ACCOUNT_ID", "")
    );
    println!();

    if args.check {
        shutdown.trigger();
    } else {
        println!("  Ctrl-C stops everything.");
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            shutdown.trigger();
            tracing::error!(error = %e, "a service stopped with an error");
        }
    }
    sim.shutdown().await;
    Ok(())
}

async fn named<E: std::fmt::Display>(
    name: &'static str,
    fut: impl std::future::Future<Output = Result<(), E>>,
) -> anyhow::Result<()> {
    fut.await.map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

/// Polls the approval API until the demo ticket's proposal is pending.
async fn wait_for_pending(addr: &str, token: &str, ticket_id: u64) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/v1/approvals?state=pending");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(res) = http.get(&url).bearer_auth(token).send().await
            && let Ok(body) = res.json::<serde_json::Value>().await
        {
            let text = body.to_string();
            if text.contains(&ticket_id.to_string()) {
                let id = body
                    .pointer("/items/0/id")
                    .or_else(|| body.pointer("/items/0/approval_id"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("(see console)")
                    .to_owned();
                return Ok(format!("{id} for ticket {ticket_id}"));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("no pending approval for ticket {ticket_id} within 60 s")
}
