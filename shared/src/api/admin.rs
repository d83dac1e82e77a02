//! Management commands (`webhook.*`, `pipeline.*`, `outgoing.*`, `invocation.get`, `event.*`),
//! behind the admin bearer token.

use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, Request, Response, StatusCode};
use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;
use super::params::{Params, is_json, media_type};
use super::{Gateway, RECEIVE_PATH, json_response};
use crate::config::AdminToken;
use crate::domain::{PipelineDefinition, Timestamp};
use crate::pipeline::{Pipeline, valid_pipeline_name};
use crate::ports::SecretSource;
use crate::webhooks::{self, WebhookError, WebhookPut, WebhookRotate, WebhookSelector};

/// The management commands `/api/v3/command/<name>` runs. The router
/// dispatches on this type, so a command is answered only once it is listed
/// here, and the OpenAPI document's test reads the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Command {
    WebhookPut,
    WebhookGet,
    WebhookDelete,
    WebhookRotate,
    WebhookSend,
    PipelinePut,
    PipelineGet,
    PipelineDelete,
    PipelineTest,
    OutgoingPut,
    OutgoingGet,
    OutgoingDelete,
    InvocationGet,
    DeadletterList,
    DeadletterRedrive,
    DeadletterDelete,
    QueueGet,
    InvocationResend,
    EventList,
    EventGet,
    EventReplay,
}

impl Command {
    /// Every command. A variant left out is never constructed, which the
    /// `dead_code` lint (an error under `clippy -D warnings`) reports.
    pub(super) const ALL: &[Command] = &[
        Command::WebhookPut,
        Command::WebhookGet,
        Command::WebhookDelete,
        Command::WebhookRotate,
        Command::WebhookSend,
        Command::PipelinePut,
        Command::PipelineGet,
        Command::PipelineDelete,
        Command::PipelineTest,
        Command::OutgoingPut,
        Command::OutgoingGet,
        Command::OutgoingDelete,
        Command::InvocationGet,
        Command::DeadletterList,
        Command::DeadletterRedrive,
        Command::DeadletterDelete,
        Command::QueueGet,
        Command::InvocationResend,
        Command::EventList,
        Command::EventGet,
        Command::EventReplay,
    ];

    /// The name in `/api/v3/command/<name>`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Command::WebhookPut => "webhook.put",
            Command::WebhookGet => "webhook.get",
            Command::WebhookDelete => "webhook.delete",
            Command::WebhookRotate => "webhook.rotate",
            Command::WebhookSend => "webhook.send",
            Command::PipelinePut => "pipeline.put",
            Command::PipelineGet => "pipeline.get",
            Command::PipelineDelete => "pipeline.delete",
            Command::PipelineTest => "pipeline.test",
            Command::OutgoingPut => "outgoing.put",
            Command::OutgoingGet => "outgoing.get",
            Command::OutgoingDelete => "outgoing.delete",
            Command::InvocationGet => "invocation.get",
            Command::DeadletterList => "deadletter.list",
            Command::DeadletterRedrive => "deadletter.redrive",
            Command::DeadletterDelete => "deadletter.delete",
            Command::QueueGet => "queue.get",
            Command::InvocationResend => "invocation.resend",
            Command::EventList => "event.list",
            Command::EventGet => "event.get",
            Command::EventReplay => "event.replay",
        }
    }

    fn named(name: &str) -> Option<Command> {
        Command::ALL.iter().copied().find(|c| c.name() == name)
    }
}

