//! Duplicate deliveries: reading a webhook's `dedup` setting, and finding the
//! key of a received call.
//!
//! Senders retry when an answer is slow, so one delivery may arrive several
//! times with the same id (a header such as `webhook-id`, or the event's own
//! id in the body). The key found here is claimed when the event is accepted
//! ([`crate::ports::EventIntake::accept`]); only a hash of it is stored.

use http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use crate::domain::dedup::{Admission, Dedup, DedupClaim, DedupKey, DedupSource};
use crate::domain::{EventKey, Timestamp};
use crate::limits::parse_json_within_depth;

/// How long a key is remembered when `windowSeconds` is not given: a day, which
/// covers the retry schedules of GitHub, Svix and Shopify and Stripe's first day.
pub const DEFAULT_WINDOW_SECONDS: u64 = 86_400;
/// Longest `windowSeconds` (7 days).
pub const MAX_WINDOW_SECONDS: u64 = 604_800;
/// Longest `header` name or `jsonPointer`, in bytes.
pub const MAX_LOCATOR_LEN: usize = 256;

/// A `webhook.put` `dedup` value that does not fit: the reason, for `invalid_dedup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDedup(pub String);

fn invalid(reason: impl Into<String>) -> InvalidDedup {
    InvalidDedup(reason.into())
}

impl Dedup {
    /// Reads the `dedup` object of `webhook.put`:
    /// `{"header": name | "jsonPointer": "/…", "windowSeconds": n}`.
    pub fn from_json(value: &Value) -> Result<Self, InvalidDedup> {
        let object = value.as_object().ok_or_else(|| {
            invalid("dedup must be an object, e.g. {\"header\":\"webhook-id\"} or {\"jsonPointer\":\"/id\"}")
        })?;
        let known = ["header", "jsonPointer", "windowSeconds"];
        if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(invalid(format!(
                "dedup has no field '{unknown}' (it takes: {})",
                known.join(", ")
            )));
        }
        let text = |name: &str| -> Result<Option<&str>, InvalidDedup> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(invalid(format!("dedup.{name} must be text"))),
            }
        };
        let source = match (text("header")?, text("jsonPointer")?) {
            (Some(_), Some(_)) => {
                return Err(invalid("give dedup.header or dedup.jsonPointer, not both"));
            }
            (None, None) => return Err(invalid("dedup needs a header or a jsonPointer")),
            (Some(name), None) => {
                if name.len() > MAX_LOCATOR_LEN
                    || http::HeaderName::from_bytes(name.as_bytes()).is_err()
                {
                    return Err(invalid(format!(
                        "dedup.header must be a valid header name of at most {MAX_LOCATOR_LEN} characters"
                    )));
                }
                DedupSource::Header(name.to_ascii_lowercase())
            }
            (None, Some(pointer)) => {
                if !is_json_pointer(pointer) || pointer.len() > MAX_LOCATOR_LEN {
                    return Err(invalid(format!(
                        "dedup.jsonPointer must be a JSON pointer (RFC 6901) such as /id, \
                         starting with '/', at most {MAX_LOCATOR_LEN} characters"
                    )));
                }
                DedupSource::JsonPointer(pointer.to_owned())
            }
        };
        let window_seconds = match object.get("windowSeconds") {
            None | Some(Value::Null) => DEFAULT_WINDOW_SECONDS,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_WINDOW_SECONDS).contains(n))
                .ok_or_else(|| {
                    invalid(format!(
                        "dedup.windowSeconds must be a whole number from 1 to {MAX_WINDOW_SECONDS}"
                    ))
                })?,
        };
        Ok(Dedup {
            source,
            window_seconds,
        })
    }

    /// The claim a call makes at `now`, for the webhook with `event_key`; `None`
    /// when the call carries no key (the header is absent or empty, the body is
    /// not JSON or has no text or number at the pointer): such a call is not
    /// deduplicated.
    pub fn claim(
        &self,
        event_key: &EventKey,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Option<DedupClaim> {
        let key = match &self.source {
            DedupSource::Header(name) => {
                let value = headers.get(name.as_str())?.as_bytes().trim_ascii();
                dedup_key(event_key, value)
            }
            DedupSource::JsonPointer(pointer) => {
                let json = parse_json_within_depth(body)?;
                match json.pointer(pointer)? {
                    Value::String(text) => dedup_key(event_key, text.as_bytes()),
                    Value::Number(number) => dedup_key(event_key, number.to_string().as_bytes()),
                    _ => None,
                }
            }
        }?;
        Some(DedupClaim {
            key,
            claimed_at: now,
            expires_at: now.plus_seconds(self.window_seconds),
        })
    }
}

