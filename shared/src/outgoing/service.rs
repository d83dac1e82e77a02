//! Trigger, send, record, retry: what the API and the pipeline command share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::audit::summarize;
use super::error::OutgoingError;
use super::guard::Guard;
use super::registry;
use super::request::build_request;
use super::schedule::MAX_DELAY;
use super::schema;
use super::settings::{OutgoingSettings, QUEUE_RETENTION_MARGIN};
use super::trigger::{Trigger, prepare};
use crate::compile_cache::CompileCache;
use crate::domain::outgoing::{
    Attempt, Invocation, InvocationState, MASK, OutgoingWebhook, PendingSend, ReferenceId,
};
use crate::domain::{DeliveryJob, Job, Timestamp};
use crate::error::StoreError;
use crate::ports::{
    CallError, Disposition, InvocationStore, JobQueue, OutgoingRequest, OutgoingResponse,
    OutgoingStore, Transport,
};

/// Who triggered a call; recorded in the invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The management API (`/api/v3/command/webhook.send`).
    Admin,
    /// A pipeline's `webhook.send` step, running for the event `correlation_id`.
    Pipeline {
        name: String,
        correlation_id: String,
    },
}

impl Caller {
    fn label(&self) -> String {
        match self {
            Caller::Admin => "admin".into(),
            Caller::Pipeline { name, .. } => format!("pipeline:{name}"),
        }
    }

    fn correlation_id(&self) -> Option<String> {
        match self {
            Caller::Admin => None,
            Caller::Pipeline { correlation_id, .. } => Some(correlation_id.clone()),
        }
    }
}

/// The answer of `webhook.send`: `{referenceId, status, data, error}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SendAnswer {
    pub reference_id: ReferenceId,
    /// The endpoint's status, 0 when it gave none; `None` while an asynchronous
    /// delivery is under way (shown as `"processing"`).
    pub status: Option<u16>,
    pub data: Value,
    pub error: bool,
}

impl SendAnswer {
    /// The JSON the API returns and a pipeline step puts into its body.
    pub fn to_json(&self) -> Value {
        json!({
            "referenceId": self.reference_id.to_string(),
            "status": self.status.map_or(Value::from("processing"), Value::from),
            "data": self.data,
            "error": self.error,
        })
    }

    fn from_record(record: &Invocation) -> Self {
        SendAnswer {
            reference_id: record.reference_id,
            status: (record.state != InvocationState::Processing || !record.asynchronous)
                .then_some(record.status),
            data: record.data.clone(),
            error: record.error,
        }
    }
}

/// Who and what a new invocation record is for.
struct Sending {
    reference_id: ReferenceId,
    caller: String,
    correlation_id: Option<String>,
    asynchronous: bool,
    resend_of: Option<ReferenceId>,
}

/// How one attempt ended.
struct AttemptOutcome {
    attempt: Attempt,
    data: Value,
    /// The endpoint asked to wait this long before the next try (`Retry-After`).
    retry_after: Option<Duration>,
}

impl AttemptOutcome {
    fn succeeded(&self) -> bool {
        (200..300).contains(&self.attempt.status)
    }

    fn gone(&self) -> bool {
        self.attempt.status == 410
    }
}

/// Whether a pipeline step's send really calls out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepMode {
    /// Records an invocation and calls the endpoint (or queues the call).
    Live,
    /// Checks the trigger as a live send would and answers what would have
    /// been sent; writes nothing, queues nothing, calls nobody.
    DryRun,
}

/// The outgoing-webhook service over its ports.
pub struct Outgoing {
    registry: Arc<dyn OutgoingStore>,
    invocations: Arc<dyn InvocationStore>,
    queue: Arc<dyn JobQueue>,
    transport: Arc<dyn Transport>,
    guard: Guard,
    settings: OutgoingSettings,
    /// Compiled schemas by registration id, for the `updated_at` they belong to.
    schemas: CompileCache<schema::Validator>,
    step_mode: StepMode,
}

