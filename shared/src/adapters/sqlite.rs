//! SQLite adapter: the embedded shape's storage and durable queue, in one file.
//!
//! Writes go through one writer thread that commits whatever has queued up in a
//! single transaction (group commit): each caller is answered only after the
//! commit that holds its write, so an answered write survives `kill -9`, and
//! hundreds of concurrent writers share one fsync. WAL mode lets readers run on
//! their own connections beside the writer.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::domain::{
    CorrelationId, Event, EventKey, EventRecord, Job, PipelineDefinition, PipelineJob,
    PipelineOutcome, ResultRecord, Timestamp, Token, Webhook,
};
use crate::error::{Conflict, StoreError};
use crate::outgoing::model::{Invocation, OutgoingWebhook, ReferenceId};
use crate::ports::{
    Delivery, EventIntake, EventStore, InvocationStore, JobQueue, OutgoingStore, PipelineStore,
    Recorded, StoreResult, WebhookStore,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS webhooks (
    token      TEXT PRIMARY KEY,
    event_key  TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    data       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    correlation_id TEXT PRIMARY KEY,
    expires_at     INTEGER NOT NULL,
    listeners      TEXT NOT NULL,
    data           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_expiry ON events(expires_at);
CREATE TABLE IF NOT EXISTS outcomes (
    correlation_id TEXT NOT NULL,
    pipeline       TEXT NOT NULL,
    data           TEXT NOT NULL,
    PRIMARY KEY (correlation_id, pipeline)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pipelines (
    name       TEXT PRIMARY KEY,
    listens_to TEXT NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pipelines_by_event_key ON pipelines(listens_to);
CREATE TABLE IF NOT EXISTS jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT UNIQUE,
    data          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_visibility ON jobs(visible_at, id);
CREATE TABLE IF NOT EXISTS outgoing_webhooks (
    id  TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS invocations (
    reference_id TEXT PRIMARY KEY,
    webhook_id   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    doc          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invocations_by_webhook ON invocations(webhook_id, created_at);
CREATE INDEX IF NOT EXISTS invocations_by_expiry ON invocations(expires_at);
";

/// Most writes committed in one transaction.
const MAX_GROUP: usize = 1024;
/// Longest an idle `receive_jobs` waits before looking at the table again.
const RECHECK_EVERY: Duration = Duration::from_secs(1);
/// Read connections beside the writer.
const READERS: usize = 4;

/// A write run inside the group transaction; it answers once the commit is known.
type WriteFn = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

/// Whether a write must be on disk before it is answered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// fsync before answering: accepted events, outcomes, configuration.
    Full,
    /// Queue bookkeeping (taking, releasing, deleting a job): lost on power
    /// failure, it only means a job is handed out once more, which the worker
    /// tolerates. Still safe against a process crash (WAL).
    Relaxed,
}

struct WriteJob {
    durability: Durability,
    run: WriteFn,
}
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// How often the background thread moves the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Everything of the embedded shape in one SQLite file (WAL, `synchronous=FULL`).
pub struct SqliteStore {
    writer: mpsc::Sender<WriteJob>,
    /// Dropped with the store, which stops the checkpoint thread.
    _checkpointer: mpsc::Sender<()>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    jobs_arrived: Arc<Notify>,
}

fn open_connection(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk, not only in the OS cache, before anyone is answered.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let rw = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let writer_conn = open_connection(path, rw).map_err(StoreError::unavailable)?;
        writer_conn
            .execute_batch(SCHEMA)
            .map_err(StoreError::unavailable)?;
        // Checkpoints run on their own thread, so a commit never waits for one.
        writer_conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(StoreError::unavailable)?;
        let checkpoint_conn = open_connection(path, rw).map_err(StoreError::unavailable)?;
        let (checkpointer, stop_checkpoints) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoint_conn, stop_checkpoints))
            .map_err(StoreError::unavailable)?;
        let readers = (0..READERS)
            .map(|_| {
                open_connection(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map(Mutex::new)
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(StoreError::unavailable)?;
        let (writer, jobs) = mpsc::channel::<WriteJob>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || group_commit_loop(writer_conn, jobs))
            .map_err(StoreError::unavailable)?;
        Ok(SqliteStore {
            writer,
            _checkpointer: checkpointer,
            readers,
            next_reader: AtomicUsize::new(0),
            jobs_arrived: Arc::new(Notify::new()),
        })
    }

    /// Runs `f` in the next group transaction and answers after its commit is on disk.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.write_with(Durability::Full, f).await
    }

    /// Runs `f` in the next group transaction and answers after its commit.
    async fn write_with<T: Send + 'static>(
        &self,
        durability: Durability,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        let run: WriteFn = Box::new(move |conn| {
            let result = f(conn);
            let failed = result.is_err();
            let completion: Completion = Box::new(move |commit| {
                let _ = tx.send(commit.map_err(StoreError::Unavailable).and(result));
            });
            (failed, completion)
        });
        self.writer
            .send(WriteJob { durability, run })
            .map_err(|_| StoreError::unavailable("sqlite writer stopped"))?;
        rx.await
            .map_err(|_| StoreError::unavailable("sqlite writer stopped"))?
    }

    /// Runs a read on one of the reader connections. Reads are point lookups of
    /// microseconds, so they run inline rather than hopping threads.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let conn = self.readers[i]
            .lock()
            .map_err(|_| StoreError::unavailable("reader poisoned"))?;
        f(&conn).map_err(StoreError::unavailable)
    }

    /// Deletes events (and their outcomes) and invocation records past their
    /// expiry; returns how many events and invocations went.
    /// Reads already ignore them; this only reclaims space.
    pub async fn purge_expired(&self, now: Timestamp) -> StoreResult<usize> {
        self.write_with(Durability::Relaxed, move |c| {
            c.execute(
                "DELETE FROM outcomes WHERE correlation_id IN
                   (SELECT correlation_id FROM events WHERE expires_at <= ?1)",
                [now.0],
            )?;
            let events = c.execute("DELETE FROM events WHERE expires_at <= ?1", [now.0])?;
            let invocations =
                c.execute("DELETE FROM invocations WHERE expires_at <= ?1", [now.0])?;
            Ok(events + invocations)
        })
        .await
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::unavailable(err)
    }
}

fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation)
}

fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(StoreError::unavailable)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The writer thread: takes every write waiting, runs each in its own savepoint
/// (one failing write does not undo the others), commits once, then answers all.
fn group_commit_loop(conn: Connection, jobs: mpsc::Receiver<WriteJob>) {
    let mut synchronous = Durability::Full;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let needed = if batch.iter().any(|j| j.durability == Durability::Full) {
            Durability::Full
        } else {
            Durability::Relaxed
        };
        if needed != synchronous {
            let level = if needed == Durability::Full {
                "FULL"
            } else {
                "NORMAL"
            };
            if conn.pragma_update(None, "synchronous", level).is_ok() {
                synchronous = needed;
            }
        }
        if synchronous != needed && needed == Durability::Full {
            // Never answer a durable write without FULL: let the callers retry.
            tracing::error!("sqlite: cannot switch to synchronous=FULL");
            continue;
        }
        if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Dropping the batch drops each caller's answer channel: they all get
            // `Unavailable` and may retry; nothing was written.
            tracing::error!(error = %err, writes = batch.len(), "sqlite: cannot begin a transaction");
            continue;
        }
        let completions: Vec<Completion> = batch
            .into_iter()
            .map(|job| run_in_savepoint(&conn, job.run).1)
            .collect();
        let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for done in completions {
            done(commit.clone());
        }
    }
}

/// Copies committed WAL frames into the database file until the store is dropped.
/// PASSIVE never blocks the writer or readers; it does what it can each round.
fn checkpoint_loop(conn: Connection, stop: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %err, "sqlite: checkpoint failed");
        }
    }
    // Leave a compact file behind on a clean shutdown.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn run_in_savepoint(conn: &Connection, job: WriteFn) -> (bool, Completion) {
    let _ = conn.execute_batch("SAVEPOINT w");
    let (failed, done) = job(conn);
    let end = if failed {
        "ROLLBACK TO w; RELEASE w"
    } else {
        "RELEASE w"
    };
    let _ = conn.execute_batch(end);
    (failed, done)
}

