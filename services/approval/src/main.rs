//! `approval`: reads the environment, serves until SIGTERM.

use anyhow::Context as _;
use approval::{Application, ApprovalConfig};
use zengate_runtime::{Env, Shutdown, telemetry};

#[global_allocator]
static ALLOCATOR: zengate_runtime::Allocator = zengate_runtime::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::process();
    let _telemetry = telemetry::init("approval", &env)?;
    let config = ApprovalConfig::from_env(&env)?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let app = Application::build(config)
        .await
        .context("approval failed to start")?;
    app.run(shutdown).await?;
    Ok(())
}
