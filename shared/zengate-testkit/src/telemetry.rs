//! The binaries' telemetry set-up (spans get trace ids, so `traceparent`
//! flows) and TLS provider, installed once per test process.

use std::sync::OnceLock;

use zengate_runtime::telemetry::{self, TelemetryGuard};

/// Installs telemetry (warnings only, pretty) and the rustls provider that
/// reqwest is built without. Safe to call from every test.
pub fn init_telemetry() {
    static GUARD: OnceLock<Option<TelemetryGuard>> = OnceLock::new();
    GUARD.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let env =
            zengate_runtime::Env::from_pairs([("RUST_LOG", "warn"), ("LOG_FORMAT", "pretty")]);
        telemetry::init("zengate-test", &env).ok()
    });
}
