//! The port that makes one outgoing HTTP call, and the guarded HTTP adapter.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method};

/// One request to send. The URL is final (query parameters included).
#[derive(Clone, Debug)]
pub struct OutgoingRequest {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The endpoint's answer.
#[derive(Clone, Debug)]
pub struct OutgoingResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why there is no (complete) answer. Messages never contain header values or bodies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The destination resolves to an address the SSRF guard refuses; no
    /// connection was attempted.
    #[error("destination not allowed: {0}")]
    Blocked(String),
    /// DNS failed, the connection was refused or broke.
    #[error("endpoint unreachable: {0}")]
    Unreachable(String),
    /// No complete answer within the connect or total timeout.
    #[error("endpoint did not answer within {0:?}")]
    TimedOut(Duration),
    /// The answer's body is larger than the configured cap.
    #[error("the answer (status {status}) is larger than {limit} bytes")]
    TooLarge { status: u16, limit: usize },
}

/// Makes one HTTP call. Implemented by [`HttpTransport`]; tests may add others.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `request` and reads the whole answer. Never follows redirects.
    async fn call(&self, request: OutgoingRequest) -> Result<OutgoingResponse, CallError>;
}
