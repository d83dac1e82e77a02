//! HTTP routing: one `Request -> Response` function for every place hookflow runs.
//!
//! The local server and each Lambda function convert their request into an
//! `http::Request<Bytes>`, call [`Gateway::handle`], and send back what it answers.
//! No route logic lives anywhere else. What a gateway answers is its
//! [`Routes`]: every route in `serve`, one group per Lambda function.

mod admin;
#[cfg(feature = "console")]
pub mod console;
mod deadletters;
mod error;
mod events;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod observe;
#[cfg(feature = "openapi")]
mod openapi;
mod outgoing;
mod params;
mod pipeline_test;
mod receive;
mod result;
mod routes;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::Value;
use tracing::Instrument;

use crate::config::Settings;
use crate::domain::Webhook;
use crate::outgoing::Outgoing;
use crate::ports::{Mailer, Ports, SecretSource};

pub use error::ApiError;
use observe::RequestId;
pub use routes::Routes;

/// Path of the receive command, as PIPEFORCE documents it.
pub const RECEIVE_PATH: &str = "/api/v3/command/webhook.receive";
/// The receive command's short alias.
pub const RECEIVE_ALIAS_PATH: &str = "/api/v3/webhook.receive";
/// Path of result polling.
pub const RESULT_PATH: &str = "/api/v3/result";
/// Path of the health check (no auth).
pub const HEALTH_PATH: &str = "/api/v3/health";
/// Prefix of every management command.
pub const COMMAND_PREFIX: &str = "/api/v3/command/";
/// Path of the OpenAPI document of this API.
pub const OPENAPI_PATH: &str = "/api/v3/openapi.json";
/// Header that carries a call's correlation id.
pub const CORRELATION_HEADER: &str = "pipeforce-result-correlationid";
/// Marks the answer to a repeated delivery (`dedup`): it names the first one's event.
pub const DUPLICATE_HEADER: &str = "hookflow-duplicate";

/// Longest request target (path and query) hookflow reads: `414 uri_too_long` beyond.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most request headers hookflow reads: `431 headers_too_large` beyond.
pub const MAX_REQUEST_HEADERS: usize = 100;
/// Most bytes of request header lines (names, values, separators): `431 headers_too_large` beyond.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The methods a route serves, and how its 405's `Allow` header names them.
#[derive(Clone, Copy)]
struct Methods {
    list: &'static [Method],
    allow: &'static str,
}

/// What every webhook, result and command route serves.
const GET_POST: Methods = Methods {
    list: &[Method::GET, Method::POST],
    allow: "GET, POST",
};
/// What the read-only documents serve.
const GET_ONLY: Methods = Methods {
    list: &[Method::GET],
    allow: "GET",
};

/// What [`Gateway::admit`] decided from a request's head, before its body is
/// read. It travels in the request's extensions, so [`Gateway::handle`] does not
/// decide twice and the receive path does not look its webhook up twice.
/// (No `Debug`: it holds a webhook, token included, and must never be logged.)
#[derive(Clone)]
pub struct Admission {
    route: Route,
    body_limit: usize,
    /// The 413 for a body over `body_limit`: the webhook's own limit, or the global one.
    too_large: ApiError,
}

#[derive(Clone)]
enum Route {
    /// `webhook` is known when the token came in the head (header or query);
    /// else the token is in the body, looked up once the body is read.
    /// Boxed: a webhook is large, and the admission is cloned per request.
    Receive {
        webhook: Option<Box<Webhook>>,
    },
    Result,
    Health,
    Command {
        name: String,
    },
    /// The OpenAPI document (the feature `openapi`).
    #[cfg(feature = "openapi")]
    OpenApi,
    /// A file of the web console (the feature `console`).
    #[cfg(feature = "console")]
    Console,
}

impl Admission {
    /// The largest body this request may carry.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// The answer to a body over [`Admission::body_limit`].
    pub fn body_too_large(&self) -> Response<Bytes> {
        error_response(&self.too_large)
    }

    /// Whether sending the request again changes nothing (result polls and
    /// `*.get` commands), so its answer may be refused and the caller retry.
    pub fn is_read_only(&self) -> bool {
        match &self.route {
            Route::Result | Route::Health => true,
            #[cfg(feature = "openapi")]
            Route::OpenApi => true,
            #[cfg(feature = "console")]
            Route::Console => true,
            Route::Command { name } => name.ends_with(".get"),
            Route::Receive { .. } => false,
        }
    }
}

