//! Which deliveries the JetStream duplicate window already deduplicates, so
//! the Redis lookup would cost a round trip and decide nothing.
//!
//! Every copy of an event carries the same signed `time`, and no copy is sent
//! before the event happened. While `now - time` is shorter than the stream's
//! duplicate window less a clock-skew allowance (Zendesk's clock against this
//! host's), every earlier copy was stored inside the window and JetStream
//! drops a repeat by its `Nats-Msg-Id`. Older events (late retries, replays,
//! redeliveries after an outage) and events dated too far ahead are looked
//! up in Redis as before, and every durable id is still written to Redis, so
//! copies that arrive after the window are caught there.
//!
//! An operator may edit the stream's window: [`DuplicateWindow::follow`]
//! re-reads it, and until the first read succeeds nothing is skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zengate_runtime::Shutdown;

/// How often the stream's duplicate window is re-read.
pub const REFRESH: Duration = Duration::from_secs(30);

/// The stream's duplicate window and the allowed clock skew.
#[derive(Debug)]
pub struct DuplicateWindow {
    /// The stream's window in milliseconds; 0 until known.
    window_ms: AtomicU64,
    skew: Duration,
}

impl DuplicateWindow {
    /// A window not yet read from the stream (every event is looked up).
    pub fn new(skew: Duration) -> Self {
        Self {
            window_ms: AtomicU64::new(0),
            skew,
        }
    }

    /// Records the stream's current duplicate window.
    pub fn set(&self, window: Duration) {
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self.window_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether JetStream alone deduplicates every copy of an event that
    /// happened at `time` (RFC 3339), received `now`. An unreadable `time`
    /// is not covered.
    pub fn covers(&self, time: &str, now: OffsetDateTime) -> bool {
        let window = Duration::from_millis(self.window_ms.load(Ordering::Relaxed));
        let Some(limit) = window.checked_sub(self.skew).filter(|l| !l.is_zero()) else {
            return false;
        };
        let Ok(at) = OffsetDateTime::parse(time, &Rfc3339) else {
            return false;
        };
        let (Ok(skew), Ok(limit)) = (
            time::Duration::try_from(self.skew),
            time::Duration::try_from(limit),
        ) else {
            return false;
        };
        let age = now - at;
        age > -skew && age < limit
    }

    /// Keeps the window in step with `stream` until `shutdown`. A failed
    /// read keeps the last known value: the stream's window only changes by
    /// an operator's edit, which the next successful read picks up.
    pub async fn follow(
        self: Arc<Self>,
        js: jetstream::Context,
        stream: String,
        every: Duration,
        shutdown: Shutdown,
    ) {
        loop {
            match js.get_stream(&stream).await {
                Ok(mut s) => match s.info().await {
                    Ok(info) => self.set(info.config.duplicate_window),
                    Err(e) => tracing::debug!(%stream, error = %e, "cannot read the stream"),
                },
                Err(e) => tracing::debug!(%stream, error = %e, "cannot read the stream"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        match OffsetDateTime::parse(s, &Rfc3339) {
            Ok(t) => t,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn window(window: u64, skew: u64) -> DuplicateWindow {
        let w = DuplicateWindow::new(Duration::from_secs(skew));
        w.set(Duration::from_secs(window));
        w
    }

    #[test]
    fn fresh_events_are_covered_within_the_window_less_the_skew() {
        let w = window(600, 60);
        let now = at("2026-12-01T12:10:00Z");
        assert!(w.covers("2026-12-01T12:09:59.5Z", now));
        assert!(w.covers("2026-12-01T12:01:01Z", now));
        // 9 minutes old: the window less the skew is used up.
        assert!(!w.covers("2026-12-01T12:01:00Z", now));
        assert!(!w.covers("2025-01-08T10:12:07Z", now));
    }

    #[test]
    fn events_dated_ahead_are_covered_only_within_the_skew() {
        let w = window(600, 60);
        let now = at("2026-12-01T12:10:00Z");
        assert!(w.covers("2026-12-01T12:10:59Z", now));
        assert!(!w.covers("2026-12-01T12:11:00Z", now));
        assert!(!w.covers("2026-12-02T12:10:00Z", now));
    }

    /// An operator's edit of the stream's window is picked up by `follow`.
    #[tokio::test]
    async fn follows_the_stream_window() {
        use zengate_runtime::bus;
        let infra = zengate_testkit::Infra::start().await;
        let mut config = bus::zendesk_stream_config(&Default::default());
        let stream = config.name.clone();
        if let Err(e) = bus::ensure_stream(&infra.js, config.clone()).await {
            panic!("stream: {e}");
        }
        let window = Arc::new(DuplicateWindow::new(Duration::from_secs(60)));
        let shutdown = Shutdown::new();
        tokio::spawn(window.clone().follow(
            infra.js.clone(),
            stream,
            Duration::from_millis(50),
            shutdown.clone(),
        ));
        let eight_minutes_ago = OffsetDateTime::now_utc() - time::Duration::minutes(8);
        let Ok(eight_minutes_ago) = eight_minutes_ago.format(&Rfc3339) else {
            panic!("format");
        };
        let covered = |want: bool| {
            let window = window.clone();
            let time = eight_minutes_ago.clone();
            move || {
                let w = window.clone();
                let t = time.clone();
                async move { (w.covers(&t, OffsetDateTime::now_utc()) == want).then_some(()) }
            }
        };
        // The default 10 minute window, less a minute of skew, covers it.
        zengate_testkit::eventually("window read", Duration::from_secs(5), covered(true)).await;
        config.duplicate_window = Duration::from_secs(120);
        if let Err(e) = infra.js.update_stream(config).await {
            panic!("update: {e}");
        }
        zengate_testkit::eventually("edit followed", Duration::from_secs(5), covered(false)).await;
        shutdown.trigger();
    }

    #[test]
    fn nothing_is_covered_without_a_usable_window_or_time() {
        let now = at("2026-12-01T12:10:00Z");
        let unknown = DuplicateWindow::new(Duration::from_secs(60));
        assert!(!unknown.covers("2026-12-01T12:10:00Z", now));
        assert!(!window(60, 60).covers("2026-12-01T12:10:00Z", now));
        assert!(!window(30, 60).covers("2026-12-01T12:10:00Z", now));
        assert!(!window(600, 60).covers("t", now));
        assert!(!window(600, 60).covers("", now));
    }
}
