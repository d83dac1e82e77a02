//! Management commands (`webhook.*`, `pipeline.*`, `outgoing.*`, `invocation.get`),
//! behind the admin bearer token.

use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, Request, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;
use super::params::{Params, is_json, media_type};
use super::{Gateway, RECEIVE_PATH, json_response};
use crate::config::AdminToken;
use crate::domain::{
    DEFAULT_MAX_PAYLOAD_LENGTH, EventKey, MAX_PAYLOAD_LENGTH_LIMIT, PayloadType,
    PipelineDefinition, Timestamp, Token, Webhook,
};
use crate::error::{Conflict, StoreError};
use crate::pipeline::{Pipeline, valid_pipeline_name};
use crate::ports::SecretSource;

/// Longest webhook description.
const MAX_DESCRIPTION_LEN: usize = 2000;

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

fn webhook_not_found() -> ApiError {
    ApiError::not_found("webhook_not_found", "no webhook has this uuid")
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
        let (status, value) = match name {
            "webhook.put" => (ok, self.put_webhook(&params, &receive_url).await?),
            "webhook.get" => (ok, self.get_webhooks(&params, &receive_url).await?),
            "webhook.delete" => (ok, self.delete_webhook(&params, &receive_url).await?),
            "webhook.send" => self.send_outgoing(&params, &head.headers, &body).await?,
            "pipeline.put" => (ok, self.put_pipeline(&params, &head.headers, &body).await?),
            "pipeline.get" => (ok, self.get_pipelines(&params).await?),
            "pipeline.delete" => (ok, self.delete_pipeline(&params).await?),
            "outgoing.put" => self.put_outgoing(&params, &head.headers, &body).await?,
            "outgoing.get" => (ok, self.get_outgoing(&params).await?),
            "outgoing.delete" => (ok, self.delete_outgoing(&params).await?),
            "invocation.get" => (ok, self.get_invocations(&params).await?),
            _ => {
                return Err(ApiError::not_found(
                    "unknown_command",
                    "no such command; the commands are webhook.put, webhook.get, webhook.delete, webhook.receive, \
                     webhook.send, pipeline.put, pipeline.get, pipeline.delete, outgoing.put, outgoing.get, \
                     outgoing.delete and invocation.get",
                ));
            }
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
        let now = Timestamp::now();
        let token = match params.get("uuid") {
            None => None,
            Some(text) => Some(Token::parse(text).ok_or_else(|| {
                ApiError::bad_request("invalid_uuid", "uuid must be a well-formed UUID")
            })?),
        };
        let existing = match &token {
            Some(t) => self.ports.webhooks.get_by_token(t).await?,
            None => None,
        };
        let webhook = match existing {
            Some(mut webhook) => {
                apply_changes(&mut webhook, params)?;
                webhook.updated_at = now;
                self.ports
                    .webhooks
                    .update_webhook(&webhook)
                    .await
                    .map_err(map_conflict)?;
                webhook
            }
            None => {
                let key = params.get("eventKey").ok_or_else(|| {
                    ApiError::bad_request(
                        "event_key_missing",
                        "eventKey is required to create a webhook",
                    )
                })?;
                let mut webhook = Webhook {
                    token: token.unwrap_or_else(Token::generate),
                    event_key: parse_event_key(key)?,
                    description: None,
                    enabled: true,
                    payload_type: PayloadType::default(),
                    max_payload_length: DEFAULT_MAX_PAYLOAD_LENGTH,
                    created_at: now,
                    updated_at: now,
                };
                apply_changes(&mut webhook, params)?;
                self.ports
                    .webhooks
                    .insert_webhook(&webhook)
                    .await
                    .map_err(map_conflict)?;
                tracing::info!(event_key = %webhook.event_key, "webhook created");
                webhook
            }
        };
        Ok(webhook.to_api_json(receive_url))
    }

    async fn get_webhooks(&self, params: &Params, receive_url: &str) -> Result<Value, ApiError> {
        match params.get("uuid") {
            Some(text) => {
                let token = parse_uuid(text)?;
                let webhook = self
                    .ports
                    .webhooks
                    .get_by_token(&token)
                    .await?
                    .ok_or_else(webhook_not_found)?;
                Ok(webhook.to_api_json(receive_url))
            }
            None => {
                let all = self.ports.webhooks.list_webhooks().await?;
                Ok(Value::Array(
                    all.iter().map(|w| w.to_api_json(receive_url)).collect(),
                ))
            }
        }
    }

    async fn delete_webhook(&self, params: &Params, receive_url: &str) -> Result<Value, ApiError> {
        let text = params
            .get("uuid")
            .ok_or_else(|| ApiError::bad_request("uuid_missing", "uuid is required"))?;
        let token = parse_uuid(text)?;
        let webhook = self
            .ports
            .webhooks
            .get_by_token(&token)
            .await?
            .ok_or_else(webhook_not_found)?;
        if !self.ports.webhooks.delete_webhook(&token).await? {
            return Err(webhook_not_found());
        }
        tracing::info!(event_key = %webhook.event_key, "webhook deleted");
        Ok(webhook.to_api_json(receive_url))
    }
}

