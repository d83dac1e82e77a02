//! API Gateway HTTP API events (payload 2.0) handed to the router: what the
//! HTTP Lambda functions mount.

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use base64::Engine;
use bytes::Bytes;
use http::header::{COOKIE, HeaderValue};

use super::observe::{AccessLog, RequestId};
use super::{ApiError, Gateway, error_response};
use crate::inbound::source::PeerAddr;

/// Answers one API Gateway request with the core router.
pub async fn handle_http(
    gateway: &Gateway,
    event: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let id = RequestId::of(&event.headers);
    let access = AccessLog::begin(
        &event.request_context.http.method,
        event.raw_path.as_deref().unwrap_or("/"),
        &id,
    );
    let mut response = match request_of(event) {
        Ok(mut request) => {
            request.extensions_mut().insert(id);
            gateway.handle(request).await
        }
        Err(err) => error_response(&err),
    };
    let bytes = response.body().len() as u64;
    access.end(&mut response, Some(bytes));
    crate::metrics::emf::flush_invocation();
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
    // API Gateway's view of the caller: the TCP peer it saw, which a client
    // cannot set (an `X-Forwarded-For` it sends arrives as a plain header).
    if let Some(addr) = (event.request_context.http.source_ip.as_deref())
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
    {
        request.extensions_mut().insert(PeerAddr(addr));
    }
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
