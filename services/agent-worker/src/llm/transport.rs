//! One model call over HTTP: the provider's endpoint and auth headers
//! (`Authorization: Bearer`, Azure's `api-key`, Anthropic's `x-api-key`), a
//! bounded body, and retries on 429, 5xx, timeouts and unreadable answers
//! with capped exponential backoff, honouring `Retry-After`. Redirects are
//! never followed (they could carry the API key elsewhere); nothing here
//! logs or records message content.

use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use tracing::Instrument;

use super::chat::{ChatRequest, Turn};
use super::config::{ModelConfig, OpenAiAuth, Provider};
use super::{anthropic, openai};

/// Largest answer read.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// First backoff step; doubles per attempt.
const BASE_BACKOFF: Duration = Duration::from_millis(250);
/// Longest backoff step and the longest `Retry-After` slept through inside
/// a draft; a longer one ends the draft so the event is redelivered later.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(10);

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Worth trying again later (429, 5xx, network, timeout, garbage, auth
    /// or model not found): the event is redelivered, then dead-lettered.
    #[error("model provider unavailable: {message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The provider refused this request (400, 413, 422): the same request
    /// will fail again, so the draft falls back instead.
    #[error("model provider refused the request: {0}")]
    Refused(String),
    /// The client could not be built.
    #[error("model client: {0}")]
    Config(String),
}

/// An HTTP client bound to one provider endpoint and key.
#[derive(Debug, Clone)]
pub struct ModelClient {
    http: reqwest::Client,
    endpoint: String,
    provider: Provider,
    openai: openai::Options,
    headers: HeaderMap,
    max_retries: u32,
}

fn backoff(attempt: u32) -> Duration {
    let step = BASE_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(10))
        .min(MAX_INLINE_WAIT);
    let half = step / 2;
    half + half.mul_f64(fastrand::f64())
}

/// `Retry-After` as seconds (fractions allowed) or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

