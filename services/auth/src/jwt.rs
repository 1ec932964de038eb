//! HS256 compact JWTs, built by hand: the header and claims are fixed by
//! Zendesk, so a general JWT library adds nothing but per-token key set-up.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use serde::Serialize;

use crate::keys::HmacSha256;

/// Widget (Classic) and Chat header, byte for byte.
pub const WIDGET_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Claims of a Web Widget (Classic) / Chat token.
#[derive(Debug, Clone, Serialize)]
pub struct WidgetClaims<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub external_id: &'a str,
    pub iat: i64,
    pub jti: &'a str,
    pub exp: i64,
    /// Only on tokens for zengate itself ([`crate::APPROVAL_AUDIENCE`]);
    /// Zendesk's tokens keep exactly Zendesk's claims.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<&'static str>,
}

#[derive(Serialize)]
struct MessagingHeader<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// Claims of a Messaging token (Zendesk's list; `scope` is always `user`).
#[derive(Debug, Clone, Serialize)]
pub struct MessagingClaims<'a> {
    pub scope: &'static str,
    pub external_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub email: &'a str,
    pub email_verified: bool,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot encode JWT claims: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

fn compact(header_json: &[u8], claims_json: &[u8], key: &HmacSha256) -> String {
    let mut out = String::with_capacity(64 + claims_json.len() * 4 / 3 + 48);
    URL_SAFE_NO_PAD.encode_string(header_json, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(claims_json, &mut out);
    let mut mac = key.clone();
    mac.update(out.as_bytes());
    let sig = mac.finalize().into_bytes();
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut out);
    out
}

/// Signs widget/chat claims.
pub fn sign_widget(claims: &WidgetClaims<'_>, key: &HmacSha256) -> Result<String, EncodeError> {
    let body = serde_json::to_vec(claims)?;
    Ok(compact(WIDGET_HEADER.as_bytes(), &body, key))
}

/// Signs Messaging claims with header `kid`.
pub fn sign_messaging(
    claims: &MessagingClaims<'_>,
    kid: &str,
    key: &HmacSha256,
) -> Result<String, EncodeError> {
    let header = serde_json::to_vec(&MessagingHeader {
        alg: "HS256",
        typ: "JWT",
        kid,
    })?;
    let body = serde_json::to_vec(claims)?;
    Ok(compact(&header, &body, key))
}

/// 128 random bits from the OS, hex: unique per token without coordination.
pub fn new_jti() -> Result<String, getrandom::Error> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf)?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac;

    #[test]
    fn matches_a_known_token() {
        // jwt.io's classic example, signed with "your-256-bit-secret".
        let key = HmacSha256::new_from_slice(b"your-256-bit-secret").unwrap();
        let token = compact(
            WIDGET_HEADER.as_bytes(),
            br#"{"sub":"1234567890","name":"John Doe","iat":1516239022}"#,
            &key,
        );
        assert_eq!(
            token,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        );
    }

    #[test]
    fn jti_is_128_bits() {
        let a = new_jti().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_jti().unwrap());
    }
}
