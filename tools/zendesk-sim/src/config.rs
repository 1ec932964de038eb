//! Simulator configuration.

use zengate_core::Secret;
use zengate_runtime::{ConfigError, Env};

/// Where and how the simulator sends webhook deliveries.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// The receiver, e.g. ingress's `http://127.0.0.1:8080/channels/zendesk/webhook`.
    pub url: String,
    /// The webhook's signing secret.
    pub secret: Secret,
    /// Sent as `X-Zendesk-Webhook-Id`.
    pub webhook_id: String,
}

/// The simulated account.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The API user's email (Basic auth `{email}/token:{api_token}`).
    pub email: String,
    pub api_token: Secret,
    pub account_id: u64,
    /// Send signed webhook deliveries here when set.
    pub webhook: Option<WebhookTarget>,
    /// The first ticket id handed out; by default above 2^53 so clients that
    /// round ids through a float are caught.
    pub first_ticket_id: u64,
}

/// 2^53 + 1: the first integer a double cannot represent.
pub const DEFAULT_FIRST_TICKET_ID: u64 = 9_007_199_254_740_993;

impl SimConfig {
    /// A configuration with no webhook and the default first ticket id.
    pub fn new(email: impl Into<String>, api_token: impl Into<Secret>, account_id: u64) -> Self {
        Self {
            email: email.into(),
            api_token: api_token.into(),
            account_id,
            webhook: None,
            first_ticket_id: DEFAULT_FIRST_TICKET_ID,
        }
    }

    /// `ZENDESK_EMAIL`, `ZENDESK_API_TOKEN`, `ZENDESK_ACCOUNT_ID`, and, when
    /// `ZENDESK_SIM_WEBHOOK_URL` is set, `ZENDESK_WEBHOOK_SIGNING_SECRET`
    /// (first entry of a comma-separated list) and `ZENDESK_WEBHOOK_ID`
    /// (default `01SIMWEBHOOK`). `ZENDESK_SIM_FIRST_TICKET_ID` overrides the
    /// first ticket id.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let email = env.required("ZENDESK_EMAIL")?;
        let api_token = env.secret("ZENDESK_API_TOKEN")?;
        let account_id = env.positive_id("ZENDESK_ACCOUNT_ID")?;
        let webhook = match env.get("ZENDESK_SIM_WEBHOOK_URL") {
            None => None,
            Some(url) => {
                let secret = env
                    .secret_list("ZENDESK_WEBHOOK_SIGNING_SECRET")?
                    .into_iter()
                    .next()
                    .ok_or_else(|| ConfigError::Missing {
                        var: "ZENDESK_WEBHOOK_SIGNING_SECRET".to_owned(),
                    })?;
                Some(WebhookTarget {
                    url: url.trim().to_owned(),
                    secret,
                    webhook_id: env.string_or("ZENDESK_WEBHOOK_ID", "01SIMWEBHOOK"),
                })
            }
        };
        let first_ticket_id = match env.get("ZENDESK_SIM_FIRST_TICKET_ID") {
            None => DEFAULT_FIRST_TICKET_ID,
            Some(_) => env.positive_id("ZENDESK_SIM_FIRST_TICKET_ID")?,
        };
        Ok(Self {
            email,
            api_token,
            account_id,
            webhook,
            first_ticket_id,
        })
    }
}
