//! What the outgoing-webhook stores keep: registrations and invocation records.
//!
//! Both are stored as one JSON document per record (serde), so every adapter
//! keeps exactly the same fields. What readers see is built by `to_api_json`,
//! which masks secrets and drops the internal parts.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use super::ReferenceId;
use super::Timestamp;

/// What a reader sees instead of a hidden value.
pub const MASK: &str = "********";

/// A value that must never be shown or logged: a pre-filled header value, a
/// signing secret, a header a trigger sent. `Debug` prints a mask.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(String);

impl SecretText {
    /// Wraps a value.
    pub fn new(text: impl Into<String>) -> Self {
        SecretText(text.into())
    }

    /// The value itself, to put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True for an empty value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// How a trigger's `data` becomes the request body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadEncoding {
    /// Objects, arrays, numbers and booleans are sent as JSON, text as it is.
    #[default]
    Json,
    /// `data` is base64 text; its decoded bytes are sent.
    Base64,
}

impl PayloadEncoding {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadEncoding::Json => "json",
            PayloadEncoding::Base64 => "base64",
        }
    }
}

/// A Standard Webhooks signing secret (`whsec_<base64>`). The first of a
/// registration's list is the current one; older ones sign alongside it until
/// `retires_at` (secret rotation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningSecret {
    pub value: SecretText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retires_at: Option<Timestamp>,
}

/// A registered outgoing webhook (`outgoing.put`), as seeds/004 describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingWebhook {
    /// The name triggers use (`webhookId`).
    pub id: String,
    /// Where calls go; may carry fixed query parameters of its own.
    pub url: String,
    /// HTTP method, upper case.
    pub method: String,
    /// Header name → pre-filled value; an empty value is one a trigger may set.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretText>,
    /// Names of the query parameters a trigger may set.
    #[serde(default)]
    pub query_params: Vec<String>,
    #[serde(default)]
    pub payload_encoding: PayloadEncoding,
    /// A JSON Schema that `data` must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Signing secrets, current first; empty: calls are not signed.
    #[serde(default)]
    pub secrets: Vec<SigningSecret>,
    pub enabled: bool,
    /// Why the registration was disabled (e.g. the endpoint answered 410 Gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl OutgoingWebhook {
    /// The secrets that sign a call made at `now`: the current one and those still
    /// in their rotation grace period.
    pub fn active_secrets(&self, now: Timestamp) -> impl Iterator<Item = &SigningSecret> {
        self.secrets
            .iter()
            .filter(move |s| s.retires_at.is_none_or(|t| t > now))
    }

    /// What `outgoing.get` shows: header values and secrets masked (an empty,
    /// trigger-settable header value stays empty so readers can tell them apart).
    pub fn to_api_json(&self, now: Timestamp) -> Value {
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if value.is_empty() { "" } else { MASK };
                (name.clone(), Value::from(shown))
            })
            .collect();
        let mut out = json!({
            "id": self.id,
            "url": self.url,
            "method": self.method,
            "headers": headers,
            "queryParams": self.query_params,
            "payloadEncoding": self.payload_encoding.as_str(),
            "enabled": self.enabled,
            "signed": !self.secrets.is_empty(),
            "createdAt": self.created_at.to_rfc3339(),
            "updatedAt": self.updated_at.to_rfc3339(),
        });
        if let Some(schema) = &self.schema {
            out["schema"] = schema.clone();
        }
        if !self.secrets.is_empty() {
            out["secret"] = Value::from(MASK);
            let retiring: Vec<Value> = self
                .active_secrets(now)
                .filter_map(|s| s.retires_at)
                .map(|t| Value::from(t.to_rfc3339()))
                .collect();
            if !retiring.is_empty() {
                out["previousSecretsRetireAt"] = Value::Array(retiring);
            }
        }
        if let Some(reason) = &self.disabled_reason {
            out["disabledReason"] = Value::from(reason.as_str());
        }
        if let Some(description) = &self.description {
            out["description"] = Value::from(description.as_str());
        }
        out
    }
}

/// Where an invocation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvocationState {
    /// Not finished: the call is under way, or an asynchronous delivery waits
    /// for its next attempt.
    Processing,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Finished without a 2xx: the endpoint answered otherwise, could not be
    /// reached, or every retry of an asynchronous delivery was used up.
    Failed,
}

