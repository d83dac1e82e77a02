//! A webhook's signature check as stored with it (`webhook.put` `verify`).
//!
//! Stored data only, like the other records of [`crate::domain`]: reading the
//! settings and checking a call are in [`crate::inbound::verify`].

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Timestamp;
use super::outgoing::{MASK, SecretText};

/// The signature schemes hookflow verifies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case")]
pub enum Scheme {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> …`
    /// (also the `svix-*` names), HMAC-SHA256 over `"<id>.<timestamp>.<body>"`
    /// with the key bytes of a `whsec_<base64>` secret.
    StandardWebhooks,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
    Github,
    /// Stripe: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>]`, HMAC-SHA256 over
    /// `"<t>.<body>"` with the secret text as key.
    Stripe,
    /// Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>`.
    Shopify,
    /// Slack: `X-Slack-Signature: v0=<hex>` over
    /// `"v0:<X-Slack-Request-Timestamp>:<body>"`.
    Slack,
    /// Any other sender: an HMAC of the body in one header.
    #[serde(rename_all = "camelCase")]
    Hmac {
        header: String,
        algorithm: Algorithm,
        encoding: Encoding,
        /// Text before the MAC in the header value, e.g. `sha256=`.
        #[serde(default)]
        prefix: String,
    },
}

/// The hash of a generic HMAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// How a generic HMAC is written in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Hex,
    Base64,
}

/// The calls a webhook's signature check refused: how many, and the last one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusals {
    pub refused: u64,
    /// The refusal's error code, e.g. `signature_invalid`.
    pub last_code: String,
    pub last_at: Timestamp,
}

impl Refusals {
    /// The last refusal as `webhook.get` shows it.
    pub fn last_refusal_json(&self) -> Value {
        json!({"code": self.last_code, "at": self.last_at.to_rfc3339()})
    }
}

/// A webhook's signature check: the scheme, its secrets, the time tolerance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    #[serde(flatten)]
    pub scheme: Scheme,
    pub secrets: Vec<SecretText>,
    pub tolerance_seconds: u64,
}

impl Verification {
    /// The settings as the API shows them: the secrets masked.
    pub fn to_api_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "secrets".into(),
                Value::Array(self.secrets.iter().map(|_| Value::from(MASK)).collect()),
            );
        }
        value
    }
}