/// The webhook gateway: the HTTP API over the ports.
pub struct Gateway {
    /// The route groups this gateway answers; the others are `404 route_not_found`.
    routes: Routes,
    ports: Ports,
    settings: Settings,
    outgoing: Arc<Outgoing>,
    /// Where the admin token is kept when the settings do not hold it.
    admin_token_secret: Option<Arc<dyn SecretSource>>,
    /// What `pipeline.test sideEffects=true` sends mail through, if configured.
    mailer: Option<Arc<dyn Mailer>>,
    /// Turns to hold a read result until its answer is built: a result can be
    /// megabytes, and polls read it faster than answers are written, so without
    /// turns every poll at once would hold its own copies.
    result_turns: Arc<tokio::sync::Semaphore>,
}

impl Gateway {
    /// A gateway answering `routes` over `ports` configured by `settings`,
    /// triggering outgoing webhooks through `outgoing`.
    pub fn new(routes: Routes, ports: Ports, settings: Settings, outgoing: Arc<Outgoing>) -> Self {
        Gateway {
            routes,
            ports,
            settings,
            outgoing,
            admin_token_secret: None,
            mailer: None,
            // As many as threads that can build answers at once.
            result_turns: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        }
    }

    /// Checks management requests against the token kept in `secret`, read when
    /// the first one arrives (instead of `HOOKFLOW_ADMIN_TOKEN`).
    pub fn with_admin_token_secret(mut self, secret: Arc<dyn SecretSource>) -> Self {
        self.admin_token_secret = Some(secret);
        self
    }

    /// Sends the mail of `pipeline.test sideEffects=true` through `mailer`.
    pub fn with_mailer(mut self, mailer: Option<Arc<dyn Mailer>>) -> Self {
        self.mailer = mailer;
        self
    }

    /// The outgoing-webhook service this gateway triggers through.
    pub fn outgoing(&self) -> &Arc<Outgoing> {
        &self.outgoing
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The ports in use.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Decides from the head alone, before any body is read: size of the head
    /// (414/431), the declared body size (413), route (404), method (405), admin
    /// token (401), and for `webhook.receive` a token in the header or query
    /// (401/404, 413 over the webhook's `maxPayloadLength`). The admission is kept
    /// in `parts.extensions`; calling again returns it without deciding twice.
    /// A refusal carries the request's id (`x-request-id`).
    pub async fn admit(&self, parts: &mut Parts) -> Result<Admission, Response<Bytes>> {
        if let Some(admission) = parts.extensions.get::<Admission>() {
            return Ok(admission.clone());
        }
        let id = RequestId::of_request(parts);
        let admission = self
            .decide(parts)
            .instrument(request_span(parts, &id))
            .await
            .map_err(|e| {
                let mut answer = error_response(&e);
                id.stamp(&mut answer);
                answer
            })?;
        parts.extensions.insert(admission.clone());
        Ok(admission)
    }

    async fn decide(&self, parts: &Parts) -> Result<Admission, ApiError> {
        check_head_size(parts)?;
        let max = self.settings.max_body_bytes;
        let declared = declared_length(&parts.headers);
        if declared.is_some_and(|len| len > max as u64) {
            return Err(payload_too_large(max));
        }
        // hookflow is no proxy: CONNECT (whose target is a bare host:port) is
        // refused like any other method a route does not serve.
        if parts.method == Method::CONNECT {
            return Err(method_not_allowed(GET_POST));
        }
        let mut body_limit = max;
        let mut too_large = payload_too_large(max);
        let path = parts.uri.path().trim_end_matches('/');
        let routes = self.routes;
        let route = match path {
            RECEIVE_PATH | RECEIVE_ALIAS_PATH => {
                let receive = routes.receive.ok_or_else(route_not_found)?;
                require_method(&parts.method, GET_POST)?;
                let webhook = (receive.admit)(self, parts).await?;
                if let Some(webhook) = &webhook {
                    let limit = webhook.max_payload_length as usize;
                    if declared.is_some_and(|len| len > limit as u64) {
                        return Err(receive::webhook_payload_too_large(webhook));
                    }
                    if limit < max {
                        body_limit = limit;
                        too_large = receive::webhook_payload_too_large(webhook);
                    }
                }
                Route::Receive {
                    webhook: webhook.map(Box::new),
                }
            }
            RESULT_PATH => {
                routes.result.ok_or_else(route_not_found)?;
                require_method(&parts.method, GET_POST)?;
                Route::Result
            }
            HEALTH_PATH => {
                routes.receive.ok_or_else(route_not_found)?;
                require_method(&parts.method, GET_ONLY)?;
                Route::Health
            }
            #[cfg(feature = "openapi")]
            OPENAPI_PATH => {
                routes.commands.ok_or_else(route_not_found)?;
                require_method(&parts.method, GET_ONLY)?;
                Route::OpenApi
            }
            #[cfg(feature = "console")]
            p if console::is_console_path(p) => {
                routes.commands.ok_or_else(route_not_found)?;
                require_method(&parts.method, GET_ONLY)?;
                Route::Console
            }
            p if p.starts_with(COMMAND_PREFIX) => {
                let commands = routes.commands.ok_or_else(route_not_found)?;
                require_method(&parts.method, GET_POST)?;
                (commands.authorize)(self, parts).await?;
                Route::Command {
                    name: p[COMMAND_PREFIX.len()..].to_owned(),
                }
            }
            _ => return Err(route_not_found()),
        };
        Ok(Admission {
            route,
            body_limit,
            too_large,
        })
    }

    /// Answers one HTTP request whose body is read (the Lambda path, and `serve`
    /// after [`Gateway::admit`]). Never panics on input; every failure is a JSON
    /// error. Every answer carries the request's id (`x-request-id`).
    pub async fn handle(&self, req: Request<Bytes>) -> Response<Bytes> {
        let (mut parts, body) = req.into_parts();
        let id = RequestId::of_request(&mut parts);
        let mut answer = self.answer(parts, body, &id).await;
        id.stamp(&mut answer);
        answer
    }

    async fn answer(&self, mut parts: Parts, body: Bytes, id: &RequestId) -> Response<Bytes> {
        if body.len() > self.settings.max_body_bytes {
            return error_response(&payload_too_large(self.settings.max_body_bytes));
        }
        let admission = match self.admit(&mut parts).await {
            Ok(admission) => admission,
            Err(answer) => return answer,
        };
        if body.len() > admission.body_limit {
            return admission.body_too_large();
        }
        let span = request_span(&parts, id);
        let req = Request::from_parts(parts, body);
        // Admitted routes are mounted ones ([`Gateway::decide`]).
        let routes = self.routes;
        let answer = async {
            match (
                admission.route,
                routes.receive,
                routes.result,
                routes.commands,
            ) {
                (Route::Receive { webhook }, Some(receive), _, _) => {
                    (receive.receive)(self, req, webhook.map(|w| *w)).await
                }
                (Route::Health, Some(receive), _, _) => (receive.health)(self).await,
                (Route::Result, _, Some(result), _) => result(self, req).await,
                (Route::Command { name }, _, _, Some(commands)) => {
                    (commands.command)(self, name, req).await
                }
                #[cfg(feature = "openapi")]
                (Route::OpenApi, ..) => Ok(openapi::document()),
                #[cfg(feature = "console")]
                (Route::Console, ..) => console::serve(req.uri().path()),
                _ => Err(route_not_found()),
            }
        }
        .instrument(span)
        .await;
        answer.unwrap_or_else(|e| error_response(&e))
    }

    /// 200 `{"status":"ok"}` when storage answers a read; else the 503
    /// `unavailable` every store failure gets (its cause only in the log).
    pub(super) async fn health(&self) -> Result<Response<Bytes>, ApiError> {
        self.ports.webhooks.ping().await?;
        let mut answer = json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}));
        answer.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        Ok(answer)
    }
}

