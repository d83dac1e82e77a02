//! Domain types: webhooks, events and results, with the rules that govern them;
//! [`outgoing`] holds the records of outgoing webhooks and their invocations.

pub mod dedup;
pub mod eventlog;
pub mod outgoing;
pub mod rotation;
pub mod verify;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;
use uuid::Uuid;

/// Longest allowed `eventKey`.
pub const MAX_EVENT_KEY_LEN: usize = 200;
/// Prefix of the message key under which `message.receive` sees a webhook event.
pub const MESSAGE_KEY_PREFIX: &str = "pipeforce.event.";

/// Milliseconds since the Unix epoch; the one time type the stores persist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Timestamp((OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// This instant plus `seconds`.
    pub fn plus_seconds(self, seconds: u64) -> Self {
        Timestamp(self.0.saturating_add((seconds as i64).saturating_mul(1000)))
    }

    /// Whole seconds since the epoch (DynamoDB's TTL unit).
    pub fn epoch_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// RFC 3339 text in UTC with millisecond precision, as the API shows times.
    /// An RFC 3339 date-time (any offset), to the millisecond; `None` if it is
    /// not one or lies outside what a timestamp holds.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed =
            OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
                .ok()?;
        i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000)
            .ok()
            .map(Timestamp)
    }

    pub fn to_rfc3339(self) -> String {
        const FORMAT: &[FormatItem<'_>] = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(FORMAT).ok())
            .unwrap_or_default()
    }
}

/// A webhook's token (the PIPEFORCE `uuid`): the secret in its URL.
///
/// `Debug` never prints the value, so a token cannot leak into logs by accident.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(Uuid);

impl Token {
    /// A fresh token: a UUID v4, 122 random bits.
    pub fn generate() -> Self {
        Token(Uuid::new_v4())
    }

    /// Parses a well-formed UUID in any of its usual text forms.
    pub fn parse(text: &str) -> Option<Self> {
        Uuid::try_parse(text.trim()).ok().map(Token)
    }

    /// The all-zero UUID: never generated, so a lookup of it finds nothing
    /// unless an operator chose it (the health check reads it).
    pub fn nil() -> Self {
        Token(Uuid::nil())
    }

    /// The token's text, hyphenated lower case. Only for answers to its owner and for storage.
    pub fn reveal(&self) -> String {
        self.0.hyphenated().to_string()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A correlation id: names one received event and its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CorrelationId(Uuid);

impl CorrelationId {
    /// A fresh, unguessable id.
    pub fn generate() -> Self {
        CorrelationId(Uuid::new_v4())
    }

    /// Parses a well-formed UUID.
    pub fn parse(text: &str) -> Option<Self> {
        Uuid::try_parse(text.trim()).ok().map(CorrelationId)
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// A webhook's unique internal name, e.g. `webhook.lead.created`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventKey(String);

/// Why a text is not a valid [`EventKey`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventKeyError {
    #[error("eventKey must not be empty")]
    Empty,
    #[error("eventKey must be at most {MAX_EVENT_KEY_LEN} characters")]
    TooLong,
    #[error(
        "eventKey must be lower case, dot-separated segments of a-z, 0-9, '_' and '-' (e.g. webhook.lead.created)"
    )]
    Malformed,
}

impl EventKey {
    /// Validates `text` against the eventKey rules of the spec.
    pub fn parse(text: &str) -> Result<Self, EventKeyError> {
        if text.is_empty() {
            return Err(EventKeyError::Empty);
        }
        if text.len() > MAX_EVENT_KEY_LEN {
            return Err(EventKeyError::TooLong);
        }
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        };
        if text.split('.').all(segment_ok) {
            Ok(EventKey(text.to_owned()))
        } else {
            Err(EventKeyError::Malformed)
        }
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key `message.receive` listens on: `pipeforce.event.<eventKey>`.
    pub fn message_key(&self) -> String {
        format!("{MESSAGE_KEY_PREFIX}{}", self.0)
    }
}

impl TryFrom<String> for EventKey {
    type Error = EventKeyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        EventKey::parse(&value)
    }
}

