//! HTTP routing: one `Request -> Response` function for every place hookflow runs.
//!
//! The local server and each Lambda function convert their request into an
//! `http::Request<Bytes>`, call [`Gateway::handle`], and send back what it answers.
//! No route logic lives anywhere else.

mod admin;
mod outgoing;
mod params;
mod receive;
mod result;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use serde_json::Value;

use crate::adapters::{LocalSignal, MemoryQueue, MemoryStore, SqliteStore};
use crate::config::Settings;
use crate::error::ApiError;
use crate::outgoing::Outgoing;
use crate::ports::{
    EventIntake, EventStore, InvocationStore, JobQueue, OutgoingStore, PipelineStore, ResultSignal,
    SecretSource, StoreThenEnqueue, WebhookStore,
};

/// Path of the receive command, as PIPEFORCE documents it.
pub const RECEIVE_PATH: &str = "/api/v3/command/webhook.receive";
/// The receive command's short alias.
pub const RECEIVE_ALIAS_PATH: &str = "/api/v3/webhook.receive";
/// Path of result polling.
pub const RESULT_PATH: &str = "/api/v3/result";
/// Prefix of every management command.
pub const COMMAND_PREFIX: &str = "/api/v3/command/";
/// Header that carries a call's correlation id.
pub const CORRELATION_HEADER: &str = "pipeforce-result-correlationid";

/// The adapters a gateway works with.
#[derive(Clone)]
pub struct Ports {
    pub webhooks: Arc<dyn WebhookStore>,
    pub events: Arc<dyn EventStore>,
    pub intake: Arc<dyn EventIntake>,
    pub pipelines: Arc<dyn PipelineStore>,
    pub queue: Arc<dyn JobQueue>,
    pub signal: Arc<dyn ResultSignal>,
    /// Registered outgoing webhooks.
    pub outgoing: Arc<dyn OutgoingStore>,
    /// Invocation records of outgoing webhooks.
    pub invocations: Arc<dyn InvocationStore>,
}

impl Ports {
    /// Everything in one SQLite store, with in-process result signalling.
    pub fn sqlite(store: Arc<SqliteStore>) -> Self {
        Ports {
            webhooks: store.clone(),
            events: store.clone(),
            intake: store.clone(),
            pipelines: store.clone(),
            outgoing: store.clone(),
            invocations: store.clone(),
            queue: store,
            signal: Arc::new(LocalSignal::new()),
        }
    }

    /// Everything in memory (unit tests).
    pub fn memory() -> Self {
        let store = Arc::new(MemoryStore::new());
        let queue: Arc<dyn JobQueue> = Arc::new(MemoryQueue::new());
        Ports {
            webhooks: store.clone(),
            events: store.clone(),
            intake: Arc::new(StoreThenEnqueue {
                events: store.clone(),
                queue: queue.clone(),
            }),
            pipelines: store.clone(),
            outgoing: store.clone(),
            invocations: store,
            queue,
            signal: Arc::new(LocalSignal::new()),
        }
    }
}

/// The webhook gateway: the HTTP API over the ports.
pub struct Gateway {
    ports: Ports,
    settings: Settings,
    outgoing: Arc<Outgoing>,
    /// Where the admin token is kept when the settings do not hold it.
    admin_token_secret: Option<Arc<dyn SecretSource>>,
}

impl Gateway {
    /// A gateway over `ports` configured by `settings`.
    pub fn new(ports: Ports, settings: Settings) -> Self {
        let outgoing = Arc::new(Outgoing::new(&ports, &settings.outgoing));
        Gateway {
            ports,
            settings,
            outgoing,
            admin_token_secret: None,
        }
    }

    /// Checks management requests against the token kept in `secret`, read when
    /// the first one arrives (instead of `HOOKFLOW_ADMIN_TOKEN`).
    pub fn with_admin_token_secret(mut self, secret: Arc<dyn SecretSource>) -> Self {
        self.admin_token_secret = Some(secret);
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

    /// Answers one HTTP request. Never panics on input; every failure is a JSON error.
    pub async fn handle(&self, req: Request<Bytes>) -> Response<Bytes> {
        if req.body().len() > self.settings.max_body_bytes {
            return error_response(&payload_too_large(self.settings.max_body_bytes));
        }
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let answer = match path.as_str() {
            RECEIVE_PATH | RECEIVE_ALIAS_PATH => self.receive(req).await,
            RESULT_PATH => self.poll_result(req).await,
            p if p.starts_with(COMMAND_PREFIX) => {
                let name = &p[COMMAND_PREFIX.len()..];
                self.command(name, req).await
            }
            _ => Err(ApiError::not_found(
                "route_not_found",
                "no such endpoint; see /api/v3/command/<name>, /api/v3/result",
            )),
        };
        answer.unwrap_or_else(|e| error_response(&e))
    }
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
fn require_method(method: &Method, allowed: &[Method]) -> Result<(), ApiError> {
    if allowed.contains(method) {
        Ok(())
    } else {
        let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("use {}", names.join(" or ")),
        ))
    }
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Bytes> {
    let mut res = Response::new(Bytes::from(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// The JSON error answer of `err`, with `Allow`/`WWW-Authenticate` where they belong.
pub fn error_response(err: &ApiError) -> Response<Bytes> {
    let mut res = json_response(err.status, &err.to_json());
    let headers = res.headers_mut();
    match err.status {
        StatusCode::METHOD_NOT_ALLOWED => {
            headers.insert(http::header::ALLOW, HeaderValue::from_static("GET, POST"));
        }
        StatusCode::UNAUTHORIZED if err.code == "unauthorized" => {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        _ => {}
    }
    res
}
