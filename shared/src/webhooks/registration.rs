//! The rules of a registration: what `webhook.put` accepts, the defaults of a
//! new webhook, and the bounds of each field.
//!
//! The inputs are serde types read from the command's parameters as text (query
//! strings and forms carry text, and a JSON body's values arrive as their text),
//! so `maxPayloadLength=100` and `"maxPayloadLength": 100` are the same. A value
//! a rule refuses fails deserialization with the rule's message; the caller
//! names the parameter, and [`WebhookError::invalid_param`] gives its code.

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, de};

use super::error::WebhookError;
use crate::domain::{EventKey, PayloadType, Timestamp, Token, Webhook};
use crate::inbound::dedup::Dedup;
use crate::inbound::source::parse_ranges;
use crate::inbound::verify::Verification;

/// Most bytes a webhook may accept per call (the spec's ceiling for
/// `maxPayloadLength`), and the default of `HOOKFLOW_MAX_BODY_BYTES`.
pub const MAX_PAYLOAD_LENGTH_LIMIT: u32 = 4_194_304;
/// `maxPayloadLength` of a webhook created without one.
pub const DEFAULT_MAX_PAYLOAD_LENGTH: u32 = 512_000;
/// Longest webhook description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 2000;
/// Most address ranges in a webhook's `allowedSources` (GitHub's hook ranges are
/// four; a partner's offices a handful).
pub const MAX_ALLOWED_SOURCES: usize = 100;

/// What `webhook.put` says. A create needs `event_key`; an edit names the
/// webhook by `uuid` and changes only the fields given.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPut {
    /// The webhook to edit, or the token a new one gets.
    #[serde(default, deserialize_with = "uuid")]
    pub uuid: Option<Token>,
    /// Required to create.
    #[serde(default, deserialize_with = "event_key")]
    pub event_key: Option<EventKey>,
    /// `Some(None)` clears the description (it was sent empty).
    #[serde(default, deserialize_with = "description")]
    pub description: Option<Option<String>>,
    /// Whether calls are accepted (a new webhook is).
    #[serde(default, deserialize_with = "enabled")]
    pub enabled: Option<bool>,
    /// How the body is kept in the event.
    #[serde(default, deserialize_with = "payload_type")]
    pub payload_type: Option<PayloadType>,
    /// The body bound of a call, in bytes.
    #[serde(default, deserialize_with = "max_payload_length")]
    pub max_payload_length: Option<u32>,
    /// The sender's signature calls must carry; `Some(None)` removes the check
    /// (it was sent empty). A JSON object, sent as JSON text in a query or form.
    #[serde(default, deserialize_with = "verify")]
    pub verify: Option<Option<Verification>>,
    /// The address ranges calls may come from; `Some(vec![])` allows any again
    /// (it was sent empty). A JSON array, or comma-separated text.
    #[serde(default, deserialize_with = "allowed_sources")]
    pub allowed_sources: Option<Vec<IpNet>>,
    /// How repeated deliveries are recognised; `Some(None)` removes it (it was
    /// sent empty, or as JSON null). A JSON object, as JSON text like `verify`.
    #[serde(default, deserialize_with = "dedup")]
    pub dedup: Option<Option<Dedup>>,
}

/// The webhook `webhook.get` and `webhook.delete` act on, if one is named.
#[derive(Debug, Default, Deserialize)]
pub struct WebhookSelector {
    /// The webhook's token.
    #[serde(default, deserialize_with = "uuid")]
    pub uuid: Option<Token>,
}

impl WebhookPut {
    /// The webhook this creates: the given uuid or a fresh one, the defaults,
    /// then the fields given.
    pub fn create(mut self, now: Timestamp) -> Result<Webhook, WebhookError> {
        let event_key = self.event_key.take().ok_or(WebhookError::EventKeyMissing)?;
        let mut webhook = Webhook {
            token: self.uuid.unwrap_or_else(Token::generate),
            event_key,
            description: None,
            enabled: true,
            payload_type: PayloadType::default(),
            max_payload_length: DEFAULT_MAX_PAYLOAD_LENGTH,
            verify: None,
            allowed_sources: Vec::new(),
            previous_token: None,
            dedup: None,
            created_at: now,
            updated_at: now,
        };
        self.apply_to(&mut webhook, now);
        Ok(webhook)
    }

