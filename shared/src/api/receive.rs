//! `webhook.receive`: turns an external call into a stored event and answers
//! with the result JSON (PIPEFORCE's "processing"/"ok" answer).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode};
use serde_json::Value;

use super::ApiError;
use super::Gateway;
use super::params::{Params, is_json, media_type};
use super::result::ResultAnswer;
use crate::domain::{
    CorrelationId, Event, EventRecord, FilePart, PayloadType, PipelineJob, Timestamp, Token,
    Webhook,
};
use crate::inbound::Refusal;
use crate::inbound::dedup::{Admission, DedupClaim};
use crate::inbound::source::{PeerAddr, client_address, is_allowed};
use crate::limits::parse_json_within_depth;

/// Request headers never stored with an event: they carry credentials.
const SECRET_HEADERS: &[&str] = &["token", "authorization", "proxy-authorization", "cookie"];
/// Parameters never stored with an event: they carry the webhook's token.
const SECRET_PARAMS: &[&str] = &["token", "uuid"];

/// The parsed body of a call: its form fields and file parts, if any.
#[derive(Default)]
struct BodyParts {
    fields: Params,
    files: Vec<FilePart>,
    /// Form or multipart fields that carry the webhook's credential
    /// (`token`/`uuid`): removed from the body before it is stored.
    credential_fields: usize,
}

impl Gateway {
    /// Receives a call [`Gateway::admit`] let in. `admitted` is the webhook of a
    /// token in the head (header or query); without one, the token is looked for
    /// in the body's fields.
    pub(super) async fn receive(
        &self,
        req: Request<Bytes>,
        admitted: Option<Webhook>,
    ) -> Result<Response<Bytes>, ApiError> {
        let (head, body) = req.into_parts();
        let query = Params::from_urlencoded(head.uri.query().unwrap_or("").as_bytes());
        let content_type = head
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        // A webhook known from the head (its body already bounded by its own
        // limit) judges the source before any body is parsed.
        if let Some(webhook) = &admitted {
            self.check_source(&head, webhook).await?;
        }
        let parts = parse_body(&head.headers, &body).await?;

        let webhook = match admitted {
            Some(webhook) => webhook,
            None => {
                let token_text = parts
                    .fields
                    .first_of(&["token", "uuid"])
                    .ok_or_else(token_missing)?;
                let webhook = self.enabled_webhook(token_text).await?;
                if body.len() > webhook.max_payload_length as usize {
                    return Err(webhook_payload_too_large(&webhook));
                }
                self.check_source(&head, &webhook).await?;
                webhook
            }
        };
        if let Some(verification) = &webhook.verify {
            let now_seconds = Timestamp::now().0 / 1000;
            if let Err(refusal) = verification.verify(&head.headers, &body, now_seconds) {
                return Err(self.refuse(&webhook, refusal).await);
            }
        }
        // After the signature: an unverified call must not take (or learn of) a claim.
        let claim = webhook.dedup.as_ref().and_then(|dedup| {
            dedup.claim(&webhook.event_key, &head.headers, &body, Timestamp::now())
        });

        let polling_redirect =
            query.flag("pollingRedirectEnabled") || parts.fields.flag("pollingRedirectEnabled");
        let received_at = Timestamp::now();
        let correlation_id = CorrelationId::generate();
        let (origin, files, params) = match webhook.payload_type {
            PayloadType::Ignore => (Value::Null, Vec::new(), query),
            kind => {
                let stored = body_without_credentials(&head.headers, &body, &parts).await?;
                let mut params = query;
                params.extend(parts.fields);
                (
                    origin_of(kind, media_type(&head.headers).as_deref(), &stored),
                    parts.files,
                    params,
                )
            }
        };
        let event = Event {
            correlation_id,
            event_key: webhook.event_key.clone(),
            received_at,
            origin,
            method: head.method.as_str().to_owned(),
            content_type,
            headers: stored_headers(&head.headers),
            params: params.to_json_map(SECRET_PARAMS),
            files,
            size: body.len() as u64,
            replay_of: None,
        };
        // The event now holds what is kept of the body: free the raw bytes before storing.
        drop(body);
        let listeners = self
            .ports
            .pipelines
            .listeners_of(&webhook.event_key)
            .await?;
        self.accept_event(event, listeners, claim.as_ref(), polling_redirect)
            .await
    }