impl Outgoing {
    /// The service over its stores and queue, calling out through `transport`.
    pub fn new(
        registry: Arc<dyn OutgoingStore>,
        invocations: Arc<dyn InvocationStore>,
        queue: Arc<dyn JobQueue>,
        transport: Arc<dyn Transport>,
        settings: &OutgoingSettings,
    ) -> Self {
        Outgoing {
            registry,
            invocations,
            queue,
            transport,
            guard: Guard::new(settings.allow.clone()),
            settings: settings.clone(),
            schemas: CompileCache::default(),
            step_mode: StepMode::Live,
        }
    }

    /// The same service for a dry run (`pipeline.test`): a pipeline step's
    /// [`Outgoing::step_answer`] checks its trigger against the registration
    /// and answers what it would have sent, without a call or a record.
    pub fn dry_run(&self) -> Outgoing {
        Outgoing {
            registry: self.registry.clone(),
            invocations: self.invocations.clone(),
            queue: self.queue.clone(),
            transport: self.transport.clone(),
            guard: self.guard.clone(),
            settings: self.settings.clone(),
            schemas: CompileCache::default(),
            step_mode: StepMode::DryRun,
        }
    }

    /// What a pipeline's `webhook.send` step leaves as its body: the answer
    /// `{referenceId, status, data, error}` of [`Outgoing::send`], or in a dry
    /// run the record of what would have been sent ([`DryRunSend::to_json`]).
    pub async fn step_answer(
        &self,
        trigger: &Trigger,
        caller: &Caller,
        reference_id: Option<ReferenceId>,
    ) -> Result<Value, OutgoingError> {
        match self.step_mode {
            StepMode::Live => Ok(self.send(trigger, caller, reference_id).await?.to_json()),
            StepMode::DryRun => Ok(self.preview(trigger).await?.to_json()),
        }
    }

    /// What a send of `trigger` would put on the wire, checked as a send
    /// checks it (unknown or disabled webhook, registration, schema, size).
    async fn preview(&self, trigger: &Trigger) -> Result<DryRunSend, OutgoingError> {
        let (webhook, pending) = self.prepared(trigger).await?;
        let request = build_request(
            &webhook,
            &pending,
            ReferenceId::generate(),
            Timestamp::now(),
        )
        .map_err(|problem| OutgoingError::invalid("invalid_registration", problem))?;
        Ok(DryRunSend {
            webhook_id: webhook.id,
            asynchronous: trigger.asynchronous,
            request,
        })
    }

    /// The registration `id`; `NotFound` if there is none, `Disabled` if it is off.
    async fn enabled_webhook(&self, id: &str) -> Result<OutgoingWebhook, OutgoingError> {
        let webhook = self
            .registry
            .get_outgoing(id)
            .await?
            .ok_or_else(|| registry::not_found(id))?;
        if !webhook.enabled {
            return Err(registry::disabled(&webhook));
        }
        Ok(webhook)
    }

    /// The registration `trigger` names and what it asks to send, refused as
    /// [`Outgoing::send`] documents.
    async fn prepared(
        &self,
        trigger: &Trigger,
    ) -> Result<(OutgoingWebhook, PendingSend), OutgoingError> {
        let webhook = self.enabled_webhook(&trigger.webhook_id).await?;
        let validator = self.schema_of(&webhook)?;
        let pending = prepare(&webhook, validator.as_deref(), trigger)?;
        if trigger.asynchronous && pending.body.len() > MAX_ASYNC_BODY {
            return Err(OutgoingError::TooLarge {
                limit: MAX_ASYNC_BODY,
            });
        }
        Ok((webhook, pending))
    }

    /// The settings in force.
    pub fn settings(&self) -> &OutgoingSettings {
        &self.settings
    }

