//! What the Lambda functions mount: API Gateway HTTP requests handed to the
//! core router, SQS batches handed to the worker, and the start-up that every
//! function shares (typed settings, clients built once, no network call).

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use lambda_http::Body;

use crate::adapters::aws::{AwsClients, AwsResources};
use crate::api::{Gateway, Ports};
use crate::config::{ConfigError, Settings};
use crate::domain::Job;
use crate::pipeline::commands::Services;
use crate::pipeline::worker::{Disposition, Worker};
use crate::ports::JobQueue;

/// Settings, resource names and clients of a function, read once at start.
pub struct FunctionContext {
    pub settings: Settings,
    pub ports: Ports,
}

impl FunctionContext {
    /// Reads and validates every setting (failing with the setting's name) and
    /// builds the clients. Makes no network call.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let settings = Settings::from_env()?;
        let resources = AwsResources::from_env()?;
        let clients = AwsClients::from_env().await;
        let ports = Ports::aws(&clients, &resources, None, settings.lookup_cache);
        Ok(FunctionContext { settings, ports })
    }

    /// The HTTP gateway; `needs_admin_token` for the management function.
    pub fn gateway(self, needs_admin_token: bool) -> Result<Gateway, ConfigError> {
        if needs_admin_token && self.settings.admin_token.is_none() {
            return Err(ConfigError {
                name: "HOOKFLOW_ADMIN_TOKEN",
                problem: "is required".into(),
            });
        }
        Ok(Gateway::new(self.ports, self.settings))
    }

    /// The pipeline worker and the queue it acknowledges on.
    pub fn worker(self) -> Result<(Worker, Arc<dyn JobQueue>), ConfigError> {
        let services = Services::from_settings(&self.settings, &self.ports)?;
        let queue = self.ports.queue.clone();
        Ok((
            Worker::new(self.ports, Arc::new(services), self.settings.worker),
            queue,
        ))
    }
}

/// Answers one API Gateway request with the core router.
pub async fn handle_http(gateway: &Gateway, request: lambda_http::Request) -> http::Response<Body> {
    let (head, body) = request.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    let response = gateway.handle(http::Request::from_parts(head, body)).await;
    let (head, body) = response.into_parts();
    // Answers are JSON: text keeps them readable in API Gateway and its logs.
    let body = match String::from_utf8(body.to_vec()) {
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    http::Response::from_parts(head, body)
}

/// Runs the worker on one SQS batch. Messages that finished are left to Lambda to
/// delete; the others are reported as failures (partial batch response), after
/// their visibility was set to the retry delay. Nothing is deleted on failure.
pub async fn handle_sqs(
    worker: &Worker,
    queue: &dyn JobQueue,
    event: SqsEvent,
) -> SqsBatchResponse {
    let runs = event.records.into_iter().map(|message| async move {
        let id = message.message_id.clone().unwrap_or_default();
        (id, process_message(worker, queue, message).await)
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

/// True when the message is done with.
async fn process_message(worker: &Worker, queue: &dyn JobQueue, message: SqsMessage) -> bool {
    let Some(job) = message
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str::<Job>(b).ok())
    else {
        // Reported as failed: after maxReceiveCount it rests in the dead-letter queue.
        tracing::error!(message_id = ?message.message_id, "unreadable job message");
        return false;
    };
    let attempt = message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    match worker.process(&job, attempt).await {
        Disposition::Done => true,
        Disposition::RetryAfter(delay) => {
            if let Some(receipt) = &message.receipt_handle
                && let Err(err) = queue.release_job(receipt, delay).await
            {
                // The message still comes back, after the queue's visibility timeout.
                tracing::warn!(error = %err, "could not set the retry delay");
            }
            false
        }
    }
}
