//! `auth`: reads the environment, serves until SIGTERM; SIGHUP reloads secrets.

use anyhow::Context as _;
use auth::{Application, AuthConfig};
use zengate_runtime::{Env, Shutdown, telemetry};

#[global_allocator]
static ALLOCATOR: zengate_runtime::Allocator = zengate_runtime::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::process();
    let _telemetry = telemetry::init("auth", &env)?;
    let config = AuthConfig::from_env(&env)?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let app = Application::build(config)
        .await
        .context("auth failed to start")?;
    app.run(shutdown).await?;
    Ok(())
}
