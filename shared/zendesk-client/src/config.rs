//! Client configuration: where the API lives and how to authenticate.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;
use zengate_core::Secret;
use zengate_core::env::{ConfigError, Env};

/// How the client authenticates. Both variants keep the secret part in a
/// [`Secret`], so `Debug` never shows it.
#[derive(Clone)]
pub enum Credentials {
    /// `Authorization: Basic base64("{email}/token:{token}")`.
    ApiToken { email: String, token: Secret },
    /// `Authorization: Bearer {token}`.
    OAuth { token: Secret },
}

impl Credentials {
    /// The `Authorization` header value. Only called when building a request.
    pub(crate) fn authorization(&self) -> String {
        use base64::Engine as _;
        match self {
            Credentials::ApiToken { email, token } => {
                let raw = format!("{email}/token:{}", token.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            Credentials::OAuth { token } => format!("Bearer {}", token.expose()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::ApiToken { email, .. } => f
                .debug_struct("ApiToken")
                .field("email", email)
                .field("token", &"[redacted]")
                .finish(),
            Credentials::OAuth { .. } => f
                .debug_struct("OAuth")
                .field("token", &"[redacted]")
                .finish(),
        }
    }
}

/// Everything needed to build a [`crate::ZendeskClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The account's subdomain: a bare DNS label (`acme` for
    /// `https://acme.zendesk.com`). Validated so it can never name another host.
    pub subdomain: String,
    pub credentials: Credentials,
    /// Operator override of the origin (simulator, staging proxy). Plain
    /// `http` is accepted only for loopback hosts unless
    /// `allow_insecure_http` is set.
    pub base_url_override: Option<String>,
    /// Accept a plain-`http` override on a non-loopback host (a simulator in
    /// another container). An explicit operator choice; never for production.
    pub allow_insecure_http: bool,
    /// Time limit of one attempt (connect, send, read the whole body).
    pub timeout: Duration,
    /// Attempts per call, including the first (at least 1).
    pub max_attempts: u32,
    /// Longest wait between attempts. A `Retry-After` above it is not waited
    /// for: the call fails at once with the typed error so the caller can
    /// schedule its own retry instead of holding a worker.
    pub max_backoff: Duration,
}

pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_MAX_ATTEMPTS: u32 = 4;
pub(crate) const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(8);

impl ClientConfig {
    /// A configuration with the default timeout, attempts and backoff.
    pub fn new(subdomain: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            subdomain: subdomain.into(),
            credentials,
            base_url_override: None,
            allow_insecure_http: false,
            timeout: DEFAULT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }

    /// Reads `ZENDESK_SUBDOMAIN`, `ZENDESK_EMAIL` + `ZENDESK_API_TOKEN` (or
    /// `ZENDESK_OAUTH_TOKEN`), `ZENDESK_API_BASE_URL`, `ZENDESK_API_TIMEOUT`,
    /// `ZENDESK_API_MAX_ATTEMPTS`, `ZENDESK_API_MAX_BACKOFF`, and validates
    /// the subdomain and base URL so a bad value fails at start-up.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let subdomain = env.required("ZENDESK_SUBDOMAIN")?.trim().to_owned();
        validate_subdomain(&subdomain).map_err(|r| ConfigError::invalid("ZENDESK_SUBDOMAIN", r))?;

        let api_token = env.secret_opt("ZENDESK_API_TOKEN")?;
        let oauth = env.secret_opt("ZENDESK_OAUTH_TOKEN")?;
        let credentials = match (api_token, oauth) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "ZENDESK_API_TOKEN",
                    "set either ZENDESK_API_TOKEN (with ZENDESK_EMAIL) or ZENDESK_OAUTH_TOKEN, not both",
                ));
            }
            (Some(token), None) => {
                let email = env.required("ZENDESK_EMAIL")?.trim().to_owned();
                validate_email(&email).map_err(|r| ConfigError::invalid("ZENDESK_EMAIL", r))?;
                Credentials::ApiToken { email, token }
            }
            (None, Some(token)) => Credentials::OAuth { token },
            (None, None) => {
                return Err(ConfigError::Missing {
                    var: "ZENDESK_API_TOKEN".to_owned(),
                });
            }
        };

        let allow_insecure_http = env.bool_or("ZENDESK_API_ALLOW_INSECURE_HTTP", false)?;
        let base_url_override = env.get("ZENDESK_API_BASE_URL").map(|s| s.trim().to_owned());
        if let Some(url) = &base_url_override {
            parse_base_url(url, allow_insecure_http)
                .map_err(|r| ConfigError::invalid("ZENDESK_API_BASE_URL", r))?;
        }
        let timeout = env.duration_or("ZENDESK_API_TIMEOUT", DEFAULT_TIMEOUT)?;
        if timeout.is_zero() {
            return Err(ConfigError::invalid(
                "ZENDESK_API_TIMEOUT",
                "must be above zero",
            ));
        }
        let max_attempts = env.parse_or("ZENDESK_API_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)?;
        if max_attempts == 0 {
            return Err(ConfigError::invalid(
                "ZENDESK_API_MAX_ATTEMPTS",
                "must be at least 1",
            ));
        }
        let max_backoff = env.duration_or("ZENDESK_API_MAX_BACKOFF", DEFAULT_MAX_BACKOFF)?;
        Ok(Self {
            subdomain,
            credentials,
            base_url_override,
            allow_insecure_http,
            timeout,
            max_attempts,
            max_backoff,
        })
    }

    /// The origin requests go to, after validating every part of the
    /// configuration that decides where a credential is sent.
    pub(crate) fn resolve_origin(&self) -> Result<String, String> {
        validate_subdomain(&self.subdomain)?;
        if let Credentials::ApiToken { email, .. } = &self.credentials {
            validate_email(email)?;
        }
        match &self.base_url_override {
            Some(raw) => parse_base_url(raw, self.allow_insecure_http),
            None => Ok(format!(
                "https://{}.zendesk.com",
                self.subdomain.to_ascii_lowercase()
            )),
        }
    }
}

