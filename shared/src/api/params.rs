//! Command parameters from the query string, a form body or a JSON object body.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde_json::Value;

use super::ApiError;
use crate::limits::{MAX_JSON_DEPTH, within_json_depth};

/// Parameters of a command: the query string first, then the body's fields.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// The JSON object body as sent, for commands that take typed fields.
    json: Option<serde_json::Map<String, Value>>,
}

impl Params {
    /// Pairs of a `application/x-www-form-urlencoded` text (also the query string).
    pub fn from_urlencoded(text: &[u8]) -> Self {
        Params {
            pairs: form_urlencoded::parse(text).into_owned().collect(),
            json: None,
        }
    }

    /// The query string, plus a form or JSON object body for the management API.
    pub fn from_request(
        query: Option<&str>,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Self, ApiError> {
        let mut params = Params::from_urlencoded(query.unwrap_or("").as_bytes());
        match media_type(headers).as_deref() {
            Some("application/x-www-form-urlencoded") => {
                params.pairs.extend(Params::from_urlencoded(body).pairs);
            }
            Some(t) if is_json(t) && !body.is_empty() => {
                let Value::Object(map) = parse_json_body(body)? else {
                    return Err(ApiError::bad_request(
                        "invalid_json",
                        "the JSON body must be an object",
                    ));
                };
                for (k, v) in &map {
                    let text = match v {
                        Value::Null => continue,
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    params.pairs.push((k.clone(), text));
                }
                params.json = Some(map);
            }
            _ => {}
        }
        Ok(params)
    }

    /// Adds a pair (a multipart field).
    pub fn push(&mut self, name: String, value: String) {
        self.pairs.push((name, value));
    }

    /// The body, when it was a JSON object.
    pub fn json_body(&self) -> Option<&serde_json::Map<String, Value>> {
        self.json.as_ref()
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first of `names` that is present.
    pub fn first_of(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.get(n))
    }

    /// `name` as a flag: `true`/`1` (any case) is true, anything else or absent is false.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }

    /// The parameters as JSON, without the `excluded` names; a repeated name
    /// becomes an array of its values, in order.
    pub fn to_json_map(&self, excluded: &[&str]) -> BTreeMap<String, Value> {
        let mut map: BTreeMap<String, Value> = BTreeMap::new();
        for (k, v) in &self.pairs {
            if excluded.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                continue;
            }
            let v = Value::String(v.clone());
            match map.get_mut(k) {
                None => {
                    map.insert(k.clone(), v);
                }
                Some(Value::Array(values)) => values.push(v),
                Some(first) => *first = Value::Array(vec![first.take(), v]),
            }
        }
        map
    }

    /// Appends all pairs of `other`.
    pub fn extend(&mut self, other: Params) {
        self.pairs.extend(other.pairs);
    }

    /// The parameters as the command's typed input `T`. Each field reads the
    /// first value of its name as text, as [`Params::get`] does, so a JSON
    /// `100` and a query's `100` are alike; names `T` lacks are ignored. Fields
    /// are read in the order `T` declares them, so the first one refused is
    /// the same whatever order the parameters came in.
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, BadParam> {
        T::deserialize(ParamsDeserializer(self))
    }
}

/// A parameter whose value the command refuses: which one, and the rule's message.
#[derive(Debug)]
pub struct BadParam {
    /// The parameter's name, as sent.
    pub param: String,
    /// Why its value is refused.
    pub message: String,
}

impl fmt::Display for BadParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BadParam {}

impl de::Error for BadParam {
    fn custom<T: fmt::Display>(message: T) -> Self {
        // The parameter is named by `FirstValues`, which knows which one it is reading.
        BadParam {
            param: String::new(),
            message: message.to_string(),
        }
    }
}

/// [`Params`] as a serde map of each name's first value.
struct ParamsDeserializer<'a>(&'a Params);

