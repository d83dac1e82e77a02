//! Ports: the small traits the core needs from storage, queue and notification.
//! Each has an in-memory and a SQLite adapter, and one conformance suite
//! (`testkit`) that every adapter passes.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::domain::dedup::{Admission, DedupClaim, DedupKey};
use crate::domain::eventlog::{EventPage, EventQuery};
use crate::domain::outgoing::{Invocation, OutgoingWebhook, ReferenceId};
use crate::domain::rotation::Rotation;
use crate::domain::verify::Refusals;
use crate::domain::{
    CorrelationId, EventKey, EventRecord, Job, PipelineDefinition, PipelineJob, PipelineOutcome,
    ResultRecord, Timestamp, Token, Webhook,
};
use crate::error::StoreError;

/// Result type of every port call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Registered incoming webhooks, keyed by token, with unique event keys.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Adds a new webhook; `Conflict` if its token or eventKey is taken.
    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    /// Replaces an existing webhook; `NotFound` if its token is unknown,
    /// `Conflict(EventKeyTaken)` if its new eventKey belongs to another.
    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    /// The webhook with this token, or whose previous token it is while that
    /// one's grace runs (judged at the time of reading, so an expired alias
    /// needs no prompt deletion).
    async fn get_by_token(&self, token: &Token) -> StoreResult<Option<Webhook>>;
    /// All webhooks, oldest first (each once, whatever its tokens).
    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>>;
    /// Removes the webhook (its refusal count and its previous token with it)
    /// by its current token; false if there was none.
    async fn delete_webhook(&self, token: &Token) -> StoreResult<bool>;
    /// Gives the webhook whose current token is `current` the token
    /// `rotation.new_token` ([`Webhook::rotated`]) in one atomic change, its
    /// refusal count moved along: `current` then answers until
    /// `rotation.previous_expires_at`, and a token it replaced earlier stops
    /// at once. Answers the rotated webhook; `NotFound` if `current` is no
    /// webhook's current token.
    async fn rotate_token(&self, current: &Token, rotation: &Rotation) -> StoreResult<Webhook>;
    /// Counts one call the webhook's signature check refused, with its code.
    /// An atomic increment, not read-then-write: refusals may come at once.
    /// Nothing is counted for a token no webhook has.
    async fn record_refusal(&self, token: &Token, code: &str, at: Timestamp) -> StoreResult<()>;
    /// The refusals counted for the webhook; `None` before the first.
    async fn refusals(&self, token: &Token) -> StoreResult<Option<Refusals>>;
    /// Whether the store answers (the health check): one read by key, of a
    /// token no generated webhook has, so it costs one lookup and finds nothing.
    async fn ping(&self) -> StoreResult<()> {
        self.get_by_token(&Token::nil()).await.map(drop)
    }
}

/// Whether a write that may be a retry actually changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// This call stored the value.
    New,
    /// A value was already there (e.g. a redelivered queue message); nothing changed.
    AlreadyThere,
}

/// Claims on side effects of an event that must happen at most once (the mail
/// of one pipeline step), kept with the event: a redelivered job finds the
/// claim of its first run and does not repeat the effect.
#[async_trait]
pub trait EffectLog: Send + Sync {
    /// Claims the side effect named `effect` of event `id`, before doing it:
    /// `true` for the first claim only, `false` if it was claimed before (a
    /// conditional write, so two runs at once cannot both get `true`).
    /// `NotFound` if the event is unknown. Claims expire with their event.
    async fn claim_effect(&self, id: &CorrelationId, effect: &str) -> StoreResult<bool>;
    /// Gives a claim back when its effect certainly did not happen, so that a
    /// retry may claim it again. Releasing what is not claimed does nothing.
    async fn release_effect(&self, id: &CorrelationId, effect: &str) -> StoreResult<()>;
}

