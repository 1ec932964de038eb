//! When and how long to wait before another attempt.

use std::time::{Duration, SystemTime};

/// What a repeated request could do to Zendesk, which decides which
/// failures may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Reads: repeating is harmless.
    Safe,
    /// `POST /tickets.json` with an `Idempotency-Key`: Zendesk answers a
    /// repeat with the original response, so any failure may be retried.
    Keyed,
    /// `PUT /tickets/{id}.json`: Zendesk has no idempotency key for updates
    /// and a repeated comment is a second comment. Retry only when the
    /// request provably was not applied: the connection never opened, or
    /// Zendesk refused it with `429`/`503` before doing any work. A timeout,
    /// a reset mid-request or a `500`/`502`/`504` may follow a write that
    /// happened, so those are returned to the caller, whose own guard knows
    /// whether to look before writing again.
    Unsafe,
}

/// The outcome of one attempt, reduced to what the retry decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptFailure {
    /// The connection could not be established: nothing was sent.
    Connect,
    /// Timed out or broke after (maybe) sending.
    AfterSend,
    /// `429` or `503`: refused before processing.
    Refused,
    /// Another `5xx`.
    ServerError,
}

pub(crate) fn may_retry(replay: Replay, failure: AttemptFailure) -> bool {
    match failure {
        AttemptFailure::Connect | AttemptFailure::Refused => true,
        AttemptFailure::AfterSend | AttemptFailure::ServerError => replay != Replay::Unsafe,
    }
}

/// First backoff step; doubles every attempt up to the configured maximum.
const BASE_BACKOFF: Duration = Duration::from_millis(200);

/// Capped exponential backoff with "equal jitter": half the step is fixed,
/// the other half random, so replicas that failed together spread out but
/// still wait a meaningful minimum.
pub(crate) fn backoff(attempt: u32, max: Duration) -> Duration {
    let exp = BASE_BACKOFF.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let step = exp.min(max);
    let half = step / 2;
    half + half.mul_f64(fastrand::f64())
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110). A date in the
/// past means "now".
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let max = Duration::from_secs(8);
        for attempt in 1..40 {
            let d = backoff(attempt, max);
            assert!(d <= max, "{attempt}: {d:?}");
        }
        let first = backoff(1, max);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
    }

    #[test]
    fn put_is_retried_only_when_provably_not_applied() {
        assert!(may_retry(Replay::Unsafe, AttemptFailure::Connect));
        assert!(may_retry(Replay::Unsafe, AttemptFailure::Refused));
        assert!(!may_retry(Replay::Unsafe, AttemptFailure::AfterSend));
        assert!(!may_retry(Replay::Unsafe, AttemptFailure::ServerError));
        assert!(may_retry(Replay::Keyed, AttemptFailure::ServerError));
        assert!(may_retry(Replay::Safe, AttemptFailure::AfterSend));
    }
}
