//! `zengate users`: manage the user_tokens the auth service accepts.
//!
//! Only the SHA-256 of a token is stored; `add` prints the token once, alone
//! on the last line of stdout, and nothing can show it again.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use auth::users::{NewUser, RedisUsers, Selector, added_report};
use clap::{Args, Subcommand};
use zengate_runtime::redis_store::RedisStore;
use zengate_runtime::{Env, RedisConfig};

#[derive(Debug, Args)]
pub struct Users {
    /// Redis URL [default: REDIS_URL, else redis://127.0.0.1:6379]. Credentials
    /// and TLS come from REDIS_USERNAME, REDIS_PASSWORD(_FILE) and
    /// REDIS_TLS_{CA,CERT,KEY}_FILE.
    #[arg(long, global = true)]
    redis_url: Option<String>,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Add a user and print its new user_token (once, last line).
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        /// Stable id sent to Zendesk as external_id (generated when omitted).
        #[arg(long)]
        external_id: Option<String>,
        /// Mark the email as verified in Messaging tokens.
        #[arg(long)]
        email_verified: bool,
    },
    /// Remove every user with this external id or email (their tokens stop working).
    Remove {
        #[arg(long, conflicts_with = "email", required_unless_present = "email")]
        external_id: Option<String>,
        #[arg(long)]
        email: Option<String>,
    },
    /// List users (tokens are never shown, only a short hash).
    List,
}

impl Users {
    pub async fn run(self) -> anyhow::Result<()> {
        // The flag wins over REDIS_URL; the environment is never echoed in
        // --help since it may carry a password.
        let env = Env::process();
        let config = match &self.redis_url {
            Some(url) => RedisConfig::from_env_with_url(&env, url)?,
            None => RedisConfig::from_env(&env)?,
        };
        let store = RedisStore::new(&config, Duration::from_secs(5))
            .with_context(|| format!("Redis at {}", config.redacted_url()))?;
        let users = RedisUsers::new(Arc::new(store));
        match self.command {
            UsersCommand::Add {
                name,
                email,
                external_id,
                email_verified,
            } => {
                let (token, record) = users
                    .add(NewUser {
                        name,
                        email,
                        external_id,
                        email_verified,
                    })
                    .await
                    .context("cannot add the user")?;
                print!("{}", added_report(&record, token.expose()));
            }
            UsersCommand::Remove { external_id, email } => {
                let selector = match (external_id, email) {
                    (Some(id), _) => Selector::ExternalId(id),
                    (None, Some(e)) => Selector::Email(e),
                    (None, None) => anyhow::bail!("give --external-id or --email"),
                };
                let n = users
                    .remove(&selector)
                    .await
                    .context("cannot remove users")?;
                println!("removed {n} user(s)");
            }
            UsersCommand::List => {
                let listed = users.list().await.context("cannot list users")?;
                if listed.is_empty() {
                    println!("no users");
                }
                for u in listed {
                    let created = u
                        .record
                        .created_at
                        .and_then(|t| {
                            t.format(&time::format_description::well_known::Rfc3339)
                                .ok()
                        })
                        .unwrap_or_else(|| "-".to_owned());
                    println!(
                        "{}  {}  <{}>  external_id={}  created={}",
                        u.token_hash, u.record.name, u.record.email, u.record.external_id, created
                    );
                }
            }
        }
        Ok(())
    }
}
