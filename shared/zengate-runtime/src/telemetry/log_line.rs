//! One JSON object per log line, in the shape of `tracing-subscriber`'s JSON
//! format (`timestamp`, `level`, `fields`, `target`, and the current span's
//! fields plus its `name` under `span`), written straight into the line.
//!
//! The stock format collects an event's fields into a map and parses the
//! span's stored JSON back into a value before writing it again; on a busy
//! hot path that was most of what a log line cost. Here field values are
//! escaped as they are written, a span's fields are stored once as JSON
//! members when the span opens ([`SpanFields`]), and copied in as they are.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON line format (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLine;

/// How a span's fields are kept for its log lines: comma-separated JSON
/// members (`"event_id":"e-1","ticket_id":5`), written straight from the
/// recorded values. A field recorded later is appended.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpanFields;

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut w: Writer<'writer>, fields: R) -> fmt::Result {
        let mut members = Fields {
            w: &mut w,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut members);
        members.result
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut w = current.as_writer();
        let mut members = Fields {
            w: &mut w,
            first,
            result: Ok(()),
        };
        fields.record(&mut members);
        members.result
    }
}

impl<S> FormatEvent<S, SpanFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, SpanFields>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        w.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut w)?;
        write!(w, "\",\"level\":\"{}\",\"fields\":{{", meta.level())?;
        let mut fields = Fields {
            w: &mut w,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        w.write_str("},\"target\":")?;
        string(&mut w, meta.target())?;
        if let Some(span) = ctx.lookup_current() {
            w.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            if let Some(stored) = extensions.get::<FormattedFields<SpanFields>>()
                && !stored.fields.is_empty()
            {
                w.write_str(&stored.fields)?;
                w.write_char(',')?;
            }
            w.write_str("\"name\":")?;
            string(&mut w, span.name())?;
            w.write_char('}')?;
        }
        w.write_str("}\n")
    }
}

/// Writes an event's fields as JSON members, skipping the `log.*` fields of
/// events that came from the `log` crate (their metadata is normalised).
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let first = std::mem::replace(&mut self.first, false);
        self.result = (|| {
            if !first {
                self.w.write_char(',')?;
            }
            string(self.w, field.name())?;
            self.w.write_char(':')?;
            value(self.w)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| string(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.member(field, |w| write!(w, "{value}"));
        } else {
            self.member(field, |w| w.write_str("null"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, |w| quoted(w, format_args!("{value}")));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| quoted(w, format_args!("{value:?}")));
    }
}

/// `s` as a JSON string.
fn string(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(&mut *w).write_str(s)?;
    w.write_char('"')
}

/// Formatted text as a JSON string, escaped as it is produced.
fn quoted(w: &mut impl fmt::Write, args: fmt::Arguments<'_>) -> fmt::Result {
    w.write_char('"')?;
    Escaped(&mut *w).write_fmt(args)?;
    w.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string.
struct Escaped<W>(W);

impl<W: fmt::Write> fmt::Write for Escaped<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            let escape = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if c < ' ' => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{:04x}", u32::from(c))?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + c.len_utf8();
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(buf);
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// The lines `f` logs, each parsed as JSON.
    fn lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(out.clone())
                .fmt_fields(SpanFields)
                .event_format(JsonLine),
        );
        tracing::subscriber::with_default(subscriber, f);
        let text = out.0.lock().map(|v| v.clone()).unwrap_or_default();
        String::from_utf8_lossy(&text)
            .lines()
            .map(|l| match serde_json::from_str(l) {
                Ok(v) => v,
                Err(e) => panic!("not JSON ({e}): {l}"),
            })
            .collect()
    }

    #[test]
    fn events_have_the_stock_json_shape_with_their_span() {
        let got = lines(|| {
            let span = tracing::info_span!("webhook", event_id = "e-1", ticket_id = 5u64);
            let _in = span.enter();
            tracing::info!(sequence = 7u64, ok = true, ratio = 0.5, "event \"durable\"");
        });
        assert_eq!(got.len(), 1);
        let line = &got[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["fields"]["message"], "event \"durable\"");
        assert_eq!(line["fields"]["sequence"], 7);
        assert_eq!(line["fields"]["ok"], true);
        assert_eq!(line["fields"]["ratio"], 0.5);
        assert_eq!(line["span"]["name"], "webhook");
        assert_eq!(line["span"]["event_id"], "e-1");
        assert_eq!(line["span"]["ticket_id"], 5);
        let ts = line["timestamp"].as_str().unwrap_or_default();
        assert!(
            time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok(),
            "{ts}"
        );
    }

    #[test]
    fn hostile_values_stay_one_valid_line() {
        let nasty = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \0 é 😀";
        let got = lines(|| {
            let span = tracing::info_span!("s", who = nasty);
            let _in = span.enter();
            tracing::warn!(value = nasty, debug = ?nasty, error = %nasty, "{nasty}");
        });
        assert_eq!(got.len(), 1, "one line per event");
        let fields = &got[0]["fields"];
        assert_eq!(fields["message"], nasty);
        assert_eq!(fields["value"], nasty);
        assert_eq!(fields["error"], nasty);
        assert_eq!(fields["debug"], format!("{nasty:?}"));
        assert_eq!(got[0]["span"]["who"], nasty);
    }

    #[test]
    fn fields_recorded_later_join_the_span() {
        let got = lines(|| {
            let span = tracing::info_span!(
                "consume",
                subject = "a.b",
                event_id = tracing::field::Empty,
                n = tracing::field::Empty
            );
            span.record("event_id", "e-2");
            span.record("n", 3u64);
            let _in = span.enter();
            tracing::info!("handled");
            let bare = tracing::info_span!("late", id = tracing::field::Empty);
            bare.record("id", "x");
            let _inner = bare.enter();
            tracing::info!("inner");
        });
        assert_eq!(
            got[0]["span"],
            serde_json::json!({"name": "consume", "subject": "a.b", "event_id": "e-2", "n": 3})
        );
        assert_eq!(
            got[1]["span"],
            serde_json::json!({"name": "late", "id": "x"})
        );
    }

    #[test]
    fn events_outside_spans_and_spans_without_fields() {
        let got = lines(|| {
            tracing::info!("plain");
            let span = tracing::info_span!("bare");
            let _in = span.enter();
            tracing::info!(n = -3i64, "inside");
        });
        assert_eq!(got.len(), 2);
        assert!(got[0].get("span").is_none());
        assert_eq!(got[0]["fields"], serde_json::json!({"message": "plain"}));
        assert_eq!(got[1]["span"], serde_json::json!({"name": "bare"}));
        assert_eq!(got[1]["fields"]["n"], -3);
    }
}
