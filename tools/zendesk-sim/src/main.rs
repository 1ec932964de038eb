//! `zendesk-sim`: the simulator as a process for the local stack and
//! benchmarks.

use anyhow::Context as _;
use zendesk_sim::{SimConfig, Simulator};
use zengate_runtime::{Env, Shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::process();
    let _telemetry = telemetry::init("zendesk-sim", &env)?;
    let config = SimConfig::from_env(&env)?;
    let addr = env.addr_or("ZENDESK_SIM_ADDR", "127.0.0.1:8090")?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let handle = Simulator::start(config, addr)
        .await
        .with_context(|| format!("starting the simulator on {addr}"))?;
    tracing::info!(base_url = %handle.base_url(), "set ZENDESK_API_BASE_URL to this");
    shutdown.wait().await;
    handle.shutdown().await;
    Ok(())
}
