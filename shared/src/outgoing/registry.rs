//! The rules of the registry: what `outgoing.put` accepts, and whether a
//! trigger's data, headers and query parameters fit a registration. Every
//! refusal is an [`OutgoingError`] whose message names the offending part.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use serde_json::{Map, Value};
use url::Url;

use super::error::OutgoingError;
use super::guard::Guard;
use super::model::{
    OutgoingWebhook, PayloadEncoding, PendingSend, ReferenceId, RequestSummary, SecretText,
    SigningSecret,
};
use super::signing;
use crate::domain::Timestamp;
use crate::ports::OutgoingRequest;

/// Most headers or query parameters a registration may list.
const MAX_NAMES: usize = 50;
/// Longest registration id.
const MAX_ID_LEN: usize = 100;
/// Longest URL.
const MAX_URL_LEN: usize = 2048;
/// Longest description.
const MAX_DESCRIPTION_LEN: usize = 2000;

/// Headers hookflow sets itself, or that would let a registration break the request.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    signing::ID_HEADER,
    signing::TIMESTAMP_HEADER,
    signing::SIGNATURE_HEADER,
];

/// Methods a registration may use.
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

fn invalid(code: &'static str, message: impl Into<String>) -> OutgoingError {
    OutgoingError::invalid(code, message)
}

/// True for an id triggers can name: 1 to 100 letters, digits, `.`, `_`, `-`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Builds the registration `outgoing.put` asked for. `existing` is the stored one
/// with the same id: its creation time is kept, and its secrets decide rotation:
///
/// - `secret` absent: the stored secrets stay;
/// - `secret: null`: signing is turned off;
/// - a new `secret` (or `"generate"`): it becomes current, and the previous one keeps
///   signing alongside it for `grace_seconds`.
pub fn registration_from_json(
    body: &Map<String, Value>,
    existing: Option<&OutgoingWebhook>,
    now: Timestamp,
    grace_seconds: u64,
    guard: &Guard,
) -> Result<OutgoingWebhook, OutgoingError> {
    for key in body.keys() {
        if !matches!(
            key.as_str(),
            "id" | "url"
                | "method"
                | "headers"
                | "queryParams"
                | "payloadEncoding"
                | "payload_encoding"
                | "schema"
                | "secret"
                | "enabled"
                | "description"
        ) {
            return Err(invalid(
                "unknown_field",
                format!(
                    "unknown field '{key}'; the fields are id, url, method, headers, queryParams, \
                     payloadEncoding, schema, secret, enabled and description"
                ),
            ));
        }
    }
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("id_missing", "id is required (a text)"))?;
    if !valid_id(id) {
        return Err(invalid(
            "invalid_id",
            "id must be 1 to 100 letters, digits, '.', '_' or '-'",
        ));
    }
    let url = parse_url(body.get("url"), guard)?;
    let method = match body.get("method") {
        Some(Value::String(m)) if METHODS.contains(&m.to_ascii_uppercase().as_str()) => {
            m.to_ascii_uppercase()
        }
        None | Some(Value::Null) => {
            return Err(invalid("method_missing", "method is required, e.g. POST"));
        }
        Some(_) => {
            return Err(invalid(
                "invalid_method",
                format!("method must be one of {}", METHODS.join(", ")),
            ));
        }
    };
    let headers = parse_registered_headers(body.get("headers"))?;
    let query_params = parse_query_names(body.get("queryParams"))?;
    let payload_encoding = match body
        .get("payloadEncoding")
        .or_else(|| body.get("payload_encoding"))
    {
        None | Some(Value::Null) => PayloadEncoding::Json,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("json") => PayloadEncoding::Json,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("base64") => PayloadEncoding::Base64,
        Some(_) => {
            return Err(invalid(
                "invalid_payload_encoding",
                "payloadEncoding must be json or base64",
            ));
        }
    };
    let schema = match body.get("schema") {
        None | Some(Value::Null) => None,
        Some(schema @ (Value::Object(_) | Value::Bool(_))) => {
            compile_schema(schema)?;
            Some(schema.clone())
        }
        Some(_) => {
            return Err(invalid(
                "invalid_schema",
                "schema must be a JSON Schema (an object)",
            ));
        }
    };
    let enabled = match body.get("enabled") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("invalid_enabled", "enabled must be true or false")),
    };
    let description = match body.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) if d.chars().count() <= MAX_DESCRIPTION_LEN => {
            (!d.is_empty()).then(|| d.clone())
        }
        Some(_) => {
            return Err(invalid(
                "invalid_description",
                format!("description must be a text of at most {MAX_DESCRIPTION_LEN} characters"),
            ));
        }
    };
    let stored = existing.map(|e| e.secrets.as_slice()).unwrap_or_default();
    let secrets = match body.get("secret") {
        None => stored.to_vec(),
        Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => {
            let new = if s == "generate" {
                signing::generate_secret()
            } else {
                signing::parse_secret(s).map_err(|m| invalid("invalid_secret", m))?;
                s.clone()
            };
            rotate(stored, new, now, grace_seconds)
        }
        Some(_) => {
            return Err(invalid(
                "invalid_secret",
                "secret must be a text like whsec_<base64>, \"generate\" or null",
            ));
        }
    };
    Ok(OutgoingWebhook {
        id: id.to_owned(),
        url,
        method,
        headers,
        query_params,
        payload_encoding,
        schema,
        secrets,
        enabled,
        disabled_reason: None,
        description,
        created_at: existing.map_or(now, |e| e.created_at),
        updated_at: now,
    })
}

