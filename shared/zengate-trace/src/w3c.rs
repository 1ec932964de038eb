//! The `traceparent` and `tracestate` headers.

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// `traceparent`: `00-<trace id>-<span id>-<flags>`, lowercase hex, only the
/// sampled flag (what the W3C propagator writes). Formatted directly: this
/// runs for every published message.
pub fn traceparent(sc: &SpanContext) -> String {
    fn hex(out: &mut String, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for b in bytes {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
    }
    let mut s = String::with_capacity(55);
    s.push_str("00-");
    hex(&mut s, &sc.trace_id().to_bytes());
    s.push('-');
    hex(&mut s, &sc.span_id().to_bytes());
    s.push('-');
    hex(&mut s, &[(sc.trace_flags() & TraceFlags::SAMPLED).to_u8()]);
    s
}

/// The remote trace context in `carrier`'s `traceparent` and `tracestate`,
/// when `traceparent` is valid: the W3C propagator's rules, plus the ids'
/// exact lengths, which it does not check (a short id is not one).
pub fn extract(carrier: &dyn Extractor) -> Option<SpanContext> {
    let mut parts = carrier.get("traceparent")?.trim().split('-').skip(1);
    if parts.next()?.len() != 32 || parts.next()?.len() != 16 {
        return None;
    }
    let cx = TraceContextPropagator::new().extract(carrier);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use opentelemetry::trace::{SpanId, TraceId, TraceState};

    use super::*;

    fn context(flags: TraceFlags, remote: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            SpanId::from_hex("00ad6b7169203301").unwrap(),
            flags,
            remote,
            TraceState::default(),
        )
    }

    #[test]
    fn traceparent_is_what_the_w3c_propagator_writes() {
        for (flags, remote) in [(TraceFlags::SAMPLED, true), (TraceFlags::default(), false)] {
            let sc = context(flags, remote);
            let cx = opentelemetry::Context::new().with_remote_span_context(sc.clone());
            let mut written = HashMap::new();
            TraceContextPropagator::new().inject_context(&cx, &mut written);
            assert_eq!(written.get("traceparent"), Some(&traceparent(&sc)));
        }
    }

    #[test]
    fn extract_reads_what_traceparent_writes_with_its_state() {
        let sc = context(TraceFlags::SAMPLED, true);
        let carrier = HashMap::from([
            ("traceparent".to_owned(), traceparent(&sc)),
            ("tracestate".to_owned(), "vendor=abc".to_owned()),
        ]);
        let read = extract(&carrier).unwrap();
        assert_eq!(read.trace_id(), sc.trace_id());
        assert_eq!(read.span_id(), sc.span_id());
        assert!(read.is_sampled());
        assert!(read.is_remote());
        assert_eq!(read.trace_state().header(), "vendor=abc");
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-00ad6b7169203301",
            "ff-0af7651916cd43dd8448eb211c80319c-00ad6b7169203301-01",
            "00-00000000000000000000000000000000-00ad6b7169203301-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-00ad6b7169203301-01",
            "00-0af7651916cd43dd8448eb211c8031-00ad6b7169203301-01",
            "00-0af7651916cd43dd8448eb211c80319c-00ad6b71692033-01",
        ] {
            let carrier = HashMap::from([("traceparent".to_owned(), bad.to_owned())]);
            assert!(extract(&carrier).is_none(), "{bad:?} accepted");
        }
        assert!(extract(&HashMap::<String, String>::new()).is_none());
    }
}