    /// A JSON body's `"dedup": null` removes it. The parameters leave JSON
    /// nulls out (a null is no value), so the body itself is asked.
    pub fn with_nulls_of(
        mut self,
        json_body: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Self {
        if json_body.is_some_and(|body| body.get("dedup").is_some_and(|v| v.is_null())) {
            self.dedup = Some(None);
        }
        self
    }

    /// Changes the fields given, never the token or creation time.
    pub fn apply_to(self, webhook: &mut Webhook, now: Timestamp) {
        if let Some(event_key) = self.event_key {
            webhook.event_key = event_key;
        }
        if let Some(description) = self.description {
            webhook.description = description;
        }
        if let Some(enabled) = self.enabled {
            webhook.enabled = enabled;
        }
        if let Some(payload_type) = self.payload_type {
            webhook.payload_type = payload_type;
        }
        if let Some(max) = self.max_payload_length {
            webhook.max_payload_length = max;
        }
        if let Some(verify) = self.verify {
            webhook.verify = verify;
        }
        if let Some(allowed_sources) = self.allowed_sources {
            webhook.allowed_sources = allowed_sources;
        }
        if let Some(dedup) = self.dedup {
            webhook.dedup = dedup;
        }
        webhook.updated_at = now;
    }
}

/// A token in any of a UUID's usual text forms.
fn parse_uuid(text: &str) -> Result<Token, WebhookError> {
    Token::parse(text)
        .ok_or_else(|| WebhookError::invalid_param("uuid", "uuid must be a well-formed UUID"))
}

fn parse_event_key(text: &str) -> Result<EventKey, WebhookError> {
    EventKey::parse(text).map_err(|e| WebhookError::invalid_param("eventKey", e.to_string()))
}

/// At most [`MAX_DESCRIPTION_LEN`] characters; empty means none.
fn parse_description(text: &str) -> Result<Option<String>, WebhookError> {
    if text.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(WebhookError::invalid_param(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// `true` or `false`, in any case.
fn parse_enabled(text: &str) -> Result<bool, WebhookError> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(WebhookError::invalid_param(
            "enabled",
            "enabled must be true or false",
        )),
    }
}

fn parse_payload_type(text: &str) -> Result<PayloadType, WebhookError> {
    PayloadType::parse(text).ok_or_else(|| {
        WebhookError::invalid_param("payloadType", "payloadType must be base64, raw or ignore")
    })
}

/// A whole number of bytes from 1 to [`MAX_PAYLOAD_LENGTH_LIMIT`], spaces around allowed.
fn parse_max_payload_length(text: &str) -> Result<u32, WebhookError> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_PAYLOAD_LENGTH_LIMIT).contains(n))
        .ok_or_else(|| {
            WebhookError::invalid_param(
                "maxPayloadLength",
                format!(
                    "maxPayloadLength must be a whole number of bytes from 1 to {MAX_PAYLOAD_LENGTH_LIMIT}"
                ),
            )
        })
}

/// The `verify` object as JSON text (a JSON body's object arrives as its text,
/// a query or form sends the text itself); empty removes the check.
fn parse_verify(text: &str) -> Result<Option<Verification>, WebhookError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    // serde_json's message would quote none of the text, but say only what is expected.
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| {
        WebhookError::invalid_param(
            "verify",
            "verify must be a JSON object, e.g. {\"scheme\":\"github\",\"secret\":\"...\"}",
        )
    })?;
    Verification::from_json(&value)
        .map(Some)
        .map_err(|invalid| WebhookError::invalid_param("verify", invalid.0))
}

