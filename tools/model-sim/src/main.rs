//! `model-sim`: the model simulator as a process for the local stack. With
//! an empty script it answers every request with a "needs a human look"
//! internal note, so a worker run with `DRAFTER=openai` against it works end
//! to end without a real provider.

use anyhow::Context as _;
use model_sim::ModelSim;
use zengate_runtime::{Env, Shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::process();
    let _telemetry = telemetry::init("model-sim", &env)?;
    let addr = env.addr_or("MODEL_SIM_ADDR", "127.0.0.1:8095")?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let handle = ModelSim::start(listener).await?;
    handle.set_default_reply(Some(model_sim::review_note()));
    tracing::info!(base_url = %handle.base_url(), "set DRAFTER_BASE_URL to this");
    shutdown.wait().await;
    handle.shutdown().await;
    Ok(())
}
