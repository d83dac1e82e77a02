//! Outgoing-webhook commands: the registry (`outgoing.*`), the trigger
//! (`webhook.send`) and the audit trail (`invocation.get`).

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use super::ApiError;
use super::Gateway;
use super::params::{Params, is_json, limit_param, media_type, parse_json_body};
use crate::domain::Timestamp;
use crate::outgoing::registry;
use crate::outgoing::service::Caller;
use crate::outgoing::trigger::Trigger;
use crate::outgoing::{OutgoingError, ReferenceId};

impl From<OutgoingError> for ApiError {
    fn from(err: OutgoingError) -> Self {
        let code = err.code();
        match err {
            OutgoingError::Invalid { message, .. } => ApiError::bad_request(code, message),
            OutgoingError::NotFound(_) | OutgoingError::InvocationNotFound => {
                ApiError::not_found(code, err.to_string())
            }
            OutgoingError::Disabled { .. } | OutgoingError::NotResendable => {
                ApiError::new(StatusCode::CONFLICT, code, err.to_string())
            }
            OutgoingError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code, err.to_string())
            }
            OutgoingError::Store(err) => err.into(),
        }
    }
}

/// Most records `invocation.get webhookId=…` lists.
const MAX_LIST: usize = 200;
/// Records listed without `limit`.
const DEFAULT_LIST: usize = 50;

/// The JSON object a command was sent: the body when it is JSON, else the
/// parameters (query string or form) as text fields.
fn json_object(
    params: &Params,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Map<String, Value>, ApiError> {
    if let Some(map) = params.json_body() {
        return Ok(map.clone());
    }
    let form = media_type(headers).is_some_and(|t| t == "application/x-www-form-urlencoded");
    if !body.is_empty() && !form {
        let declared_json = media_type(headers).is_none_or(|t| is_json(&t));
        return match parse_json_body(body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(ApiError::bad_request(
                "invalid_json",
                "the JSON body must be an object",
            )),
            Err(e) if declared_json => Err(e),
            Err(_) => Err(ApiError::bad_request(
                "invalid_json",
                "send a JSON object body (Content-Type: application/json)",
            )),
        };
    }
    Ok(params
        .pairs()
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect())
}

impl Gateway {
    /// `outgoing.put`: creates or replaces a registration.
    pub(super) async fn put_outgoing(
        &self,
        params: &Params,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<(StatusCode, Value), ApiError> {
        let fields = json_object(params, headers, body)?;
        let id = fields.get("id").and_then(Value::as_str).unwrap_or_default();
        let existing = if registry::valid_id(id) {
            self.ports.outgoing.get_outgoing(id).await?
        } else {
            None
        };
        let now = Timestamp::now();
        let webhook = registry::registration_from_json(
            &fields,
            existing.as_ref(),
            now,
            self.settings.outgoing.secret_grace_seconds,
            self.outgoing.guard(),
        )?;
        self.ports.outgoing.put_outgoing(&webhook).await?;
        tracing::info!(webhook_id = %webhook.id, created = existing.is_none(), "outgoing webhook stored");
        let status = if existing.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        let mut answer = webhook.to_api_json(now);
        // A generated secret is shown once, to the one who asked for it.
        if fields.get("secret").and_then(Value::as_str) == Some("generate")
            && let Some(current) = webhook.secrets.first()
        {
            answer["secret"] = Value::from(current.value.expose());
        }
        Ok((status, answer))
    }

    /// `outgoing.get`: one registration (`id=`) or all, secrets masked.
    pub(super) async fn get_outgoing(&self, params: &Params) -> Result<Value, ApiError> {
        let now = Timestamp::now();
        match params.get("id") {
            Some(id) => Ok(self.existing_outgoing(id).await?.to_api_json(now)),
            None => {
                let all = self.ports.outgoing.list_outgoing().await?;
                Ok(Value::Array(
                    all.iter().map(|w| w.to_api_json(now)).collect(),
                ))
            }
        }
    }

    /// `outgoing.delete id=…`: removes a registration and answers with it.
    pub(super) async fn delete_outgoing(&self, params: &Params) -> Result<Value, ApiError> {
        let id = params
            .get("id")
            .ok_or_else(|| ApiError::bad_request("id_missing", "id is required"))?;
        let found = self.existing_outgoing(id).await?;
        if !self.ports.outgoing.delete_outgoing(id).await? {
            return Err(registry::not_found(id).into());
        }
        tracing::info!(webhook_id = %id, "outgoing webhook deleted");
        Ok(found.to_api_json(Timestamp::now()))
    }

    async fn existing_outgoing(
        &self,
        id: &str,
    ) -> Result<crate::outgoing::OutgoingWebhook, ApiError> {
        if !registry::valid_id(id) {
            return Err(registry::not_found(id).into());
        }
        self.ports
            .outgoing
            .get_outgoing(id)
            .await?
            .ok_or_else(|| registry::not_found(id).into())
    }

    /// `webhook.send`: triggers a registered webhook. 200 with the endpoint's
    /// answer, or 202 when the delivery was queued (`async: true`).
    pub(super) async fn send_outgoing(
        &self,
        params: &Params,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<(StatusCode, Value), ApiError> {
        let trigger = Trigger::from_json(&json_object(params, headers, body)?)?;
        let answer = self.outgoing.send(&trigger, &Caller::Admin, None).await?;
        let status = if answer.status.is_none() {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
        Ok((status, answer.to_json()))
    }

    /// `invocation.resend referenceId=…`: sends a recorded invocation's request
    /// again as a new invocation; answers as `webhook.send` did (200, or 202
    /// when the first was asynchronous).
    pub(super) async fn resend_invocation(
        &self,
        params: &Params,
    ) -> Result<(StatusCode, Value), ApiError> {
        let text = params.get("referenceId").ok_or_else(|| {
            ApiError::bad_request("reference_id_missing", "referenceId is required")
        })?;
        let id = ReferenceId::parse(text).ok_or(OutgoingError::InvocationNotFound)?;
        let answer = self.outgoing.resend(&id).await?;
        let status = if answer.status.is_none() {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
        Ok((status, answer.to_json()))
    }

    /// `invocation.get referenceId=…` (one) or `webhookId=… [limit=…]` (newest first).
    pub(super) async fn get_invocations(&self, params: &Params) -> Result<Value, ApiError> {
        if let Some(text) = params.get("referenceId") {
            let not_found = || {
                ApiError::not_found(
                    "invocation_not_found",
                    "no invocation has this referenceId (or it expired)",
                )
            };
            let id = ReferenceId::parse(text).ok_or_else(not_found)?;
            let record = self
                .ports
                .invocations
                .get_invocation(&id)
                .await?
                .ok_or_else(not_found)?;
            return Ok(record.to_api_json());
        }
        let Some(webhook_id) = params.get("webhookId") else {
            return Err(ApiError::bad_request(
                "reference_id_missing",
                "give referenceId=<id> for one invocation or webhookId=<id> for a webhook's recent ones",
            ));
        };
        let limit = limit_param(params, DEFAULT_LIST, MAX_LIST)?;
        let records = self
            .ports
            .invocations
            .list_invocations(webhook_id, limit)
            .await?;
        Ok(Value::Array(
            records.iter().map(|r| r.to_api_json()).collect(),
        ))
    }
}