    /// The SSRF guard registrations are checked with.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Triggers a registered webhook. Fails (4xx, nothing sent, nothing recorded)
    /// when the id is unknown or the trigger does not fit the registration;
    /// otherwise records an invocation and either calls now and answers with the
    /// endpoint's reply, or (`async`) queues the delivery and answers at once.
    ///
    /// `reference_id` names the invocation when the caller must be idempotent (a
    /// pipeline step run again after a redelivery): if that invocation exists, its
    /// answer is returned and nothing is sent again.
    pub async fn send(
        &self,
        trigger: &Trigger,
        caller: &Caller,
        reference_id: Option<ReferenceId>,
    ) -> Result<SendAnswer, OutgoingError> {
        if let Some(id) = reference_id
            && let Some(record) = self.invocations.get_invocation(&id).await?
            && (record.asynchronous || record.state != InvocationState::Processing)
        {
            return Ok(SendAnswer::from_record(&record));
        }
        let (webhook, pending) = self.prepared(trigger).await?;
        let sending = Sending {
            reference_id: reference_id.unwrap_or_else(ReferenceId::generate),
            caller: caller.label(),
            correlation_id: caller.correlation_id(),
            asynchronous: trigger.asynchronous,
            resend_of: None,
        };
        self.dispatch(&webhook, pending, sending).await
    }

    /// `invocation.resend`: sends the request of invocation `id` again as a new
    /// invocation (`resend_of` names the first), synchronously or not as the
    /// first was. The trigger's part (body, its headers and query parameters)
    /// is the recorded one; the registration's part (URL, method, pre-filled
    /// headers, signing secrets) is the registration as it is now, so a resend
    /// reaches an endpoint fixed since. The body is not checked against the
    /// schema again: it passed when it was first sent.
    pub async fn resend(&self, id: &ReferenceId) -> Result<SendAnswer, OutgoingError> {
        let original = self
            .invocations
            .get_invocation(id)
            .await?
            .ok_or(OutgoingError::InvocationNotFound)?;
        let request = original
            .resendable()
            .cloned()
            .ok_or(OutgoingError::NotResendable)?;
        let webhook = self.enabled_webhook(&original.webhook_id).await?;
        let sending = Sending {
            reference_id: ReferenceId::generate(),
            caller: Caller::Admin.label(),
            correlation_id: None,
            asynchronous: original.asynchronous,
            resend_of: Some(original.reference_id),
        };
        self.dispatch(&webhook, request, sending).await
    }

    /// Records the invocation `sending` describes, then calls the endpoint now
    /// and answers with its reply, or (`asynchronous`) queues the delivery.
    async fn dispatch(
        &self,
        webhook: &OutgoingWebhook,
        pending: PendingSend,
        sending: Sending,
    ) -> Result<SendAnswer, OutgoingError> {
        let now = Timestamp::now();
        let asynchronous = sending.asynchronous;
        let mut record = Invocation {
            reference_id: sending.reference_id,
            webhook_id: webhook.id.clone(),
            caller: sending.caller,
            correlation_id: sending.correlation_id,
            asynchronous,
            created_at: now,
            updated_at: now,
            expires_at: now.plus_seconds(self.settings.invocation_ttl_seconds),
            request: summarize(webhook, &pending),
            state: InvocationState::Processing,
            status: 0,
            error: false,
            error_message: None,
            data: Value::Null,
            duration_ms: 0,
            attempts: Vec::new(),
            next_attempt_at: None,
            // Kept for a resend only while it fits a record (a DynamoDB item).
            sent: (!asynchronous && pending.body.len() <= MAX_ASYNC_BODY).then(|| pending.clone()),
            pending: asynchronous.then(|| pending.clone()),
            resend_of: sending.resend_of,
        };
        // Recorded before the call: the audit trail has the call even if this
        // process dies during it.
        self.invocations.put_invocation(&record).await?;
        tracing::info!(
            webhook_id = %webhook.id, reference_id = %record.reference_id,
            caller = %record.caller, asynchronous, resend_of = ?record.resend_of,
            "outgoing webhook triggered"
        );

        if asynchronous {
            let job = Job::Delivery(DeliveryJob {
                reference_id: record.reference_id,
            });
            if let Err(err) = self.queue.send_jobs(&[job]).await {
                record.state = InvocationState::Failed;
                record.error = true;
                record.error_message = Some("the delivery could not be queued".into());
                record.settle_pending();
                record.updated_at = Timestamp::now();
                if let Err(e) = self.invocations.put_invocation(&record).await {
                    tracing::error!(error = %e, "recording a failed enqueue failed");
                }
                return Err(err.into());
            }
            return Ok(SendAnswer::from_record(&record));
        }

        let outcome = self.attempt(webhook, &pending, record.reference_id).await;
        apply_attempt(&mut record, &outcome);
        record.state = if outcome.succeeded() {
            InvocationState::Succeeded
        } else {
            InvocationState::Failed
        };
        if outcome.gone() {
            self.disable_gone(webhook).await;
        }
        // The call was made: answer with it even if recording its outcome fails.
        if let Err(err) = self.invocations.put_invocation(&record).await {
            tracing::error!(error = %err, reference_id = %record.reference_id, "recording an invocation's outcome failed");
        }
        // The caller gets the whole answer; the record may hold less (see apply_attempt).
        Ok(SendAnswer {
            data: outcome.data,
            ..SendAnswer::from_record(&record)
        })
    }

