//! [`EventStore`](crate::ports::EventStore), [`EffectLog`](crate::ports::EffectLog) and
//! [`EventIntake`](crate::ports::EventIntake) on SQLite.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::queue::{insert_jobs, job_rows};
use super::{SqliteStore, from_json, is_unique_violation, to_json};
use crate::domain::dedup::{Admission, DedupClaim, DedupKey};
use crate::domain::eventlog::PipelineStatuses;
use crate::domain::{
    CorrelationId, Event, EventRecord, PipelineJob, PipelineOutcome, ResultRecord, Timestamp,
};
use crate::error::{Conflict, StoreError};
use crate::ports::{EffectLog, EventIntake, EventStore, Recorded, StoreResult};

impl SqliteStore {
    /// Stores many events in one transaction: bulk loading (`hookflow bench`
    /// fills a log of a million events this way), not the receive path.
    pub async fn put_events(&self, records: &[EventRecord]) -> StoreResult<()> {
        let rows = records
            .iter()
            .map(EventRow::of)
            .collect::<StoreResult<Vec<_>>>()?;
        self.write(move |c| rows.iter().try_for_each(|row| row.insert(c)))
            .await
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn put_event(&self, record: &EventRecord) -> StoreResult<()> {
        let row = EventRow::of(record)?;
        self.write(move |c| row.insert(c)).await
    }

    async fn put_claimed_event(
        &self,
        record: &EventRecord,
        claim: &DedupClaim,
    ) -> StoreResult<Admission> {
        let row = EventRow::of(record)?;
        let claim = *claim;
        self.write(move |c| {
            if let Some(first) = take_claim(c, &claim, &row.id)? {
                return Ok(Admission::Duplicate(first));
            }
            row.insert(c)?;
            Ok(Admission::New)
        })
        .await
    }

    async fn release_claim(&self, key: &DedupKey, id: &CorrelationId) -> StoreResult<()> {
        let key = key.0;
        let id = id.to_string();
        self.write(move |c| {
            c.prepare_cached(
                "DELETE FROM dedup_claims WHERE key_hash = ?1 AND correlation_id = ?2",
            )?
            .execute(params![&key[..], id])?;
            Ok(())
        })
        .await
    }

    async fn get_event(&self, id: &CorrelationId) -> StoreResult<Option<EventRecord>> {
        let now = Timestamp::now().0;
        let key = id.to_string();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT expires_at, kept_until, listeners, data FROM events
                 WHERE correlation_id = ?1 AND kept_until > ?2",
            )?
            .query_row(params![key, now], |r| {
                Ok(EventRecord {
                    expires_at: Timestamp(r.get(0)?),
                    retained_until: Timestamp(r.get(1)?),
                    listeners: from_json(&r.get::<_, String>(2)?)?,
                    event: from_json::<Event>(&r.get::<_, String>(3)?)?,
                })
            })
            .optional()
        })
        .await
    }

    async fn get_result(&self, id: &CorrelationId) -> StoreResult<Option<ResultRecord>> {
        let id = *id;
        let now = Timestamp::now().0;
        let key = id.to_string();
        self.read(move |c| {
            let head = c
                .prepare_cached(
                    "SELECT expires_at, listeners FROM events WHERE correlation_id = ?1 AND expires_at > ?2",
                )?
                .query_row(params![key, now], |r| {
                    Ok((Timestamp(r.get(0)?), from_json::<Vec<String>>(&r.get::<_, String>(1)?)?))
                })
                .optional()?;
            let Some((expires_at, listeners)) = head else {
                return Ok(None);
            };
            let mut outcomes = BTreeMap::new();
            if !listeners.is_empty() {
                let mut stmt =
                    c.prepare_cached("SELECT pipeline, data FROM outcomes WHERE correlation_id = ?1")?;
                let rows = stmt.query_map([&key], |r| {
                    Ok((r.get::<_, String>(0)?, from_json::<PipelineOutcome>(&r.get::<_, String>(1)?)?))
                })?;
                for row in rows {
                    let (pipeline, outcome) = row?;
                    outcomes.insert(pipeline, outcome);
                }
            }
            Ok(Some(ResultRecord {
                correlation_id: id,
                listeners,
                outcomes,
                expires_at,
            }))
        })
        .await
    }

    async fn record_outcome(
        &self,
        id: &CorrelationId,
        pipeline: &str,
        outcome: &PipelineOutcome,
    ) -> StoreResult<Recorded> {
        let key = id.to_string();
        let pipeline = pipeline.to_owned();
        let data = to_json(outcome)?;
        let status = outcome.status();
        self.write(move |c| {
            let statuses: String = c
                .prepare_cached("SELECT pipelines FROM events WHERE correlation_id = ?1")?
                .query_row([&key], |r| r.get(0))
                .optional()?
                .ok_or(StoreError::NotFound)?;
            let inserted = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO outcomes (correlation_id, pipeline, data) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![key, pipeline, data])?;
            if inserted == 0 {
                return Ok(Recorded::AlreadyThere);
            }
            // In the outcome's transaction: the log's status never lags its result.
            let mut statuses: PipelineStatuses = from_json(&statuses)?;
            statuses.0.insert(pipeline, status);
            c.prepare_cached(
                "UPDATE events SET pipelines = ?2, status = ?3 WHERE correlation_id = ?1",
            )?
            .execute(params![key, to_json(&statuses)?, statuses.status().as_str()])?;
            Ok(Recorded::New)
        })
        .await
    }
}