    /// Stores `event`, queues a job for each of `listeners`, and answers with
    /// its result once they finished or `HOOKFLOW_RECEIVE_WAIT_MS` passed (then
    /// `processing`): what `webhook.receive` and `event.replay` answer.
    pub(super) async fn accept_event(
        &self,
        event: Event,
        listeners: Vec<String>,
        claim: Option<&DedupClaim>,
        polling_redirect: bool,
    ) -> Result<Response<Bytes>, ApiError> {
        let correlation_id = event.correlation_id;
        let received_at = event.received_at;
        let event_key = event.event_key.clone();
        let body_len = event.size;
        let jobs: Vec<PipelineJob> = listeners
            .iter()
            .map(|pipeline| PipelineJob {
                correlation_id,
                pipeline: pipeline.clone(),
            })
            .collect();
        let record = EventRecord {
            event,
            listeners,
            expires_at: received_at.plus_seconds(self.settings.result_ttl_seconds),
            retained_until: received_at.plus_seconds(self.settings.event_retention_seconds),
        };
        // Accepted only once the event is stored and its jobs are queued; a
        // repeat of a delivery the claim remembers stores nothing.
        let admission = self.ports.intake.accept(&record, &jobs, claim).await?;
        // Stored: not kept in memory while waiting for the result.
        drop(record);
        let (correlation_id, duplicate) = match admission {
            Admission::New => {
                tracing::debug!(
                    %event_key,
                    %correlation_id,
                    listeners = jobs.len(),
                    bytes = body_len,
                    "webhook received"
                );
                (correlation_id, false)
            }
            Admission::Duplicate(first) => {
                tracing::info!(
                    %event_key,
                    correlation_id = %first,
                    "repeated delivery answered with its first event, not stored"
                );
                (first, true)
            }
        };

        let answer = if jobs.is_empty() && !duplicate {
            ResultAnswer::finished_without_listeners(correlation_id)
        } else {
            // The event is accepted: from here on the caller must not be told to
            // retry (a retry would store it twice). A failed read answers
            // `processing`; the result can still be polled.
            match self
                .await_result(&correlation_id, self.settings.receive_wait)
                .await
            {
                // The first event's result has expired (the dedup window
                // outlasts results): it was accepted, there is nothing to show.
                Ok(read) if duplicate && read.record.is_none() => {
                    ResultAnswer::finished_without_listeners(correlation_id)
                }
                Ok(read) => ResultAnswer::from_record(correlation_id, read.record.as_ref()),
                Err(_) => {
                    tracing::warn!(%correlation_id, "accepted, but its result could not be read yet");
                    ResultAnswer::from_record(correlation_id, None)
                }
            }
        };
        Ok(answer
            .with_polling_redirect(polling_redirect)
            .with_duplicate(duplicate)
            .to_response(None))
    }
}

impl Gateway {
    /// The enabled webhook of a token in the request's head: the header `token`,
    /// else the parameter `token` or `uuid`. `None` when the head carries no token
    /// but a form or multipart body may; with neither, 401 before any body is read.
    pub(super) async fn webhook_of_head(&self, head: &Parts) -> Result<Option<Webhook>, ApiError> {
        let query = Params::from_urlencoded(head.uri.query().unwrap_or("").as_bytes());
        let token_text = header_text(&head.headers, "token")
            .or_else(|| query.first_of(&["token", "uuid"]).map(str::to_owned));
        match token_text {
            Some(text) => self.enabled_webhook(&text).await.map(Some),
            None if body_has_fields(&head.headers) => Ok(None),
            None => Err(token_missing()),
        }
    }

    async fn enabled_webhook(&self, token_text: &str) -> Result<Webhook, ApiError> {
        match Token::parse(token_text) {
            Some(token) => self.ports.webhooks.get_by_token(&token).await?,
            None => None,
        }
        .filter(|w| w.enabled)
        .ok_or_else(|| {
            ApiError::not_found("webhook_not_found", "no enabled webhook has this token")
        })
    }
}

impl Gateway {
    /// The caller's address: the peer the shell saw (TCP peer, or API Gateway's
    /// `sourceIp`), or behind trusted proxies the rightmost untrusted
    /// `X-Forwarded-For` entry. `None` when the shell gave no peer: a webhook
    /// with an allowlist then refuses the call rather than guess.
    fn caller_address(&self, head: &Parts) -> Option<std::net::IpAddr> {
        let peer = head.extensions.get::<PeerAddr>()?.0;
        // A value that is not text reads as a malformed entry, which ends the
        // walk at the last trusted hop instead of skipping to earlier entries.
        let forwarded: Vec<&str> = head
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap_or("?"))
            .collect();
        Some(client_address(
            peer,
            &forwarded,
            &self.settings.trusted_proxies,
        ))
    }

    /// 403 `source_not_allowed` for a caller outside the webhook's `allowedSources`.
    async fn check_source(&self, head: &Parts, webhook: &Webhook) -> Result<(), ApiError> {
        if webhook.allowed_sources.is_empty()
            || self
                .caller_address(head)
                .is_some_and(|addr| is_allowed(addr, &webhook.allowed_sources))
        {
            return Ok(());
        }
        Err(self.refuse(webhook, Refusal::SourceNotAllowed).await)
    }

    /// The answer to a call a webhook's source or signature rule refused
    /// (403 for the source, 401 for a signature). Nothing of the call is stored
    /// or logged: only which webhook refused it, and why.
    async fn refuse(&self, webhook: &Webhook, refusal: Refusal) -> ApiError {
        crate::metrics::call_refused(refusal.code());
        tracing::info!(
            event_key = %webhook.event_key,
            code = refusal.code(),
            "call refused"
        );
        // The caller is refused either way: a count that failed is only logged.
        if let Err(err) = self
            .ports
            .webhooks
            .record_refusal(&webhook.token, refusal.code(), Timestamp::now())
            .await
        {
            tracing::warn!(event_key = %webhook.event_key, error = %err, "refusal not counted");
        }
        let status = match refusal {
            Refusal::SourceNotAllowed => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError::new(status, refusal.code(), refusal.message())
    }
}

