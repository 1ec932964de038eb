//! What makes a delivery acceptable, as pure functions over headers and bytes
//! (so they can be property-tested without a server). Order matters: nothing
//! from the body is decoded before the signature over the exact bytes holds.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zengate_core::Secret;
use zengate_core::envelope::Head;
use zengate_core::headers as h;
use zengate_core::ids::parse_canonical_id;
use zengate_core::signature::{self, Signature};
use zengate_runtime::error::ApiError;

/// A refused delivery: status, stable reason (metric label and error code),
/// and a message for the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl Rejection {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        ApiError::new(r.status, r.reason, r.message)
    }
}

/// The unsigned routing headers of a delivery plus its decoded signature.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub account_id: u64,
    pub webhook_id: String,
    pub invocation_id: String,
    pub timestamp: String,
    pub signature_header: String,
    pub signature: Signature,
    /// The declared `Content-Length`, already checked against the limit.
    pub declared_len: Option<usize>,
}

/// Settings the checks need.
#[derive(Debug, Clone)]
pub struct Rules {
    pub secrets: Vec<Secret>,
    pub account_id: u64,
    pub webhook_id: Option<String>,
    pub body_limit: usize,
    pub signature_max_age: Option<Duration>,
}

/// The single value of header `name`: `Ok(None)` when absent, `Err` when it
/// appears more than once or is not visible ASCII.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, &'static str> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("appears more than once");
    }
    first
        .to_str()
        .map(|s| Some(s.trim()))
        .map_err(|_| "is not visible ASCII")
}

fn routing_header(headers: &HeaderMap, name: &'static str) -> Result<String, Rejection> {
    match single(headers, name) {
        Ok(Some(v)) if !v.is_empty() => Ok(v.to_owned()),
        Ok(_) => Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "missing_header",
            format!("header {name} is required"),
        )),
        Err(why) => Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "bad_header",
            format!("header {name} {why}"),
        )),
    }
}

/// Checks made before reading the body: media type, declared length, routing
/// headers, and the signature's form.
pub fn precheck(headers: &HeaderMap, rules: &Rules) -> Result<Delivery, Rejection> {
    let media_ok = single(headers, header::CONTENT_TYPE.as_str())
        .ok()
        .flatten()
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !media_ok {
        return Err(Rejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        ));
    }
    let mut declared_len = None;
    if let Some(declared) = headers.get(header::CONTENT_LENGTH) {
        let len = declared
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                Rejection::new(
                    StatusCode::BAD_REQUEST,
                    "bad_content_length",
                    "malformed Content-Length",
                )
            })?;
        if len > rules.body_limit as u64 {
            return Err(too_large(rules.body_limit));
        }
        declared_len = usize::try_from(len).ok();
    }

    let account_raw = routing_header(headers, h::ZENDESK_ACCOUNT_ID)?;
    let account_id = parse_canonical_id(&account_raw).ok_or_else(|| {
        Rejection::new(
            StatusCode::BAD_REQUEST,
            "bad_header",
            format!(
                "header {} must be a positive decimal",
                h::ZENDESK_ACCOUNT_ID
            ),
        )
    })?;
    let webhook_id = routing_header(headers, h::ZENDESK_WEBHOOK_ID)?;
    let invocation_id = routing_header(headers, h::ZENDESK_INVOCATION_ID)?;
    let timestamp = routing_header(headers, h::ZENDESK_SIGNATURE_TIMESTAMP)?;

    let unauthorized = |msg: &str| Rejection::new(StatusCode::UNAUTHORIZED, "bad_signature", msg);
    let signature_header = match single(headers, h::ZENDESK_SIGNATURE) {
        Ok(Some(v)) if !v.is_empty() => v.to_owned(),
        Ok(_) => {
            return Err(unauthorized(
                "header x-zendesk-webhook-signature is required",
            ));
        }
        Err(_) => {
            return Err(unauthorized(
                "exactly one x-zendesk-webhook-signature header is required",
            ));
        }
    };
    let signature =
        Signature::parse(signature_header.as_bytes()).map_err(|e| unauthorized(&e.to_string()))?;

    Ok(Delivery {
        account_id,
        webhook_id,
        invocation_id,
        timestamp,
        signature_header,
        signature,
        declared_len,
    })
}

pub fn too_large(limit: usize) -> Rejection {
    Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("body exceeds {limit} bytes"),
    )
}

