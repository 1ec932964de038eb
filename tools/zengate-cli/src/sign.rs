//! `zengate sign-event`: produce a delivery byte-for-byte like Zendesk's.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zengate_core::Secret;
use zengate_core::headers as h;
use zengate_core::signature::sign;

#[derive(Debug, Args)]
pub struct SignEvent {
    /// Webhook signing secret (as shown in Zendesk's admin screen).
    #[arg(long, env = "ZENDESK_WEBHOOK_SIGNING_SECRET", hide_env_values = true)]
    secret: String,
    /// Zendesk account id sent in x-zendesk-account-id.
    #[arg(long, env = "ZENDESK_ACCOUNT_ID")]
    account: String,
    /// Webhook id sent in x-zendesk-webhook-id (must match the ingress's
    /// `ZENDESK_WEBHOOK_ID` when that is set).
    #[arg(long, env = "ZENDESK_WEBHOOK_ID", default_value = "01ZENGATEDEMO")]
    webhook_id: String,
    /// Signature timestamp; defaults to now (ISO-8601 UTC).
    #[arg(long)]
    timestamp: Option<String>,
    /// Ingress webhook URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/channels/zendesk/webhook")]
    url: String,
    /// Print a curl command instead of sending.
    #[arg(long)]
    curl: bool,
    /// The JSON body to sign, sent byte for byte.
    file: PathBuf,
}

impl SignEvent {
    pub async fn run(self) -> anyhow::Result<()> {
        let body = std::fs::read(&self.file)
            .with_context(|| format!("cannot read {}", self.file.display()))?;
        let timestamp = match self.timestamp {
            Some(t) => t,
            None => OffsetDateTime::now_utc()
                .replace_nanosecond(0)?
                .format(&Rfc3339)?,
        };
        let signature = sign(&Secret::new(self.secret), &timestamp, &body);
        let invocation = uuid::Uuid::new_v4().to_string();
        let headers = [
            ("content-type", "application/json".to_owned()),
            (h::ZENDESK_ACCOUNT_ID, self.account.clone()),
            (h::ZENDESK_WEBHOOK_ID, self.webhook_id.clone()),
            (h::ZENDESK_INVOCATION_ID, invocation),
            (h::ZENDESK_SIGNATURE_TIMESTAMP, timestamp),
            (h::ZENDESK_SIGNATURE, signature),
        ];
        if self.curl {
            let mut line = format!("curl -sS -X POST '{}'", self.url);
            for (k, v) in &headers {
                line.push_str(&format!(" \\\n  -H '{k}: {v}'"));
            }
            line.push_str(&format!(" \\\n  --data-binary @'{}'", self.file.display()));
            println!("{line}");
            return Ok(());
        }
        // reqwest is built without a default TLS provider; install ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let mut req = client.post(&self.url).body(body);
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("POST {}", self.url))?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        println!("{} {}", status.as_u16(), text.trim());
        if !status.is_success() {
            bail!("ingress answered {status}");
        }
        Ok(())
    }
}
