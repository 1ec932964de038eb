//! Proof that a release on `zengate.approval.released.>` comes from a human
//! decision. Two independent layers, both checked by the executor before any
//! Zendesk write:
//!
//! 1. **Signature.** The approval service signs every release with
//!    HMAC-SHA256 (key `ZENGATE_RELEASE_SIGNING_SECRET`, a rotation list; the
//!    first key signs, any key verifies) over a canonical form of the
//!    approval id, the account, the final action, the approver and the time
//!    of approval. The signature travels in
//!    the `Zengate-Release-Signature` header as `v1=<base64>`. A publisher
//!    that can reach the subject but holds no key cannot forge one.
//! 2. **Record.** The item in the `approvals` bucket must exist, belong to the
//!    same account, be decided as approved (approved, released, or failed and
//!    being retried), and hold exactly the action the release carries
//!    (compared on the canonical bytes). A key holder still cannot release
//!    something no approver decided.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::Secret;
use crate::events::{Action, ApprovalReleased, approval_released_subject};

/// NATS header carrying the release signature.
pub const SIGNATURE_HEADER: &str = "Zengate-Release-Signature";
/// The key-value bucket holding approval items (owned by the approval service).
pub const APPROVALS_BUCKET: &str = "approvals";
/// Shortest signing key accepted at start-up (bytes of the configured value).
pub const MIN_KEY_LEN: usize = 32;

const VERSION: &str = "v1";
const DOMAIN: &[u8] = b"zengate-release-v1";

type HmacSha256 = Hmac<Sha256>;

/// The configured release keys: never empty; the first signs, all verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseKeys {
    signer: Secret,
    others: Vec<Secret>,
}

impl ReleaseKeys {
    /// `None` for an empty list.
    pub fn new(keys: Vec<Secret>) -> Option<Self> {
        let mut keys = keys.into_iter();
        let signer = keys.next()?;
        Some(Self {
            signer,
            others: keys.collect(),
        })
    }

    /// One key (tests, single-key deployments).
    pub fn single(key: impl Into<Secret>) -> Self {
        Self {
            signer: key.into(),
            others: Vec::new(),
        }
    }

    /// The key new releases are signed with.
    pub fn signer(&self) -> &Secret {
        &self.signer
    }

    /// Every key a signature may verify with, the signer first.
    pub fn all(&self) -> impl Iterator<Item = &Secret> {
        std::iter::once(&self.signer).chain(self.others.iter())
    }
}

/// Canonical bytes of an action: its JSON encoding by the shared schema,
/// whose field order is fixed by the type. Both the signature and the
/// comparison with the stored item use these bytes.
pub fn canonical_action(action: &Action) -> Vec<u8> {
    // Serialising a plain data enum into a Vec cannot fail.
    serde_json::to_vec(action).unwrap_or_default()
}

fn mac(key: &Secret, released: &ApprovalReleased) -> HmacSha256 {
    // HMAC accepts keys of any length.
    let mut mac = match HmacSha256::new_from_slice(key.expose().as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    // Length-prefixed fields: no two different inputs share an encoding.
    // Who approved and when are covered too: the executor's duplicate check
    // reads `approved_at`, and the audit trail `approved_by`.
    let approved_at = released.approved_at.unix_timestamp_nanos().to_be_bytes();
    for part in [
        DOMAIN,
        released.approval_id.as_bytes(),
        released.account_id.as_bytes(),
        &canonical_action(&released.action),
        released.approved_by.as_bytes(),
        &approved_at,
    ] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac
}

/// The header value (`v1=<base64>`) signing `released` with `key`.
pub fn sign(key: &Secret, released: &ApprovalReleased) -> String {
    let tag = mac(key, released).finalize().into_bytes();
    format!("{VERSION}={}", STANDARD.encode(tag))
}

/// Why a release was refused. `reason()` is the stable metrics label; the
/// `Display` text goes into the dead letter and the WARN line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the release carries no {SIGNATURE_HEADER} header")]
    Unsigned,
    #[error("the release signature does not verify with any configured key")]
    BadSignature,
    #[error("published on {got} but its content belongs on {want}")]
    WrongSubject { got: String, want: String },
    #[error("no approval item {0} exists")]
    NoRecord(String),
    #[error("approval item {id} is {state}, not approved")]
    NotApproved { id: String, state: String },
    #[error("approval item {id} belongs to account {record}, the release names {release}")]
    WrongAccount {
        id: String,
        record: String,
        release: String,
    },
    #[error("the released action differs from the approved one on item {0}")]
    ActionMismatch(String),
}