/// Verifies the signature over the exact bytes, then parses and matches the
/// envelope against the delivery and the configuration.
pub fn verify_and_parse(
    delivery: &Delivery,
    body: &[u8],
    rules: &Rules,
    now: OffsetDateTime,
) -> Result<Head, Rejection> {
    signature::verify(
        &rules.secrets,
        delivery.timestamp.as_bytes(),
        body,
        &delivery.signature,
    )
    .map_err(|e| Rejection::new(StatusCode::UNAUTHORIZED, "bad_signature", e.to_string()))?;

    if let Some(max_age) = rules.signature_max_age {
        let fresh = OffsetDateTime::parse(&delivery.timestamp, &Rfc3339)
            .ok()
            .is_some_and(|ts| (now - ts).unsigned_abs() <= max_age);
        if !fresh {
            return Err(Rejection::new(
                StatusCode::UNAUTHORIZED,
                "stale_signature",
                format!(
                    "signature timestamp is not within {}s of now",
                    max_age.as_secs()
                ),
            ));
        }
    }

    let envelope = Head::check(body)
        .map_err(|e| Rejection::new(StatusCode::BAD_REQUEST, e.reason(), e.to_string()))?;

    if envelope.account_id != delivery.account_id {
        return Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "account_mismatch",
            "payload account_id does not match the x-zendesk-account-id header",
        ));
    }
    if envelope.account_id != rules.account_id {
        return Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "account_not_configured",
            "deliveries for this account are not accepted here",
        ));
    }
    if let Some(expected) = &rules.webhook_id
        && *expected != delivery.webhook_id
    {
        return Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "webhook_not_configured",
            "deliveries from this webhook are not accepted here",
        ));
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    fn rules() -> Rules {
        Rules {
            secrets: vec![Secret::new("k1")],
            account_id: 42,
            webhook_id: None,
            body_limit: 1 << 20,
            signature_max_age: None,
        }
    }

    fn headers(sig: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        m.insert(h::ZENDESK_ACCOUNT_ID, HeaderValue::from_static("42"));
        m.insert(h::ZENDESK_WEBHOOK_ID, HeaderValue::from_static("01W"));
        m.insert(h::ZENDESK_INVOCATION_ID, HeaderValue::from_static("inv"));
        m.insert(
            h::ZENDESK_SIGNATURE_TIMESTAMP,
            HeaderValue::from_static("2025-01-08T10:12:07Z"),
        );
        if let Ok(v) = HeaderValue::from_str(sig) {
            m.insert(h::ZENDESK_SIGNATURE, v);
        }
        m
    }

    #[test]
    fn stale_signatures_are_refused_only_when_configured() {
        let body = br#"{"account_id":42,"id":"e","type":"zen:event-type:user.created","subject":"zen:user:1","time":"t","zendesk_event_version":"v","detail":{},"event":{}}"#;
        let sig = signature::sign(&Secret::new("k1"), "2025-01-08T10:12:07Z", body);
        let d = precheck(&headers(&sig), &rules()).unwrap();
        let now = OffsetDateTime::parse("2025-01-08T11:12:07Z", &Rfc3339).unwrap();
        assert!(verify_and_parse(&d, body, &rules(), now).is_ok());
        let strict = Rules {
            signature_max_age: Some(Duration::from_secs(300)),
            ..rules()
        };
        let r = verify_and_parse(&d, body, &strict, now).unwrap_err();
        assert_eq!(
            (r.status, r.reason),
            (StatusCode::UNAUTHORIZED, "stale_signature")
        );
    }

    proptest! {
        // Arbitrary bodies and header values never panic, and nothing unsigned
        // is ever accepted.
        #[test]
        fn arbitrary_input_never_panics(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            sig in "[A-Za-z0-9+/=]{0,50}",
            ts in ".{0,40}",
            account in ".{0,24}",
        ) {
            let mut hm = headers(&sig);
            if let Ok(v) = HeaderValue::from_str(&account) {
                hm.insert(h::ZENDESK_ACCOUNT_ID, v);
            }
            if let Ok(v) = HeaderValue::from_str(&ts) {
                hm.insert(h::ZENDESK_SIGNATURE_TIMESTAMP, v);
            }
            if let Ok(d) = precheck(&hm, &rules()) {
                let r = verify_and_parse(&d, &body, &rules(), OffsetDateTime::now_utc());
                prop_assert!(r.is_err());
            }
        }

        // Correctly signed arbitrary bodies never panic either: they reach the
        // envelope parser, which must refuse or accept cleanly.
        #[test]
        fn signed_arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let ts = "2025-01-08T10:12:07Z";
            let sig = signature::sign(&Secret::new("k1"), ts, &body);
            let d = precheck(&headers(&sig), &rules()).unwrap();
            let r = verify_and_parse(&d, &body, &rules(), OffsetDateTime::now_utc());
            if let Err(rej) = r {
                prop_assert!(rej.status == StatusCode::BAD_REQUEST || rej.status == StatusCode::FORBIDDEN);
            }
        }

        // Structured but hostile envelopes: odd types and subjects always map
        // to a safe subject.
        #[test]
        fn subjects_are_always_safe(ty in ".{0,40}", subj in ".{0,40}", id in "[!-~]{1,40}") {
            let body = serde_json::json!({
                "account_id": 42, "id": id, "type": ty, "subject": subj, "time": "t",
                "zendesk_event_version": "v", "detail": {"id": "5"}, "event": {}
            }).to_string();
            if let Ok(env) = Head::check(body.as_bytes()) {
                let s = env.nats_subject();
                prop_assert_eq!(s.split('.').count(), 5);
                prop_assert!(s.split('.').all(zengate_core::subject::is_token));
            }
        }
    }
}
