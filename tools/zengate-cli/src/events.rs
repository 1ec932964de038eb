//! `zengate events`: look at what the ingress made durable.

use anyhow::Context;
use async_nats::jetstream;
use clap::Subcommand;
use zengate_core::events::ZENDESK_STREAM;
use zengate_core::headers as h;

#[derive(Debug, Subcommand)]
pub enum Events {
    /// Print the last N events: sequence, subject, Nats-Msg-Id.
    Last {
        #[arg(
            long,
            env = "NATS_URL",
            hide_env_values = true,
            default_value = "nats://127.0.0.1:4222"
        )]
        nats_url: String,
        #[arg(long, default_value_t = 10)]
        count: u64,
        /// Also print each body.
        #[arg(long)]
        body: bool,
    },
}

impl Events {
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Events::Last {
                nats_url,
                count,
                body,
            } => last(&nats_url, count, body).await,
        }
    }
}

async fn last(url: &str, count: u64, with_body: bool) -> anyhow::Result<()> {
    let client = crate::nats::connect(url).await?;
    let js = jetstream::new(client);
    let mut stream = js
        .get_stream(ZENDESK_STREAM)
        .await
        .context("stream ZENDESK_EVENTS not found (is the ingress running?)")?;
    let info = stream.info().await?;
    let last = info.state.last_sequence;
    let first = last
        .saturating_sub(count.saturating_sub(1))
        .max(info.state.first_sequence);
    if info.state.messages == 0 {
        println!("no events yet");
        return Ok(());
    }
    for seq in first..=last {
        let Ok(msg) = stream.get_raw_message(seq).await else {
            continue;
        };
        let msg_id = msg
            .headers
            .get(h::NATS_MSG_ID)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        println!("{seq}\t{}\t{msg_id}", msg.subject);
        if with_body {
            println!("{}", String::from_utf8_lossy(&msg.payload));
        }
    }
    Ok(())
}