impl From<EventKey> for String {
    fn from(key: EventKey) -> String {
        key.0
    }
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a webhook keeps the request body in the event's `origin`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadType {
    /// The raw body, base64-encoded (the PIPEFORCE default).
    #[default]
    Base64,
    /// The body as JSON when it parses as JSON, else as text.
    Raw,
    /// The body is dropped.
    Ignore,
}

impl PayloadType {
    /// Parses `base64`, `raw` or `ignore` (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "base64" => Some(PayloadType::Base64),
            "raw" => Some(PayloadType::Raw),
            "ignore" => Some(PayloadType::Ignore),
            _ => None,
        }
    }
}

/// A registered incoming webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub token: Token,
    pub event_key: EventKey,
    pub description: Option<String>,
    pub enabled: bool,
    pub payload_type: PayloadType,
    pub max_payload_length: u32,
    /// The sender's signature every call must carry; `None` checks none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<verify::Verification>,
    /// The address ranges calls may come from; empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_sources: Vec<ipnet::IpNet>,
    /// The token `webhook.rotate` replaced, which keeps working until its
    /// grace ends. Kept with the webhook so every store finds its alias to
    /// remove it; never shown in an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_token: Option<rotation::PreviousToken>,
    /// How repeated deliveries are recognised; `None` stores every call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<dedup::Dedup>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Webhook {
    /// The JSON the management API answers with; `receive_url` is the public
    /// URL of `webhook.receive`. `verify` (its secrets masked), `dedup` and
    /// `allowedSources` only when set, and `previousTokenExpiresAt` only while
    /// a rotation's grace runs, so a webhook without them answers exactly
    /// PIPEFORCE's fields.
    pub fn to_api_json(&self, receive_url: &str) -> Value {
        let token = self.token.reveal();
        let mut shown = json!({
            "eventKey": self.event_key,
            "uuid": token,
            "webhookUrl": format!("{receive_url}?token={token}"),
            "enabled": self.enabled,
            "description": self.description,
            "payloadType": self.payload_type,
            "maxPayloadLength": self.max_payload_length,
            "createdAt": self.created_at.to_rfc3339(),
            "updatedAt": self.updated_at.to_rfc3339(),
        });
        if let Some(verification) = &self.verify {
            shown["verify"] = verification.to_api_json();
        }
        if !self.allowed_sources.is_empty() {
            shown["allowedSources"] = json!(self.allowed_sources);
        }
        if let Some(ends) = self.grace_running_until(Timestamp::now()) {
            shown["previousTokenExpiresAt"] = json!(ends.to_rfc3339());
        }
        if let Some(dedup) = &self.dedup {
            shown["dedup"] = dedup.to_api_json();
        }
        shown
    }
}

/// A file part of a `multipart/form-data` webhook call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilePart {
    pub name: String,
    pub filename: String,
    pub content_type: Option<String>,
    pub size: u64,
    /// The file's bytes, base64-encoded.
    pub content: String,
}

/// One received webhook call, as stored and as handed to pipelines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub correlation_id: CorrelationId,
    pub event_key: EventKey,
    pub received_at: Timestamp,
    /// The body per the webhook's payload type: base64 text, raw text/JSON, or null.
    pub origin: Value,
    pub method: String,
    pub content_type: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// Query and form parameters; a repeated name holds an array of its values.
    pub params: BTreeMap<String, Value>,
    pub files: Vec<FilePart>,
    /// Bytes of the body as received; 0 for events stored before it was kept.
    #[serde(default)]
    pub size: u64,
    /// The event this one runs again (`event.replay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<CorrelationId>,
}

impl Event {
    /// The event body exactly as pipelines see it (the spec's event JSON).
    pub fn body(&self) -> Value {
        json!({
            "eventKey": self.event_key,
            "messageKey": self.event_key.message_key(),
            "correlationId": self.correlation_id,
            "receivedAt": self.received_at.to_rfc3339(),
            "origin": self.origin,
            "payload": {
                "origin": self.origin,
                "method": self.method,
                "contentType": self.content_type,
                "headers": self.headers,
                "params": self.params,
                "files": self.files,
            }
        })
    }
}