/// The key kept for `value` of a call to the webhook `event_key`: scoped by the
/// event key, which is unique per webhook and stays when its token changes. An
/// empty value is no key.
fn dedup_key(event_key: &EventKey, value: &[u8]) -> Option<DedupKey> {
    if value.is_empty() {
        return None;
    }
    let mut hash = Sha256::new();
    hash.update(event_key.as_str().as_bytes());
    // An event key has no NUL, so the pair cannot be read two ways.
    hash.update([0u8]);
    hash.update(value);
    Some(DedupKey(hash.finalize().into()))
}

/// Whether `text` is a JSON pointer to something inside a document: `/`-led
/// reference tokens, with `~` only in the escapes `~0` and `~1`.
fn is_json_pointer(text: &str) -> bool {
    text.starts_with('/')
        && text
            .split('~')
            .skip(1)
            .all(|after| after.starts_with('0') || after.starts_with('1'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> EventKey {
        EventKey::parse("webhook.dedup").unwrap()
    }

    #[test]
    fn reads_a_header_or_a_pointer_with_a_bounded_window() {
        let header = Dedup::from_json(&json!({"header": "X-GitHub-Delivery"})).unwrap();
        assert_eq!(
            header,
            Dedup {
                source: DedupSource::Header("x-github-delivery".into()),
                window_seconds: DEFAULT_WINDOW_SECONDS,
            }
        );
        let pointer =
            Dedup::from_json(&json!({"jsonPointer": "/data/a~1b", "windowSeconds": 604_800}))
                .unwrap();
        assert_eq!(pointer.window_seconds, MAX_WINDOW_SECONDS);
        assert_eq!(pointer.to_api_json()["jsonPointer"], "/data/a~1b");
        assert_eq!(
            Dedup::from_json(&json!({"header": "webhook-id", "windowSeconds": 1}))
                .unwrap()
                .window_seconds,
            1
        );
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let long_name = "x".repeat(MAX_LOCATOR_LEN + 1);
        let long_pointer = format!("/{}", "x".repeat(MAX_LOCATOR_LEN));
        for bad in [
            json!("webhook-id"),
            json!({}),
            json!({"header": "webhook-id", "jsonPointer": "/id"}),
            json!({"header": "bad header"}),
            json!({"header": long_name}),
            json!({"header": 5}),
            json!({"jsonPointer": "id"}),
            json!({"jsonPointer": ""}),
            json!({"jsonPointer": "/a~2"}),
            json!({"jsonPointer": long_pointer}),
            json!({"header": "webhook-id", "windowSeconds": 0}),
            json!({"header": "webhook-id", "windowSeconds": MAX_WINDOW_SECONDS + 1}),
            json!({"header": "webhook-id", "windowSeconds": "60"}),
            json!({"header": "webhook-id", "window": 60}),
        ] {
            assert!(Dedup::from_json(&bad).is_err(), "{bad}");
        }
        let at_bound = format!("/{}", "x".repeat(MAX_LOCATOR_LEN - 1));
        assert!(Dedup::from_json(&json!({ "jsonPointer": at_bound })).is_ok());
    }

    #[test]
    fn the_key_is_a_hash_scoped_by_event_key_and_absent_without_a_value() {
        let now = Timestamp(1_000);
        let by_pointer =
            Dedup::from_json(&json!({"jsonPointer": "/id", "windowSeconds": 60})).unwrap();
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        let claim = by_pointer
            .claim(&key(), &HeaderMap::new(), body, now)
            .unwrap();
        assert_eq!(claim.claimed_at, now);
        assert_eq!(claim.expires_at, Timestamp(61_000));
        let again = by_pointer
            .claim(
                &key(),
                &HeaderMap::new(),
                br#"{"type":"x","id":"evt_1"}"#,
                now,
            )
            .unwrap();
        assert_eq!(claim.key, again.key, "the same id, another body");
        let other_webhook = EventKey::parse("webhook.other").unwrap();
        let elsewhere = by_pointer
            .claim(&other_webhook, &HeaderMap::new(), body, now)
            .unwrap();
        assert_ne!(claim.key, elsewhere.key, "scoped by event key");
        assert!(!claim.key.to_text().contains("evt_1"));
        for keyless in [
            &b"not json"[..],
            br#"{"type":"x"}"#,
            br#"{"id":""}"#,
            br#"{"id":null}"#,
        ] {
            assert_eq!(
                by_pointer.claim(&key(), &HeaderMap::new(), keyless, now),
                None
            );
        }
        let numeric = by_pointer.claim(&key(), &HeaderMap::new(), br#"{"id":7}"#, now);
        assert!(numeric.is_some());

        let by_header = Dedup::from_json(&json!({"header": "Idempotency-Key"})).unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(by_header.claim(&key(), &headers, b"", now), None);
        headers.insert("idempotency-key", " ".parse().unwrap());
        assert_eq!(by_header.claim(&key(), &headers, b"", now), None);
        headers.insert("idempotency-key", "abc".parse().unwrap());
        assert!(by_header.claim(&key(), &headers, b"", now).is_some());
    }
}