impl ModelClient {
    pub fn new(config: &ModelConfig) -> Result<Self, CallError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = HeaderMap::new();
        let key = config.api_key.as_ref().map(|k| k.expose());
        let bad_key =
            || CallError::Config("the API key has characters not allowed in a header".to_owned());
        match config.provider {
            Provider::OpenAi => {
                if let Some(key) = key {
                    let (name, value) = match config.auth {
                        OpenAiAuth::Bearer => (
                            reqwest::header::AUTHORIZATION.as_str(),
                            format!("Bearer {key}"),
                        ),
                        OpenAiAuth::ApiKey => ("api-key", key.to_owned()),
                    };
                    let mut v = HeaderValue::from_str(&value).map_err(|_| bad_key())?;
                    v.set_sensitive(true);
                    headers.insert(name, v);
                }
            }
            Provider::Anthropic => {
                if let Some(key) = key {
                    let mut v = HeaderValue::from_str(key).map_err(|_| bad_key())?;
                    v.set_sensitive(true);
                    headers.insert("x-api-key", v);
                }
                headers.insert(
                    "anthropic-version",
                    HeaderValue::from_static(anthropic::API_VERSION),
                );
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10).min(config.timeout))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("zengate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CallError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            endpoint: config.endpoint(),
            provider: config.provider,
            openai: openai::Options::new(config),
            headers,
            max_retries: config.max_retries,
        })
    }

    /// One model turn, retried until `deadline`.
    pub async fn complete(
        &self,
        req: &ChatRequest<'_>,
        deadline: Instant,
    ) -> Result<Turn, CallError> {
        let body = match self.provider {
            Provider::OpenAi => openai::encode(req, &self.openai),
            Provider::Anthropic => anthropic::encode(req),
        }
        .map_err(|e| CallError::Config(format!("cannot encode the request: {e}")))?;
        let span = tracing::Span::current();
        let mut attempt = 0;
        loop {
            attempt += 1;
            span.record("attempt", attempt);
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(CallError::Unavailable {
                    message: "the draft ran out of time".to_owned(),
                    retry_after: None,
                });
            }
            let (error, retry_after) = match self.attempt(&body, remaining).await {
                Ok(turn) => return Ok(turn),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Again(message, after)) => (message, after),
            };
            let wait = retry_after.unwrap_or_else(|| backoff(attempt));
            let after_wait = Instant::now() + wait;
            if attempt > self.max_retries || wait > MAX_INLINE_WAIT || after_wait >= deadline {
                return Err(CallError::Unavailable {
                    message: format!("{error} (after {attempt} attempts)"),
                    retry_after,
                });
            }
            tracing::info!(attempt, delay_ms = wait.as_millis() as u64, %error, "retrying model call");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, body: &[u8], timeout: Duration) -> Result<Turn, Attempt> {
        let send = self
            .http
            .post(&self.endpoint)
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(body.to_vec())
            .send()
            .instrument(tracing::Span::current());
        let mut resp = send.await.map_err(|e| {
            let e = e.without_url();
            Attempt::Again(
                if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    format!("transport error: {e}")
                },
                None,
            )
        })?;
        let status = resp.status();
        tracing::Span::current().record("status", status.as_u16());
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut buf = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) if buf.len() + chunk.len() <= MAX_BODY => {
                    buf.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => return Err(Attempt::Again("answer too large".to_owned(), None)),
                Ok(None) => break,
                Err(e) => {
                    let e = e.without_url();
                    let msg = if e.is_timeout() {
                        "timed out".to_owned()
                    } else {
                        format!("answer broken off: {e}")
                    };
                    return Err(Attempt::Again(msg, None));
                }
            }
        }
        if status.is_success() {
            let decoded = match self.provider {
                Provider::OpenAi => openai::decode(&buf),
                Provider::Anthropic => anthropic::decode(&buf),
            };
            return decoded.map_err(|e| Attempt::Again(format!("unreadable answer: {e}"), None));
        }
        let what = match error_code(&buf) {
            Some(code) => format!("HTTP {} ({code})", status.as_u16()),
            None => format!("HTTP {}", status.as_u16()),
        };
        match status {
            StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNPROCESSABLE_ENTITY => Err(Attempt::Final(CallError::Refused(what))),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT => {
                Err(Attempt::Again(what, retry_after))
            }
            s if s.is_server_error() || s.as_u16() == 529 => Err(Attempt::Again(what, retry_after)),
            // 401/403/404: a wrong key, model or URL. Retrying now will not
            // help, but the event must survive until the setting is fixed.
            _ => Err(Attempt::Final(CallError::Unavailable {
                message: what,
                retry_after: None,
            })),
        }
    }
}

/// The machine-readable part of a provider error body: OpenAI's
/// `error.code` and `error.param` (`unsupported_parameter: max_tokens`) or
/// Anthropic's `error.type`. Never the free-text message, which may quote
/// the request.
fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let field = |name: &str| {
        v["error"][name]
            .as_str()
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 64
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            })
            .map(str::to_owned)
    };
    let code = field("code").or_else(|| field("type"))?;
    Some(match field("param") {
        Some(param) => format!("{code}: {param}"),
        None => code,
    })
}

enum Attempt {
    /// Retry if attempts and time remain.
    Again(String, Option<Duration>),
    /// Stop now with this error.
    Final(CallError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn error_codes_but_never_messages() {
        assert_eq!(
            error_code(
                br#"{"error":{"message":"Unsupported parameter: 'max_tokens' ...","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}"#
            )
            .as_deref(),
            Some("unsupported_parameter: max_tokens")
        );
        assert_eq!(
            error_code(
                br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#
            )
            .as_deref(),
            Some("rate_limit_error")
        );
        assert_eq!(
            error_code(br#"{"error":{"code":"has spaces: quote"}}"#),
            None
        );
        assert_eq!(error_code(b"<html>"), None);
    }

    #[test]
    fn backoff_is_capped() {
        for attempt in 1..30 {
            assert!(backoff(attempt) <= MAX_INLINE_WAIT);
        }
        assert!(backoff(1) >= BASE_BACKOFF / 2);
    }
}