fn webhook_conflict(conn: &Connection, webhook: &Webhook) -> StoreError {
    let key_owner: Option<String> = conn
        .query_row(
            "SELECT token FROM webhooks WHERE event_key = ?1",
            [webhook.event_key.as_str()],
            |r| r.get(0),
        )
        .optional()
        .ok()
        .flatten();
    match key_owner {
        Some(owner) if owner != webhook.token.reveal() => {
            StoreError::Conflict(Conflict::EventKeyTaken)
        }
        _ => StoreError::Conflict(Conflict::TokenTaken),
    }
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let webhook = webhook.clone();
        let data = to_json(&webhook)?;
        self.write(move |c| {
            let inserted = c
                .prepare_cached(
                    "INSERT INTO webhooks (token, event_key, created_at, data) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    webhook.token.reveal(),
                    webhook.event_key.as_str(),
                    webhook.created_at.0,
                    data
                ]);
            match inserted {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(webhook_conflict(c, &webhook)),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let webhook = webhook.clone();
        let data = to_json(&webhook)?;
        self.write(move |c| {
            let updated = c
                .prepare_cached("UPDATE webhooks SET event_key = ?2, data = ?3 WHERE token = ?1")?
                .execute(params![
                    webhook.token.reveal(),
                    webhook.event_key.as_str(),
                    data
                ]);
            match updated {
                Ok(0) => Err(StoreError::NotFound),
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => {
                    Err(StoreError::Conflict(Conflict::EventKeyTaken))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn get_by_token(&self, token: &Token) -> StoreResult<Option<Webhook>> {
        let token = token.reveal();
        self.read(|c| {
            c.prepare_cached("SELECT data FROM webhooks WHERE token = ?1")?
                .query_row([token], |r| from_json(&r.get::<_, String>(0)?))
                .optional()
        })
    }

    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.read(|c| {
            c.prepare_cached("SELECT data FROM webhooks ORDER BY created_at, event_key")?
                .query_map([], |r| from_json(&r.get::<_, String>(0)?))?
                .collect()
        })
    }

    async fn delete_webhook(&self, token: &Token) -> StoreResult<bool> {
        let token = token.reveal();
        self.write(move |c| Ok(c.execute("DELETE FROM webhooks WHERE token = ?1", [token])? > 0))
            .await
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn put_event(&self, record: &EventRecord) -> StoreResult<()> {
        let row = EventRow::of(record)?;
        self.write(move |c| row.insert(c)).await
    }

    async fn get_event(&self, id: &CorrelationId) -> StoreResult<Option<EventRecord>> {
        let now = Timestamp::now().0;
        self.read(|c| {
            c.prepare_cached(
                "SELECT expires_at, listeners, data FROM events WHERE correlation_id = ?1 AND expires_at > ?2",
            )?
            .query_row(params![id.to_string(), now], |r| {
                Ok(EventRecord {
                    expires_at: Timestamp(r.get(0)?),
                    listeners: from_json(&r.get::<_, String>(1)?)?,
                    event: from_json::<Event>(&r.get::<_, String>(2)?)?,
                })
            })
            .optional()
        })
    }

    async fn get_result(&self, id: &CorrelationId) -> StoreResult<Option<ResultRecord>> {
        let now = Timestamp::now().0;
        let key = id.to_string();
        self.read(|c| {
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
                correlation_id: *id,
                listeners,
                outcomes,
                expires_at,
            }))
        })
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
        self.write(move |c| {
            let known: Option<i64> = c
                .prepare_cached("SELECT 1 FROM events WHERE correlation_id = ?1")?
                .query_row([&key], |r| r.get(0))
                .optional()?;
            if known.is_none() {
                return Err(StoreError::NotFound);
            }
            let inserted = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO outcomes (correlation_id, pipeline, data) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![key, pipeline, data])?;
            Ok(if inserted == 1 {
                Recorded::New
            } else {
                Recorded::AlreadyThere
            })
        })
        .await
    }
}

#[async_trait]
impl PipelineStore for SqliteStore {
    async fn put_pipeline(&self, pipeline: &PipelineDefinition) -> StoreResult<()> {
        let name = pipeline.name.clone();
        let key = pipeline.listens_to.as_str().to_owned();
        let data = to_json(pipeline)?;
        self.write(move |c| {
            c.execute(
                "INSERT INTO pipelines (name, listens_to, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET listens_to = excluded.listens_to, data = excluded.data",
                params![name, key, data],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_pipeline(&self, name: &str) -> StoreResult<Option<PipelineDefinition>> {
        self.read(|c| {
            c.prepare_cached("SELECT data FROM pipelines WHERE name = ?1")?
                .query_row([name], |r| from_json(&r.get::<_, String>(0)?))
                .optional()
        })
    }

    async fn list_pipelines(&self) -> StoreResult<Vec<PipelineDefinition>> {
        self.read(|c| {
            c.prepare_cached("SELECT data FROM pipelines ORDER BY name")?
                .query_map([], |r| from_json(&r.get::<_, String>(0)?))?
                .collect()
        })
    }

    async fn delete_pipeline(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        self.write(move |c| Ok(c.execute("DELETE FROM pipelines WHERE name = ?1", [name])? > 0))
            .await
    }

    async fn listeners_of(&self, key: &EventKey) -> StoreResult<Vec<String>> {
        self.read(|c| {
            c.prepare_cached("SELECT name FROM pipelines WHERE listens_to = ?1 ORDER BY name")?
                .query_map([key.as_str()], |r| r.get(0))?
                .collect()
        })
    }
}

#[async_trait]
impl OutgoingStore for SqliteStore {
    async fn put_outgoing(&self, webhook: &OutgoingWebhook) -> StoreResult<()> {
        let id = webhook.id.clone();
        let doc = to_json(webhook)?;
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO outgoing_webhooks (id, doc) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
            )?
            .execute(params![id, doc])?;
            Ok(())
        })
        .await
    }

    async fn get_outgoing(&self, id: &str) -> StoreResult<Option<OutgoingWebhook>> {
        self.read(|c| {
            c.prepare_cached("SELECT doc FROM outgoing_webhooks WHERE id = ?1")?
                .query_row([id], |r| from_json(&r.get::<_, String>(0)?))
                .optional()
        })
    }

    async fn list_outgoing(&self) -> StoreResult<Vec<OutgoingWebhook>> {
        self.read(|c| {
            c.prepare_cached("SELECT doc FROM outgoing_webhooks ORDER BY id")?
                .query_map([], |r| from_json(&r.get::<_, String>(0)?))?
                .collect()
        })
    }

    async fn delete_outgoing(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |c| Ok(c.execute("DELETE FROM outgoing_webhooks WHERE id = ?1", [id])? > 0))
            .await
    }
}

#[async_trait]
impl InvocationStore for SqliteStore {
    async fn put_invocation(&self, invocation: &Invocation) -> StoreResult<()> {
        let id = invocation.reference_id.to_string();
        let webhook_id = invocation.webhook_id.clone();
        let (created_at, expires_at) = (invocation.created_at.0, invocation.expires_at.0);
        let doc = to_json(invocation)?;
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO invocations (reference_id, webhook_id, created_at, expires_at, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(reference_id) DO UPDATE SET webhook_id = excluded.webhook_id,
                   created_at = excluded.created_at, expires_at = excluded.expires_at,
                   doc = excluded.doc",
            )?
            .execute(params![id, webhook_id, created_at, expires_at, doc])?;
            Ok(())
        })
        .await
    }

    async fn get_invocation(&self, id: &ReferenceId) -> StoreResult<Option<Invocation>> {
        let now = Timestamp::now().0;
        self.read(|c| {
            c.prepare_cached(
                "SELECT doc FROM invocations WHERE reference_id = ?1 AND expires_at > ?2",
            )?
            .query_row(params![id.to_string(), now], |r| {
                from_json(&r.get::<_, String>(0)?)
            })
            .optional()
        })
    }

    async fn list_invocations(
        &self,
        webhook_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Invocation>> {
        let now = Timestamp::now().0;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            c.prepare_cached(
                "SELECT doc FROM invocations WHERE webhook_id = ?1 AND expires_at > ?2
                 ORDER BY created_at DESC, reference_id DESC LIMIT ?3",
            )?
            .query_map(params![webhook_id, now, limit], |r| {
                from_json(&r.get::<_, String>(0)?)
            })?
            .collect()
        })
    }
}