    /// The compiled schema of `webhook`, compiled once per version of the
    /// registration rather than on every trigger.
    fn schema_of(
        &self,
        webhook: &OutgoingWebhook,
    ) -> Result<Option<Arc<schema::Validator>>, OutgoingError> {
        let Some(definition) = &webhook.schema else {
            return Ok(None);
        };
        self.schemas
            .get_or_compile(&webhook.id, webhook.updated_at, || {
                schema::compile(definition)
            })
            .map(Some)
    }

    /// Makes the next attempt of an asynchronous delivery (a queued job) and
    /// decides what becomes of the job.
    pub async fn deliver(&self, id: &ReferenceId) -> Disposition {
        let mut record = match self.invocations.get_invocation(id).await {
            // Expired, or finished by an earlier delivery of the same message.
            Ok(None) => return Disposition::Done,
            Ok(Some(r)) if r.state != InvocationState::Processing => return Disposition::Done,
            Ok(Some(r)) => r,
            Err(err) => return store_failed(&err),
        };
        // Back before its time: a queue that cannot hide a message as long as
        // asked (SQS: 12 hours) hands it out early; wait out the rest, no attempt.
        if let Some(due) = record.next_attempt_at {
            let early = due.0 - Timestamp::now().0;
            if early > EARLY_TOLERANCE.as_millis() as i64 {
                return Disposition::RetryAfter(Duration::from_millis(early as u64));
            }
        }
        let Some(pending) = record.pending.clone() else {
            return self.finish(record, "nothing was left to send").await;
        };
        let webhook = match self.registry.get_outgoing(&record.webhook_id).await {
            Ok(Some(w)) if w.enabled => w,
            Ok(Some(_)) => {
                return self
                    .finish(record, "the outgoing webhook is disabled")
                    .await;
            }
            Ok(None) => {
                return self
                    .finish(record, "the outgoing webhook was deleted")
                    .await;
            }
            Err(err) => return store_failed(&err),
        };
        let outcome = self.attempt(&webhook, &pending, record.reference_id).await;
        apply_attempt(&mut record, &outcome);
        let attempts = record.attempts.len() as u32;
        tracing::info!(
            webhook_id = %webhook.id, reference_id = %record.reference_id, attempt = attempts,
            status = outcome.attempt.status, "outgoing delivery attempt"
        );
        let disposition = if outcome.succeeded() {
            record.state = InvocationState::Succeeded;
            record.settle_pending();
            Disposition::Done
        } else if outcome.gone() {
            self.disable_gone(&webhook).await;
            record.state = InvocationState::Failed;
            record.settle_pending();
            Disposition::Done
        } else if let Some(delay) = self.settings.retry_schedule.next_delay(attempts) {
            let delay = outcome
                .retry_after
                .map_or(delay, |asked| asked.max(delay))
                .min(MAX_DELAY)
                .min(self.time_left_in_queue(&record));
            record.next_attempt_at =
                Some(Timestamp(record.updated_at.0 + delay.as_millis() as i64));
            Disposition::RetryAfter(delay)
        } else {
            record.state = InvocationState::Failed;
            record.settle_pending();
            let last = record
                .error_message
                .take()
                .unwrap_or_else(|| format!("the endpoint answered {}", outcome.attempt.status));
            record.error_message = Some(format!("gave up after {attempts} attempts: {last}"));
            Disposition::Done
        };
        match self.invocations.put_invocation(&record).await {
            Ok(()) => disposition,
            // The attempt may be made again; the receiver can tell by `webhook-id`.
            Err(err) => store_failed(&err),
        }
    }

