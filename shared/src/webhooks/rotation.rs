//! What `webhook.rotate` accepts: the webhook, and how long its current token
//! keeps working after the new one takes over.

use serde::Deserialize;

use super::error::WebhookError;
use super::registration::{by_rule, uuid};
use crate::domain::Token;

/// `graceSeconds` of a rotation that names none: a day, so callers with the
/// old URL can be moved over without a missed call.
pub const DEFAULT_ROTATION_GRACE_SECONDS: u32 = 86_400;
/// Longest `graceSeconds` (30 days): a leaked token must stop some time.
pub const MAX_ROTATION_GRACE_SECONDS: u32 = 2_592_000;

/// What `webhook.rotate` says.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRotate {
    /// The webhook's token (its current one, or the previous one during a grace).
    #[serde(default, deserialize_with = "uuid")]
    pub uuid: Option<Token>,
    /// How long the replaced token keeps working; 0 ends it at once.
    #[serde(default, deserialize_with = "grace_seconds")]
    pub grace_seconds: Option<u32>,
}

impl WebhookRotate {
    /// The grace asked for, or the default.
    pub fn grace_seconds(&self) -> u32 {
        self.grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECONDS)
    }
}

/// A whole number of seconds from 0 to [`MAX_ROTATION_GRACE_SECONDS`].
fn parse_grace_seconds(text: &str) -> Result<u32, WebhookError> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n <= MAX_ROTATION_GRACE_SECONDS)
        .ok_or_else(|| {
            WebhookError::invalid_param(
                "graceSeconds",
                format!(
                    "graceSeconds must be a whole number of seconds from 0 to {MAX_ROTATION_GRACE_SECONDS}"
                ),
            )
        })
}

fn grace_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    by_rule(d, parse_grace_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rotate(fields: serde_json::Value) -> Result<WebhookRotate, String> {
        serde_json::from_value(fields).map_err(|e| e.to_string())
    }

    #[test]
    fn grace_seconds_is_bounded_and_defaults_to_a_day() {
        let at_bound = MAX_ROTATION_GRACE_SECONDS.to_string();
        assert_eq!(
            rotate(json!({ "graceSeconds": at_bound }))
                .unwrap()
                .grace_seconds(),
            MAX_ROTATION_GRACE_SECONDS
        );
        assert_eq!(
            rotate(json!({"graceSeconds": "0"}))
                .unwrap()
                .grace_seconds(),
            0
        );
        assert_eq!(
            rotate(json!({})).unwrap().grace_seconds(),
            DEFAULT_ROTATION_GRACE_SECONDS
        );
        for bad in [
            (MAX_ROTATION_GRACE_SECONDS + 1).to_string(),
            "-1".into(),
            "1.5".into(),
            "a day".into(),
        ] {
            let message = rotate(json!({ "graceSeconds": bad })).unwrap_err();
            let err = WebhookError::invalid_param("graceSeconds", message);
            assert_eq!(err.code(), "invalid_grace_seconds", "{bad}");
        }
    }
}