/// The secret list after `new` was put: `new` first, then the secrets that were
/// signing until now, each retiring after the grace period (or earlier, if it was
/// already retiring).
fn rotate(
    stored: &[SigningSecret],
    new: String,
    now: Timestamp,
    grace_seconds: u64,
) -> Vec<SigningSecret> {
    if stored.first().is_some_and(|s| s.value.expose() == new) {
        return stored.to_vec();
    }
    let retire_at = now.plus_seconds(grace_seconds);
    let mut secrets = vec![SigningSecret {
        value: SecretText::new(new.clone()),
        retires_at: None,
    }];
    if grace_seconds > 0 {
        secrets.extend(
            stored
                .iter()
                .filter(|s| s.value.expose() != new && s.retires_at.is_none_or(|t| t > now))
                .map(|s| SigningSecret {
                    value: s.value.clone(),
                    retires_at: Some(s.retires_at.map_or(retire_at, |t| t.min(retire_at))),
                }),
        );
    }
    secrets
}

fn parse_url(value: Option<&Value>, guard: &Guard) -> Result<String, OutgoingError> {
    let text = match value {
        Some(Value::String(u)) => u.trim(),
        None | Some(Value::Null) => {
            return Err(invalid("url_missing", "url is required"));
        }
        Some(_) => return Err(invalid("invalid_url", "url must be a text")),
    };
    if text.len() > MAX_URL_LEN {
        return Err(invalid(
            "invalid_url",
            format!("url must be at most {MAX_URL_LEN} characters"),
        ));
    }
    let url = Url::parse(text).map_err(|_| {
        invalid(
            "invalid_url",
            "url must be an absolute http:// or https:// URL",
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            "invalid_url",
            "url must be an absolute http:// or https:// URL",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "invalid_url",
            "url must not carry credentials; register them as a header instead",
        ));
    }
    if url.fragment().is_some() {
        return Err(invalid("invalid_url", "url must not have a #fragment"));
    }
    // An address written into the URL can be judged now; names are checked on
    // every call, when they are resolved.
    guard
        .check_host(url.host_str().unwrap_or_default())
        .map_err(|reason| invalid("destination_not_allowed", reason))?;
    Ok(url.to_string())
}

