//! Why an outgoing-webhook operation was refused or could not be served. The API
//! answers each with its HTTP error; a pipeline step retries the transient ones.

use crate::error::StoreError;

/// A refused registration or trigger, or a failed store.
#[derive(Debug, thiserror::Error)]
pub enum OutgoingError {
    /// A registration or trigger that does not fit; `code` names the rule.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// No registration has this id.
    #[error("no outgoing webhook is registered with id '{0}'")]
    NotFound(String),
    /// The registration is switched off; `why` says how.
    #[error("outgoing webhook '{id}' is disabled ({why}); put it again to enable it")]
    Disabled { id: String, why: String },
    /// No invocation record has this reference id (or it expired).
    #[error("no invocation has this referenceId (or it expired)")]
    InvocationNotFound,
    /// The invocation's request was not kept (its body was too large to keep,
    /// or it was recorded before requests were kept), so it cannot be resent.
    #[error(
        "this invocation's request was not kept (a body over {} bytes is not), so it cannot be resent",
        super::service::MAX_ASYNC_BODY
    )]
    NotResendable,
    /// The body of an asynchronous send is over `limit` bytes.
    #[error("an asynchronous send keeps its body until delivered: at most {limit} bytes")]
    TooLarge { limit: usize },
    /// The store of registrations or invocations failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OutgoingError {
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        OutgoingError::Invalid {
            code,
            message: message.into(),
        }
    }

    /// The stable code a caller sees.
    pub fn code(&self) -> &'static str {
        match self {
            OutgoingError::Invalid { code, .. } => code,
            OutgoingError::NotFound(_) => "outgoing_webhook_not_found",
            OutgoingError::Disabled { .. } => "outgoing_webhook_disabled",
            OutgoingError::InvocationNotFound => "invocation_not_found",
            OutgoingError::NotResendable => "invocation_not_resendable",
            OutgoingError::TooLarge { .. } => "payload_too_large",
            OutgoingError::Store(err) => err.public().0,
        }
    }

    /// The message a caller sees (a store failure's detail stays in the logs).
    pub fn message(&self) -> String {
        match self {
            OutgoingError::Store(err) => err.public().1,
            other => other.to_string(),
        }
    }

    /// True when trying again later may succeed: the store could not be
    /// reached. An unreadable record stays unreadable, so it is final.
    pub fn is_transient(&self) -> bool {
        matches!(self, OutgoingError::Store(StoreError::Unavailable(_)))
    }
}
