//! What a trigger (`webhook.send`, or a pipeline's `webhook.send` step) may ask
//! of a registration: reading its fields, then checking its headers, query
//! parameters and data against the registration and encoding the body to send.
//! Every refusal is a 4xx [`OutgoingError`] naming the problem.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::HeaderValue;
use serde_json::{Map, Value};

use super::error::OutgoingError;
use super::schema;
use crate::domain::outgoing::{OutgoingWebhook, PayloadEncoding, PendingSend, SecretText};

/// What a trigger asks for (`webhook.send`).
#[derive(Debug, Clone, Default)]
pub struct Trigger {
    pub webhook_id: String,
    pub data: Option<Value>,
    pub headers: BTreeMap<String, SecretText>,
    pub query: Vec<(String, String)>,
    /// Queue the call and retry it on failure instead of answering with its result.
    pub asynchronous: bool,
}

impl Trigger {
    /// Reads `{webhookId, data, headers, queryParams, async}`.
    pub fn from_json(body: &Map<String, Value>) -> Result<Self, OutgoingError> {
        for key in body.keys() {
            if !matches!(
                key.as_str(),
                "webhookId" | "data" | "headers" | "queryParams" | "async"
            ) {
                return Err(OutgoingError::invalid(
                    "unknown_field",
                    format!(
                        "unknown field '{key}'; the fields are webhookId, data, headers, queryParams and async"
                    ),
                ));
            }
        }
        let webhook_id = match body.get("webhookId") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => {
                return Err(OutgoingError::invalid(
                    "webhook_id_missing",
                    "webhookId is required (the id of a registered outgoing webhook)",
                ));
            }
        };
        let headers = match body.get("headers") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(name, value)| match value {
                    Value::String(s) => Ok((name.clone(), SecretText::new(s.clone()))),
                    Value::Number(_) | Value::Bool(_) => {
                        Ok((name.clone(), SecretText::new(value.to_string())))
                    }
                    _ => Err(OutgoingError::invalid(
                        "invalid_headers",
                        format!("the value of header '{name}' must be a text"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(OutgoingError::invalid(
                    "invalid_headers",
                    "headers must be an object of header name to value",
                ));
            }
        };
        let query = match body.get("queryParams") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => {
                let mut pairs = Vec::new();
                for (name, value) in map {
                    match value {
                        Value::Null => {}
                        Value::String(s) => pairs.push((name.clone(), s.clone())),
                        Value::Number(_) | Value::Bool(_) => {
                            pairs.push((name.clone(), value.to_string()))
                        }
                        _ => {
                            return Err(OutgoingError::invalid(
                                "invalid_query_params",
                                format!(
                                    "the value of query parameter '{name}' must be a text or number"
                                ),
                            ));
                        }
                    }
                }
                pairs
            }
            Some(_) => {
                return Err(OutgoingError::invalid(
                    "invalid_query_params",
                    "queryParams must be an object of parameter name to value",
                ));
            }
        };
        let asynchronous = match body.get("async") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(_) => {
                return Err(OutgoingError::invalid(
                    "invalid_async",
                    "async must be true or false",
                ));
            }
        };
        Ok(Trigger {
            webhook_id,
            data: body.get("data").filter(|d| !d.is_null()).cloned(),
            headers,
            query,
            asynchronous,
        })
    }
}

/// Checks `trigger` against `webhook` (`validator` is its compiled `schema`, if
/// it has one) and builds what is to be sent; a 4xx error naming the problem
/// when it does not fit.
pub fn prepare(
    webhook: &OutgoingWebhook,
    validator: Option<&schema::Validator>,
    trigger: &Trigger,
) -> Result<PendingSend, OutgoingError> {
    let mut headers = BTreeMap::new();
    for (name, value) in &trigger.headers {
        let registered = webhook
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name));
        match registered {
            None => {
                return Err(OutgoingError::invalid(
                    "header_not_allowed",
                    format!(
                        "header '{name}' is not registered for outgoing webhook '{}'",
                        webhook.id
                    ),
                ));
            }
            Some((_, prefilled)) if !prefilled.is_empty() => {
                return Err(OutgoingError::invalid(
                    "header_not_allowed",
                    format!("header '{name}' is pre-filled by the registration and cannot be set"),
                ));
            }
            Some((registered_name, _)) => {
                HeaderValue::from_str(value.expose()).map_err(|_| {
                    OutgoingError::invalid(
                        "invalid_headers",
                        format!("the value of header '{name}' is not a valid header value"),
                    )
                })?;
                headers.insert(registered_name.clone(), value.clone());
            }
        }
    }
    for (name, _) in &trigger.query {
        if !webhook.query_params.contains(name) {
            return Err(OutgoingError::invalid(
                "query_param_not_allowed",
                format!(
                    "query parameter '{name}' is not registered for outgoing webhook '{}'",
                    webhook.id
                ),
            ));
        }
    }
    if let Some(validator) = validator {
        schema::check(validator, trigger.data.as_ref().unwrap_or(&Value::Null))?;
    }
    let (body, content_type) = match (&trigger.data, webhook.payload_encoding) {
        (None, _) => (Vec::new(), None),
        (Some(Value::String(text)), PayloadEncoding::Base64) => {
            let bytes = STANDARD.decode(text.trim()).map_err(|_| {
                OutgoingError::invalid("invalid_base64", "data is not valid base64")
            })?;
            (bytes, Some("application/octet-stream"))
        }
        (Some(_), PayloadEncoding::Base64) => {
            return Err(OutgoingError::invalid(
                "invalid_base64",
                "this webhook takes base64 data: data must be a base64 text",
            ));
        }
        (Some(Value::String(text)), PayloadEncoding::Json) => {
            (text.as_bytes().to_vec(), Some("text/plain; charset=utf-8"))
        }
        (Some(value), PayloadEncoding::Json) => {
            (value.to_string().into_bytes(), Some("application/json"))
        }
    };
    // A Content-Type the registration pre-fills or the trigger gives wins over
    // the guess; one merely listed as trigger-settable (empty) does not.
    let declared = webhook
        .headers
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, _)| n)
        .chain(headers.keys())
        .any(|n| n.eq_ignore_ascii_case("content-type"));
    Ok(PendingSend {
        body,
        content_type: content_type.filter(|_| !declared).map(str::to_owned),
        headers,
        query: trigger.query.clone(),
    })
}