fn unknown_command() -> ApiError {
    let names: Vec<&str> = Command::ALL.iter().map(|c| c.name()).collect();
    ApiError::not_found(
        "unknown_command",
        format!(
            "no such command; the commands are webhook.receive and {}",
            names.join(", ")
        ),
    )
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

impl Gateway {
    /// Runs a management command of a request [`Gateway::admit`] let in
    /// (method and admin token checked).
    pub(super) async fn command(
        &self,
        name: &str,
        req: Request<Bytes>,
    ) -> Result<Response<Bytes>, ApiError> {
        let (head, body) = req.into_parts();
        let params = Params::from_request(head.uri.query(), &head.headers, &body)?;
        let receive_url = self.receive_url(&head.headers);
        let ok = StatusCode::OK;
        let Some(command) = Command::named(name) else {
            return Err(unknown_command());
        };
        let (status, value) = match command {
            Command::WebhookPut => (ok, self.put_webhook(&params, &receive_url).await?),
            Command::WebhookGet => (ok, self.get_webhooks(&params, &receive_url).await?),
            Command::WebhookDelete => (ok, self.delete_webhook(&params, &receive_url).await?),
            Command::WebhookRotate => (ok, self.rotate_webhook(&params, &receive_url).await?),
            Command::WebhookSend => self.send_outgoing(&params, &head.headers, &body).await?,
            Command::PipelinePut => (ok, self.put_pipeline(&params, &head.headers, &body).await?),
            Command::PipelineGet => (ok, self.get_pipelines(&params).await?),
            Command::PipelineDelete => (ok, self.delete_pipeline(&params).await?),
            Command::PipelineTest => (ok, self.test_pipeline(&params, &head.headers, &body).await?),
            Command::OutgoingPut => self.put_outgoing(&params, &head.headers, &body).await?,
            Command::OutgoingGet => (ok, self.get_outgoing(&params).await?),
            Command::OutgoingDelete => (ok, self.delete_outgoing(&params).await?),
            Command::InvocationGet => (ok, self.get_invocations(&params).await?),
            Command::DeadletterList => (ok, self.list_dead_letters(&params).await?),
            Command::DeadletterRedrive => (ok, self.redrive_dead_letters(&params).await?),
            Command::DeadletterDelete => (ok, self.delete_dead_letter(&params).await?),
            Command::QueueGet => (ok, self.queue_counts().await?),
            Command::InvocationResend => self.resend_invocation(&params).await?,
            Command::EventList => (ok, self.list_events(&params).await?),
            Command::EventGet => (ok, self.get_event(&params).await?),
            // Answered as webhook.receive answers, status and headers included.
            Command::EventReplay => return self.replay_event(&params).await,
        };
        Ok(json_response(status, &value))
    }

    /// Checks `Authorization: Bearer <admin token>`. Both sides are hashed first so
    /// the comparison takes the same time whatever the length or content.
    pub(super) async fn authorize_admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                unauthorized("send the admin token as 'Authorization: Bearer <token>'")
            })?;
        let expected = match &self.admin_token_secret {
            Some(secret) => Self::admin_token_from(secret.as_ref()).await?,
            None => self.settings.admin_token.clone().ok_or_else(|| {
                unauthorized("management is disabled: no admin token is configured")
            })?,
        };
        let given = Sha256::digest(given.as_bytes());
        let expected = Sha256::digest(expected.expose().as_bytes());
        if bool::from(given.ct_eq(&expected)) {
            Ok(())
        } else {
            Err(unauthorized("the admin token is not valid"))
        }
    }

    /// The admin token kept in `secret`; 503 while it cannot be read or is not a
    /// valid token (the log says which, never the value).
    async fn admin_token_from(secret: &dyn SecretSource) -> Result<AdminToken, ApiError> {
        let text = secret.reveal().await.map_err(|err| {
            tracing::error!(error = %err, "reading the admin token secret failed");
            ApiError::unavailable()
        })?;
        AdminToken::new(text).map_err(|err| {
            tracing::error!(problem = %err.problem, "the admin token secret holds no valid token");
            ApiError::unavailable()
        })
    }

    /// The public URL of `webhook.receive`: `HOOKFLOW_PUBLIC_URL`, else derived from the
    /// request's `Host` (and `X-Forwarded-Proto` behind a proxy or API Gateway).
    fn receive_url(&self, headers: &HeaderMap) -> String {
        let base = match &self.settings.public_url {
            Some(url) => url.clone(),
            None => {
                let host = headers
                    .get(HOST)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("localhost");
                let scheme = headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .filter(|s| *s == "https" || *s == "http")
                    .unwrap_or("http");
                format!("{scheme}://{host}")
            }
        };
        format!("{base}{RECEIVE_PATH}")
    }

    async fn put_webhook(&self, params: &Params, receive_url: &str) -> Result<Value, ApiError> {
        let change = webhook_input::<WebhookPut>(params)?.with_nulls_of(params.json_body());
        let webhook =
            webhooks::service::put(&*self.ports.webhooks, change, Timestamp::now()).await?;
        Ok(webhook.to_api_json(receive_url))
    }

    async fn get_webhooks(&self, params: &Params, receive_url: &str) -> Result<Value, ApiError> {
        let selector: WebhookSelector = webhook_input(params)?;
        match selector.uuid {
            Some(token) => {
                let webhook = webhooks::service::get(&*self.ports.webhooks, &token).await?;
                let mut shown = webhook.to_api_json(receive_url);
                // Only a webhook that can refuse calls has a counter to show.
                if webhook.verify.is_some() || !webhook.allowed_sources.is_empty() {
                    let refusals = self.ports.webhooks.refusals(&token).await?;
                    shown["verification"] = json!({
                        "refused": refusals.as_ref().map_or(0, |r| r.refused),
                        "lastRefusal": refusals.as_ref().map(|r| r.last_refusal_json()),
                    });
                }
                Ok(shown)
            }
            None => {
                let all = self.ports.webhooks.list_webhooks().await?;
                Ok(Value::Array(
                    all.iter().map(|w| w.to_api_json(receive_url)).collect(),
                ))
            }
        }
    }

    /// The rotated webhook, with `previousTokenExpiresAt` even for a grace of
    /// 0 (then the moment the old token stopped).
    async fn rotate_webhook(&self, params: &Params, receive_url: &str) -> Result<Value, ApiError> {
        let change: WebhookRotate = webhook_input(params)?;
        let rotated =
            webhooks::service::rotate(&*self.ports.webhooks, change, Timestamp::now()).await?;
        let mut shown = rotated.to_api_json(receive_url);
        if let Some(previous) = rotated.previous_token {
            shown["previousTokenExpiresAt"] = json!(previous.expires_at.to_rfc3339());
        }
        Ok(shown)
    }

    async fn delete_webhook(&self, params: &Params, receive_url: &str) -> Result<Value, ApiError> {
        let selector: WebhookSelector = webhook_input(params)?;
        let token = selector.uuid.ok_or(WebhookError::UuidMissing)?;
        let webhook = webhooks::service::delete(&*self.ports.webhooks, &token).await?;
        Ok(webhook.to_api_json(receive_url))
    }
}

