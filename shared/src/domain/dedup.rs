//! A webhook's duplicate detection as stored with it (`webhook.put` `dedup`),
//! and the claim a delivery makes on its key.
//!
//! Stored data only, like the other records of [`crate::domain`]: reading the
//! settings and finding a call's key are in [`crate::inbound::dedup`].

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{CorrelationId, Timestamp};

/// Where a delivery's identity is found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DedupSource {
    /// A request header (stored lower case), e.g. `webhook-id`, `x-github-delivery`.
    Header(String),
    /// An RFC 6901 pointer into a JSON body, e.g. `/id` of a Stripe event.
    JsonPointer(String),
}

/// A webhook's duplicate detection: where the key is, and how long it is remembered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dedup {
    #[serde(flatten)]
    pub source: DedupSource,
    pub window_seconds: u64,
}

impl Dedup {
    /// The settings as the API shows them (they hold no secret).
    pub fn to_api_json(&self) -> Value {
        let mut shown = match &self.source {
            DedupSource::Header(name) => json!({ "header": name }),
            DedupSource::JsonPointer(pointer) => json!({ "jsonPointer": pointer }),
        };
        shown["windowSeconds"] = json!(self.window_seconds);
        shown
    }
}

/// SHA-256 of a webhook's event key and a delivery's key: what the stores keep
/// instead of the key itself (which may be payload data), bounded at 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DedupKey(pub [u8; 32]);

impl DedupKey {
    /// URL-safe base64 (43 characters), as the AWS shape names the claim's item.
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl fmt::Debug for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DedupKey({})", self.to_text())
    }
}

/// A delivery's claim to be the first with its key until `expires_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupClaim {
    pub key: DedupKey,
    /// When the claim is made: a claim that expired before this is taken over.
    pub claimed_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What accepting a delivery with a claim came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The event was stored (and its jobs queued).
    New,
    /// A live claim names this earlier event; nothing was stored.
    Duplicate(CorrelationId),
}
