//! The HTTP request a prepared send becomes: the registered URL with the
//! trigger's query parameters, the pre-filled and triggered headers, the body,
//! and the Standard Webhooks signature headers when the registration has secrets.

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use url::Url;

use super::signing;
use crate::domain::Timestamp;
use crate::domain::outgoing::{OutgoingWebhook, PendingSend, ReferenceId};
use crate::ports::OutgoingRequest;

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