/// Claims `claim.key` for event `id`, taking over a claim expired by
/// `claim.claimed_at`: one conditional upsert, so of two writers only one
/// changes the row. `Some(first)` when a live claim holds the key: then
/// nothing changed, and the caller stores nothing.
fn take_claim(c: &Connection, claim: &DedupClaim, id: &str) -> StoreResult<Option<CorrelationId>> {
    let changed = c
        .prepare_cached(
            "INSERT INTO dedup_claims (key_hash, correlation_id, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key_hash) DO UPDATE
             SET correlation_id = excluded.correlation_id, expires_at = excluded.expires_at
             WHERE dedup_claims.expires_at <= ?4",
        )?
        .execute(params![
            &claim.key.0[..],
            id,
            claim.expires_at.0,
            claim.claimed_at.0
        ])?;
    if changed == 1 {
        return Ok(None);
    }
    let first: String = c
        .prepare_cached("SELECT correlation_id FROM dedup_claims WHERE key_hash = ?1")?
        .query_row([&claim.key.0[..]], |r| r.get(0))?;
    CorrelationId::parse(&first)
        .map(Some)
        .ok_or_else(|| StoreError::Corrupt(format!("a dedup claim names no event: {first}")))
}

/// `NotFound` unless the event `key` is stored (expired or not).
fn event_must_exist(c: &Connection, key: &str) -> StoreResult<()> {
    let known: Option<i64> = c
        .prepare_cached("SELECT 1 FROM events WHERE correlation_id = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    known.map(|_| ()).ok_or(StoreError::NotFound)
}

#[async_trait]
impl EffectLog for SqliteStore {
    async fn claim_effect(&self, id: &CorrelationId, effect: &str) -> StoreResult<bool> {
        let key = id.to_string();
        let effect = effect.to_owned();
        // A durable write: the claim is on disk before the effect happens, so
        // no crash or power cut can forget an effect that may have happened.
        self.write(move |c| {
            event_must_exist(c, &key)?;
            let inserted = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO effects (correlation_id, effect, claimed_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![key, effect, Timestamp::now().0])?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn release_effect(&self, id: &CorrelationId, effect: &str) -> StoreResult<()> {
        let key = id.to_string();
        let effect = effect.to_owned();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM effects WHERE correlation_id = ?1 AND effect = ?2")?
                .execute(params![key, effect])?;
            Ok(())
        })
        .await
    }
}

/// An event as stored, serialized before it reaches the writer thread.
struct EventRow {
    id: String,
    expires_at: i64,
    kept_until: i64,
    listeners: String,
    data: String,
    event_key: String,
    received_at: i64,
    method: String,
    content_type: Option<String>,
    size: i64,
    replay_of: Option<String>,
    pipelines: String,
    status: &'static str,
}

impl EventRow {
    fn of(record: &EventRecord) -> StoreResult<Self> {
        let event = &record.event;
        let statuses = PipelineStatuses::pending(&record.listeners);
        Ok(EventRow {
            id: event.correlation_id.to_string(),
            expires_at: record.expires_at.0,
            kept_until: record.kept_until().0,
            listeners: to_json(&record.listeners)?,
            data: to_json(event)?,
            event_key: event.event_key.as_str().to_owned(),
            received_at: event.received_at.0,
            method: event.method.clone(),
            content_type: event.content_type.clone(),
            size: i64::try_from(event.size).unwrap_or(i64::MAX),
            replay_of: event.replay_of.map(|id| id.to_string()),
            status: statuses.status().as_str(),
            pipelines: to_json(&statuses)?,
        })
    }

    fn insert(&self, c: &Connection) -> StoreResult<()> {
        let inserted = c
            .prepare_cached(
                "INSERT INTO events (correlation_id, expires_at, kept_until, listeners, data,
                   event_key, received_at, method, content_type, size, replay_of, pipelines, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                self.id,
                self.expires_at,
                self.kept_until,
                self.listeners,
                self.data,
                self.event_key,
                self.received_at,
                self.method,
                self.content_type,
                self.size,
                self.replay_of,
                self.pipelines,
                self.status,
            ]);
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(Conflict::AlreadyExists)),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl EventIntake for SqliteStore {
    /// The claim, the event and its jobs in one transaction: never one
    /// without the others.
    async fn accept(
        &self,
        record: &EventRecord,
        jobs: &[PipelineJob],
        claim: Option<&DedupClaim>,
    ) -> StoreResult<Admission> {
        let row = EventRow::of(record)?;
        let jobs = job_rows(jobs)?;
        let any_jobs = !jobs.is_empty();
        let claim = claim.copied();
        let admission = self
            .write(move |c| {
                if let Some(claim) = &claim
                    && let Some(first) = take_claim(c, claim, &row.id)?
                {
                    return Ok(Admission::Duplicate(first));
                }
                row.insert(c)?;
                insert_jobs(c, &jobs)?;
                Ok(Admission::New)
            })
            .await?;
        if any_jobs && admission == Admission::New {
            self.jobs_arrived.notify_waiters();
        }
        Ok(admission)
    }
}
