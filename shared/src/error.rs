//! What the stores report. The HTTP layer (`api::ApiError`) turns it into an answer.

/// What a caller is told when a backing service failed.
pub const UNAVAILABLE_MESSAGE: &str = "the service is temporarily unavailable; retry later";

/// What a port implementation can report. Internal detail stays in `Unavailable`'s
/// text, which is logged and never sent to a caller.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule would be broken (e.g. a taken eventKey).
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// The record to change does not exist.
    #[error("not found")]
    NotFound,
    /// The backing service failed; a retry may help. Holds the cause.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored record cannot be decoded; no retry will help.
    #[error("stored record unreadable: {0}")]
    Corrupt(String),
}

/// Which uniqueness rule a write would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    EventKeyTaken,
    TokenTaken,
    AlreadyExists,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conflict::EventKeyTaken => "eventKey taken",
            Conflict::TokenTaken => "token taken",
            Conflict::AlreadyExists => "already exists",
        })
    }
}

impl StoreError {
    /// The stable code and message a caller sees; the detail stays in the logs.
    pub fn public(&self) -> (&'static str, String) {
        match self {
            StoreError::Conflict(Conflict::EventKeyTaken) => (
                "event_key_taken",
                "another webhook already uses this eventKey".into(),
            ),
            StoreError::Conflict(c) => ("conflict", format!("conflict: {c}")),
            StoreError::NotFound => ("not_found", "no such record".into()),
            StoreError::Unavailable(_) => ("unavailable", UNAVAILABLE_MESSAGE.into()),
            StoreError::Corrupt(_) => {
                ("internal_error", "a stored record could not be read".into())
            }
        }
    }

    /// Wraps a backend error (or the text of one) as `Unavailable`, keeping it
    /// as the cause.
    pub fn unavailable(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Unavailable(err.into())
    }
}