impl Refusal {
    /// Short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Unsigned => "unsigned",
            Refusal::BadSignature => "bad_signature",
            Refusal::WrongSubject { .. } => "wrong_subject",
            Refusal::NoRecord(_) => "no_record",
            Refusal::NotApproved { .. } => "not_approved",
            Refusal::WrongAccount { .. } => "wrong_account",
            Refusal::ActionMismatch(_) => "action_mismatch",
        }
    }

    /// Whether the store may simply not show the decision yet (a replica
    /// behind its leader): worth another look before giving up.
    pub fn may_be_stale(&self) -> bool {
        match self {
            Refusal::NoRecord(_) => true,
            Refusal::NotApproved { state, .. } => state == "pending" || state == "escalated",
            _ => false,
        }
    }
}

/// Checks the signature header (`v1=<base64>`; several comma-separated
/// signatures are accepted during a rotation) against every key, in constant
/// time per comparison.
pub fn verify_signature(
    keys: &ReleaseKeys,
    released: &ApprovalReleased,
    header: Option<&str>,
) -> Result<(), Refusal> {
    let header = header.map(str::trim).filter(|h| !h.is_empty());
    let Some(header) = header else {
        return Err(Refusal::Unsigned);
    };
    let tags: Vec<Vec<u8>> = header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    let ok = keys.all().any(|key| {
        tags.iter()
            .any(|tag| mac(key, released).verify_slice(tag).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(Refusal::BadSignature)
    }
}

/// The subject a release must travel on.
pub fn check_subject(subject: &str, released: &ApprovalReleased) -> Result<(), Refusal> {
    let want = approval_released_subject(&released.account_id, released.action.ticket_id());
    if subject == want {
        Ok(())
    } else {
        Err(Refusal::WrongSubject {
            got: subject.to_owned(),
            want,
        })
    }
}

/// The part of an approval item (KV bucket `approvals`) a verifier reads.
/// The approval service owns the full type; this view ignores the rest.
#[derive(Debug, Clone, Deserialize)]
pub struct ApprovalRecord {
    pub id: String,
    /// Snake-case state name (`pending`, `approved`, `released`, …).
    pub state: String,
    pub request: RecordRequest,
    #[serde(default)]
    pub final_action: Option<Action>,
}

/// The requested event inside an item, as far as a verifier needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordRequest {
    pub account_id: String,
}

/// What the record says the executor may do with a verified release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Approved and not known to be applied: perform (or resume) the write.
    Execute,
    /// A write that failed or was given up on: it may have landed after all,
    /// so look for it on the ticket before writing again.
    Retry,
    /// The item already records the write as applied: never write again.
    AlreadyApplied,
}