/// An event together with the bookkeeping of its result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    pub event: Event,
    /// Names of the pipelines that must finish before the result is complete.
    pub listeners: Vec<String>,
    /// After this instant the result is gone (410 from `/api/v3/result`).
    pub expires_at: Timestamp,
    /// Until this instant the event and its outcomes stay in the event log
    /// (`HOOKFLOW_EVENT_RETENTION_SECONDS`); never before `expires_at`.
    pub retained_until: Timestamp,
}

impl EventRecord {
    /// When the stores may drop the event, its outcomes and effects: the later
    /// of its result's end and its retention.
    pub fn kept_until(&self) -> Timestamp {
        self.expires_at.max(self.retained_until)
    }
}

/// How one pipeline run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PipelineOutcome {
    /// Finished; `value` is the pipeline's final body.
    Ok {
        value: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<RunFacts>,
    },
    /// Failed at `step` (index or name) with a stable `code`.
    Error {
        code: String,
        message: String,
        step: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<RunFacts>,
    },
}

/// How the run that ended a pipeline went, as the worker saw it; outcomes
/// recorded before it was kept have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFacts {
    /// How long the last run took, in milliseconds (0 when the pipeline did
    /// not run: deleted, or its event unreadable).
    pub duration_ms: u64,
    /// Deliveries of the job, the last one included.
    pub attempts: u32,
}

impl PipelineOutcome {
    /// The outcome with the facts of the run that ended it.
    pub fn with_run(mut self, facts: RunFacts) -> Self {
        match &mut self {
            PipelineOutcome::Ok { run, .. } | PipelineOutcome::Error { run, .. } => {
                *run = Some(facts);
            }
        }
        self
    }

    pub fn run(&self) -> Option<RunFacts> {
        match self {
            PipelineOutcome::Ok { run, .. } | PipelineOutcome::Error { run, .. } => *run,
        }
    }

    /// `ok` or `error`: an outcome is recorded once its pipeline finished.
    pub fn status(&self) -> ResultStatus {
        match self {
            PipelineOutcome::Ok { .. } => ResultStatus::Ok,
            PipelineOutcome::Error { .. } => ResultStatus::Error,
        }
    }
}

/// Status of a result as the API reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    Processing,
    Ok,
    Error,
}

/// The result of one event: which listeners exist and which have finished.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultRecord {
    pub correlation_id: CorrelationId,
    pub listeners: Vec<String>,
    pub outcomes: BTreeMap<String, PipelineOutcome>,
    pub expires_at: Timestamp,
}

impl ResultRecord {
    /// Whether the result is past its retention at `now` (checked on every read).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }

    /// `error` as soon as one listener failed, `ok` when all finished, else `processing`.
    pub fn status(&self) -> ResultStatus {
        if self
            .outcomes
            .values()
            .any(|o| matches!(o, PipelineOutcome::Error { .. }))
        {
            ResultStatus::Error
        } else if self.listeners.iter().all(|l| self.outcomes.contains_key(l)) {
            ResultStatus::Ok
        } else {
            ResultStatus::Processing
        }
    }

    /// The result value: null without listeners, the sole listener's final body,
    /// or an object keyed by pipeline name with several.
    pub fn value(&self) -> Value {
        let value_of = |name: &String| match self.outcomes.get(name) {
            Some(PipelineOutcome::Ok { value, .. }) => value.clone(),
            _ => Value::Null,
        };
        match self.listeners.as_slice() {
            [] => Value::Null,
            [only] => value_of(only),
            many => Value::Object(many.iter().map(|n| (n.clone(), value_of(n))).collect()),
        }
    }

    /// The first failure, as `{code, message, pipeline, step}`.
    pub fn error(&self) -> Option<Value> {
        self.outcomes.iter().find_map(|(pipeline, o)| match o {
            PipelineOutcome::Error {
                code,
                message,
                step,
                ..
            } => {
                Some(json!({"code": code, "message": message, "pipeline": pipeline, "step": step}))
            }
            PipelineOutcome::Ok { .. } => None,
        })
    }
}

