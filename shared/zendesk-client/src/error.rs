//! Typed errors. None of them carries a credential: request URLs hold only
//! the origin and path, and authorization lives in headers that are never
//! formatted.

use std::time::Duration;

/// Why a Zendesk call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The configuration would send credentials somewhere unsafe or is
    /// unusable; detected before any request.
    #[error("invalid Zendesk client configuration: {0}")]
    InvalidConfig(String),
    /// A resource id that is not a positive integer (e.g. ticket 0).
    #[error("invalid Zendesk id: expected a positive integer")]
    InvalidId,
    /// A request argument the API would refuse (e.g. an over-long
    /// idempotency key); detected before any request.
    #[error("invalid Zendesk request: {0}")]
    InvalidRequest(String),
    /// `404`, Zendesk's `RecordNotFound`.
    #[error("Zendesk resource not found: {path}")]
    NotFound {
        path: String,
        description: Option<String>,
    },
    /// `429` after the attempts were used up, or with a `Retry-After` longer
    /// than the configured maximum backoff.
    #[error("Zendesk rate limit{}", fmt_retry_after(.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    /// Any other non-success answer, with Zendesk's `error`/`description`.
    #[error("Zendesk API error {status}: {error}{}", fmt_description(.description))]
    Api {
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// The same `Idempotency-Key` was used with a different body
    /// (`IdempotentRequestError`).
    #[error("Zendesk idempotency conflict{}", fmt_description(.description))]
    Idempotency { description: Option<String> },
    /// Connection-level failure (refused, reset, TLS...).
    #[error("Zendesk transport error: {0}")]
    Transport(String),
    /// An attempt exceeded the configured timeout.
    #[error("Zendesk request timed out")]
    Timeout,
    /// A success answer whose body did not have the expected shape.
    #[error("unexpected Zendesk response: {0}")]
    Decode(String),
}

fn fmt_retry_after(d: &Option<Duration>) -> String {
    match d {
        Some(d) => format!(" (retry after {} s)", d.as_secs()),
        None => String::new(),
    }
}

fn fmt_description(d: &Option<String>) -> String {
    match d {
        Some(d) => format!(" ({d})"),
        None => String::new(),
    }
}

impl ClientError {
    /// True when the same call may succeed later (rate limit, 5xx, network,
    /// timeout). A caller retrying a non-idempotent write (comment PUT) must
    /// still guard against doubles itself: after a timeout or a 5xx the
    /// write may have been applied.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::RateLimited { .. } | ClientError::Transport(_) | ClientError::Timeout => {
                true
            }
            ClientError::Api { status, .. } => *status >= 500 || *status == 409,
            _ => false,
        }
    }

    /// True when a write may have been applied although it failed: the
    /// request may have reached Zendesk and no answer says otherwise
    /// (timeout, broken connection, a 5xx other than 503, or a success whose
    /// body could not be read). A caller about to repeat a comment PUT after
    /// such an error should first look whether the comment exists.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            ClientError::Timeout | ClientError::Transport(_) | ClientError::Decode(_) => true,
            ClientError::Api { status, .. } => *status >= 500 && *status != 503,
            _ => false,
        }
    }

    /// How long Zendesk asked to wait, when it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status behind this error, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::NotFound { .. } => Some(404),
            ClientError::RateLimited { .. } => Some(429),
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Idempotency { .. } => Some(400),
            _ => None,
        }
    }
}
