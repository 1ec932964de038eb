//! `agent-worker`: reads the environment, consumes until SIGTERM.

use agent_worker::{Application, WorkerConfig};
use anyhow::Context as _;
use zengate_runtime::{Env, Shutdown, telemetry};

#[global_allocator]
static ALLOCATOR: zengate_runtime::Allocator = zengate_runtime::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::process();
    let _telemetry = telemetry::init("agent-worker", &env)?;
    let config = WorkerConfig::from_env(&env)?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let app = Application::build(config)
        .await
        .context("agent worker failed to start")?;
    app.run(shutdown).await?;
    Ok(())
}