/// The context of everything logged while a request is served, so that the
/// one place logging a store failure ([`ApiError`]'s `From<StoreError>`) says
/// which request it failed: its id, the method, and the route, whose last
/// segment names the operation (`/api/v3/command/webhook.put`). Never the
/// query, which may carry a webhook's token.
fn request_span(parts: &Parts, id: &RequestId) -> tracing::Span {
    tracing::error_span!(
        "request",
        request_id = id.as_str(),
        method = %parts.method,
        route = %parts.uri.path()
    )
}

/// 404 for a path that is no route of this gateway.
fn route_not_found() -> ApiError {
    ApiError::not_found(
        "route_not_found",
        "no such endpoint; see /api/v3/command/<name>, /api/v3/result, /api/v3/openapi.json",
    )
}

/// The `Content-Length` the client declared, if any.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// 414 and 431 for a head over hookflow's bounds (the server's own parser has
/// higher ones, so these answers are JSON like every other).
fn check_head_size(parts: &Parts) -> Result<(), ApiError> {
    let target = parts.uri.authority().map_or(0, |a| a.as_str().len())
        + parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is longer than {MAX_URI_BYTES} bytes"),
        ));
    }
    if parts.headers.len() > MAX_REQUEST_HEADERS {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("more than {MAX_REQUEST_HEADERS} request headers"),
        ));
    }
    // Each line is `name: value` plus CRLF.
    let header_bytes: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request headers exceed {MAX_HEADER_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// 413 for a body over `limit` bytes.
pub fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body exceeds the limit of {limit} bytes"),
    )
}

/// Only `allowed` methods reach a handler; others get 405 with `Allow`.
fn require_method(method: &Method, allowed: Methods) -> Result<(), ApiError> {
    if allowed.list.contains(method) {
        Ok(())
    } else {
        Err(method_not_allowed(allowed))
    }
}

