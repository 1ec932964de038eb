//! The CLI reaches NATS like the services do: `--nats-url` (or `NATS_URL`)
//! plus the other `NATS_*` variables (credentials, TLS). It connects once
//! and fails rather than waiting for a server that is down.

use zengate_runtime::{Env, NatsConfig, bus};

pub async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("NATS_") && k != "NATS_URL")
        .collect();
    vars.push(("NATS_URL".to_owned(), url.to_owned()));
    let config = NatsConfig::from_env(&Env::from_pairs(vars))?;
    Ok(bus::connect_once(&config, "zengate-cli").await?)
}