/// Received events, the outcomes that make up their results, and the claims
/// on their side effects.
#[async_trait]
pub trait EventStore: EffectLog {
    /// Stores a new event durably; `Conflict(AlreadyExists)` if its id is taken.
    async fn put_event(&self, record: &EventRecord) -> StoreResult<()>;
    /// Stores a new event together with `claim`, in one conditional write: when
    /// a claim on the same key is still live at `claim.claimed_at`, nothing is
    /// stored and the answer names the event that holds it; an expired claim is
    /// taken over. Of any number of puts racing with one key, one is `New`.
    async fn put_claimed_event(
        &self,
        record: &EventRecord,
        claim: &DedupClaim,
    ) -> StoreResult<Admission>;
    /// Gives up the claim on `key` if event `id` holds it (its jobs could not
    /// be queued and the caller was told to retry: the retry must be new).
    async fn release_claim(&self, key: &DedupKey, id: &CorrelationId) -> StoreResult<()>;
    /// The event, if stored and not expired at the time of reading.
    async fn get_event(&self, id: &CorrelationId) -> StoreResult<Option<EventRecord>>;
    /// The result of an event, if stored and not expired at the time of reading.
    async fn get_result(&self, id: &CorrelationId) -> StoreResult<Option<ResultRecord>>;
    /// Records how one pipeline ended for one event; idempotent: the first outcome
    /// stays, later ones answer `AlreadyThere`. `NotFound` if the event is unknown.
    async fn record_outcome(
        &self,
        id: &CorrelationId,
        pipeline: &str,
        outcome: &PipelineOutcome,
    ) -> StoreResult<Recorded>;
}

/// The event log: stored events, newest first, by page (`event.list`).
#[async_trait]
pub trait EventLog: Send + Sync {
    /// One page of the events kept (not past [`EventRecord::kept_until`]) that
    /// match `query`, newest first. A page is one index range read, however
    /// many events are stored; a new event never shifts the pages after a
    /// position.
    async fn list_events(&self, query: &EventQuery) -> StoreResult<EventPage>;
    /// The event and the outcomes recorded for it, while the log keeps it
    /// (after its result has expired too: `event.get`).
    async fn logged_event(&self, id: &CorrelationId) -> StoreResult<Option<LoggedEvent>>;
}

/// An event as the log keeps it, with the outcomes of its pipelines so far.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedEvent {
    pub record: EventRecord,
    pub outcomes: BTreeMap<String, PipelineOutcome>,
}

/// Accepts a received event: stores it and enqueues one job per listening pipeline.
#[async_trait]
pub trait EventIntake: Send + Sync {
    /// Stores `record` and sends `jobs`; answers only when both are durable.
    /// Where the backend allows it, both happen in one transaction. With a
    /// `claim`, a delivery whose key a live claim holds stores and sends
    /// nothing and is answered `Duplicate` of the event that holds it (see
    /// [`EventStore::put_claimed_event`]).
    async fn accept(
        &self,
        record: &EventRecord,
        jobs: &[PipelineJob],
        claim: Option<&DedupClaim>,
    ) -> StoreResult<Admission>;
}

/// [`EventIntake`] over a separate store and queue: the event first, then the
/// jobs, so a worker never finds a job without its event.
pub struct StoreThenEnqueue {
    pub events: Arc<dyn EventStore>,
    pub queue: Arc<dyn JobQueue>,
}

#[async_trait]
impl EventIntake for StoreThenEnqueue {
    async fn accept(
        &self,
        record: &EventRecord,
        jobs: &[PipelineJob],
        claim: Option<&DedupClaim>,
    ) -> StoreResult<Admission> {
        match claim {
            None => self.events.put_event(record).await?,
            Some(claim) => {
                if let Admission::Duplicate(first) =
                    self.events.put_claimed_event(record, claim).await?
                {
                    return Ok(Admission::Duplicate(first));
                }
            }
        }
        let jobs: Vec<Job> = jobs.iter().cloned().map(Job::from).collect();
        if let Err(err) = self.queue.send_jobs(&jobs).await {
            let id = record.event.correlation_id;
            if let Some(claim) = claim
                && let Err(release) = self.events.release_claim(&claim.key, &id).await
            {
                // The retry will be answered as a duplicate of an event that
                // never runs, until the window ends; say so where it can be seen.
                tracing::error!(%id, error = %release, "a claim of an event whose jobs were not queued stays");
            }
            return Err(err);
        }
        Ok(Admission::New)
    }
}