/// The request of an invocation as readers may see it: names, never values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestSummary {
    pub method: String,
    /// The registered URL (without the trigger's query parameters).
    pub url: String,
    /// Names of the query parameters the trigger set.
    pub query_params: Vec<String>,
    /// Names of every header sent (pre-filled and the trigger's).
    pub headers: Vec<String>,
    pub body_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Whether Standard Webhooks signature headers were sent.
    pub signed: bool,
}

/// One attempt to call the endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub at: Timestamp,
    /// HTTP status; 0 when there was no answer.
    pub status: u16,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// What an asynchronous delivery still has to send; removed once it finished.
/// Holds the trigger's header values, so it is never shown to readers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingSend {
    /// The request body, base64 in the stored document.
    #[serde(with = "base64_bytes")]
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    /// Headers the trigger set.
    pub headers: BTreeMap<String, SecretText>,
    /// Query parameters the trigger set, in order.
    pub query: Vec<(String, String)>,
}

/// The audit record of one trigger (`invocation.get`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    pub reference_id: ReferenceId,
    pub webhook_id: String,
    /// Who triggered: `admin` (the API) or `pipeline:<name>`.
    pub caller: String,
    /// For a pipeline caller: the event it ran for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(rename = "async")]
    pub asynchronous: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When the record is dropped (TTL).
    pub expires_at: Timestamp,
    pub request: RequestSummary,
    pub state: InvocationState,
    /// The last attempt's HTTP status; 0 when there was no answer (yet).
    pub status: u16,
    pub error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The endpoint's last answer: JSON, or its text.
    #[serde(default)]
    pub data: Value,
    /// Duration of the last attempt.
    pub duration_ms: u64,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingSend>,
    /// The trigger's request once it is no longer pending, kept so that
    /// `invocation.resend` can send it again (see [`Invocation::resendable`]).
    /// Holds the trigger's header values, so it is never shown to readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<PendingSend>,
    /// The invocation this one sends again (`invocation.resend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend_of: Option<ReferenceId>,
}

impl Invocation {
    /// True once `now` is past the record's TTL.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }

    /// The trigger's request to send again: still pending, or kept after it was
    /// sent. `None` for a body too large to keep, and for records written
    /// before requests were kept.
    pub fn resendable(&self) -> Option<&PendingSend> {
        self.pending.as_ref().or(self.sent.as_ref())
    }

    /// Ends the pending send: nothing is left to deliver, and its request is
    /// kept for a resend.
    pub fn settle_pending(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.sent = Some(pending);
        }
    }

    /// What `invocation.get` shows: everything but the request's body and
    /// header values (pending or kept).
    pub fn to_api_json(&self) -> Value {
        let attempts: Vec<Value> = self
            .attempts
            .iter()
            .map(|a| {
                let mut v = json!({
                    "at": a.at.to_rfc3339(),
                    "status": a.status,
                    "durationMs": a.duration_ms,
                });
                if let Some(message) = &a.error_message {
                    v["errorMessage"] = Value::from(message.as_str());
                }
                v
            })
            .collect();
        let mut out = json!({
            "referenceId": self.reference_id.to_string(),
            "webhookId": self.webhook_id,
            "caller": self.caller,
            "async": self.asynchronous,
            "createdAt": self.created_at.to_rfc3339(),
            "updatedAt": self.updated_at.to_rfc3339(),
            "expiresAt": self.expires_at.to_rfc3339(),
            "request": serde_json::to_value(&self.request).unwrap_or(Value::Null),
            "state": self.state,
            "status": self.status,
            "error": self.error,
            "data": self.data,
            "durationMs": self.duration_ms,
            "attempts": attempts,
        });
        if let Some(id) = &self.correlation_id {
            out["correlationId"] = Value::from(id.as_str());
        }
        if let Some(message) = &self.error_message {
            out["errorMessage"] = Value::from(message.as_str());
        }
        if let Some(at) = self.next_attempt_at {
            out["nextAttemptAt"] = Value::from(at.to_rfc3339());
        }
        if let Some(original) = self.resend_of {
            out["resendOf"] = Value::from(original.to_string());
        }
        out
    }
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
