//! The one error type of the HTTP API, and how domain errors become answers.

use http::StatusCode;
use serde_json::json;

use crate::error::{StoreError, UNAVAILABLE_MESSAGE};

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
    /// A 405's `Allow` header: the methods the route serves.
    pub allow: Option<&'static str>,
}

impl ApiError {
    /// A client error with a stable code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            line: None,
            allow: None,
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
            UNAVAILABLE_MESSAGE,
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
        let status = match &err {
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::NotFound => StatusCode::NOT_FOUND,
            StoreError::Unavailable(detail) => {
                tracing::error!(%detail, "store unavailable");
                StatusCode::SERVICE_UNAVAILABLE
            }
            StoreError::Corrupt(detail) => {
                tracing::error!(%detail, "stored record unreadable");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let (code, message) = err.public();
        ApiError::new(status, code, message)
    }
}