/// Stored pipelines and which event each listens to.
#[async_trait]
pub trait PipelineStore: Send + Sync {
    /// Creates or replaces the pipeline with this name.
    async fn put_pipeline(&self, pipeline: &PipelineDefinition) -> StoreResult<()>;
    /// The pipeline with this name.
    async fn get_pipeline(&self, name: &str) -> StoreResult<Option<PipelineDefinition>>;
    /// All pipelines, by name.
    async fn list_pipelines(&self) -> StoreResult<Vec<PipelineDefinition>>;
    /// Removes the pipeline; false if there was none.
    async fn delete_pipeline(&self, name: &str) -> StoreResult<bool>;
    /// Names of the pipelines listening to `key`, sorted.
    async fn listeners_of(&self, key: &EventKey) -> StoreResult<Vec<String>>;
}

/// A job handed out by [`JobQueue::receive`]; invisible to others until it is
/// deleted, released, dead-lettered, or its visibility timeout passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message as it was queued. Kept raw, so a message no worker can read
    /// still reaches the one policy that decides its fate ([`Delivery::job`]).
    pub body: String,
    /// Names this delivery for `delete`/`release`; a redelivery gets a new one.
    pub receipt: String,
    /// How many times the job has been handed out, this time included.
    pub receive_count: u32,
}

impl Delivery {
    /// The job this message carries, or why it cannot be read.
    pub fn job(&self) -> Result<Job, String> {
        serde_json::from_str(&self.body).map_err(|e| e.to_string())
    }
}

/// At-least-once queue of pipeline jobs and outgoing deliveries (SQS in AWS, a
/// table in SQLite).
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues the jobs; all or an error.
    async fn send_jobs(&self, jobs: &[Job]) -> StoreResult<()>;
    /// Up to `max` visible jobs, waiting up to `wait` for the first one; each stays
    /// invisible to other receivers for `visibility`.
    async fn receive_jobs(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> StoreResult<Vec<Delivery>>;
    /// Acknowledges a delivery: the job is done and never handed out again.
    async fn delete_job(&self, receipt: &str) -> StoreResult<()>;
    /// Makes a delivered job visible again after `delay` (a retry with backoff),
    /// or sooner when the queue cannot hide it that long.
    async fn release_job(&self, receipt: &str, delay: Duration) -> StoreResult<()>;
    /// Moves a delivered message out of the queue into its dead letters, with
    /// the reason, where an operator can look at it; it is never handed out again.
    async fn dead_letter_job(&self, delivery: &Delivery, reason: &str) -> StoreResult<()>;
    /// Whether a receive dropped while it waits can still take jobs out of sight
    /// (an SQS long poll goes on at the service after its caller has gone): a
    /// stopping worker then lets it finish and hands back what it brought.
    fn receive_outlives_its_caller(&self) -> bool {
        false
    }
}

/// A future that completes when a result may have changed.
pub type Wakeup = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Wakes long-polling readers when a result changes, so they need not sleep-poll.
///
/// In one process the worker notifies directly; across processes (Lambda) the
/// implementation falls back to a short re-read interval.
pub trait ResultSignal: Send + Sync {
    /// A wake-up for `id`, armed now: a `notify` after this call completes it.
    fn subscribe(&self, id: &CorrelationId) -> Wakeup;
    /// Wakes everyone waiting on `id`.
    fn notify(&self, id: &CorrelationId);
}

/// An e-mail as `mail.send` builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// Why a mail was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The server could not be reached or answered "try later": retry.
    #[error("mail server unavailable: {0}")]
    Unavailable(String),
    /// The server or the message builder refused the mail: retrying will not help.
    #[error("mail rejected: {0}")]
    Rejected(String),
}

/// Delivers mail (SMTP in both shapes).
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one mail.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
    /// What the `mail.send` step that sent `mail` leaves as the body: `None`
    /// keeps the body, as a real send does; a mailer that only records
    /// (`pipeline.test`'s dry run) answers its record of the mail, so the
    /// steps after it see what would have been sent.
    fn step_answer(&self, _mail: &Mail) -> Option<serde_json::Value> {
        None
    }
}

/// A secret kept outside the settings (AWS Secrets Manager in the AWS shape),
/// read when it is first needed.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The secret's current text.
    async fn reveal(&self) -> StoreResult<String>;
}

/// Registered outgoing webhooks (`outgoing.put`), keyed by id.
#[async_trait]
pub trait OutgoingStore: Send + Sync {
    /// Creates the registration or replaces the one with the same id.
    async fn put_outgoing(&self, webhook: &OutgoingWebhook) -> StoreResult<()>;
    /// The registration with this id.
    async fn get_outgoing(&self, id: &str) -> StoreResult<Option<OutgoingWebhook>>;
    /// All registrations, by id.
    async fn list_outgoing(&self) -> StoreResult<Vec<OutgoingWebhook>>;
    /// Removes the registration; false if there was none.
    async fn delete_outgoing(&self, id: &str) -> StoreResult<bool>;
}

