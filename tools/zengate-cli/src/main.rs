//! `zengate`: operator commands for a running zengate.

mod dlq;
mod events;
mod healthcheck;
mod nats;
mod sign;
mod users;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "zengate", version, about = "Operate a zengate deployment")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign a JSON file as Zendesk would and POST it to the ingress (or print curl).
    SignEvent(sign::SignEvent),
    /// Read provider events from the ZENDESK_EVENTS stream.
    #[command(subcommand)]
    Events(events::Events),
    /// Inspect and replay dead letters (zengate.dlq.>).
    #[command(subcommand)]
    Dlq(dlq::Dlq),
    /// Manage the user_tokens the auth service issues JWTs for.
    Users(users::Users),
    /// Probe a health URL; exit 0 on 2xx (container probes without curl).
    Healthcheck(healthcheck::Healthcheck),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::SignEvent(cmd) => cmd.run().await,
        Command::Events(cmd) => cmd.run().await,
        Command::Dlq(cmd) => cmd.run().await,
        Command::Users(cmd) => cmd.run().await,
        Command::Healthcheck(cmd) => cmd.run().await,
    }
}