fn parse_registered_headers(
    value: Option<&Value>,
) -> Result<BTreeMap<String, SecretText>, OutgoingError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(invalid(
                "invalid_headers",
                "headers must be an object of header name to value",
            ));
        }
    };
    if map.len() > MAX_NAMES {
        return Err(invalid(
            "invalid_headers",
            format!("at most {MAX_NAMES} headers"),
        ));
    }
    let mut headers = BTreeMap::new();
    let mut seen = Vec::new();
    for (name, value) in map {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid("invalid_headers", format!("'{name}' is not a header name")))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(invalid(
                "invalid_headers",
                format!("header '{name}' is set by hookflow and cannot be registered"),
            ));
        }
        if seen.contains(&header) {
            return Err(invalid(
                "invalid_headers",
                format!("header '{name}' is listed twice"),
            ));
        }
        seen.push(header);
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            _ => {
                return Err(invalid(
                    "invalid_headers",
                    format!("the value of header '{name}' must be a text"),
                ));
            }
        };
        HeaderValue::from_str(&text).map_err(|_| {
            invalid(
                "invalid_headers",
                format!("the value of header '{name}' is not a valid header value"),
            )
        })?;
        headers.insert(name.clone(), SecretText::new(text));
    }
    Ok(headers)
}

fn parse_query_names(value: Option<&Value>) -> Result<Vec<String>, OutgoingError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(invalid(
                "invalid_query_params",
                "queryParams must be a list of parameter names",
            ));
        }
    };
    if list.len() > MAX_NAMES {
        return Err(invalid(
            "invalid_query_params",
            format!("at most {MAX_NAMES} query parameters"),
        ));
    }
    let mut names: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        match item {
            Value::String(name) if !name.is_empty() && name.len() <= 200 => {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            _ => {
                return Err(invalid(
                    "invalid_query_params",
                    "each entry of queryParams must be a parameter name (a non-empty text)",
                ));
            }
        }
    }
    Ok(names)
}