fn pipeline_not_found() -> ApiError {
    ApiError::not_found("pipeline_not_found", "no pipeline has this name")
}

fn pipeline_name(params: &Params) -> Result<&str, ApiError> {
    let name = params
        .get("name")
        .ok_or_else(|| ApiError::bad_request("name_missing", "name is required"))?;
    if valid_pipeline_name(name) {
        Ok(name)
    } else {
        Err(ApiError::bad_request(
            "invalid_name",
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
        let name = pipeline_name(params)?;
        let source = match params.get("pipeline") {
            Some(text) => text.to_owned(),
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
        let compiled = Pipeline::compile(name, &source, &self.settings.users).map_err(|e| {
            let mut err = ApiError::bad_request("invalid_pipeline", e.to_string());
            err.line = Some(e.line);
            err
        })?;
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

    /// The stored pipeline `name`, or 404.
    async fn existing_pipeline(&self, name: &str) -> Result<PipelineDefinition, ApiError> {
        self.ports
            .pipelines
            .get_pipeline(name)
            .await?
            .ok_or_else(pipeline_not_found)
    }

    async fn get_pipelines(&self, params: &Params) -> Result<Value, ApiError> {
        match params.get("name") {
            Some(_) => Ok(pipeline_json(
                &self.existing_pipeline(pipeline_name(params)?).await?,
            )),
            None => {
                let all = self.ports.pipelines.list_pipelines().await?;
                Ok(Value::Array(all.iter().map(pipeline_json).collect()))
            }
        }
    }

    async fn delete_pipeline(&self, params: &Params) -> Result<Value, ApiError> {
        let name = pipeline_name(params)?;
        let found = self.existing_pipeline(name).await?;
        if !self.ports.pipelines.delete_pipeline(name).await? {
            return Err(pipeline_not_found());
        }
        tracing::info!(pipeline = name, "pipeline deleted");
        Ok(pipeline_json(&found))
    }
}

fn parse_uuid(text: &str) -> Result<Token, ApiError> {
    Token::parse(text)
        .ok_or_else(|| ApiError::bad_request("invalid_uuid", "uuid must be a well-formed UUID"))
}

fn parse_event_key(text: &str) -> Result<EventKey, ApiError> {
    EventKey::parse(text).map_err(|e| ApiError::bad_request("invalid_event_key", e.to_string()))
}

fn map_conflict(err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound => webhook_not_found(),
        // Two creates raced for the same new uuid: the other one won.
        StoreError::Conflict(Conflict::TokenTaken) => ApiError::new(
            StatusCode::CONFLICT,
            "uuid_taken",
            "a webhook with this uuid was created at the same time",
        ),
        other => other.into(),
    }
}

/// Applies the optional fields of `webhook.put` to `webhook`, validating each.
fn apply_changes(webhook: &mut Webhook, params: &Params) -> Result<(), ApiError> {
    if let Some(key) = params.get("eventKey") {
        webhook.event_key = parse_event_key(key)?;
    }
    if let Some(description) = params.get("description") {
        if description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(ApiError::bad_request(
                "invalid_description",
                format!("description must be at most {MAX_DESCRIPTION_LEN} characters"),
            ));
        }
        webhook.description = (!description.is_empty()).then(|| description.to_owned());
    }
    if let Some(enabled) = params.get("enabled") {
        webhook.enabled = match enabled.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_enabled",
                    "enabled must be true or false",
                ));
            }
        };
    }
    if let Some(kind) = params.get("payloadType") {
        webhook.payload_type = PayloadType::parse(kind).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_payload_type",
                "payloadType must be base64, raw or ignore",
            )
        })?;
    }
    if let Some(max) = params.get("maxPayloadLength") {
        webhook.max_payload_length = max
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAYLOAD_LENGTH_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_max_payload_length",
                    format!("maxPayloadLength must be a whole number of bytes from 1 to {MAX_PAYLOAD_LENGTH_LIMIT}"),
                )
            })?;
    }
    Ok(())
}