impl<'de> de::Deserializer<'de> for ParamsDeserializer<'_> {
    type Error = BadParam;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BadParam> {
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in self.0.pairs() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        visitor.visit_map(FirstValues::new(self.0, names))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BadParam> {
        visitor.visit_map(FirstValues::new(self.0, fields.iter().copied()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The present ones of `names`, each with its first value; a value's refusal
/// is tagged with its name.
struct FirstValues<'a, I> {
    params: &'a Params,
    names: I,
    current: Option<(&'a str, &'a str)>,
}

impl<'a, I: Iterator<Item = &'a str>> FirstValues<'a, I> {
    fn new(params: &'a Params, names: impl IntoIterator<IntoIter = I>) -> Self {
        FirstValues {
            params,
            names: names.into_iter(),
            current: None,
        }
    }
}

impl<'de, 'a, I: Iterator<Item = &'a str>> MapAccess<'de> for FirstValues<'a, I> {
    type Error = BadParam;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, BadParam> {
        for name in self.names.by_ref() {
            if let Some(value) = self.params.get(name) {
                self.current = Some((name, value));
                return seed.deserialize(name.into_deserializer()).map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, BadParam> {
        let (name, value) = self
            .current
            .take()
            .ok_or_else(|| de::Error::custom("a parameter value was read before its name"))?;
        seed.deserialize(Text(value)).map_err(|mut err: BadParam| {
            if err.param.is_empty() {
                err.param = name.to_owned();
            }
            err
        })
    }
}

/// One parameter's value: text, and present (so an `Option` field is `Some`).
struct Text<'a>(&'a str);

impl<'de> de::Deserializer<'de> for Text<'_> {
    type Error = BadParam;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BadParam> {
        visitor.visit_str(self.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BadParam> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, BadParam> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

/// The `limit` parameter of a listing: `default` when absent, else a whole
/// number from 1 to `max` (`400 invalid_limit` otherwise).
pub fn limit_param(params: &Params, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(text) = params.get("limit") else {
        return Ok(default);
    };
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_limit",
                format!("limit must be a whole number from 1 to {max}"),
            )
        })
}

/// A JSON request body, nested at most [`MAX_JSON_DEPTH`] levels (deeper
/// values could be stored but not read back), or `invalid_json`.
pub fn parse_json_body(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    if !within_json_depth(&value) {
        return Err(ApiError::bad_request(
            "invalid_json",
            format!("the JSON body nests deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    Ok(value)
}

/// The media type of the request, lower case, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// `application/json` and `application/*+json`.
pub fn is_json(media_type: &str) -> bool {
    media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repeated_names_become_arrays_and_exclusions_apply() {
        let p = Params::from_urlencoded(b"a=1&b=2&a=3&a=4&token=secret&UUID=x");
        let map = p.to_json_map(&["token", "uuid"]);
        assert_eq!(
            serde_json::to_value(map).unwrap(),
            json!({"a": ["1", "3", "4"], "b": "2"})
        );
    }

    #[test]
    fn json_body_values_become_text() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        let body = Bytes::from_static(br#"{"eventKey":"a.b","enabled":false,"n":5,"skip":null}"#);
        let p = Params::from_request(Some("x=1"), &headers, &body).unwrap();
        assert_eq!(p.get("x"), Some("1"));
        assert_eq!(p.get("eventKey"), Some("a.b"));
        assert_eq!(p.get("enabled"), Some("false"));
        assert_eq!(p.get("n"), Some("5"));
        assert_eq!(p.get("skip"), None);
        let err = Params::from_request(None, &headers, &Bytes::from_static(b"[1]")).unwrap_err();
        assert_eq!(err.code, "invalid_json");
        let nested = |levels: usize| {
            Bytes::from(format!(
                "{}1{}",
                "{\"a\":".repeat(levels),
                "}".repeat(levels)
            ))
        };
        assert!(Params::from_request(None, &headers, &nested(MAX_JSON_DEPTH)).is_ok());
        let err = Params::from_request(None, &headers, &nested(MAX_JSON_DEPTH + 1)).unwrap_err();
        assert_eq!(err.code, "invalid_json");
    }
}

#[cfg(test)]
mod typed_tests {
    use super::*;
    use crate::webhooks::WebhookPut;

    fn json_params(body: &'static str, query: Option<&str>) -> Params {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        Params::from_request(query, &headers, &Bytes::from_static(body.as_bytes())).unwrap()
    }

    #[test]
    fn query_text_and_json_values_read_alike() {
        let by_query =
            Params::from_urlencoded(b"eventKey=webhook.a&enabled=false&maxPayloadLength=100")
                .typed::<WebhookPut>()
                .unwrap();
        let by_json = json_params(
            r#"{"eventKey":"webhook.a","enabled":false,"maxPayloadLength":100}"#,
            None,
        )
        .typed::<WebhookPut>()
        .unwrap();
        for change in [by_query, by_json] {
            assert_eq!(change.event_key.unwrap().as_str(), "webhook.a");
            assert_eq!(change.enabled, Some(false));
            assert_eq!(change.max_payload_length, Some(100));
            assert_eq!(change.uuid, None);
        }
        // A JSON value that is not a whole number is refused, as its text is.
        let bad = json_params(r#"{"maxPayloadLength":100.5}"#, None)
            .typed::<WebhookPut>()
            .unwrap_err();
        assert_eq!(bad.param, "maxPayloadLength");
    }

    #[test]
    fn the_first_value_counts_and_unknown_names_are_ignored() {
        let change = json_params(
            r#"{"eventKey":"webhook.body","other":[1]}"#,
            Some("eventKey=webhook.query&x=1"),
        )
        .typed::<WebhookPut>()
        .unwrap();
        assert_eq!(change.event_key.unwrap().as_str(), "webhook.query");
    }

    #[test]
    fn a_refusal_names_the_first_bad_field_in_declared_order() {
        let bad = Params::from_urlencoded(b"enabled=maybe&description=ok&uuid=nope")
            .typed::<WebhookPut>()
            .unwrap_err();
        assert_eq!(bad.param, "uuid");
        assert_eq!(bad.message, "uuid must be a well-formed UUID");
        let bad = Params::from_urlencoded(b"maxPayloadLength=0&enabled=maybe")
            .typed::<WebhookPut>()
            .unwrap_err();
        assert_eq!(bad.param, "enabled");
        assert_eq!(bad.message, "enabled must be true or false");
    }
}
