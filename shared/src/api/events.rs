//! The event log's commands: `event.list`, `event.get` and `event.replay`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as CURSOR_BASE64;
use bytes::Bytes;
use http::Response;
use serde_json::{Map, Value, json};

use super::params::{Params, limit_param};
use super::{ApiError, Gateway};
use crate::domain::eventlog::{
    DEFAULT_EVENT_PAGE, EventQuery, EventSummary, LogPosition, MAX_EVENT_PAGE,
};
use crate::domain::{
    CorrelationId, Event, EventKey, PipelineOutcome, ResultStatus, Timestamp, Token,
};
use crate::pipeline::valid_pipeline_name;
use crate::ports::LoggedEvent;

/// Longest cursor accepted; the ones `event.list` writes are about 80 characters.
const MAX_CURSOR_LEN: usize = 256;

/// The opaque `next` of a page: base64url of the position's JSON. Whatever a
/// caller makes of it, a decoded cursor is only a place in the log's order.
fn encode_cursor(position: &LogPosition) -> String {
    CURSOR_BASE64.encode(serde_json::to_vec(position).expect("a position serializes"))
}

fn decode_cursor(text: &str) -> Result<LogPosition, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_cursor",
            "cursor must be the 'next' of an earlier event.list page, as given",
        )
    };
    if text.len() > MAX_CURSOR_LEN {
        return Err(invalid());
    }
    let bytes = CURSOR_BASE64.decode(text.trim()).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

/// No stored event has the id (also the answer to a text that is no id).
pub(super) fn event_not_found() -> ApiError {
    ApiError::not_found(
        "event_not_found",
        "no event with this correlation id: it never existed or is past its retention",
    )
}

/// The `correlationId` parameter; a text that is no id names no event (404).
fn correlation_id(params: &Params) -> Result<CorrelationId, ApiError> {
    let text = params.get("correlationId").ok_or_else(|| {
        ApiError::bad_request("correlation_id_missing", "correlationId is required")
    })?;
    CorrelationId::parse(text).ok_or_else(event_not_found)
}

fn time_filter(
    params: &Params,
    name: &str,
    code: &'static str,
) -> Result<Option<Timestamp>, ApiError> {
    params
        .get(name)
        .map(|text| {
            Timestamp::parse_rfc3339(text).ok_or_else(|| {
                ApiError::bad_request(
                    code,
                    format!("{name} must be an RFC 3339 date-time, e.g. 2026-11-26T13:00:00Z"),
                )
            })
        })
        .transpose()
}

fn summary_json(entry: &EventSummary) -> Value {
    let mut shown = json!({
        "correlationId": entry.correlation_id,
        "eventKey": entry.event_key,
        "receivedAt": entry.received_at.to_rfc3339(),
        "method": entry.method,
        "contentType": entry.content_type,
        "size": entry.size,
        "status": entry.status(),
        "pipelines": entry.pipelines,
    });
    if let Some(original) = entry.replay_of {
        shown["replayOf"] = json!(original);
    }
    shown
}

/// One pipeline of an event as `event.get` shows it.
fn pipeline_json(name: &str, outcome: Option<&PipelineOutcome>) -> Value {
    let mut shown = Map::new();
    shown.insert("pipeline".into(), json!(name));
    match outcome {
        None => {
            shown.insert("status".into(), json!(ResultStatus::Processing));
        }
        Some(PipelineOutcome::Ok { value, .. }) => {
            shown.insert("status".into(), json!(ResultStatus::Ok));
            shown.insert("value".into(), value.clone());
        }
        Some(PipelineOutcome::Error {
            code,
            message,
            step,
            ..
        }) => {
            shown.insert("status".into(), json!(ResultStatus::Error));
            shown.insert(
                "error".into(),
                json!({"code": code, "message": message, "step": step}),
            );
        }
    }
    if let Some(run) = outcome.and_then(PipelineOutcome::run) {
        shown.insert("durationMs".into(), json!(run.duration_ms));
        shown.insert("attempts".into(), json!(run.attempts));
    }
    Value::Object(shown)
}

