//! Embedded defaults for a local stack: every value the services require,
//! pointing them at each other on loopback. Anything set in the process
//! environment wins.

use std::collections::HashMap;

use zengate_runtime::Env;

pub const SIM_ADDR: &str = "127.0.0.1:8090";

const DEFAULTS: &[(&str, &str)] = &[
    ("NATS_URL", "nats://127.0.0.1:4222"),
    ("REDIS_URL", "redis://127.0.0.1:6379"),
    ("LOG_FORMAT", "pretty"),
    ("RUST_LOG", "warn"),
    ("ZENDESK_ACCOUNT_ID", "42"),
    ("ZENDESK_WEBHOOK_SIGNING_SECRET", "local-dev-signing-secret"),
    ("ZENDESK_WEBHOOK_ID", "01SIMWEBHOOK"),
    ("ZENDESK_SUBDOMAIN", "zengate-local"),
    ("ZENDESK_EMAIL", "agent@zengate.local"),
    ("ZENDESK_API_TOKEN", "local-dev-api-token"),
    ("ZENDESK_JWT_SHARED_SECRET", "local-dev-jwt-shared-secret"),
    ("APPROVAL_RESUME_SECRET", "local-dev-resume-secret"),
    ("INGRESS_ADDR", "127.0.0.1:8080"),
    ("AUTH_ADDR", "127.0.0.1:8081"),
    ("APPROVAL_ADDR", "127.0.0.1:8082"),
    ("APPROVAL_PUBLIC_URL", "http://127.0.0.1:8082"),
    ("WORKER_ADDR", "127.0.0.1:8083"),
    ("AUTH_ALLOWED_ORIGINS", "http://127.0.0.1:8081"),
];

/// Process environment over the embedded defaults, with the simulator and
/// the ingress wired to each other.
pub fn layered() -> Env {
    let mut vars: HashMap<String, String> = DEFAULTS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    vars.extend(std::env::vars().filter(|(_, v)| !v.trim().is_empty()));
    // No fixed demo token: approval refuses published placeholders, so an
    // unset APPROVER_TOKENS gets a fresh random one (printed at start-up).
    if !vars.contains_key("APPROVER_TOKENS") {
        vars.insert("APPROVER_TOKENS".into(), format!("demo:{}", random_token()));
    }
    let sim = vars
        .get("ZENDESK_SIM_ADDR")
        .cloned()
        .unwrap_or_else(|| SIM_ADDR.to_owned());
    let ingress = vars
        .get("INGRESS_ADDR")
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    // The release-signing key exists only for this process's lifetime: the
    // approval service and the workers here share it, nobody else knows it.
    vars.entry("ZENGATE_RELEASE_SIGNING_SECRET".into())
        .or_insert_with(random_token);
    vars.entry("ZENDESK_API_BASE_URL".into())
        .or_insert_with(|| format!("http://{sim}"));
    vars.entry("ZENDESK_SIM_WEBHOOK_URL".into())
        .or_insert_with(|| format!("http://{ingress}/channels/zendesk/webhook"));
    Env::from_pairs(vars)
}

/// 192 random bits as hex (48 characters); without OS randomness, a value
/// approval refuses, so the stack fails loudly instead of running weak.
fn random_token() -> String {
    let mut buf = [0u8; 24];
    match getrandom::fill(&mut buf) {
        Ok(()) => hex::encode(buf),
        Err(_) => "REPLACE_ME_no_randomness_available".to_owned(),
    }
}

/// The first approver token configured (a random one by default).
pub fn approver_token(env: &Env) -> String {
    env.get("APPROVER_TOKENS")
        .and_then(|list| {
            list.split(',')
                .next()
                .and_then(|pair| pair.split_once(':').map(|(_, t)| t.trim().to_owned()))
        })
        .unwrap_or_default()
}
