//! Errors: what the stores report, and the one API error type that maps to HTTP.

use http::StatusCode;
use serde_json::json;

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
    /// The backing service failed; a retry may help.
    #[error("store unavailable: {0}")]
    Unavailable(String),
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
    /// Wraps any backend error as `Unavailable`.
    pub fn unavailable(err: impl std::fmt::Display) -> Self {
        StoreError::Unavailable(err.to_string())
    }
}

/// An answer that is not a success: status, stable `code`, human `message`.
///
/// Client mistakes carry their own message; internal failures are logged where
/// they happen and answered with a generic message only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The line of a pipeline the error is about, if any.
    pub line: Option<usize>,
}

impl ApiError {
    /// A client error with a stable code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            line: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// The backend failed: 503 so the caller knows a retry may succeed.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable; retry later",
        )
    }

    /// The JSON body: `{"statusCode", "status": "error", "error": {"code", "message"[, "line"]}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(line) = self.line {
            error["line"] = json!(line);
        }
        json!({"statusCode": self.status.as_u16(), "status": "error", "error": error})
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(Conflict::EventKeyTaken) => ApiError::new(
                StatusCode::CONFLICT,
                "event_key_taken",
                "another webhook already uses this eventKey",
            ),
            StoreError::Conflict(c) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", format!("conflict: {c}"))
            }
            StoreError::NotFound => ApiError::not_found("not_found", "no such record"),
            StoreError::Unavailable(detail) => {
                tracing::error!(%detail, "store unavailable");
                ApiError::unavailable()
            }
            StoreError::Corrupt(detail) => {
                tracing::error!(%detail, "stored record unreadable");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "a stored record could not be read",
                )
            }
        }
    }
}
