//! Why a `webhook.*` command was refused or could not be served.

use crate::error::{Conflict, StoreError};

/// A refused registration, change or lookup, or a failed store.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A parameter's value breaks its rule; `code` names the rule.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// A create names no eventKey.
    #[error("eventKey is required to create a webhook")]
    EventKeyMissing,
    /// A command that acts on one webhook names none.
    #[error("uuid is required")]
    UuidMissing,
    /// No webhook has the given uuid.
    #[error("no webhook has this uuid")]
    NotFound,
    /// Two creates raced for the same new uuid, and the other one won.
    #[error("a webhook with this uuid was created at the same time")]
    UuidTaken,
    /// The store failed, or refused a write (a taken eventKey).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WebhookError {
    /// The refusal of a bad value of the `webhook.*` parameter `param`. Each
    /// parameter has its own code, which callers rely on.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        let code = match param {
            "uuid" => "invalid_uuid",
            "eventKey" => "invalid_event_key",
            "description" => "invalid_description",
            "enabled" => "invalid_enabled",
            "payloadType" => "invalid_payload_type",
            "maxPayloadLength" => "invalid_max_payload_length",
            "verify" => "invalid_verify",
            "allowedSources" => "invalid_allowed_sources",
            "graceSeconds" => "invalid_grace_seconds",
            "dedup" => "invalid_dedup",
            _ => "invalid_parameter",
        };
        WebhookError::Invalid {
            code,
            message: message.into(),
        }
    }

    /// A write the store refused: a vanished webhook is `NotFound`, a taken new
    /// uuid `UuidTaken`; anything else keeps its store error.
    pub(crate) fn refused_write(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => WebhookError::NotFound,
            StoreError::Conflict(Conflict::TokenTaken) => WebhookError::UuidTaken,
            other => WebhookError::Store(other),
        }
    }

    /// The stable code a caller sees.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::Invalid { code, .. } => code,
            WebhookError::EventKeyMissing => "event_key_missing",
            WebhookError::UuidMissing => "uuid_missing",
            WebhookError::NotFound => "webhook_not_found",
            WebhookError::UuidTaken => "uuid_taken",
            WebhookError::Store(err) => err.public().0,
        }
    }
}