/// Address ranges as a JSON array of strings (how a JSON body's array arrives)
/// or comma-separated text (a query or form); empty allows any source. At most
/// [`MAX_ALLOWED_SOURCES`].
fn parse_allowed_sources(text: &str) -> Result<Vec<IpNet>, WebhookError> {
    let invalid = |message: String| WebhookError::invalid_param("allowedSources", message);
    let text = text.trim();
    let ranges = if text.starts_with('[') {
        let items: Vec<String> = serde_json::from_str(text).map_err(|_| {
            invalid(
                "allowedSources must be a list of address ranges like [\"192.0.2.0/24\"]".into(),
            )
        })?;
        parse_ranges(items.iter().map(String::as_str))
    } else {
        parse_ranges(text.split(','))
    }
    .map_err(|problem| invalid(format!("allowedSources: {problem}")))?;
    if ranges.len() > MAX_ALLOWED_SOURCES {
        return Err(invalid(format!(
            "allowedSources may hold at most {MAX_ALLOWED_SOURCES} ranges"
        )));
    }
    Ok(ranges)
}

/// The `dedup` object as JSON text, like `verify`; empty removes it.
fn parse_dedup(text: &str) -> Result<Option<Dedup>, WebhookError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| {
        WebhookError::invalid_param(
            "dedup",
            "dedup must be a JSON object, e.g. {\"header\":\"webhook-id\"}",
        )
    })?;
    Dedup::from_json(&value)
        .map(Some)
        .map_err(|invalid| WebhookError::invalid_param("dedup", invalid.0))
}

/// Reads a parameter's text and applies `rule` to it; a refusal carries the
/// rule's message.
pub(super) fn by_rule<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    rule: fn(&str) -> Result<T, WebhookError>,
) -> Result<Option<T>, D::Error> {
    let text = String::deserialize(deserializer)?;
    rule(&text).map(Some).map_err(de::Error::custom)
}

pub(super) fn uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Token>, D::Error> {
    by_rule(d, parse_uuid)
}

fn event_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EventKey>, D::Error> {
    by_rule(d, parse_event_key)
}

fn description<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    by_rule(d, parse_description)
}

fn enabled<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    by_rule(d, parse_enabled)
}

fn payload_type<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PayloadType>, D::Error> {
    by_rule(d, parse_payload_type)
}

fn verify<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Verification>>, D::Error> {
    by_rule(d, parse_verify)
}

fn allowed_sources<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<IpNet>>, D::Error> {
    by_rule(d, parse_allowed_sources)
}

fn dedup<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Dedup>>, D::Error> {
    by_rule(d, parse_dedup)
}