/// The typed input of a `webhook.*` command; a refused value gets its parameter's code.
fn webhook_input<T: DeserializeOwned>(params: &Params) -> Result<T, WebhookError> {
    params
        .typed()
        .map_err(|bad| WebhookError::invalid_param(&bad.param, bad.message))
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        let code = err.code();
        match err {
            WebhookError::Invalid { message, .. } => ApiError::bad_request(code, message),
            WebhookError::EventKeyMissing | WebhookError::UuidMissing => {
                ApiError::bad_request(code, err.to_string())
            }
            WebhookError::NotFound => ApiError::not_found(code, err.to_string()),
            WebhookError::UuidTaken => ApiError::new(StatusCode::CONFLICT, code, err.to_string()),
            WebhookError::Store(err) => err.into(),
        }
    }
}

fn pipeline_not_found() -> ApiError {
    ApiError::not_found("pipeline_not_found", "no pipeline has this name")
}

/// What the `pipeline.*` commands say.
#[derive(Deserialize)]
pub(super) struct PipelineInput {
    #[serde(default, deserialize_with = "pipeline_name")]
    pub(super) name: Option<String>,
    /// The YAML, when not sent as the body.
    pub(super) pipeline: Option<String>,
}

impl PipelineInput {
    pub(super) fn from_params(params: &Params) -> Result<Self, ApiError> {
        // Only `name` has a rule a value can break.
        params
            .typed()
            .map_err(|bad| ApiError::bad_request("invalid_name", bad.message))
    }