/// A stored pipeline definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineDefinition {
    pub name: String,
    /// The event key its trigger listens to.
    pub listens_to: EventKey,
    /// The pipeline's YAML source, as put.
    pub source: String,
    pub updated_at: Timestamp,
}

/// One unit of queued work: run `pipeline` for the event `correlation_id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineJob {
    pub correlation_id: CorrelationId,
    pub pipeline: String,
}

/// One attempt cycle of an asynchronous outgoing-webhook call (`async: true`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryJob {
    pub reference_id: ReferenceId,
}

/// One queue message. Untagged, so pipeline jobs keep the message shape they
/// always had (`{"correlationId", "pipeline"}`) and deliveries are `{"referenceId"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Job {
    Pipeline(PipelineJob),
    Delivery(DeliveryJob),
}

impl Job {
    /// The pipeline job, if this is one.
    pub fn as_pipeline(&self) -> Option<&PipelineJob> {
        match self {
            Job::Pipeline(job) => Some(job),
            Job::Delivery(_) => None,
        }
    }
}

impl From<PipelineJob> for Job {
    fn from(job: PipelineJob) -> Self {
        Job::Pipeline(job)
    }
}

impl From<DeliveryJob> for Job {
    fn from(job: DeliveryJob) -> Self {
        Job::Delivery(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_key_rules() {
        for ok in ["webhook.lead.created", "a", "a-b_c.d9", &"a".repeat(200)] {
            assert!(EventKey::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(EventKey::parse(""), Err(EventKeyError::Empty));
        assert_eq!(
            EventKey::parse(&"a".repeat(201)),
            Err(EventKeyError::TooLong)
        );
        for bad in ["Webhook.x", "a..b", ".a", "a.", "a b", "ä", "a/b", "a.B"] {
            assert_eq!(EventKey::parse(bad), Err(EventKeyError::Malformed), "{bad}");
        }
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = Token::generate();
        assert!(!format!("{t:?}").contains(&t.reveal()));
    }

    #[test]
    fn result_status_and_value() {
        let mut r = ResultRecord {
            correlation_id: CorrelationId::generate(),
            listeners: vec![],
            outcomes: BTreeMap::new(),
            expires_at: Timestamp(10),
        };
        assert_eq!(r.status(), ResultStatus::Ok);
        assert_eq!(r.value(), Value::Null);
        r.listeners = vec!["a".into(), "b".into()];
        assert_eq!(r.status(), ResultStatus::Processing);
        r.outcomes.insert(
            "a".into(),
            PipelineOutcome::Ok {
                value: json!(1),
                run: None,
            },
        );
        assert_eq!(r.status(), ResultStatus::Processing);
        r.outcomes.insert(
            "b".into(),
            PipelineOutcome::Ok {
                value: json!("x"),
                run: None,
            },
        );
        assert_eq!(r.status(), ResultStatus::Ok);
        assert_eq!(r.value(), json!({"a": 1, "b": "x"}));
        assert!(r.is_expired(Timestamp(10)) && !r.is_expired(Timestamp(9)));
    }

    #[test]
    fn rfc3339() {
        assert_eq!(Timestamp(1_500).to_rfc3339(), "1970-01-01T00:00:01.500Z");
    }
}

/// Names one trigger of an outgoing webhook and its invocation record.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReferenceId(Uuid);

impl ReferenceId {
    /// A fresh random id.
    pub fn generate() -> Self {
        ReferenceId(Uuid::new_v4())
    }

    /// An id derived from `seed` (same seed, same id): lets a redelivered pipeline
    /// step find the invocation its first run made instead of calling again.
    pub fn derived_from(seed: &str) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(seed.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        ReferenceId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// Parses the text form; `None` if it is not a UUID.
    pub fn parse(text: &str) -> Option<Self> {
        Uuid::parse_str(text.trim()).ok().map(ReferenceId)
    }
}

impl fmt::Display for ReferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for ReferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReferenceId({self})")
    }
}
