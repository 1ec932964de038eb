//! `zengate healthcheck URL`: the probe container images use, so they need no
//! curl or shell. Exit status 0 for a 2xx answer within the timeout, else 1.

use std::time::Duration;

use anyhow::bail;
use clap::Args;

#[derive(Debug, Args)]
pub struct Healthcheck {
    /// e.g. http://127.0.0.1:8080/readyz
    url: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
}

impl Healthcheck {
    pub async fn run(self) -> anyhow::Result<()> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(self.timeout))
            .build()?;
        let status = client.get(&self.url).send().await?.status();
        if !status.is_success() {
            bail!("{} answered {status}", self.url);
        }
        Ok(())
    }
}