/// An event as stored, serialized before it reaches the writer thread.
struct EventRow {
    id: String,
    expires_at: i64,
    listeners: String,
    data: String,
}

impl EventRow {
    fn of(record: &EventRecord) -> StoreResult<Self> {
        Ok(EventRow {
            id: record.event.correlation_id.to_string(),
            expires_at: record.expires_at.0,
            listeners: to_json(&record.listeners)?,
            data: to_json(&record.event)?,
        })
    }

    fn insert(&self, c: &Connection) -> StoreResult<()> {
        let inserted = c
            .prepare_cached(
                "INSERT INTO events (correlation_id, expires_at, listeners, data) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![self.id, self.expires_at, self.listeners, self.data]);
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(Conflict::AlreadyExists)),
            Err(e) => Err(e.into()),
        }
    }
}

fn job_rows<J: Into<Job> + Clone>(jobs: &[J]) -> StoreResult<Vec<String>> {
    jobs.iter().map(|j| to_json(&j.clone().into())).collect()
}

fn insert_jobs(c: &Connection, rows: &[String]) -> StoreResult<()> {
    let now = Timestamp::now().0;
    let mut insert = c.prepare_cached("INSERT INTO jobs (visible_at, data) VALUES (?1, ?2)")?;
    for data in rows {
        insert.execute(params![now, data])?;
    }
    Ok(())
}

