//! What the invocation record keeps about a request: the method, URL, header
//! and query parameter names, body size and whether it was signed. Never a
//! header value, a query value, a secret or the body.

use super::signing;
use crate::domain::outgoing::{OutgoingWebhook, PendingSend, RequestSummary};

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
