//! In-memory adapters: the reference behaviour of every port, for unit tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::job_wait::receive_within;
use crate::domain::dedup::{Admission, DedupClaim, DedupKey};
use crate::domain::eventlog::{EventPage, EventQuery, EventSummary};
use crate::domain::outgoing::{Invocation, OutgoingWebhook, ReferenceId};
use crate::domain::rotation::Rotation;
use crate::domain::verify::Refusals;
use crate::domain::{
    CorrelationId, EventKey, EventRecord, Job, PipelineDefinition, PipelineOutcome, ResultRecord,
    Timestamp, Token, Webhook,
};
use crate::error::{Conflict, StoreError};
use crate::ports::{
    DeadLetter, DeadLetterPage, DeadLetters, Delivery, EffectLog, EventLog, EventStore,
    InvocationStore, JobQueue, LoggedEvent, MAX_REDRIVE_PER_CALL, OutgoingStore, PipelineStore,
    QueueDepth, QueueDepthGauge, Recorded, Redriven, StoreResult, WebhookStore,
};

#[derive(Default)]
struct Tables {
    webhooks: BTreeMap<Token, Webhook>,
    refusals: HashMap<Token, Refusals>,
    events: HashMap<CorrelationId, EventRecord>,
    outcomes: HashMap<CorrelationId, BTreeMap<String, PipelineOutcome>>,
    effects: HashSet<(CorrelationId, String)>,
    /// Delivery claims: the event holding each key, until when.
    dedup_claims: HashMap<DedupKey, (CorrelationId, Timestamp)>,
    pipelines: BTreeMap<String, PipelineDefinition>,
    outgoing: BTreeMap<String, OutgoingWebhook>,
    invocations: HashMap<ReferenceId, Invocation>,
}

/// Webhooks, events, pipelines, outgoing webhooks and their invocations in one
/// process's memory.
#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().expect("memory store lock")
    }
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let mut t = self.tables();
        if t.webhooks.contains_key(&webhook.token) {
            return Err(StoreError::Conflict(Conflict::TokenTaken));
        }
        if t.webhooks
            .values()
            .any(|w| w.event_key == webhook.event_key)
        {
            return Err(StoreError::Conflict(Conflict::EventKeyTaken));
        }
        t.webhooks.insert(webhook.token, webhook.clone());
        Ok(())
    }

    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let mut t = self.tables();
        if !t.webhooks.contains_key(&webhook.token) {
            return Err(StoreError::NotFound);
        }
        if t.webhooks
            .values()
            .any(|w| w.event_key == webhook.event_key && w.token != webhook.token)
        {
            return Err(StoreError::Conflict(Conflict::EventKeyTaken));
        }
        t.webhooks.insert(webhook.token, webhook.clone());
        Ok(())
    }

    async fn get_by_token(&self, token: &Token) -> StoreResult<Option<Webhook>> {
        let t = self.tables();
        let now = Timestamp::now();
        Ok(t.webhooks
            .get(token)
            .or_else(|| t.webhooks.values().find(|w| w.answers_to(token, now)))
            .cloned())
    }

    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        let mut all: Vec<Webhook> = self.tables().webhooks.values().cloned().collect();
        all.sort_by_key(|w| (w.created_at, w.event_key.clone()));
        Ok(all)
    }

    async fn delete_webhook(&self, token: &Token) -> StoreResult<bool> {
        let mut t = self.tables();
        t.refusals.remove(token);
        Ok(t.webhooks.remove(token).is_some())
    }

    async fn rotate_token(&self, current: &Token, rotation: &Rotation) -> StoreResult<Webhook> {
        let mut t = self.tables();
        if t.webhooks.contains_key(&rotation.new_token) {
            return Err(StoreError::Conflict(Conflict::TokenTaken));
        }
        let webhook = t.webhooks.remove(current).ok_or(StoreError::NotFound)?;
        let rotated = webhook.rotated(rotation);
        t.webhooks.insert(rotated.token, rotated.clone());
        if let Some(refusals) = t.refusals.remove(current) {
            t.refusals.insert(rotated.token, refusals);
        }
        Ok(rotated)
    }

    async fn record_refusal(&self, token: &Token, code: &str, at: Timestamp) -> StoreResult<()> {
        let mut t = self.tables();
        if !t.webhooks.contains_key(token) {
            return Ok(());
        }
        let refused = t.refusals.get(token).map_or(0, |r| r.refused) + 1;
        t.refusals.insert(
            *token,
            Refusals {
                refused,
                last_code: code.to_owned(),
                last_at: at,
            },
        );
        Ok(())
    }

    async fn refusals(&self, token: &Token) -> StoreResult<Option<Refusals>> {
        Ok(self.tables().refusals.get(token).cloned())
    }
}