fn token_missing() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "token_missing",
        "send the webhook token as header 'token', parameter 'token' or 'uuid', or a body field",
    )
}

/// 413 for a body over the webhook's `maxPayloadLength`.
pub(super) fn webhook_payload_too_large(webhook: &Webhook) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "this webhook accepts at most {} bytes",
            webhook.max_payload_length
        ),
    )
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Request headers as stored: lower-case names, repeated ones joined with ", ",
/// credentials removed.
fn stored_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut stored: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        if SECRET_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        stored
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    stored
}

/// The event's `origin`: base64 of the raw body; or, for `raw`, the JSON value
/// (JSON bodies nested at most [`crate::limits::MAX_JSON_DEPTH`] levels), the text (UTF-8
/// bodies, deeper JSON included), else base64. An empty body is null.
fn origin_of(kind: PayloadType, media_type: Option<&str>, body: &Bytes) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    match kind {
        PayloadType::Ignore => Value::Null,
        PayloadType::Base64 => Value::String(BASE64.encode(body)),
        PayloadType::Raw => {
            if media_type.is_some_and(is_json)
                && let Some(value) = parse_json_within_depth(body)
            {
                return value;
            }
            match std::str::from_utf8(body) {
                Ok(text) => Value::String(text.to_owned()),
                Err(_) => Value::String(BASE64.encode(body)),
            }
        }
    }
}

/// Whether the body is a form or multipart, the kinds that have fields (a token among them).
fn body_has_fields(headers: &HeaderMap) -> bool {
    matches!(
        media_type(headers).as_deref(),
        Some("application/x-www-form-urlencoded" | "multipart/form-data")
    )
}

/// Form fields and files of a form-urlencoded or multipart body; other bodies have none.
async fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<BodyParts, ApiError> {
    match media_type(headers).as_deref() {
        Some("application/x-www-form-urlencoded") => {
            let fields = Params::from_urlencoded(body);
            Ok(BodyParts {
                credential_fields: fields.pairs().filter(|(k, _)| is_credential(k)).count(),
                fields,
                files: Vec::new(),
            })
        }
        Some("multipart/form-data") => parse_multipart(headers, body.clone()).await,
        _ => Ok(BodyParts::default()),
    }
}

fn invalid_multipart(err: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        "invalid_multipart",
        format!("the multipart body is malformed: {err}"),
    )
}

async fn parse_multipart(headers: &HeaderMap, body: Bytes) -> Result<BodyParts, ApiError> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(invalid_multipart)?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut parts = BodyParts::default();
    while let Some(field) = multipart.next_field().await.map_err(invalid_multipart)? {
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(|m| m.essence_str().to_owned());
        let data = field.bytes().await.map_err(invalid_multipart)?;
        match filename {
            Some(filename) => parts.files.push(FilePart {
                name,
                filename,
                content_type,
                size: data.len() as u64,
                content: BASE64.encode(&data),
            }),
            None => {
                parts.credential_fields += usize::from(is_credential(&name));
                parts
                    .fields
                    .push(name, String::from_utf8_lossy(&data).into_owned());
            }
        }
    }
    Ok(parts)
}

