//! Header names that cross boundaries: Zendesk's delivery headers (matched
//! case-insensitively; these are the lowercase forms) and the NATS headers
//! zengate publishes (DESIGN.md, "Subjects").

pub const ZENDESK_ACCOUNT_ID: &str = "x-zendesk-account-id";
pub const ZENDESK_WEBHOOK_ID: &str = "x-zendesk-webhook-id";
pub const ZENDESK_INVOCATION_ID: &str = "x-zendesk-webhook-invocation-id";
pub const ZENDESK_SIGNATURE: &str = "x-zendesk-webhook-signature";
pub const ZENDESK_SIGNATURE_TIMESTAMP: &str = "x-zendesk-webhook-signature-timestamp";

pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
pub const BUS_ACCOUNT_ID: &str = "Zendesk-Account-Id";
pub const BUS_WEBHOOK_ID: &str = "Zendesk-Webhook-Id";
pub const BUS_INVOCATION_ID: &str = "Zendesk-Webhook-Invocation-Id";
pub const BUS_SIGNATURE_TIMESTAMP: &str = "Zendesk-Webhook-Signature-Timestamp";
pub const BUS_SIGNATURE: &str = "Zendesk-Webhook-Signature";
pub const BUS_RECEIVED_AT: &str = "Zengate-Received-At";
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
