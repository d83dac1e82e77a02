//! Incoming webhooks: the rules a received call must pass before it is stored.
//!
//! - [`verify`]: the sender's signature, per webhook (`webhook.put` `verify`).
//! - [`source`]: the caller's address and the per-webhook allowlist.
//! - [`dedup`]: the key of a delivery, so a repeat is not stored twice.

pub mod dedup;
pub mod source;
pub mod verify;

/// Why a call to a webhook was refused. The signature refusals are answered
/// 401, a source outside the allowlist 403; each with its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A header the scheme needs is absent or malformed.
    SignatureMissing,
    /// No secret produces the signature sent.
    SignatureInvalid,
    /// The signed timestamp is further from now than the tolerance.
    TimestampOutOfTolerance,
    /// The caller's address is outside the webhook's `allowedSources`.
    SourceNotAllowed,
}

impl Refusal {
    /// The stable error code.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::SignatureMissing => "signature_missing",
            Refusal::SignatureInvalid => "signature_invalid",
            Refusal::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Refusal::SourceNotAllowed => "source_not_allowed",
        }
    }

    /// What the caller is told (nothing about the secrets or the expected value).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::SignatureMissing => "the call carries no signature this webhook can check",
            Refusal::SignatureInvalid => "the signature does not match the body",
            Refusal::TimestampOutOfTolerance => {
                "the signed timestamp is too far from the current time"
            }
            Refusal::SourceNotAllowed => "this webhook does not accept calls from this address",
        }
    }
}