/// Whether a form or multipart field carries the webhook's credential.
fn is_credential(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// The body as kept in `origin`: without the webhook's credential. A form body
/// loses its `token`/`uuid` pairs, the rest staying byte for byte; a multipart
/// body loses its `token`/`uuid` fields and is re-encoded, the other parts in
/// order with their headers and the same boundary. Other bodies are kept as sent.
async fn body_without_credentials(
    headers: &HeaderMap,
    body: &Bytes,
    parts: &BodyParts,
) -> Result<Bytes, ApiError> {
    if parts.credential_fields == 0 {
        return Ok(body.clone());
    }
    match media_type(headers).as_deref() {
        Some("multipart/form-data") => multipart_without_credentials(headers, body.clone()).await,
        _ => Ok(form_without_credentials(body)),
    }
}

fn form_without_credentials(body: &[u8]) -> Bytes {
    let kept: Vec<&[u8]> = body
        .split(|b| *b == b'&')
        .filter(|pair| {
            let name = form_urlencoded::parse(pair).next().map(|(name, _)| name);
            !name.is_some_and(|name| is_credential(&name))
        })
        .collect();
    Bytes::from(kept.join(&b'&'))
}

async fn multipart_without_credentials(
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Bytes, ApiError> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(invalid_multipart)?;
    let capacity = body.len();
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary.clone());
    let mut out = Vec::with_capacity(capacity);
    while let Some(field) = multipart.next_field().await.map_err(invalid_multipart)? {
        let credential = field.file_name().is_none() && field.name().is_some_and(is_credential);
        let part_headers = field.headers().clone();
        let data = field.bytes().await.map_err(invalid_multipart)?;
        if credential {
            continue;
        }
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        for (name, value) in &part_headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_JSON_DEPTH;
    use serde_json::json;

    #[test]
    fn credentials_are_not_stored() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("token", "t"),
            ("authorization", "a"),
            ("cookie", "c"),
            ("x-a", "1"),
        ] {
            h.append(k, v.parse().unwrap());
        }
        h.append("x-a", "2".parse().unwrap());
        assert_eq!(
            serde_json::to_value(stored_headers(&h)).unwrap(),
            json!({"x-a": "1, 2"})
        );
    }

    #[test]
    fn form_credentials_are_cut_out_byte_for_byte() {
        let body = b"lead=42&token=abc&note=a+b%21&UUID=x&&%74oken=y&tail";
        assert_eq!(
            &form_without_credentials(body)[..],
            b"lead=42&note=a+b%21&&tail"
        );
        assert_eq!(&form_without_credentials(b"token=abc")[..], b"");
    }

    #[tokio::test]
    async fn multipart_credentials_are_cut_out_and_the_rest_kept_in_order() {
        let body = Bytes::from_static(
            b"--XyZ\r\ncontent-disposition: form-data; name=\"a\"\r\n\r\none\r\n\
              --XyZ\r\ncontent-disposition: form-data; name=\"token\"\r\n\r\nsecret-token\r\n\
              --XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n\
              content-type: application/octet-stream\r\n\r\n\x00\x01\r\n\
              --XyZ--\r\n",
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            "multipart/form-data; boundary=XyZ".parse().unwrap(),
        );
        let parts = parse_body(&headers, &body).await.unwrap();
        assert_eq!(parts.credential_fields, 1);
        let stored = body_without_credentials(&headers, &body, &parts)
            .await
            .unwrap();
        assert!(!stored.windows(12).any(|w| w == b"secret-token"));
        let again = parse_body(&headers, &stored).await.unwrap();
        assert_eq!(again.credential_fields, 0);
        assert_eq!(
            serde_json::to_value(again.fields.to_json_map(&[])).unwrap(),
            json!({"a": "one"})
        );
        assert_eq!(again.files.len(), 1);
        assert_eq!(again.files[0].filename, "f.bin");
        assert_eq!(again.files[0].content, "AAE=");
        assert!(stored.starts_with(b"--XyZ\r\ncontent-disposition: form-data; name=\"a\""));
    }

    #[test]
    fn raw_json_deeper_than_the_bound_is_kept_as_text() {
        let nested = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
        let at_bound = Bytes::from(nested(MAX_JSON_DEPTH));
        assert!(origin_of(PayloadType::Raw, Some("application/json"), &at_bound).is_array());
        let deeper = nested(MAX_JSON_DEPTH + 1);
        assert_eq!(
            origin_of(
                PayloadType::Raw,
                Some("application/json"),
                &Bytes::from(deeper.clone())
            ),
            Value::String(deeper)
        );
    }

    #[test]
    fn origin_per_payload_type() {
        let body = Bytes::from_static(br#"{"a":1}"#);
        assert_eq!(
            origin_of(PayloadType::Base64, None, &body),
            json!("eyJhIjoxfQ==")
        );
        assert_eq!(
            origin_of(PayloadType::Raw, Some("application/json"), &body),
            json!({"a": 1})
        );
        assert_eq!(
            origin_of(PayloadType::Raw, Some("text/plain"), &body),
            json!(r#"{"a":1}"#)
        );
        let broken = Bytes::from_static(b"{broken");
        assert_eq!(
            origin_of(PayloadType::Raw, Some("application/json"), &broken),
            json!("{broken")
        );
        assert_eq!(
            origin_of(PayloadType::Raw, None, &Bytes::from_static(&[0xff])),
            json!("/w==")
        );
        assert_eq!(
            origin_of(PayloadType::Base64, None, &Bytes::new()),
            Value::Null
        );
    }
}