impl Gateway {
    /// `event.list`: one page of the log, newest first.
    pub(super) async fn list_events(&self, params: &Params) -> Result<Value, ApiError> {
        let mut event_key = params
            .get("eventKey")
            .map(|text| {
                EventKey::parse(text)
                    .map_err(|e| ApiError::bad_request("invalid_event_key", e.to_string()))
            })
            .transpose()?;
        if let Some(text) = params.get("uuid") {
            // Events keep no token: the webhook's event key stands for it.
            let webhook = match Token::parse(text) {
                Some(token) => self.ports.webhooks.get_by_token(&token).await?,
                None => None,
            }
            .ok_or_else(|| ApiError::not_found("webhook_not_found", "no webhook has this token"))?;
            if event_key
                .as_ref()
                .is_some_and(|key| *key != webhook.event_key)
            {
                return Err(ApiError::bad_request(
                    "conflicting_filters",
                    "uuid and eventKey name different webhooks; give one of them",
                ));
            }
            event_key = Some(webhook.event_key);
        }
        let status = params
            .get("status")
            .map(|text| {
                ResultStatus::parse(text.trim()).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_status",
                        "status must be ok, error or processing",
                    )
                })
            })
            .transpose()?;
        let limit = limit_param(params, DEFAULT_EVENT_PAGE, MAX_EVENT_PAGE)?;
        let query = EventQuery {
            event_key,
            status,
            since: time_filter(params, "since", "invalid_since")?,
            until: time_filter(params, "until", "invalid_until")?,
            limit,
            after: params.get("cursor").map(decode_cursor).transpose()?,
        };
        let page = self.ports.event_log.list_events(&query).await?;
        let mut answer = json!({
            "events": page.entries.iter().map(summary_json).collect::<Vec<_>>(),
        });
        if let Some(next) = &page.next {
            answer["next"] = json!(encode_cursor(next));
        }
        Ok(answer)
    }

    /// The logged event `correlationId`, or 404.
    async fn logged_event(&self, params: &Params) -> Result<LoggedEvent, ApiError> {
        let id = correlation_id(params)?;
        self.ports
            .event_log
            .logged_event(&id)
            .await?
            .ok_or_else(event_not_found)
    }

    /// `event.get`: the event as its pipelines saw it, and how each one ended.
    pub(super) async fn get_event(&self, params: &Params) -> Result<Value, ApiError> {
        let logged = self.logged_event(params).await?;
        let summary = EventSummary::of(&logged.record, &logged.outcomes);
        let event = &logged.record.event;
        let mut shown = json!({
            "correlationId": event.correlation_id,
            "eventKey": event.event_key,
            "receivedAt": event.received_at.to_rfc3339(),
            "status": summary.status(),
            "event": event.body(),
            "pipelines": logged
                .record
                .listeners
                .iter()
                .map(|name| pipeline_json(name, logged.outcomes.get(name)))
                .collect::<Vec<_>>(),
        });
        if let Some(original) = event.replay_of {
            shown["replayOf"] = json!(original);
        }
        Ok(shown)
    }

    /// `event.replay`: the stored event again, as a new event of its own that
    /// the listening pipelines (or the one named) run now. Answered like
    /// `webhook.receive`, by the same code.
    pub(super) async fn replay_event(&self, params: &Params) -> Result<Response<Bytes>, ApiError> {
        let original = self.logged_event(params).await?.record.event;
        let listeners = match params.get("pipeline") {
            None => {
                self.ports
                    .pipelines
                    .listeners_of(&original.event_key)
                    .await?
            }
            Some(name) => {
                if !valid_pipeline_name(name) {
                    return Err(ApiError::bad_request(
                        "invalid_name",
                        "pipeline must be 1 to 100 letters, digits, '.', '_' or '-'",
                    ));
                }
                let pipeline = self.existing_pipeline(name).await?;
                if pipeline.listens_to != original.event_key {
                    return Err(ApiError::bad_request(
                        "pipeline_not_listening",
                        format!(
                            "pipeline '{name}' listens to {}, not to this event's {}",
                            pipeline.listens_to, original.event_key
                        ),
                    ));
                }
                vec![pipeline.name]
            }
        };
        let replay_of = original.correlation_id;
        let replay = Event {
            correlation_id: CorrelationId::generate(),
            received_at: Timestamp::now(),
            replay_of: Some(replay_of),
            ..original
        };
        tracing::info!(
            event_key = %replay.event_key,
            correlation_id = %replay.correlation_id,
            %replay_of,
            "event replayed"
        );
        self.accept_event(
            replay,
            listeners,
            None,
            params.flag("pollingRedirectEnabled"),
        )
        .await
    }
}
