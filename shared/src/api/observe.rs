//! What an operator sees of each request: an id that ties its answer to its
//! log lines (`x-request-id`), and one access log line when it is answered.
//!
//! The shells (`serve`, the Lambda handler) open an [`AccessLog`] when a
//! request arrives and close it with the answer, so the line is written even
//! for answers the core never sees (a body timeout, a busy server). The id is
//! decided once and kept in the request's extensions, where the core's
//! request span and every answer pick it up.

use std::time::Instant;

use http::header::HeaderValue;
use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode};

/// The header carrying a request's id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest caller-given request id kept; a longer one is replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The id of one request: the caller's `x-request-id` when it is sane (1 to
/// [`MAX_REQUEST_ID_LEN`] characters of letters, digits and `-_.:`, as UUIDs,
/// ULIDs and cloud providers' ids are), else a fresh UUID. Anything else could
/// carry log injection or a payload into every log line, so it is not echoed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The caller's id from `headers`, or a new one.
    pub fn of(headers: &HeaderMap) -> Self {
        headers
            .get(REQUEST_ID_HEADER)
            .filter(|value| is_sane(value.as_bytes()))
            .map_or_else(Self::generate, |value| RequestId(value.clone()))
    }

    fn generate() -> Self {
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        RequestId(HeaderValue::from_str(&id).expect("a UUID is a header value"))
    }

    /// The id of the request `parts` belong to, decided on the first call and
    /// kept in its extensions.
    pub fn of_request(parts: &mut Parts) -> Self {
        if let Some(id) = parts.extensions.get::<RequestId>() {
            return id.clone();
        }
        let id = Self::of(&parts.headers);
        parts.extensions.insert(id.clone());
        id
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever kept (checked in `is_sane`, or a UUID).
        self.0.to_str().unwrap_or_default()
    }

    /// Puts the id on an answer.
    pub fn stamp<B>(&self, answer: &mut Response<B>) {
        answer
            .headers_mut()
            .insert(REQUEST_ID_HEADER, self.0.clone());
    }
}

fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// One access log line in the making: opened when a request arrives, written
/// when it is answered. The line holds the method, the path (never the query,
/// which may carry a webhook's token), status, duration and answer size.
pub struct AccessLog {
    method: Method,
    route: String,
    id: RequestId,
    started: Instant,
}

impl AccessLog {
    /// Starts the line of a request whose id is `id`.
    pub fn begin(method: &Method, path: &str, id: &RequestId) -> Self {
        AccessLog {
            method: method.clone(),
            route: path.to_owned(),
            id: id.clone(),
            started: Instant::now(),
        }
    }

    /// Writes the line, puts the request id on the answer, and counts a
    /// receive call in the metrics.
    pub fn end<B>(self, answer: &mut Response<B>, bytes: Option<u64>) {
        self.id.stamp(answer);
        let status: StatusCode = answer.status();
        let elapsed = self.started.elapsed();
        if matches!(
            self.route.trim_end_matches('/'),
            super::RECEIVE_PATH | super::RECEIVE_ALIAS_PATH
        ) {
            crate::metrics::receive_answered(status.as_u16(), elapsed);
        }
        tracing::info!(
            target: "hookflow::access",
            request_id = self.id.as_str(),
            method = %self.method,
            route = %self.route,
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            bytes,
            "answered"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_bytes(value).unwrap());
        headers
    }

    #[test]
    fn a_sane_caller_id_is_kept_and_anything_else_replaced() {
        for kept in ["01JDQ8Z3Y5K4M2N7P9R1S3T5V7", "req_2KWPBgLl.x:1-a"] {
            assert_eq!(RequestId::of(&with(kept.as_bytes())).as_str(), kept);
        }
        let longest = "a".repeat(MAX_REQUEST_ID_LEN);
        assert_eq!(RequestId::of(&with(longest.as_bytes())).as_str(), longest);
        for bad in [
            "a".repeat(MAX_REQUEST_ID_LEN + 1).as_bytes(),
            b"two words".as_slice(),
            b"id\"quote",
            b"caf\xc3\xa9",
        ] {
            let id = RequestId::of(&with(bad));
            assert_ne!(id.as_str().as_bytes(), bad);
            assert!(
                uuid::Uuid::parse_str(id.as_str()).is_ok(),
                "{}",
                id.as_str()
            );
        }
        let fresh = RequestId::of(&HeaderMap::new());
        assert!(uuid::Uuid::parse_str(fresh.as_str()).is_ok());
        assert_ne!(fresh, RequestId::of(&HeaderMap::new()));
    }
}
