//! The bounds every HTTP service puts on its clients (README, "Bounded HTTP clients"):
//! how long a client may take to send headers and a body, how long an idle
//! connection stays open, how many connections and requests are served at
//! once, how large a header block may be, and whether HTTP/2 cleartext is
//! spoken at all.

use std::time::Duration;

use crate::config::{ConfigError, Env};

/// hyper refuses a read buffer below this size.
pub const MIN_HEADER_BYTES: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's header block must arrive within this time, or the
    /// connection is closed (`HTTP_HEADER_READ_TIMEOUT`).
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this time of the request's start,
    /// or it is answered `408` and the connection closed
    /// (`HTTP_BODY_READ_TIMEOUT`).
    pub body_read_timeout: Duration,
    /// A connection with no request in progress is closed after this time
    /// (`HTTP_KEEPALIVE_TIMEOUT`).
    pub keepalive_timeout: Duration,
    /// A request not answered within this time gets `408`
    /// (`HTTP_REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog
    /// (`HTTP_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Requests handled at once; further ones get `503` with `Retry-After`
    /// (`HTTP_MAX_IN_FLIGHT`).
    pub max_in_flight: usize,
    /// Largest request line plus header block; larger gets `431`
    /// (`HTTP_MAX_HEADER_BYTES`, at least 8192).
    pub max_header_bytes: usize,
    /// Serve HTTP/2 cleartext (prior knowledge) as well as HTTP/1.1
    /// (`HTTP_H2C`).
    pub h2c: bool,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_in_flight: 512,
            max_header_bytes: 16 * 1024,
            h2c: false,
        }
    }
}

impl HttpLimits {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let limits = Self {
            header_read_timeout: positive(env, "HTTP_HEADER_READ_TIMEOUT", d.header_read_timeout)?,
            body_read_timeout: positive(env, "HTTP_BODY_READ_TIMEOUT", d.body_read_timeout)?,
            keepalive_timeout: positive(env, "HTTP_KEEPALIVE_TIMEOUT", d.keepalive_timeout)?,
            request_timeout: positive(env, "HTTP_REQUEST_TIMEOUT", d.request_timeout)?,
            max_connections: count(env, "HTTP_MAX_CONNECTIONS", d.max_connections)?,
            max_in_flight: count(env, "HTTP_MAX_IN_FLIGHT", d.max_in_flight)?,
            max_header_bytes: env.parse_or("HTTP_MAX_HEADER_BYTES", d.max_header_bytes)?,
            h2c: env.bool_or("HTTP_H2C", d.h2c)?,
        };
        if limits.max_header_bytes < MIN_HEADER_BYTES {
            return Err(ConfigError::invalid(
                "HTTP_MAX_HEADER_BYTES",
                format!("must be at least {MIN_HEADER_BYTES}"),
            ));
        }
        Ok(limits)
    }
}

fn positive(env: &Env, var: &str, default: Duration) -> Result<Duration, ConfigError> {
    let d = env.duration_or(var, default)?;
    if d.is_zero() {
        return Err(ConfigError::invalid(var, "must be positive"));
    }
    Ok(d)
}

fn count(env: &Env, var: &str, default: usize) -> Result<usize, ConfigError> {
    let n = env.parse_or(var, default)?;
    if n == 0 {
        return Err(ConfigError::invalid(var, "must be at least 1"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        assert_eq!(
            HttpLimits::from_env(&Env::from_pairs::<&str, &str>([])).unwrap(),
            HttpLimits::default()
        );
        let l = HttpLimits::from_env(&Env::from_pairs([
            ("HTTP_HEADER_READ_TIMEOUT", "2s"),
            ("HTTP_MAX_CONNECTIONS", "10"),
            ("HTTP_H2C", "true"),
        ]))
        .unwrap();
        assert_eq!(l.header_read_timeout, Duration::from_secs(2));
        assert_eq!(l.max_connections, 10);
        assert!(l.h2c);
        for (var, value) in [
            ("HTTP_MAX_HEADER_BYTES", "4096"),
            ("HTTP_MAX_IN_FLIGHT", "0"),
            ("HTTP_BODY_READ_TIMEOUT", "0s"),
        ] {
            let e = HttpLimits::from_env(&Env::from_pairs([(var, value)])).unwrap_err();
            assert!(e.to_string().starts_with(var), "{e}");
        }
    }
}
