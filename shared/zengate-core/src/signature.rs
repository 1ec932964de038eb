//! Zendesk webhook signatures: `base64(HMAC-SHA256(secret, timestamp ‖ body))`.
//!
//! The secret string's UTF-8 bytes are the key as given (it looks like base64
//! but is not decoded). Verification runs over the exact received bytes before
//! anything is decoded, and compares in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The fixed secret Zendesk signs admin-screen test deliveries with. Accepting
/// it must be an explicit operator choice.
pub const ZENDESK_TEST_SIGNING_SECRET: &str = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==";

/// Length of a signature header: standard base64 of 32 bytes.
pub const SIGNATURE_LEN: usize = 44;

/// Why a signature was refused. Deliberately coarse: callers answer 401 for
/// all of them and only log the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature is not 44 characters of standard base64 encoding 32 bytes")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

/// A decoded signature header: exactly 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 32]);

impl Signature {
    /// Decodes the header value: exactly 44 characters of canonical padded
    /// standard base64 that decode to 32 bytes.
    pub fn parse(header: &[u8]) -> Result<Self, SignatureError> {
        if header.len() != SIGNATURE_LEN {
            return Err(SignatureError::Malformed);
        }
        let mut out = [0u8; 33];
        match STANDARD.decode_slice(header, &mut out) {
            Ok(32) => {
                let mut sig = [0u8; 32];
                sig.copy_from_slice(&out[..32]);
                Ok(Self(sig))
            }
            _ => Err(SignatureError::Malformed),
        }
    }
}

fn mac(secret: &[u8], timestamp: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(timestamp);
    mac.update(body);
    mac
}

/// Computes the signature header value Zendesk would send.
pub fn sign(secret: &Secret, timestamp: &str, body: &[u8]) -> String {
    STANDARD.encode(
        mac(secret.expose().as_bytes(), timestamp.as_bytes(), body)
            .finalize()
            .into_bytes(),
    )
}

/// Verifies `signature` against every secret (rotation: any one verifies).
/// Returns the index of the secret that matched. Every secret is tried so the
/// time taken does not reveal which one matched.
pub fn verify(
    secrets: &[Secret],
    timestamp: &[u8],
    body: &[u8],
    signature: &Signature,
) -> Result<usize, SignatureError> {
    let mut matched = None;
    for (i, secret) in secrets.iter().enumerate() {
        let ok = mac(secret.expose().as_bytes(), timestamp, body)
            .verify_slice(&signature.0)
            .is_ok();
        if ok && matched.is_none() {
            matched = Some(i);
        }
    }
    matched.ok_or(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zendesk_published_vector() {
        let secret = Secret::new(ZENDESK_TEST_SIGNING_SECRET);
        let sig = sign(&secret, "2021-07-25T10:00:00Z", br#"{"say": "hello"}"#);
        assert_eq!(sig, "gf3v0LzLRHPUnIdhbvwRDVEvzSb07/QN0GYjSNlkBT0=");
        let parsed = Signature::parse(sig.as_bytes()).unwrap();
        assert_eq!(
            verify(
                &[Secret::new("other"), secret],
                b"2021-07-25T10:00:00Z",
                br#"{"say": "hello"}"#,
                &parsed
            ),
            Ok(1)
        );
    }

    #[test]
    fn order_is_timestamp_then_body() {
        let secret = Secret::new("s3cret");
        let sig = Signature::parse(sign(&secret, "ts", b"body").as_bytes()).unwrap();
        assert_eq!(
            verify(std::slice::from_ref(&secret), b"body", b"ts", &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(std::slice::from_ref(&secret), b"ts", b"body", &sig),
            Ok(0)
        );
        // one changed body byte fails
        assert_eq!(
            verify(&[secret], b"ts", b"bodY", &sig),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_signatures() {
        let good = sign(&Secret::new("k"), "t", b"b");
        assert!(Signature::parse(good.as_bytes()).is_ok());
        // url-safe alphabet, missing padding, wrong length, non-canonical tail
        let urlsafe = good.replace('+', "-").replace('/', "_");
        if urlsafe != good {
            assert!(Signature::parse(urlsafe.as_bytes()).is_err());
        }
        assert!(Signature::parse(good.trim_end_matches('=').as_bytes()).is_err());
        assert!(Signature::parse(b"").is_err());
        assert!(Signature::parse(&[b'A'; 44]).is_err());
        // the 43rd character carries 2 unused bits: 'A' leaves them clear, 'B' sets one
        let mut tail = good.into_bytes();
        tail[42] = b'A';
        assert!(Signature::parse(&tail).is_ok());
        tail[42] = b'B';
        assert_eq!(Signature::parse(&tail), Err(SignatureError::Malformed));
    }
}