#[async_trait]
impl EventLog for MemoryStore {
    async fn list_events(&self, query: &EventQuery) -> StoreResult<EventPage> {
        let now = Timestamp::now();
        let t = self.tables();
        let no_outcomes = BTreeMap::new();
        let mut matching: Vec<EventSummary> = t
            .events
            .values()
            .filter(|r| r.kept_until() > now)
            .filter(|r| {
                query
                    .event_key
                    .as_ref()
                    .is_none_or(|k| *k == r.event.event_key)
            })
            .filter(|r| query.in_range(r.event.received_at))
            .map(|r| {
                let outcomes = t.outcomes.get(&r.event.correlation_id);
                EventSummary::of(r, outcomes.unwrap_or(&no_outcomes))
            })
            .filter(|e| query.status.is_none_or(|s| e.status() == s))
            .filter(|e| query.after.is_none_or(|after| e.position() < after))
            .collect();
        matching.sort_by_key(|e| std::cmp::Reverse(e.position()));
        let more = matching.len() > query.limit;
        matching.truncate(query.limit);
        let next = if more {
            matching.last().map(EventSummary::position)
        } else {
            None
        };
        Ok(EventPage {
            entries: matching,
            next,
        })
    }

    async fn logged_event(&self, id: &CorrelationId) -> StoreResult<Option<LoggedEvent>> {
        let now = Timestamp::now();
        let t = self.tables();
        Ok(t.events
            .get(id)
            .filter(|r| r.kept_until() > now)
            .map(|record| LoggedEvent {
                record: record.clone(),
                outcomes: t.outcomes.get(id).cloned().unwrap_or_default(),
            }))
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn put_event(&self, record: &EventRecord) -> StoreResult<()> {
        let mut t = self.tables();
        let id = record.event.correlation_id;
        if t.events.contains_key(&id) {
            return Err(StoreError::Conflict(Conflict::AlreadyExists));
        }
        t.events.insert(id, record.clone());
        Ok(())
    }

    async fn put_claimed_event(
        &self,
        record: &EventRecord,
        claim: &DedupClaim,
    ) -> StoreResult<Admission> {
        let mut t = self.tables();
        let id = record.event.correlation_id;
        if let Some((first, expires_at)) = t.dedup_claims.get(&claim.key)
            && *expires_at > claim.claimed_at
        {
            return Ok(Admission::Duplicate(*first));
        }
        if t.events.contains_key(&id) {
            return Err(StoreError::Conflict(Conflict::AlreadyExists));
        }
        t.events.insert(id, record.clone());
        t.dedup_claims.insert(claim.key, (id, claim.expires_at));
        Ok(Admission::New)
    }

    async fn release_claim(&self, key: &DedupKey, id: &CorrelationId) -> StoreResult<()> {
        let mut t = self.tables();
        if t.dedup_claims
            .get(key)
            .is_some_and(|(holder, _)| holder == id)
        {
            t.dedup_claims.remove(key);
        }
        Ok(())
    }

    async fn get_event(&self, id: &CorrelationId) -> StoreResult<Option<EventRecord>> {
        let now = Timestamp::now();
        Ok(self
            .tables()
            .events
            .get(id)
            .filter(|r| r.kept_until() > now)
            .cloned())
    }

    async fn get_result(&self, id: &CorrelationId) -> StoreResult<Option<ResultRecord>> {
        let now = Timestamp::now();
        let t = self.tables();
        Ok(t.events
            .get(id)
            .filter(|r| r.expires_at > now)
            .map(|r| ResultRecord {
                correlation_id: *id,
                listeners: r.listeners.clone(),
                outcomes: t.outcomes.get(id).cloned().unwrap_or_default(),
                expires_at: r.expires_at,
            }))
    }

    async fn record_outcome(
        &self,
        id: &CorrelationId,
        pipeline: &str,
        outcome: &PipelineOutcome,
    ) -> StoreResult<Recorded> {
        let mut t = self.tables();
        if !t.events.contains_key(id) {
            return Err(StoreError::NotFound);
        }
        let outcomes = t.outcomes.entry(*id).or_default();
        if outcomes.contains_key(pipeline) {
            return Ok(Recorded::AlreadyThere);
        }
        outcomes.insert(pipeline.to_owned(), outcome.clone());
        Ok(Recorded::New)
    }
}

#[async_trait]
impl EffectLog for MemoryStore {
    async fn claim_effect(&self, id: &CorrelationId, effect: &str) -> StoreResult<bool> {
        let mut t = self.tables();
        if !t.events.contains_key(id) {
            return Err(StoreError::NotFound);
        }
        Ok(t.effects.insert((*id, effect.to_owned())))
    }