    /// How long the queue still keeps the delivery's message (sent when the
    /// record was created), less a margin: a `Retry-After` may not push the
    /// next attempt past it, or the message would be dropped unattempted.
    fn time_left_in_queue(&self, record: &Invocation) -> Duration {
        let Some(retention) = self.settings.queue_retention else {
            return Duration::MAX;
        };
        let keep_until = record.created_at.0
            + retention.saturating_sub(QUEUE_RETENTION_MARGIN).as_millis() as i64;
        Duration::from_millis((keep_until - Timestamp::now().0).max(0) as u64)
    }

    /// Ends a queued delivery without another attempt (its attempts keep ending
    /// the process): the invocation is failed with `why`.
    pub async fn abandon(&self, id: &ReferenceId, why: &str) -> Disposition {
        match self.invocations.get_invocation(id).await {
            Ok(Some(record)) if record.state == InvocationState::Processing => {
                self.finish(record, why).await
            }
            Ok(_) => Disposition::Done,
            Err(err) => store_failed(&err),
        }
    }

    /// Ends a delivery that cannot be attempted any more.
    async fn finish(&self, mut record: Invocation, why: &str) -> Disposition {
        record.state = InvocationState::Failed;
        record.error = true;
        record.error_message = Some(why.to_owned());
        record.settle_pending();
        record.next_attempt_at = None;
        record.updated_at = Timestamp::now();
        match self.invocations.put_invocation(&record).await {
            Ok(()) => Disposition::Done,
            Err(err) => store_failed(&err),
        }
    }

    /// `410 Gone`: the endpoint says it will never take calls again.
    async fn disable_gone(&self, webhook: &OutgoingWebhook) {
        let mut disabled = webhook.clone();
        disabled.enabled = false;
        disabled.disabled_reason = Some("the endpoint answered 410 Gone".into());
        disabled.updated_at = Timestamp::now();
        match self.registry.put_outgoing(&disabled).await {
            Ok(()) => {
                tracing::warn!(webhook_id = %webhook.id, "outgoing webhook disabled: the endpoint answered 410 Gone")
            }
            Err(err) => {
                tracing::error!(error = %err, webhook_id = %webhook.id, "disabling an outgoing webhook failed")
            }
        }
    }

    /// One call to the endpoint.
    async fn attempt(
        &self,
        webhook: &OutgoingWebhook,
        pending: &PendingSend,
        id: ReferenceId,
    ) -> AttemptOutcome {
        let at = Timestamp::now();
        let started = Instant::now();
        let result = match build_request(webhook, pending, id, at) {
            Ok(request) => self.transport.call(request).await,
            Err(problem) => Err(CallError::Unreachable(problem)),
        };
        let elapsed = started.elapsed();
        let duration_ms = elapsed.as_millis() as u64;
        crate::metrics::outgoing_attempted(
            match &result {
                Ok(response) => response.status,
                Err(_) => 0,
            },
            elapsed,
        );
        match result {
            Ok(response) => AttemptOutcome {
                attempt: Attempt {
                    at,
                    status: response.status,
                    duration_ms,
                    error_message: (!(200..300).contains(&response.status))
                        .then(|| format!("the endpoint answered {}", response.status)),
                },
                data: answer_data(&response),
                retry_after: retry_after(&response, at),
            },
            Err(err) => {
                let status = match err {
                    CallError::TooLarge { status, .. } => status,
                    _ => 0,
                };
                AttemptOutcome {
                    attempt: Attempt {
                        at,
                        status,
                        duration_ms,
                        error_message: Some(err.to_string()),
                    },
                    data: Value::Null,
                    retry_after: None,
                }
            }
        }
    }
}

