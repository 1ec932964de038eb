//! Captures every log line of the test process (JSON, TRACE level) so a test
//! can prove what never reaches the logs: secrets, tokens, signatures.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Filter, Layer as _, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// The process-wide log capture. Install it before anything else logs.
#[derive(Debug, Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs a JSON subscriber with `filter` (pass the services' own
    /// filter, e.g. `telemetry::log_filter("trace")`) writing into the
    /// capture. Panics if another global subscriber is already installed.
    pub fn install<F>(filter: F) -> Self
    where
        F: Filter<Registry> + Send + Sync + 'static,
    {
        let capture = Self::default();
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_writer(capture.clone())
                    .with_filter(filter),
            )
            .init();
        capture
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