    fn required_name(&self) -> Result<&str, ApiError> {
        self.name
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("name_missing", "name is required"))
    }
}

fn pipeline_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let name = String::deserialize(deserializer)?;
    if valid_pipeline_name(&name) {
        Ok(Some(name))
    } else {
        Err(de::Error::custom(
            "name must be 1 to 100 letters, digits, '.', '_' or '-'",
        ))
    }
}

fn pipeline_json(p: &PipelineDefinition) -> Value {
    json!({
        "name": p.name,
        "eventKey": p.listens_to,
        "updatedAt": p.updated_at.to_rfc3339(),
        "source": p.source,
    })
}

impl Gateway {
    /// Stores a pipeline after compiling it; the YAML is the `pipeline` parameter
    /// or else the raw request body.
    async fn put_pipeline(
        &self,
        params: &Params,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Value, ApiError> {
        let input = PipelineInput::from_params(params)?;
        let name = input.required_name()?;
        let source = match &input.pipeline {
            Some(text) => text.clone(),
            None if media_type(headers).is_some_and(|t| is_json(&t)) => {
                return Err(ApiError::bad_request(
                    "pipeline_missing",
                    "send the YAML as the request body, or as the 'pipeline' parameter",
                ));
            }
            None => String::from_utf8(body.to_vec()).map_err(|_| {
                ApiError::bad_request("invalid_pipeline", "the pipeline is not UTF-8 text")
            })?,
        };
        let compiled = self.compile_pipeline(name, &source)?;
        let definition = PipelineDefinition {
            name: name.to_owned(),
            listens_to: compiled.listens_to,
            source,
            updated_at: Timestamp::now(),
        };
        self.ports.pipelines.put_pipeline(&definition).await?;
        tracing::info!(pipeline = name, event_key = %definition.listens_to, "pipeline stored");
        Ok(pipeline_json(&definition))
    }

    /// `source` compiled as pipeline `name`: 413 over
    /// `HOOKFLOW_MAX_PIPELINE_BYTES`, `pipeline_missing` when empty,
    /// `invalid_pipeline` with the line at fault.
    pub(super) fn compile_pipeline(&self, name: &str, source: &str) -> Result<Pipeline, ApiError> {
        if source.len() > self.settings.max_pipeline_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "a pipeline may have at most {} bytes",
                    self.settings.max_pipeline_bytes
                ),
            ));
        }
        if source.trim().is_empty() {
            return Err(ApiError::bad_request(
                "pipeline_missing",
                "the pipeline YAML is empty",
            ));
        }
        Pipeline::compile(name, source, &self.settings.users).map_err(|e| {
            let mut err = ApiError::bad_request("invalid_pipeline", e.to_string());
            err.line = Some(e.line);
            err
        })
    }

    /// The stored pipeline `name`, or 404.
    pub(super) async fn existing_pipeline(
        &self,
        name: &str,
    ) -> Result<PipelineDefinition, ApiError> {
        self.ports
            .pipelines
            .get_pipeline(name)
            .await?
            .ok_or_else(pipeline_not_found)
    }

    async fn get_pipelines(&self, params: &Params) -> Result<Value, ApiError> {
        match PipelineInput::from_params(params)?.name {
            Some(name) => Ok(pipeline_json(&self.existing_pipeline(&name).await?)),
            None => {
                let all = self.ports.pipelines.list_pipelines().await?;
                Ok(Value::Array(all.iter().map(pipeline_json).collect()))
            }
        }
    }

    async fn delete_pipeline(&self, params: &Params) -> Result<Value, ApiError> {
        let input = PipelineInput::from_params(params)?;
        let name = input.required_name()?;
        let found = self.existing_pipeline(name).await?;
        if !self.ports.pipelines.delete_pipeline(name).await? {
            return Err(pipeline_not_found());
        }
        tracing::info!(pipeline = name, "pipeline deleted");
        Ok(pipeline_json(&found))
    }
}