fn max_payload_length<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    by_rule(d, parse_max_payload_length)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(fields: serde_json::Value) -> Result<WebhookPut, String> {
        serde_json::from_value(fields).map_err(|e| e.to_string())
    }

    #[test]
    fn description_is_bounded_in_characters_and_empty_clears_it() {
        let longest = "é".repeat(MAX_DESCRIPTION_LEN);
        let change = put(json!({ "description": longest })).unwrap();
        assert_eq!(change.description, Some(Some(longest)));
        let refused = put(json!({ "description": "é".repeat(MAX_DESCRIPTION_LEN + 1) }));
        assert_eq!(
            refused.unwrap_err(),
            format!("description must be at most {MAX_DESCRIPTION_LEN} characters")
        );
        assert_eq!(
            put(json!({"description": ""})).unwrap().description,
            Some(None)
        );
    }

    #[test]
    fn max_payload_length_is_bounded() {
        let at_bound = MAX_PAYLOAD_LENGTH_LIMIT.to_string();
        let change = put(json!({ "maxPayloadLength": at_bound })).unwrap();
        assert_eq!(change.max_payload_length, Some(MAX_PAYLOAD_LENGTH_LIMIT));
        assert_eq!(
            put(json!({"maxPayloadLength": " 1 "}))
                .unwrap()
                .max_payload_length,
            Some(1)
        );
        for bad in [
            (MAX_PAYLOAD_LENGTH_LIMIT + 1).to_string(),
            "0".into(),
            "1.0".into(),
        ] {
            assert!(put(json!({ "maxPayloadLength": bad })).is_err(), "{bad}");
        }
    }

    #[test]
    fn allowed_sources_are_a_json_list_or_commas_bounded_in_count() {
        let from_json = put(json!({"allowedSources": "[\"192.30.252.0/22\", \"2606:50c0::/32\"]"}))
            .unwrap()
            .allowed_sources
            .unwrap();
        let from_text = put(json!({"allowedSources": "192.30.252.0/22, 2606:50c0::/32"}))
            .unwrap()
            .allowed_sources
            .unwrap();
        assert_eq!(from_json, from_text);
        assert_eq!(from_json[1].to_string(), "2606:50c0::/32");
        assert_eq!(
            put(json!({"allowedSources": ""})).unwrap().allowed_sources,
            Some(Vec::new())
        );
        let list = |n: usize| {
            let items: Vec<String> = (0..n).map(|i| format!("10.0.{i}.0/24")).collect();
            json!({ "allowedSources": items.join(",") })
        };
        assert_eq!(
            put(list(MAX_ALLOWED_SOURCES))
                .unwrap()
                .allowed_sources
                .map(|r| r.len()),
            Some(MAX_ALLOWED_SOURCES)
        );
        assert_eq!(
            put(list(MAX_ALLOWED_SOURCES + 1)).unwrap_err(),
            format!("allowedSources may hold at most {MAX_ALLOWED_SOURCES} ranges")
        );
    }

    #[test]
    fn a_create_takes_the_defaults_and_an_edit_only_what_it_names() {
        let created = put(json!({"eventKey": "webhook.a", "enabled": "FALSE"}))
            .unwrap()
            .create(Timestamp(1))
            .unwrap();
        assert_eq!(created.event_key.as_str(), "webhook.a");
        assert!(!created.enabled);
        assert_eq!(created.payload_type, PayloadType::Base64);
        assert_eq!(created.max_payload_length, DEFAULT_MAX_PAYLOAD_LENGTH);
        assert_eq!(
            (created.created_at, created.updated_at),
            (Timestamp(1), Timestamp(1))
        );

        let mut edited = created.clone();
        put(json!({"payloadType": "raw"}))
            .unwrap()
            .apply_to(&mut edited, Timestamp(2));
        assert_eq!(edited.payload_type, PayloadType::Raw);
        assert_eq!(
            (
                edited.token,
                &edited.event_key,
                edited.enabled,
                edited.created_at
            ),
            (created.token, &created.event_key, false, Timestamp(1))
        );
        assert_eq!(edited.updated_at, Timestamp(2));

        let missing = put(json!({"enabled": "true"}))
            .unwrap()
            .create(Timestamp(1));
        assert!(matches!(missing, Err(WebhookError::EventKeyMissing)));
    }

    #[test]
    fn each_parameter_is_refused_with_its_own_code() {
        for (param, bad, code) in [
            ("uuid", "not-a-uuid", "invalid_uuid"),
            ("eventKey", "Webhook.A", "invalid_event_key"),
            ("enabled", "1", "invalid_enabled"),
            ("payloadType", "xml", "invalid_payload_type"),
            ("maxPayloadLength", "lots", "invalid_max_payload_length"),
            ("verify", "{\"scheme\":\"github\"}", "invalid_verify"),
            ("verify", "github", "invalid_verify"),
            ("allowedSources", "10.0.0.0/33", "invalid_allowed_sources"),
            (
                "allowedSources",
                "[\"example.com\"]",
                "invalid_allowed_sources",
            ),
            ("allowedSources", "[1, 2]", "invalid_allowed_sources"),
            ("dedup", "{\"jsonPointer\":\"id\"}", "invalid_dedup"),
            ("dedup", "webhook-id", "invalid_dedup"),
        ] {
            let message = put(json!({ param: bad })).unwrap_err();
            let err = WebhookError::invalid_param(param, message);
            assert_eq!(err.code(), code, "{param}");
        }
        let err = WebhookError::invalid_param("description", "");
        assert_eq!(err.code(), "invalid_description");
    }
}
