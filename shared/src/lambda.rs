//! What the Lambda functions mount: API Gateway HTTP API events (payload 2.0)
//! handed to the core router, SQS batches handed to the worker, and the start-up
//! that every function shares (typed settings, clients built once, no network call).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use base64::Engine;
use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{COOKIE, HeaderValue};

use crate::adapters::aws::{AwsClients, AwsResources, SecretsManagerSecret};
use crate::adapters::smtp::SecretLoginMailer;
use crate::api::{Gateway, Ports, error_response};
use crate::config::{ConfigError, Settings};
use crate::error::ApiError;
use crate::pipeline::commands::Services;
use crate::pipeline::worker::{Acknowledge, Worker, settle};
use crate::ports::{Delivery, JobQueue};

/// Names the Secrets Manager secret holding the admin token (`webhook-admin`).
pub const ADMIN_TOKEN_SECRET: &str = "HOOKFLOW_ADMIN_TOKEN_SECRET";
/// Names the Secrets Manager secret holding the SMTP login (`pipeline-worker`).
pub const SMTP_LOGIN_SECRET: &str = "HOOKFLOW_SMTP_LOGIN_SECRET";

/// Settings, resource names and clients of a function, read once at start.
pub struct FunctionContext {
    pub settings: Settings,
    pub ports: Ports,
    clients: AwsClients,
    admin_token_secret: Option<String>,
    smtp_login_secret: Option<String>,
}

impl FunctionContext {
    /// Reads and validates every setting of the process environment (failing
    /// with the setting's name) and builds the clients. Makes no network call.
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok()).await
    }

    /// [`FunctionContext::from_env`] with the settings read through `lookup`.
    pub async fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut settings = Settings::from_lookup(&lookup)?;
        settings.check_for_sqs()?;
        let resources = AwsResources::from_lookup(&lookup)?;
        let clients = AwsClients::from_env().await;
        let ports = Ports::aws(&clients, &resources, None, settings.lookup_cache);
        let named = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        Ok(FunctionContext {
            settings,
            ports,
            clients,
            admin_token_secret: named(ADMIN_TOKEN_SECRET),
            smtp_login_secret: named(SMTP_LOGIN_SECRET),
        })
    }

    /// The HTTP gateway; `needs_admin_token` for the management function, whose
    /// token is `HOOKFLOW_ADMIN_TOKEN` or, failing that, the secret
    /// `HOOKFLOW_ADMIN_TOKEN_SECRET` names, read when the first management
    /// request arrives.
    pub fn gateway(self, needs_admin_token: bool) -> Result<Gateway, ConfigError> {
        let secret = match (&self.settings.admin_token, &self.admin_token_secret) {
            (None, Some(name)) if needs_admin_token => Some(SecretsManagerSecret::new(
                self.clients.secrets_manager(),
                name,
            )),
            (None, None) if needs_admin_token => {
                return Err(ConfigError {
                    name: ADMIN_TOKEN_SECRET,
                    problem: "is required (or HOOKFLOW_ADMIN_TOKEN)".into(),
                });
            }
            _ => None,
        };
        let gateway = Gateway::new(self.ports, self.settings);
        Ok(match secret {
            Some(secret) => gateway.with_admin_token_secret(Arc::new(secret)),
            None => gateway,
        })
    }

    /// The pipeline worker and the queue it acknowledges on. With
    /// `HOOKFLOW_SMTP_LOGIN_SECRET`, `mail.send` logs in with the login that
    /// secret holds, read when the first mail is sent.
    pub fn worker(self) -> Result<(Worker, Arc<dyn JobQueue>), ConfigError> {
        let mut services = Services::from_settings(&self.settings, &self.ports)?;
        if let (Some(url), Some(name)) = (&self.settings.smtp_url, &self.smtp_login_secret) {
            let login = SecretsManagerSecret::new(self.clients.secrets_manager(), name);
            services.mailer = Some(Arc::new(SecretLoginMailer::new(url, Arc::new(login))));
        }
        let queue = self.ports.queue.clone();
        Ok((
            Worker::new(self.ports, Arc::new(services), self.settings.worker),
            queue,
        ))
    }
}

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
