//! Results: the result JSON, long polling on `/api/v3/result`, and the wait
//! that `webhook.receive` shares with it.

use std::time::Duration;

use bytes::Bytes;
use http::header::LOCATION;
use http::{HeaderValue, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::ApiError;
use super::params::Params;
use super::{CORRELATION_HEADER, DUPLICATE_HEADER, Gateway, RESULT_PATH};
use crate::domain::{CorrelationId, ResultRecord, ResultStatus};

/// The result JSON of PIPEFORCE: `{statusCode, status, value, pollingRedirectEnabled, correlationId}`.
pub(super) struct ResultAnswer {
    correlation_id: CorrelationId,
    status: ResultStatus,
    value: Value,
    error: Option<Value>,
    polling_redirect: bool,
    /// The answer to a repeated delivery, about the first one's event.
    duplicate: bool,
}

impl ResultAnswer {
    /// An event nobody listens to is finished the moment it is stored.
    pub fn finished_without_listeners(correlation_id: CorrelationId) -> Self {
        ResultAnswer {
            correlation_id,
            status: ResultStatus::Ok,
            value: Value::Null,
            error: None,
            polling_redirect: false,
            duplicate: false,
        }
    }

    /// The answer for a stored result; `None` (vanished meanwhile) reads as processing.
    pub fn from_record(correlation_id: CorrelationId, record: Option<&ResultRecord>) -> Self {
        let (status, value, error) = match record {
            Some(r) => match r.status() {
                ResultStatus::Ok => (ResultStatus::Ok, r.value(), None),
                ResultStatus::Error => (ResultStatus::Error, Value::Null, r.error()),
                ResultStatus::Processing => (ResultStatus::Processing, Value::Null, None),
            },
            None => (ResultStatus::Processing, Value::Null, None),
        };
        ResultAnswer {
            correlation_id,
            status,
            value,
            error,
            polling_redirect: false,
            duplicate: false,
        }
    }

    pub fn with_polling_redirect(mut self, enabled: bool) -> Self {
        self.polling_redirect = enabled;
        self
    }

    /// Marks the answer with `hookflow-duplicate: true` when `duplicate`.
    pub fn with_duplicate(mut self, duplicate: bool) -> Self {
        self.duplicate = duplicate;
        self
    }

    pub fn is_processing(&self) -> bool {
        self.status == ResultStatus::Processing
    }

    /// HTTP 200 with the result JSON and the correlation id header; or, when
    /// still processing with polling redirect on, 303 to the result endpoint
    /// (carrying `max_wait_ms` along, so the client keeps its long-poll bound).
    pub fn to_response(&self, max_wait_ms: Option<u64>) -> Response<Bytes> {
        let status_code = if self.status == ResultStatus::Error {
            500
        } else {
            200
        };
        // Serialized straight from the answer's value: a large result is not
        // copied into a second JSON tree first.
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            status_code: u16,
            status: ResultStatus,
            value: &'a Value,
            polling_redirect_enabled: bool,
            correlation_id: CorrelationId,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<&'a Value>,
        }
        let body = Body {
            status_code,
            status: self.status,
            value: &self.value,
            polling_redirect_enabled: self.polling_redirect,
            correlation_id: self.correlation_id,
            error: self.error.as_ref(),
        };
        let mut res = Response::new(Bytes::from(
            serde_json::to_vec(&body).expect("a JSON value serializes"),
        ));
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(&self.correlation_id.to_string()) {
            res.headers_mut().insert(CORRELATION_HEADER, v);
        }
        if self.duplicate {
            res.headers_mut()
                .insert(DUPLICATE_HEADER, HeaderValue::from_static("true"));
        }
        if self.polling_redirect && self.is_processing() {
            *res.status_mut() = StatusCode::SEE_OTHER;
            let mut location = format!(
                "{RESULT_PATH}?correlationId={}&pollingRedirectEnabled=true",
                self.correlation_id
            );
            if let Some(ms) = max_wait_ms {
                location.push_str(&format!("&maxWaitMs={ms}"));
            }
            if let Ok(value) = HeaderValue::from_str(&location) {
                res.headers_mut().insert(LOCATION, value);
            }
        }
        res
    }
}

fn gone() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "result_gone",
        "no result with this correlation id: it never existed or has expired",
    )
}

/// A result as read, with the turn that lets it be in memory: keep it until
/// the answer is built from the record.
pub(super) struct ReadResult {
    pub record: Option<ResultRecord>,
    _turn: OwnedSemaphorePermit,
}

impl Gateway {
    /// Reads the result of `id` until it is finished or `wait` has passed.
    /// Woken by the result signal, not by a sleep loop; `None` if unknown or expired.
    pub(super) async fn await_result(
        &self,
        id: &CorrelationId,
        wait: Duration,
    ) -> Result<ReadResult, ApiError> {
        let deadline = Instant::now() + wait;
        loop {
            // Armed before the read, so a result landing in between still wakes us.
            let wakeup = self.ports.signal.subscribe(id);
            let turn = self
                .result_turns
                .clone()
                .acquire_owned()
                .await
                .expect("the result turns are never closed");
            let record = self.ports.events.get_result(id).await?;
            match &record {
                // A processing record is small: give the turn back while waiting.
                Some(r) if r.status() == ResultStatus::Processing && Instant::now() < deadline => {}
                _ => {
                    return Ok(ReadResult {
                        record,
                        _turn: turn,
                    });
                }
            }
            drop(turn);
            let _ = tokio::time::timeout_at(deadline, wakeup).await;
        }
    }

    pub(super) async fn poll_result(
        &self,
        req: Request<Bytes>,
    ) -> Result<Response<Bytes>, ApiError> {
        let (head, body) = req.into_parts();
        let params = Params::from_request(head.uri.query(), &head.headers, &body)?;
        let id_text = params
            .first_of(&["correlationId", CORRELATION_HEADER])
            .map(str::to_owned)
            .or_else(|| {
                head.headers
                    .get(CORRELATION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "correlation_id_missing",
                    "give the correlationId (or pipeforce-result-correlationid) parameter",
                )
            })?;
        let max_wait_ms = params
            .get("maxWaitMs")
            .map(|text| text.trim().parse::<u64>())
            .transpose()
            .map_err(|_| {
                ApiError::bad_request(
                    "invalid_max_wait",
                    "maxWaitMs must be a whole number of milliseconds",
                )
            })?;
        let wait = max_wait_ms
            .map_or(self.settings.poll_default_wait, Duration::from_millis)
            .min(self.settings.poll_max_wait);
        let polling_redirect = params.flag("pollingRedirectEnabled");

        let id = CorrelationId::parse(&id_text).ok_or_else(gone)?;
        let read = self.await_result(&id, wait).await?;
        let record = read.record.as_ref().ok_or_else(gone)?;
        let answer =
            ResultAnswer::from_record(id, Some(record)).with_polling_redirect(polling_redirect);
        // The answer holds its own copy of the value: a large result is not kept twice.
        drop(read);
        Ok(answer.to_response(max_wait_ms))
    }
}