    async fn release_effect(&self, id: &CorrelationId, effect: &str) -> StoreResult<()> {
        self.tables().effects.remove(&(*id, effect.to_owned()));
        Ok(())
    }
}

#[async_trait]
impl PipelineStore for MemoryStore {
    async fn put_pipeline(&self, pipeline: &PipelineDefinition) -> StoreResult<()> {
        self.tables()
            .pipelines
            .insert(pipeline.name.clone(), pipeline.clone());
        Ok(())
    }

    async fn get_pipeline(&self, name: &str) -> StoreResult<Option<PipelineDefinition>> {
        Ok(self.tables().pipelines.get(name).cloned())
    }

    async fn list_pipelines(&self) -> StoreResult<Vec<PipelineDefinition>> {
        Ok(self.tables().pipelines.values().cloned().collect())
    }

    async fn delete_pipeline(&self, name: &str) -> StoreResult<bool> {
        Ok(self.tables().pipelines.remove(name).is_some())
    }

    async fn listeners_of(&self, key: &EventKey) -> StoreResult<Vec<String>> {
        Ok(self
            .tables()
            .pipelines
            .values()
            .filter(|p| &p.listens_to == key)
            .map(|p| p.name.clone())
            .collect())
    }
}

#[async_trait]
impl OutgoingStore for MemoryStore {
    async fn put_outgoing(&self, webhook: &OutgoingWebhook) -> StoreResult<()> {
        self.tables()
            .outgoing
            .insert(webhook.id.clone(), webhook.clone());
        Ok(())
    }

    async fn get_outgoing(&self, id: &str) -> StoreResult<Option<OutgoingWebhook>> {
        Ok(self.tables().outgoing.get(id).cloned())
    }

    async fn list_outgoing(&self) -> StoreResult<Vec<OutgoingWebhook>> {
        Ok(self.tables().outgoing.values().cloned().collect())
    }

    async fn delete_outgoing(&self, id: &str) -> StoreResult<bool> {
        Ok(self.tables().outgoing.remove(id).is_some())
    }
}

#[async_trait]
impl InvocationStore for MemoryStore {
    async fn put_invocation(&self, invocation: &Invocation) -> StoreResult<()> {
        self.tables()
            .invocations
            .insert(invocation.reference_id, invocation.clone());
        Ok(())
    }

    async fn get_invocation(&self, id: &ReferenceId) -> StoreResult<Option<Invocation>> {
        let now = Timestamp::now();
        Ok(self
            .tables()
            .invocations
            .get(id)
            .filter(|i| !i.is_expired(now))
            .cloned())
    }

    async fn list_invocations(
        &self,
        webhook_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Invocation>> {
        let now = Timestamp::now();
        let mut found: Vec<Invocation> = self
            .tables()
            .invocations
            .values()
            .filter(|i| i.webhook_id == webhook_id && !i.is_expired(now))
            .cloned()
            .collect();
        found.sort_by_key(|i| std::cmp::Reverse((i.created_at, i.reference_id)));
        found.truncate(limit);
        Ok(found)
    }
}

struct QueuedJob {
    seq: u64,
    /// The message as queued (JSON of a [`Job`], or anything a test queued).
    body: String,
    visible_at: Instant,
    receive_count: u32,
    receipt: Option<String>,
}

/// An at-least-once job queue in memory, with visibility timeouts like SQS.
#[derive(Default)]
pub struct MemoryQueue {
    jobs: Mutex<(u64, Vec<QueuedJob>)>,
    arrived: Notify,
    /// Dead-lettered messages, oldest first, and the next one's id.
    dead_letters: Mutex<(u64, Vec<DeadLetter>)>,
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a raw message, readable or not (tests of the unreadable case).
    pub fn send_raw(&self, body: &str) {
        self.push(vec![body.to_owned()]);
    }

    /// The dead-lettered messages and their reasons, oldest first.
    pub fn dead_letters(&self) -> Vec<(String, String)> {
        self.dead_letters
            .lock()
            .expect("queue lock")
            .1
            .iter()
            .map(|d| (d.body.clone(), d.reason.clone().unwrap_or_default()))
            .collect()
    }

    fn push(&self, bodies: Vec<String>) {
        let now = Instant::now();
        {
            let mut guard = self.jobs.lock().expect("queue lock");
            let (seq, jobs) = &mut *guard;
            for body in bodies {
                *seq += 1;
                jobs.push(QueuedJob {
                    seq: *seq,
                    body,
                    visible_at: now,
                    receive_count: 0,
                    receipt: None,
                });
            }
        }
        self.arrived.notify_waiters();
    }