#[async_trait]
impl EventIntake for SqliteStore {
    /// The event and its jobs in one transaction: never one without the other.
    async fn accept(&self, record: &EventRecord, jobs: &[PipelineJob]) -> StoreResult<()> {
        let row = EventRow::of(record)?;
        let jobs = job_rows(jobs)?;
        let any_jobs = !jobs.is_empty();
        self.write(move |c| {
            row.insert(c)?;
            insert_jobs(c, &jobs)
        })
        .await?;
        if any_jobs {
            self.jobs_arrived.notify_waiters();
        }
        Ok(())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl JobQueue for SqliteStore {
    async fn send_jobs(&self, jobs: &[Job]) -> StoreResult<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let rows = job_rows(jobs)?;
        self.write(move |c| insert_jobs(c, &rows)).await?;
        self.jobs_arrived.notify_waiters();
        Ok(())
    }

    async fn receive_jobs(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> StoreResult<Vec<Delivery>> {
        let deadline = Instant::now() + wait;
        let max = i64::try_from(max.max(1)).unwrap_or(i64::MAX);
        let visibility = millis(visibility);
        loop {
            let arrived = self.jobs_arrived.notified();
            let (taken, next_visible) = self
                .write_with(Durability::Relaxed, move |c| {
                    let now = Timestamp::now().0;
                    let rows = c
                        .prepare_cached(
                            "UPDATE jobs SET visible_at = ?1, receive_count = receive_count + 1,
                                 receipt = lower(hex(randomblob(16)))
                             WHERE id IN (SELECT id FROM jobs WHERE visible_at <= ?2
                                          ORDER BY visible_at, id LIMIT ?3)
                             RETURNING id, data, receipt, receive_count",
                        )?
                        .query_map(params![now + visibility, now, max], |r| {
                            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?))
                        })?
                        .collect::<rusqlite::Result<Vec<(i64, String, String, u32)>>>()?;
                    let mut taken = Vec::with_capacity(rows.len());
                    for (id, data, receipt, receive_count) in rows {
                        match serde_json::from_str(&data) {
                            Ok(job) => taken.push(Delivery { job, receipt, receive_count }),
                            // A row nobody can read would block nothing but itself
                            // forever: drop it rather than hand it out again and again.
                            Err(err) => {
                                tracing::error!(job_id = id, error = %err, "dropping an unreadable job");
                                c.execute("DELETE FROM jobs WHERE id = ?1", [id])?;
                            }
                        }
                    }
                    let next: Option<i64> = if taken.is_empty() {
                        c.query_row("SELECT min(visible_at) FROM jobs", [], |r| r.get(0))?
                    } else {
                        None
                    };
                    Ok((taken, next.map(|t| t - now)))
                })
                .await?;
            if !taken.is_empty() {
                return Ok(taken);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            // Jobs sent by another process on the same file raise no in-process
            // signal; looking again every second picks them up.
            let until = next_visible
                .map(|ms| now + Duration::from_millis(ms.max(0) as u64))
                .map_or(deadline, |t| t.min(deadline))
                .min(now + RECHECK_EVERY);
            let _ = tokio::time::timeout_at(until, arrived).await;
        }
    }

    async fn delete_job(&self, receipt: &str) -> StoreResult<()> {
        let receipt = receipt.to_owned();
        self.write_with(Durability::Relaxed, move |c| {
            c.execute("DELETE FROM jobs WHERE receipt = ?1", [receipt])?;
            Ok(())
        })
        .await
    }

    async fn release_job(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        let receipt = receipt.to_owned();
        let delay = millis(delay);
        self.write_with(Durability::Relaxed, move |c| {
            c.execute(
                "UPDATE jobs SET visible_at = ?2, receipt = NULL WHERE receipt = ?1",
                params![receipt, Timestamp::now().0 + delay],
            )?;
            Ok(())
        })
        .await?;
        self.jobs_arrived.notify_waiters();
        Ok(())
    }
}