/// Compares a release with its stored item.
pub fn check_record(
    record: Option<&ApprovalRecord>,
    released: &ApprovalReleased,
) -> Result<Permit, Refusal> {
    let id = &released.approval_id;
    let Some(record) = record else {
        return Err(Refusal::NoRecord(id.clone()));
    };
    if record.id != *id {
        return Err(Refusal::NoRecord(id.clone()));
    }
    if record.request.account_id != released.account_id {
        return Err(Refusal::WrongAccount {
            id: id.clone(),
            record: record.request.account_id.clone(),
            release: released.account_id.clone(),
        });
    }
    let permit = match record.state.as_str() {
        // `failed` stays executable: a human approved it and the write did
        // not land (a replayed dead letter retries it; the executor's own
        // records still keep it to one write).
        "approved" | "released" => Permit::Execute,
        "failed" => Permit::Retry,
        "applied" => Permit::AlreadyApplied,
        other => {
            return Err(Refusal::NotApproved {
                id: id.clone(),
                state: other.to_owned(),
            });
        }
    };
    let same = record
        .final_action
        .as_ref()
        .is_some_and(|a| canonical_action(a) == canonical_action(&released.action));
    if !same {
        return Err(Refusal::ActionMismatch(id.clone()));
    }
    Ok(permit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{FieldChanges, V1};
    use time::OffsetDateTime;

    fn released(ticket: &str, body: &str) -> ApprovalReleased {
        ApprovalReleased {
            v: V1,
            approval_id: "a".repeat(32),
            account_id: "42".into(),
            action: Action::Reply {
                ticket_id: ticket.into(),
                body: body.into(),
                fields: FieldChanges::default(),
            },
            approved_by: "grace".into(),
            approved_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn record(state: &str, action: &ApprovalReleased) -> ApprovalRecord {
        ApprovalRecord {
            id: action.approval_id.clone(),
            state: state.into(),
            request: RecordRequest {
                account_id: action.account_id.clone(),
            },
            final_action: Some(action.action.clone()),
        }
    }

    #[test]
    fn signature_binds_id_account_and_action() {
        let key = Secret::new("k".repeat(32));
        let r = released("7", "hello");
        let sig = sign(&key, &r);
        assert!(sig.starts_with("v1="));
        let keys = ReleaseKeys::single(key);
        assert_eq!(verify_signature(&keys, &r, Some(&sig)), Ok(()));
        assert_eq!(verify_signature(&keys, &r, None), Err(Refusal::Unsigned));
        for altered in [
            released("8", "hello"),
            released("7", "hello!"),
            ApprovalReleased {
                account_id: "43".into(),
                ..r.clone()
            },
            ApprovalReleased {
                approval_id: "b".repeat(32),
                ..r.clone()
            },
        ] {
            assert_eq!(
                verify_signature(&keys, &altered, Some(&sig)),
                Err(Refusal::BadSignature)
            );
        }
        let other = ReleaseKeys::single("x".repeat(32));
        assert_eq!(
            verify_signature(&other, &r, Some(&sig)),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify_signature(&keys, &r, Some("v1=not base64")),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn rotation_accepts_any_configured_key() {
        let old = Secret::new("o".repeat(32));
        let new = Secret::new("n".repeat(32));
        let r = released("7", "hi");
        let sig = sign(&old, &r);
        assert_eq!(
            verify_signature(&ReleaseKeys::new(vec![new, old]).unwrap(), &r, Some(&sig)),
            Ok(())
        );
    }

    #[test]
    fn record_must_hold_the_same_approved_action() {
        let r = released("7", "hello");
        assert_eq!(
            check_record(Some(&record("released", &r)), &r),
            Ok(Permit::Execute)
        );
        assert_eq!(
            check_record(Some(&record("approved", &r)), &r),
            Ok(Permit::Execute)
        );
        assert_eq!(
            check_record(Some(&record("failed", &r)), &r),
            Ok(Permit::Retry)
        );
        assert_eq!(
            check_record(Some(&record("applied", &r)), &r),
            Ok(Permit::AlreadyApplied)
        );
        for state in ["pending", "rejected", "expired", "escalated"] {
            let e = check_record(Some(&record(state, &r)), &r).unwrap_err();
            assert_eq!(e.reason(), "not_approved");
        }
        assert!(matches!(check_record(None, &r), Err(Refusal::NoRecord(_))));
        let edited = released("7", "something else");
        assert_eq!(
            check_record(Some(&record("released", &r)), &edited),
            Err(Refusal::ActionMismatch(r.approval_id.clone()))
        );
        let mut foreign = record("released", &r);
        foreign.request.account_id = "1".into();
        assert_eq!(
            check_record(Some(&foreign), &r).unwrap_err().reason(),
            "wrong_account"
        );
    }

    #[test]
    fn the_signature_survives_the_wire_and_covers_who_and_when() {
        let key = Secret::new("k".repeat(32));
        let mut r = released("7", "hello");
        r.approved_at = OffsetDateTime::now_utc();
        let sig = sign(&key, &r);
        let back: ApprovalReleased =
            serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        let keys = ReleaseKeys::single(key);
        assert_eq!(verify_signature(&keys, &back, Some(&sig)), Ok(()));
        let mut later = back.clone();
        later.approved_at += time::Duration::SECOND;
        assert!(verify_signature(&keys, &later, Some(&sig)).is_err());
        let mut other = back;
        other.approved_by = "mallory".into();
        assert!(verify_signature(&keys, &other, Some(&sig)).is_err());
    }

    #[test]
    fn subject_must_match_the_content() {
        let r = released("7", "hello");
        assert!(check_subject("zengate.approval.released.42.7", &r).is_ok());
        let e = check_subject("zengate.approval.released.42.8", &r).unwrap_err();
        assert_eq!(e.reason(), "wrong_subject");
    }
}
