//! The rules of the registry: what `outgoing.put` accepts as a registration
//! (id, URL, method, headers, query parameter names, encoding, schema,
//! description) and how a new secret rotates the stored ones. Every refusal is
//! an [`OutgoingError`] whose message names the offending part.

use std::collections::BTreeMap;

use http::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use url::Url;

use super::error::OutgoingError;
use super::guard::Guard;
use super::schema;
use super::signing;
use crate::domain::Timestamp;
use crate::domain::outgoing::{OutgoingWebhook, PayloadEncoding, SecretText, SigningSecret};

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
            return Err(OutgoingError::invalid(
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
        .ok_or_else(|| OutgoingError::invalid("id_missing", "id is required (a text)"))?;
    if !valid_id(id) {
        return Err(OutgoingError::invalid(
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
            return Err(OutgoingError::invalid(
                "method_missing",
                "method is required, e.g. POST",
            ));
        }
        Some(_) => {
            return Err(OutgoingError::invalid(
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
            return Err(OutgoingError::invalid(
                "invalid_payload_encoding",
                "payloadEncoding must be json or base64",
            ));
        }
    };
    let schema = match body.get("schema") {
        None | Some(Value::Null) => None,
        Some(schema @ (Value::Object(_) | Value::Bool(_))) => {
            schema::compile(schema)?;
            Some(schema.clone())
        }
        Some(_) => {
            return Err(OutgoingError::invalid(
                "invalid_schema",
                "schema must be a JSON Schema (an object)",
            ));
        }
    };
    let enabled = match body.get("enabled") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(OutgoingError::invalid(
                "invalid_enabled",
                "enabled must be true or false",
            ));
        }
    };
    let description = match body.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) if d.chars().count() <= MAX_DESCRIPTION_LEN => {
            (!d.is_empty()).then(|| d.clone())
        }
        Some(_) => {
            return Err(OutgoingError::invalid(
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
                signing::parse_secret(s)
                    .map_err(|m| OutgoingError::invalid("invalid_secret", m))?;
                s.clone()
            };
            rotate(stored, new, now, grace_seconds)
        }
        Some(_) => {
            return Err(OutgoingError::invalid(
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
            return Err(OutgoingError::invalid("url_missing", "url is required"));
        }
        Some(_) => return Err(OutgoingError::invalid("invalid_url", "url must be a text")),
    };
    if text.len() > MAX_URL_LEN {
        return Err(OutgoingError::invalid(
            "invalid_url",
            format!("url must be at most {MAX_URL_LEN} characters"),
        ));
    }
    let url = Url::parse(text).map_err(|_| {
        OutgoingError::invalid(
            "invalid_url",
            "url must be an absolute http:// or https:// URL",
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(OutgoingError::invalid(
            "invalid_url",
            "url must be an absolute http:// or https:// URL",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OutgoingError::invalid(
            "invalid_url",
            "url must not carry credentials; register them as a header instead",
        ));
    }
    if url.fragment().is_some() {
        return Err(OutgoingError::invalid(
            "invalid_url",
            "url must not have a #fragment",
        ));
    }
    // An address written into the URL can be judged now; names are checked on
    // every call, when they are resolved.
    guard
        .check_host(url.host_str().unwrap_or_default())
        .map_err(|reason| OutgoingError::invalid("destination_not_allowed", reason))?;
    Ok(url.to_string())
}

fn parse_registered_headers(
    value: Option<&Value>,
) -> Result<BTreeMap<String, SecretText>, OutgoingError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(OutgoingError::invalid(
                "invalid_headers",
                "headers must be an object of header name to value",
            ));
        }
    };
    if map.len() > MAX_NAMES {
        return Err(OutgoingError::invalid(
            "invalid_headers",
            format!("at most {MAX_NAMES} headers"),
        ));
    }
    let mut headers = BTreeMap::new();
    let mut seen = Vec::new();
    for (name, value) in map {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            OutgoingError::invalid("invalid_headers", format!("'{name}' is not a header name"))
        })?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(OutgoingError::invalid(
                "invalid_headers",
                format!("header '{name}' is set by hookflow and cannot be registered"),
            ));
        }
        if seen.contains(&header) {
            return Err(OutgoingError::invalid(
                "invalid_headers",
                format!("header '{name}' is listed twice"),
            ));
        }
        seen.push(header);
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            _ => {
                return Err(OutgoingError::invalid(
                    "invalid_headers",
                    format!("the value of header '{name}' must be a text"),
                ));
            }
        };
        HeaderValue::from_str(&text).map_err(|_| {
            OutgoingError::invalid(
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
            return Err(OutgoingError::invalid(
                "invalid_query_params",
                "queryParams must be a list of parameter names",
            ));
        }
    };
    if list.len() > MAX_NAMES {
        return Err(OutgoingError::invalid(
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
                return Err(OutgoingError::invalid(
                    "invalid_query_params",
                    "each entry of queryParams must be a parameter name (a non-empty text)",
                ));
            }
        }
    }
    Ok(names)
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