/// The validator of a registration's `schema`; 400 `invalid_schema` if it is none.
pub fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, OutgoingError> {
    jsonschema::validator_for(schema).map_err(|e| {
        invalid(
            "invalid_schema",
            format!("schema is not a valid JSON Schema: {e}"),
        )
    })
}

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
                return Err(invalid(
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
                return Err(invalid(
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
                    _ => Err(invalid(
                        "invalid_headers",
                        format!("the value of header '{name}' must be a text"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(invalid(
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
                            return Err(invalid(
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
                return Err(invalid(
                    "invalid_query_params",
                    "queryParams must be an object of parameter name to value",
                ));
            }
        };
        let asynchronous = match body.get("async") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(_) => return Err(invalid("invalid_async", "async must be true or false")),
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

/// Checks `trigger` against `webhook` (whose compiled `schema`, if it has one,
/// is given) and builds what is to be sent; a 4xx error naming the problem when
/// it does not fit.
pub fn prepare(
    webhook: &OutgoingWebhook,
    schema: Option<&jsonschema::Validator>,
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
                return Err(invalid(
                    "header_not_allowed",
                    format!(
                        "header '{name}' is not registered for outgoing webhook '{}'",
                        webhook.id
                    ),
                ));
            }
            Some((_, prefilled)) if !prefilled.is_empty() => {
                return Err(invalid(
                    "header_not_allowed",
                    format!("header '{name}' is pre-filled by the registration and cannot be set"),
                ));
            }
            Some((registered_name, _)) => {
                HeaderValue::from_str(value.expose()).map_err(|_| {
                    invalid(
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
            return Err(invalid(
                "query_param_not_allowed",
                format!(
                    "query parameter '{name}' is not registered for outgoing webhook '{}'",
                    webhook.id
                ),
            ));
        }
    }
    if let Some(validator) = schema {
        let instance = trigger.data.clone().unwrap_or(Value::Null);
        if let Some(error) = validator.iter_errors(&instance).next() {
            let path = error.instance_path().to_string();
            let at = if path.is_empty() { "/".into() } else { path };
            return Err(invalid(
                "schema_violation",
                format!("data does not match the registered schema at {at}: {error}"),
            ));
        }
    }
    let (body, content_type) = match (&trigger.data, webhook.payload_encoding) {
        (None, _) => (Vec::new(), None),
        (Some(Value::String(text)), PayloadEncoding::Base64) => {
            let bytes = STANDARD
                .decode(text.trim())
                .map_err(|_| invalid("invalid_base64", "data is not valid base64"))?;
            (bytes, Some("application/octet-stream"))
        }
        (Some(_), PayloadEncoding::Base64) => {
            return Err(invalid(
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

/// The request to send for `pending`, signed when the registration has secrets.
pub fn build_request(
    webhook: &OutgoingWebhook,
    pending: &PendingSend,
    reference_id: ReferenceId,
    now: Timestamp,
) -> Result<OutgoingRequest, String> {
    let mut url = Url::parse(&webhook.url).map_err(|_| "the registered url is not valid")?;
    let overrides_fixed = url
        .query_pairs()
        .any(|(name, _)| pending.query.iter().any(|(n, _)| *n == name));
    if overrides_fixed {
        // A parameter fixed in the registered URL and also listed in queryParams
        // is a default: the trigger's value replaces it.
        let fixed: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(name, _)| !pending.query.iter().any(|(n, _)| n == name))
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        let mut pairs = url.query_pairs_mut();
        pairs.clear();
        for (name, value) in fixed.iter().chain(&pending.query) {
            pairs.append_pair(name, value);
        }
    } else if !pending.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &pending.query {
            pairs.append_pair(name, value);
        }
    }
    let mut headers = HeaderMap::new();
    let prefilled = webhook.headers.iter().filter(|(_, v)| !v.is_empty());
    for (name, value) in prefilled.chain(&pending.headers) {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| "bad header name")?;
        let value = HeaderValue::from_str(value.expose()).map_err(|_| "bad header value")?;
        headers.insert(name, value);
    }
    if let Some(content_type) = &pending.content_type {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(content_type).map_err(|_| "bad content type")?,
        );
    }
    let secrets: Vec<&str> = webhook
        .active_secrets(now)
        .map(|s| s.value.expose())
        .collect();
    if !secrets.is_empty() {
        let id = reference_id.to_string();
        let timestamp = now.epoch_seconds();
        let signature = signing::signature_header(secrets, &id, timestamp, &pending.body);
        let value = |text: String| HeaderValue::from_str(&text).map_err(|_| "bad signature");
        headers.insert(signing::ID_HEADER, value(id)?);
        headers.insert(signing::TIMESTAMP_HEADER, value(timestamp.to_string())?);
        headers.insert(signing::SIGNATURE_HEADER, value(signature)?);
    }
    let method =
        Method::from_bytes(webhook.method.as_bytes()).map_err(|_| "the method is not valid")?;
    Ok(OutgoingRequest {
        method,
        url: url.to_string(),
        headers,
        body: bytes::Bytes::from(pending.body.clone()),
    })
}

/// What the invocation record tells about the request: names and sizes only.
pub fn summarize(webhook: &OutgoingWebhook, pending: &PendingSend) -> RequestSummary {
    let mut headers: Vec<String> = webhook
        .headers
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, _)| n.clone())
        .chain(pending.headers.keys().cloned())
        .collect();
    if pending.content_type.is_some() {
        headers.push("Content-Type".into());
    }
    let signed = !webhook.secrets.is_empty();
    if signed {
        headers.extend(
            [
                signing::ID_HEADER,
                signing::TIMESTAMP_HEADER,
                signing::SIGNATURE_HEADER,
            ]
            .map(String::from),
        );
    }
    let content_type = pending.content_type.clone().or_else(|| {
        webhook
            .headers
            .iter()
            .chain(&pending.headers)
            .find(|(n, v)| n.eq_ignore_ascii_case("content-type") && !v.is_empty())
            .map(|(_, v)| v.expose().to_owned())
    });
    RequestSummary {
        method: webhook.method.clone(),
        url: webhook.url.clone(),
        query_params: pending.query.iter().map(|(n, _)| n.clone()).collect(),
        headers,
        body_bytes: pending.body.len() as u64,
        content_type,
        signed,
    }
}

/// The refusal of an id no registration has (404).
pub fn not_found(id: &str) -> OutgoingError {
    OutgoingError::NotFound(id.to_owned())
}

/// The refusal of a registration that is switched off (409).
pub fn disabled(webhook: &OutgoingWebhook) -> OutgoingError {
    let why = webhook
        .disabled_reason
        .as_deref()
        .unwrap_or("it was registered with enabled: false");
    OutgoingError::Disabled {
        id: webhook.id.clone(),
        why: why.to_owned(),
    }
}