/// Invocation records of outgoing webhooks, dropped after their `expires_at`.
#[async_trait]
pub trait InvocationStore: Send + Sync {
    /// Creates the record or replaces the one with the same reference id.
    async fn put_invocation(&self, invocation: &Invocation) -> StoreResult<()>;
    /// The record, if stored and not expired at the time of reading.
    async fn get_invocation(&self, id: &ReferenceId) -> StoreResult<Option<Invocation>>;
    /// The unexpired records of one webhook, newest first, at most `limit`.
    async fn list_invocations(
        &self,
        webhook_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Invocation>>;
}

// ----- outgoing HTTP calls -----

/// One request to send. The URL is final (query parameters included).
#[derive(Clone, Debug)]
pub struct OutgoingRequest {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The endpoint's answer.
#[derive(Clone, Debug)]
pub struct OutgoingResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why there is no (complete) answer. Messages never contain header values or bodies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The destination resolves to an address the SSRF guard refuses; no
    /// connection was attempted.
    #[error("destination not allowed: {0}")]
    Blocked(String),
    /// DNS failed, the connection was refused or broke.
    #[error("endpoint unreachable: {0}")]
    Unreachable(String),
    /// No complete answer within the connect or total timeout.
    #[error("endpoint did not answer within {0:?}")]
    TimedOut(Duration),
    /// The answer's body is larger than the configured cap.
    #[error("the answer (status {status}) is larger than {limit} bytes")]
    TooLarge { status: u16, limit: usize },
}

/// Makes one HTTP call. Implemented by `adapters::http::HttpTransport`; tests may add others.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `request` and reads the whole answer. Never follows redirects.
    async fn call(&self, request: OutgoingRequest) -> Result<OutgoingResponse, CallError>;
}

/// Upkeep of a store that its process owns alone (the embedded shape; in the
/// AWS shape SQS visibility and DynamoDB TTL do this work themselves).
#[async_trait]
pub trait Housekeeping: Send + Sync {
    /// Before the worker starts: makes every job a previous process took and
    /// never settled visible at once; answers how many.
    async fn reclaim_taken_jobs(&self) -> StoreResult<usize>;
    /// Deletes what expired before `now`; answers how many records went.
    async fn purge_expired(&self, now: crate::domain::Timestamp) -> StoreResult<usize>;
    /// On a clean stop: makes every accepted write durable and leaves the files compact.
    async fn close(&self);
}

// ----- dead letters -----

/// A job taken out of the queue for good: the worker gave up on it
/// ([`JobQueue::dead_letter_job`]), or SQS's redrive policy moved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Finds it again for redrive and delete: the row's id (SQLite), the
    /// MessageId (SQS), a sequence number (memory).
    pub id: String,
    /// The message as it was queued, readable or not.
    pub body: String,
    /// Why the worker gave up; `None` for a message SQS's redrive policy moved.
    pub reason: Option<String>,
    /// How many times it was handed out; `None` where the queue does not
    /// know (a message SQS's redrive policy moved: at least its `maxReceiveCount`).
    pub receive_count: Option<u32>,
    /// When it was dead-lettered (a message SQS's redrive policy moved keeps
    /// the time it was first queued).
    pub dead_at: Timestamp,
}

/// Some of the dead letters, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterPage {
    pub dead_letters: Vec<DeadLetter>,
    /// There may be more than were read (the limit, or a bound of the queue's
    /// reads, was reached).
    pub partial: bool,
}

/// How many dead letters one [`DeadLetters::redrive_all_dead_letters`] moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redriven {
    pub count: usize,
    /// A bound of one call was reached: more may be left; call again.
    pub more: bool,
}

/// Most dead letters one [`DeadLetters::redrive_all_dead_letters`] moves.
pub const MAX_REDRIVE_PER_CALL: usize = 100;