/// A bare DNS label: `^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`, case-insensitive.
/// Anything else (dots, scheme, port, path, 64+ characters) could point the
/// credential at another host.
pub(crate) fn validate_subdomain(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok_edge = |c: u8| c.is_ascii_alphanumeric();
    let ok_mid = |c: u8| c.is_ascii_alphanumeric() || c == b'-';
    let valid = !b.is_empty()
        && b.len() <= 63
        && ok_edge(b[0])
        && ok_edge(b[b.len() - 1])
        && b.iter().all(|&c| ok_mid(c));
    if valid {
        Ok(())
    } else {
        Err("the Zendesk subdomain must be a bare DNS label (letters, digits, inner hyphens, at most 63 characters)".to_owned())
    }
}

/// The email is part of the Basic credential: refuse characters that would
/// change its meaning (`/token:` is the separator) or break the header.
fn validate_email(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.contains([':', '/'])
        || s.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        Err("the Zendesk email must be a plain address without ':', '/' or spaces".to_owned())
    } else {
        Ok(())
    }
}

/// Validates an operator override and returns it as an origin (plus optional
/// path prefix) without a trailing slash. A trailing `/api/v2` is accepted and
/// dropped, since operators often paste the API root.
pub(crate) fn parse_base_url(raw: &str, allow_insecure_http: bool) -> Result<String, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not contain a query or fragment".to_owned());
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "must name a host".to_owned())?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = bare.eq_ignore_ascii_case("localhost")
                || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback && !allow_insecure_http {
                return Err("plain http is allowed only for loopback hosts (or with ZENDESK_API_ALLOW_INSECURE_HTTP=true); use https".to_owned());
            }
        }
        other => return Err(format!("unsupported scheme {other:?}; use https")),
    }
    let mut s = url.as_str().trim_end_matches('/').to_owned();
    if let Some(stripped) = s.strip_suffix("/api/v2") {
        s = stripped.to_owned();
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        for ok in ["acme", "a", "ACME-support", "a1-b2", &"a".repeat(63)] {
            assert!(validate_subdomain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a.b",
            "-a",
            "a-",
            "https://attacker.example",
            "acme/x",
            "acme:443",
            "ac me",
            "äcme",
            &"a".repeat(64),
        ] {
            assert!(validate_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            parse_base_url("http://127.0.0.1:8090/", false).unwrap(),
            "http://127.0.0.1:8090"
        );
        assert_eq!(
            parse_base_url("http://localhost:1/api/v2", false).unwrap(),
            "http://localhost:1"
        );
        assert_eq!(
            parse_base_url("http://[::1]:9", false).unwrap(),
            "http://[::1]:9"
        );
        assert_eq!(
            parse_base_url("https://proxy.internal/zendesk", false).unwrap(),
            "https://proxy.internal/zendesk"
        );
        for bad in [
            "http://example.com",
            "http://10.0.0.1",
            "http://127.0.0.1.attacker.example",
            "ftp://127.0.0.1",
            "https://u:p@proxy.internal",
            "https://proxy.internal/?x=1",
            "not a url",
        ] {
            assert!(parse_base_url(bad, false).is_err(), "{bad}");
        }
        // an explicit opt-in allows http to a named host (a simulator container)
        assert_eq!(
            parse_base_url("http://zendesk-sim:8090", true).unwrap(),
            "http://zendesk-sim:8090"
        );
        assert!(parse_base_url("ftp://zendesk-sim", true).is_err());
    }

    #[test]
    fn from_env_names_the_variable() {
        let env = Env::from_pairs([
            ("ZENDESK_SUBDOMAIN", "a.b"),
            ("ZENDESK_EMAIL", "x@y"),
            ("ZENDESK_API_TOKEN", "tok"),
        ]);
        let e = ClientConfig::from_env(&env).unwrap_err().to_string();
        assert!(e.starts_with("ZENDESK_SUBDOMAIN"), "{e}");

        let env = Env::from_pairs([
            ("ZENDESK_SUBDOMAIN", "acme"),
            ("ZENDESK_EMAIL", "x@y"),
            ("ZENDESK_API_TOKEN", "tok-secret"),
            ("ZENDESK_API_BASE_URL", "http://zendesk.example"),
        ]);
        let e = ClientConfig::from_env(&env).unwrap_err().to_string();
        assert!(e.starts_with("ZENDESK_API_BASE_URL"), "{e}");
        assert!(!e.contains("tok-secret"));

        let env = Env::from_pairs([
            ("ZENDESK_SUBDOMAIN", "acme"),
            ("ZENDESK_OAUTH_TOKEN", "oauth-secret"),
            ("ZENDESK_API_TIMEOUT", "3s"),
            ("ZENDESK_API_MAX_ATTEMPTS", "2"),
        ]);
        let c = ClientConfig::from_env(&env).unwrap();
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert_eq!(c.max_attempts, 2);
        assert!(!format!("{c:?}").contains("oauth-secret"));
        assert_eq!(c.resolve_origin().unwrap(), "https://acme.zendesk.com");

        let env = Env::from_pairs([("ZENDESK_SUBDOMAIN", "acme"), ("ZENDESK_API_TOKEN", "t")]);
        assert_eq!(
            ClientConfig::from_env(&env).unwrap_err().to_string(),
            "ZENDESK_EMAIL is required but not set"
        );
    }
}
