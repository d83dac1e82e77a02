//! What the Lambda functions mount: API Gateway HTTP API events (payload 2.0)
//! handed to the core router, SQS batches handed to the worker, and the start-up
//! that every function shares (typed settings, clients built once, no network call).

use std::panic::AssertUnwindSafe;

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use base64::Engine;
use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{COOKIE, HeaderValue};

use crate::api::{Gateway, error_response};
use crate::error::ApiError;
use crate::pipeline::worker::{Acknowledge, Worker, settle};
use crate::ports::{Delivery, JobQueue};

/// Answers one API Gateway request with the core router.
pub async fn handle_http(
    gateway: &Gateway,
    event: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let response = match request_of(event) {
        Ok(request) => gateway.handle(request).await,
        Err(err) => error_response(&err),
    };
    response_of(response)
}

/// The HTTP request an API Gateway event carries. Built here, not by
/// `lambda_http`, whose conversion ends in `expect("failed to build request")`
/// when the path and query do not make an `http::Uri` (a raw `"` in the query
/// string does that): a panic there takes the whole function down.
fn request_of(event: ApiGatewayV2httpRequest) -> Result<http::Request<Bytes>, ApiError> {
    let path = event
        .raw_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let target = match event.raw_query_string.as_deref() {
        Some(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_owned(),
    };
    let uri: http::Uri = target.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_uri",
            "the path or query string is not a valid URI: percent-encode characters such as \" < > { } | \\ ^ ` and spaces",
        )
    })?;
    let body = match event.body {
        None => Bytes::new(),
        Some(text) if event.is_base64_encoded => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(|_| {
                ApiError::bad_request("body_unreadable", "the request body could not be read")
            })?,
        Some(text) => Bytes::from(text),
    };
    let mut request = http::Request::new(body);
    *request.method_mut() = event.request_context.http.method;
    *request.uri_mut() = uri;
    *request.headers_mut() = event.headers;
    // HTTP API moves the Cookie header into `cookies`.
    if let Some(cookies) = event.cookies
        && let Ok(value) = HeaderValue::from_str(&cookies.join("; "))
    {
        request.headers_mut().insert(COOKIE, value);
    }
    Ok(request)
}

/// The API Gateway answer of a core response; JSON stays text, so it reads in
/// API Gateway's and Lambda's logs.
fn response_of(response: http::Response<Bytes>) -> ApiGatewayV2httpResponse {
    let (head, body) = response.into_parts();
    let mut answer = ApiGatewayV2httpResponse::default();
    answer.status_code = i64::from(head.status.as_u16());
    answer.headers = head.headers;
    if !body.is_empty() {
        answer.body = Some(match String::from_utf8(body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => {
                answer.is_base64_encoded = true;
                Body::Binary(e.into_bytes())
            }
        });
    }
    answer
}

/// Runs the worker on one SQS batch. Messages that finished are left to Lambda to
/// delete; the others are reported as failures (partial batch response), after
/// their visibility was set to the retry delay. Nothing is deleted on failure.
/// A message whose processing panics is reported as failed, and the others
/// carry on (the release profile unwinds; see Cargo.toml).
pub async fn handle_sqs(
    worker: &Worker,
    queue: &dyn JobQueue,
    event: SqsEvent,
) -> SqsBatchResponse {
    let runs = event.records.into_iter().map(|message| async move {
        let id = message.message_id.clone().unwrap_or_default();
        let finished = AssertUnwindSafe(process_message(worker, queue, message))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(message_id = %id, "processing a job panicked; it comes back for a retry");
                false
            });
        (id, finished)
    });
    let mut response = SqsBatchResponse::default();
    for (id, finished) in futures_util::future::join_all(runs).await {
        if !finished {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// True when the message is done with (finished or dead-lettered); the event
/// source mapping deletes those, and hands the others out again.
async fn process_message(worker: &Worker, queue: &dyn JobQueue, message: SqsMessage) -> bool {
    let delivery = Delivery {
        body: message.body.unwrap_or_default(),
        receipt: message.receipt_handle.unwrap_or_default(),
        receive_count: message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
    };
    let disposition = worker.handle(&delivery).await;
    settle(queue, &delivery, disposition, Acknowledge::ByTheCaller).await
}