/// Puts an attempt's outcome on the record.
fn apply_attempt(record: &mut Invocation, outcome: &AttemptOutcome) {
    record.status = outcome.attempt.status;
    record.error = !outcome.succeeded();
    record.error_message = outcome.attempt.error_message.clone();
    // Records must fit a DynamoDB item (400 KB): a larger answer is not kept.
    let size = serde_json::to_vec(&outcome.data).map_or(usize::MAX, |v| v.len());
    record.data = if size <= MAX_RECORDED_DATA {
        outcome.data.clone()
    } else {
        json!({"omitted": format!("the answer ({size} bytes as JSON) is larger than the {MAX_RECORDED_DATA} bytes a record keeps")})
    };
    record.duration_ms = outcome.attempt.duration_ms;
    record.attempts.push(outcome.attempt.clone());
    record.next_attempt_at = None;
    record.updated_at = Timestamp::now();
}

/// The endpoint's answer as `data` (see [`body_as_data`]).
fn answer_data(response: &OutgoingResponse) -> Value {
    body_as_data(&response.body)
}

/// A body as JSON data: its JSON (nested at most
/// [`crate::limits::MAX_JSON_DEPTH`] levels, so the record stays readable),
/// else its text, else base64 of its bytes; `null` when there is no body.
fn body_as_data(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    if let Some(json) = crate::limits::parse_json_within_depth(body) {
        return json;
    }
    match std::str::from_utf8(body) {
        Ok(text) => Value::from(text),
        Err(_) => Value::from(base64::engine::general_purpose::STANDARD.encode(body)),
    }
}

/// What a dry-run `webhook.send` step would have sent.
#[derive(Debug)]
pub struct DryRunSend {
    webhook_id: String,
    asynchronous: bool,
    request: OutgoingRequest,
}

impl DryRunSend {
    /// The record the step's body becomes: `{dryRun, command, webhookId,
    /// async, method, url, headers, body}`. The URL has no user info and
    /// every query value masked (a query is where endpoints take API keys);
    /// headers are names only (values may be credentials, and signature
    /// headers are signed with the webhook's secrets); the body is what would
    /// have been sent, as JSON, text or base64 like an answer's `data`.
    pub fn to_json(&self) -> Value {
        let mut headers: Vec<&str> = self.request.headers.keys().map(|n| n.as_str()).collect();
        headers.sort_unstable();
        headers.dedup();
        json!({
            "dryRun": true,
            "command": "webhook.send",
            "webhookId": self.webhook_id,
            "async": self.asynchronous,
            "method": self.request.method.as_str(),
            "url": shown_url(&self.request.url),
            "headers": headers,
            "body": body_as_data(&self.request.body),
        })
    }
}

/// `url` without user info and with each query value replaced by [`MASK`].
fn shown_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return MASK.to_owned();
    };
    // Registrations refuse credentials in the URL; dropped again all the same,
    // since this text goes into an answer.
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let names: Vec<String> = parsed.query_pairs().map(|(n, _)| n.into_owned()).collect();
    if !names.is_empty() {
        let mut pairs = parsed.query_pairs_mut();
        pairs.clear();
        for name in &names {
            pairs.append_pair(name, MASK);
        }
    }
    parsed.to_string()
}

/// `Retry-After` in seconds or as an HTTP date, relative to `now`.
fn retry_after(response: &OutgoingResponse, now: Timestamp) -> Option<Duration> {
    let text = response
        .headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = time::format_description::well_known::Rfc2822;
    let at = time::OffsetDateTime::parse(text, &format).ok()?;
    let millis = (at.unix_timestamp_nanos() / 1_000_000) as i64 - now.0;
    Some(Duration::from_millis(millis.max(0) as u64))
}

/// Largest answer (as JSON) an invocation record keeps.
const MAX_RECORDED_DATA: usize = 64 * 1024;
/// Largest body an asynchronous send may queue: it is stored in the record until
/// delivered, and a record must fit a DynamoDB item. Also the largest body of a
/// synchronous send whose request is kept for `invocation.resend`.
pub(crate) const MAX_ASYNC_BODY: usize = 192 * 1024;

/// Delay before retrying after the storage itself failed.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// A delivery that comes back at most this much before its `nextAttemptAt` is
/// attempted (queues count whole seconds); earlier, it is released again.
const EARLY_TOLERANCE: Duration = Duration::from_secs(1);

fn store_failed(err: &StoreError) -> Disposition {
    tracing::error!(error = %err, "storage failed while delivering an outgoing webhook");
    Disposition::RetryAfter(STORE_RETRY)
}
