//! Signed resume links: `…/webhook/resume/{id}?decision=approve&expires=<unix>&signature=<hex>`.
//!
//! The signature is HMAC-SHA256 with `APPROVAL_RESUME_SECRET` over
//! `id ":" decision ":" expires`, so a link is bound to one item and one
//! decision and cannot be stretched in time. It is single use because the
//! decision itself is a compare-and-set: once the item is decided every link
//! answers `409`. Status codes: bad or missing signature (including a
//! changed decision or expiry) `401`, expired `410`, unknown item `404`,
//! already decided `409`.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zengate_core::Secret;

use crate::item::ResumeLinks;

type HmacSha256 = Hmac<Sha256>;

pub const APPROVE: &str = "approve";
pub const REJECT: &str = "reject";

fn mac(secret: &Secret, id: &str, decision: &str, expires: i64) -> Option<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(secret.expose().as_bytes()).ok()?;
    m.update(id.as_bytes());
    m.update(b":");
    m.update(decision.as_bytes());
    m.update(b":");
    m.update(expires.to_string().as_bytes());
    Some(m)
}

/// Hex signature of one link.
pub fn sign(secret: &Secret, id: &str, decision: &str, expires: i64) -> String {
    mac(secret, id, decision, expires)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Constant-time check of a presented hex signature.
pub fn verify(secret: &Secret, id: &str, decision: &str, expires: i64, signature: &str) -> bool {
    let Ok(raw) = hex::decode(signature.trim()) else {
        return false;
    };
    mac(secret, id, decision, expires).is_some_and(|m| m.verify_slice(&raw).is_ok())
}

/// The absolute URL of one link.
pub fn url(public_url: &str, secret: &Secret, id: &str, decision: &str, expires: i64) -> String {
    format!(
        "{public_url}/webhook/resume/{id}?decision={decision}&expires={expires}&signature={}",
        sign(secret, id, decision, expires)
    )
}

/// Both links for an item, valid until `expires` (unix seconds).
pub fn for_item(public_url: &str, secret: &Secret, id: &str, expires: i64) -> ResumeLinks {
    ResumeLinks {
        approve: url(public_url, secret, id, APPROVE, expires),
        reject: url(public_url, secret, id, REJECT, expires),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_to_item_decision_and_expiry() {
        let s = Secret::new("0123456789abcdef-secret");
        let sig = sign(&s, "abc", APPROVE, 100);
        assert!(verify(&s, "abc", APPROVE, 100, &sig));
        assert!(!verify(&s, "abc", REJECT, 100, &sig));
        assert!(!verify(&s, "abd", APPROVE, 100, &sig));
        assert!(!verify(&s, "abc", APPROVE, 101, &sig));
        assert!(!verify(
            &Secret::new("other-secret-xxxxxx"),
            "abc",
            APPROVE,
            100,
            &sig
        ));
        assert!(!verify(&s, "abc", APPROVE, 100, "zz"));
        assert!(!verify(&s, "abc", APPROVE, 100, ""));
        let l = for_item("http://h", &s, "abc", 100);
        assert!(
            l.approve
                .starts_with("http://h/webhook/resume/abc?decision=approve&expires=100&signature=")
        );
    }
}