/// The jobs the queue holds apart, for an operator to look at, queue again or drop,
/// and how many wait on either side (`queue.get`, the metrics' gauges).
#[async_trait]
pub trait DeadLetters: QueueDepthGauge + Send + Sync {
    /// Up to `limit` dead letters, oldest first, leaving every one where it is.
    async fn list_dead_letters(&self, limit: usize) -> StoreResult<DeadLetterPage>;
    /// Queues the dead letter `id` again as a fresh job (its receive count
    /// starts over), then removes it: a failure in between leaves it in both
    /// (a duplicate job, which the worker tolerates), never in neither.
    /// False if there is no such dead letter.
    async fn redrive_dead_letter(&self, id: &str) -> StoreResult<bool>;
    /// Redrives the dead letters as [`DeadLetters::redrive_dead_letter`] does,
    /// at most [`MAX_REDRIVE_PER_CALL`] in one call.
    async fn redrive_all_dead_letters(&self) -> StoreResult<Redriven>;
    /// Drops the dead letter `id`; false if there is no such dead letter.
    async fn delete_dead_letter(&self, id: &str) -> StoreResult<bool>;
}

/// How many jobs wait: `queue.get`, and the `hookflow_queue_depth` and
/// `hookflow_dead_letters` gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    /// Jobs in the queue, waiting or being run.
    pub jobs: u64,
    /// Jobs in the dead letters.
    pub dead_letters: u64,
}

/// Counts what waits in the queue: cheap enough to ask on every metrics scrape.
#[async_trait]
pub trait QueueDepthGauge: Send + Sync {
    async fn queue_depth(&self) -> StoreResult<QueueDepth>;
}

// ----- the bundle -----

/// The adapters a gateway and a worker work with; `wiring` builds them.
#[derive(Clone)]
pub struct Ports {
    pub webhooks: Arc<dyn WebhookStore>,
    pub events: Arc<dyn EventStore>,
    /// The same events, by page (`event.list`).
    pub event_log: Arc<dyn EventLog>,
    pub intake: Arc<dyn EventIntake>,
    pub pipelines: Arc<dyn PipelineStore>,
    pub queue: Arc<dyn JobQueue>,
    pub signal: Arc<dyn ResultSignal>,
    /// Registered outgoing webhooks.
    pub outgoing: Arc<dyn OutgoingStore>,
    /// Invocation records of outgoing webhooks.
    pub invocations: Arc<dyn InvocationStore>,
    /// The queue's dead letters.
    pub dead_letters: Arc<dyn DeadLetters>,
}

// ----- what becomes of a job -----

/// What to do with the queue message after processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Finished (outcome recorded, or nothing left to do): delete the message.
    Done,
    /// Not finished: make the message visible again after this delay.
    RetryAfter(Duration),
    /// Never to be handed out again (unreadable, or it keeps ending the process):
    /// move it to the dead letters, for the reason given. A pipeline job has its
    /// error outcome recorded first, so its result ends.
    DeadLetter(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::absent::NO_QUEUE;
    use crate::adapters::{MemoryQueue, MemoryStore};
    use crate::domain::Timestamp;

    fn one_job(record: &EventRecord) -> Vec<PipelineJob> {
        vec![PipelineJob {
            correlation_id: record.event.correlation_id,
            pipeline: "p".into(),
        }]
    }

    #[tokio::test]
    async fn a_claim_is_given_back_when_its_jobs_cannot_be_queued() {
        let store = Arc::new(MemoryStore::new());
        let key = EventKey::parse("webhook.release").unwrap();
        let now = Timestamp::now();
        let claim = DedupClaim {
            key: DedupKey([1; 32]),
            claimed_at: now,
            expires_at: now.plus_seconds(60),
        };
        let failing = StoreThenEnqueue {
            events: store.clone(),
            queue: Arc::new(NO_QUEUE),
        };
        let first = crate::testkit::sample_event(&key, &["p"], 60_000);
        assert!(
            failing
                .accept(&first, &one_job(&first), Some(&claim))
                .await
                .is_err()
        );
        // The caller was told to retry: its retry is a new event, not a
        // duplicate of one whose pipelines never run.
        let working = StoreThenEnqueue {
            events: store,
            queue: Arc::new(MemoryQueue::new()),
        };
        let retry = crate::testkit::sample_event(&key, &["p"], 60_000);
        assert_eq!(
            working
                .accept(&retry, &one_job(&retry), Some(&claim))
                .await
                .unwrap(),
            Admission::New
        );
    }
}