fn method_not_allowed(allowed: Methods) -> ApiError {
    let names: Vec<&str> = allowed.list.iter().map(Method::as_str).collect();
    let mut err = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("use {}", names.join(" or ")),
    );
    err.allow = Some(allowed.allow);
    err
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Bytes> {
    json_text_response(status, Bytes::from(body.to_string()))
}

/// An answer of JSON text already written.
fn json_text_response(status: StatusCode, body: Bytes) -> Response<Bytes> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// The JSON error answer of `err`, with `Allow`/`WWW-Authenticate` where they belong.
pub fn error_response(err: &ApiError) -> Response<Bytes> {
    let mut res = json_response(err.status, &err.to_json());
    let headers = res.headers_mut();
    if let Some(allow) = err.allow {
        headers.insert(http::header::ALLOW, HeaderValue::from_static(allow));
    }
    if err.status == StatusCode::UNAUTHORIZED && err.code == "unauthorized" {
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::domain::rotation::Rotation;
    use crate::domain::verify::Refusals;
    use crate::domain::{Timestamp, Token};
    use crate::error::StoreError;
    use crate::ports::{StoreResult, WebhookStore};

    const ADMIN: &str = "admin-token-of-the-test";

    /// A webhook store whose backend is down.
    struct DownWebhooks;

    fn down<T>() -> StoreResult<T> {
        Err(StoreError::unavailable("connection refused by the backend"))
    }

    #[async_trait]
    impl WebhookStore for DownWebhooks {
        async fn insert_webhook(&self, _webhook: &Webhook) -> StoreResult<()> {
            down()
        }
        async fn update_webhook(&self, _webhook: &Webhook) -> StoreResult<()> {
            down()
        }
        async fn get_by_token(&self, _token: &Token) -> StoreResult<Option<Webhook>> {
            down()
        }
        async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>> {
            down()
        }
        async fn delete_webhook(&self, _token: &Token) -> StoreResult<bool> {
            down()
        }
        async fn rotate_token(
            &self,
            _current: &Token,
            _rotation: &Rotation,
        ) -> StoreResult<Webhook> {
            down()
        }
        async fn record_refusal(
            &self,
            _token: &Token,
            _code: &str,
            _at: Timestamp,
        ) -> StoreResult<()> {
            down()
        }
        async fn refusals(&self, _token: &Token) -> StoreResult<Option<Refusals>> {
            down()
        }
    }

    #[tokio::test]
    async fn health_is_503_when_storage_does_not_answer_and_carries_the_request_id() {
        let settings = Settings::default();
        let up = crate::wiring::gateway(Ports::memory(), settings.clone());
        let health = || {
            Request::get(HEALTH_PATH)
                .header("x-request-id", "health-1")
                .body(Bytes::new())
                .unwrap()
        };
        let answer = up.handle(health()).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["x-request-id"], "health-1");

        let mut ports = Ports::memory();
        ports.webhooks = Arc::new(DownWebhooks);
        let down = crate::wiring::gateway(ports, settings);
        let answer = down.handle(health()).await;
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.headers()["x-request-id"], "health-1");
        let body: Value = serde_json::from_slice(answer.body()).unwrap();
        assert_eq!(body["error"]["code"], "unavailable");
        assert!(
            !body.to_string().contains("connection refused"),
            "no cause in the answer: {body}"
        );
    }

    /// The log, as text.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_store_failure_is_logged_once_with_its_route_and_cause_but_no_token() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _logging = tracing::subscriber::set_default(subscriber);
        let mut ports = Ports::memory();
        ports.webhooks = Arc::new(DownWebhooks);
        let settings =
            Settings::from_lookup(|name| (name == "HOOKFLOW_ADMIN_TOKEN").then(|| ADMIN.into()))
                .unwrap();
        let gateway = crate::wiring::gateway(ports, settings);
        let token = uuid::Uuid::new_v4().to_string();

        let receive = Request::post(format!("{RECEIVE_ALIAS_PATH}?token={token}"))
            .body(Bytes::new())
            .unwrap();
        let answer = gateway.handle(receive).await;
        assert_eq!(answer.status(), 503);
        let list = Request::get(format!("{COMMAND_PREFIX}webhook.get"))
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Bytes::new())
            .unwrap();
        assert_eq!(gateway.handle(list).await.status(), 503);

        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let failures: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("store unavailable"))
            .collect();
        assert_eq!(failures.len(), 2, "{text}");
        for (line, route) in failures.iter().zip([
            "route=/api/v3/webhook.receive",
            "route=/api/v3/command/webhook.get",
        ]) {
            assert!(line.contains(route), "{line}");
            assert!(line.contains("connection refused by the backend"), "{line}");
        }
        assert!(!text.contains(&token), "the token is never logged: {text}");
    }
}