    /// Takes up to `max` visible jobs, or tells when the next one becomes visible.
    fn take_visible(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, Option<Instant>> {
        let now = Instant::now();
        let mut guard = self.jobs.lock().expect("queue lock");
        let (_, jobs) = &mut *guard;
        jobs.sort_by_key(|j| (j.visible_at, j.seq));
        let mut taken = Vec::new();
        for queued in jobs.iter_mut().filter(|j| j.visible_at <= now).take(max) {
            queued.visible_at = now + visibility;
            queued.receive_count += 1;
            let receipt = uuid::Uuid::new_v4().to_string();
            queued.receipt = Some(receipt.clone());
            taken.push(Delivery {
                body: queued.body.clone(),
                receipt,
                receive_count: queued.receive_count,
            });
        }
        if taken.is_empty() {
            Err(jobs.iter().map(|j| j.visible_at).min())
        } else {
            Ok(taken)
        }
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn send_jobs(&self, new_jobs: &[Job]) -> StoreResult<()> {
        let bodies = new_jobs
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::unavailable)?;
        self.push(bodies);
        Ok(())
    }

    async fn receive_jobs(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> StoreResult<Vec<Delivery>> {
        receive_within(wait, None, &self.arrived, || async {
            Ok(self.take_visible(max.max(1), visibility))
        })
        .await
    }

    async fn delete_job(&self, receipt: &str) -> StoreResult<()> {
        let mut guard = self.jobs.lock().expect("queue lock");
        guard.1.retain(|j| j.receipt.as_deref() != Some(receipt));
        Ok(())
    }

    async fn release_job(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        {
            let mut guard = self.jobs.lock().expect("queue lock");
            if let Some(j) = guard
                .1
                .iter_mut()
                .find(|j| j.receipt.as_deref() == Some(receipt))
            {
                j.visible_at = Instant::now() + delay;
                j.receipt = None;
            }
        }
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn dead_letter_job(&self, delivery: &Delivery, reason: &str) -> StoreResult<()> {
        // Kept from the delivery itself, as SQS keeps it: a message handed to a
        // Lambda never was in this queue.
        self.jobs
            .lock()
            .expect("queue lock")
            .1
            .retain(|j| j.receipt.as_deref() != Some(delivery.receipt.as_str()));
        let mut guard = self.dead_letters.lock().expect("queue lock");
        let (seq, dead) = &mut *guard;
        *seq += 1;
        dead.push(DeadLetter {
            id: seq.to_string(),
            body: delivery.body.clone(),
            reason: Some(reason.to_owned()),
            receive_count: Some(delivery.receive_count),
            dead_at: Timestamp::now(),
        });
        Ok(())
    }
}

impl MemoryQueue {
    /// Takes the dead letter `id` out, if there is one.
    fn take_dead_letter(&self, id: &str) -> Option<DeadLetter> {
        let mut guard = self.dead_letters.lock().expect("queue lock");
        let at = guard.1.iter().position(|d| d.id == id)?;
        Some(guard.1.remove(at))
    }
}

#[async_trait]
impl QueueDepthGauge for MemoryQueue {
    async fn queue_depth(&self) -> StoreResult<QueueDepth> {
        let jobs = self.jobs.lock().expect("queue lock").1.len() as u64;
        let dead_letters = self.dead_letters.lock().expect("queue lock").1.len() as u64;
        Ok(QueueDepth { jobs, dead_letters })
    }
}

#[async_trait]
impl DeadLetters for MemoryQueue {
    async fn list_dead_letters(&self, limit: usize) -> StoreResult<DeadLetterPage> {
        let guard = self.dead_letters.lock().expect("queue lock");
        Ok(DeadLetterPage {
            dead_letters: guard.1.iter().take(limit).cloned().collect(),
            partial: guard.1.len() > limit,
        })
    }

    async fn redrive_dead_letter(&self, id: &str) -> StoreResult<bool> {
        // One lock holds both sides in memory, so "in both" never happens here.
        let Some(dead) = self.take_dead_letter(id) else {
            return Ok(false);
        };
        self.push(vec![dead.body]);
        Ok(true)
    }

    async fn redrive_all_dead_letters(&self) -> StoreResult<Redriven> {
        let (bodies, more): (Vec<String>, bool) = {
            let mut guard = self.dead_letters.lock().expect("queue lock");
            let count = guard.1.len().min(MAX_REDRIVE_PER_CALL);
            let bodies = guard.1.drain(..count).map(|d| d.body).collect();
            (bodies, !guard.1.is_empty())
        };
        let count = bodies.len();
        self.push(bodies);
        Ok(Redriven { count, more })
    }

    async fn delete_dead_letter(&self, id: &str) -> StoreResult<bool> {
        Ok(self.take_dead_letter(id).is_some())
    }
}
