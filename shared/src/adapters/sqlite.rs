//! SQLite adapter: the embedded shape's storage and durable queue, in one file.
//!
//! Writes go through one writer thread that commits whatever has queued up in a
//! single transaction (group commit): each caller is answered only after the
//! commit that holds its write, so an answered write survives `kill -9`, and
//! hundreds of concurrent writers share one fsync. WAL mode lets readers run on
//! their own connections beside the writer, on a pool of reader threads, so a
//! slow read never holds up an async worker thread.
//!
//! The write-ahead log stays bounded: a background thread copies it into the
//! database file (PASSIVE checkpoints, which never block anyone), and once the
//! log passes its size bound the writer thread checkpoints it completely and
//! restarts it from its first byte, holding the next commit for that moment. Under steady load a
//! PASSIVE checkpoint alone never catches up (a new commit lands before it is
//! done), so without that reset the log would grow for ever.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub use crate::config::{DEFAULT_WAL_MAX_BYTES, MAX_WAL_MAX_BYTES, MIN_WAL_MAX_BYTES};
use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{Notify, oneshot};

use crate::domain::{
    CorrelationId, Event, EventKey, EventRecord, Job, PipelineDefinition, PipelineJob,
    PipelineOutcome, ResultRecord, Timestamp, Token, Webhook,
};
use crate::error::{Conflict, StoreError};
use crate::outgoing::model::{Invocation, OutgoingWebhook, ReferenceId};
use crate::ports::{
    Delivery, EffectLog, EventIntake, EventStore, InvocationStore, JobQueue, OutgoingStore,
    PipelineStore, Recorded, StoreResult, WebhookStore,
};

/// The schema, version by version: entry `i` takes a file from `user_version`
/// `i` to `i + 1`, in one transaction with the version bump. Adding a migration
/// is appending one entry; never edit an entry that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: everything up to the dead-letter table. `IF NOT EXISTS` because files
    // written before the schema was versioned (user_version 0, tables present)
    // are adopted by running this step on them.
    "
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
",
    // 2: claims on the side effects done at most once per event (a pipeline
    // step's mail), which go with their event (`purge_expired` deletes both);
    // and the jobs the worker gave up on (unreadable, or they kept ending the
    // process), kept for an operator to look at and requeue.
    "
CREATE TABLE effects (
    correlation_id TEXT NOT NULL,
    effect         TEXT NOT NULL,
    claimed_at     INTEGER NOT NULL,
    PRIMARY KEY (correlation_id, effect)
) WITHOUT ROWID;
CREATE TABLE dead_letters (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id        INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    dead_at       INTEGER NOT NULL,
    data          TEXT NOT NULL
);
",
];

/// Most writes committed in one transaction.
const MAX_GROUP: usize = 1024;
/// Longest an idle `receive_jobs` waits before looking at the table again.
const RECHECK_EVERY: Duration = Duration::from_secs(1);
/// Reader threads (each with its own connection) beside the writer.
const READERS: usize = 4;
/// How long a connection waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the background thread copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// How long a WAL reset waits for readers still on the old log (in-process reads
/// take microseconds; only another process can hold one for long).
const RESET_WAIT: Duration = Duration::from_millis(200);
/// After a reset that could not finish (disk full, a foreign reader), the writer
/// tries again no sooner than this, so commits are not held on every batch.
const RESET_RETRY: Duration = Duration::from_millis(250);

/// A write run inside the group transaction; it answers once the commit is known.
type WriteFn = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;
/// A read run on one of the reader threads; it answers through its own channel.
type ReadFn = Box<dyn FnOnce(&Connection) + Send>;

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

/// What the writer thread is asked to do, in order.
enum WriterTask {
    Write(WriteJob),
    /// Commit what came before, leave an empty WAL, stop, then answer.
    Close(oneshot::Sender<()>),
}

/// Everything of the embedded shape in one SQLite file (WAL, `synchronous=FULL`).
pub struct SqliteStore {
    writer: mpsc::Sender<WriterTask>,
    /// Dropped with the store, which stops the checkpoint thread.
    _checkpointer: mpsc::Sender<()>,
    /// Dropped with the store, which stops the reader threads.
    readers: mpsc::Sender<ReadFn>,
    jobs_arrived: Arc<Notify>,
}

fn open_connection(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk, not only in the OS cache, before anyone is answered.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// The WAL file SQLite keeps beside the database at `path`.
pub fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database file at `path`,
    /// with the default WAL bound.
    pub fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with_wal_limit(path, DEFAULT_WAL_MAX_BYTES)
    }

    /// Opens the database file at `path`; its WAL is reset once it passes
    /// `wal_max_bytes` (it can pass it by at most the last group commit).
    pub fn open_with_wal_limit(path: &Path, wal_max_bytes: u64) -> StoreResult<Self> {
        let rw = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut writer_conn = open_connection(path, rw).map_err(StoreError::unavailable)?;
        migrate(&mut writer_conn, MIGRATIONS)?;
        // Checkpoints never run inside a commit: the background thread and the
        // writer's own reset (below) do them.
        writer_conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(StoreError::unavailable)?;
        // A log that was reset without being truncated is cut back to the bound
        // by the next commit, so the file never stays above it.
        writer_conn
            .pragma_update(
                None,
                "journal_size_limit",
                i64::try_from(wal_max_bytes).unwrap_or(i64::MAX),
            )
            .map_err(StoreError::unavailable)?;
        // The writer's reset and the background checkpoints take turns: SQLite
        // refuses a second checkpointer at once instead of waiting for it.
        let checkpoint_turn = Arc::new(Mutex::new(()));
        let checkpoint_conn = open_connection(path, rw).map_err(StoreError::unavailable)?;
        let (checkpointer, stop_checkpoints) = mpsc::channel::<()>();
        let turn = checkpoint_turn.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoint_conn, &turn, stop_checkpoints))
            .map_err(StoreError::unavailable)?;
        let (readers, reads) = mpsc::channel::<ReadFn>();
        let reads = Arc::new(Mutex::new(reads));
        for i in 0..READERS {
            let conn = open_connection(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(StoreError::unavailable)?;
            let reads = reads.clone();
            std::thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || reader_loop(conn, &reads))
                .map_err(StoreError::unavailable)?;
        }
        let wal = WalBound {
            path: wal_path(path),
            max_bytes: wal_max_bytes,
            checkpoint_turn,
            retry_at: None,
            stuck: false,
            held: false,
        };
        let (writer, tasks) = mpsc::channel::<WriterTask>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || group_commit_loop(writer_conn, wal, tasks))
            .map_err(StoreError::unavailable)?;
        Ok(SqliteStore {
            writer,
            _checkpointer: checkpointer,
            readers,
            jobs_arrived: Arc::new(Notify::new()),
        })
    }

    /// Commits every write sent before this call, checkpoints and truncates
    /// the WAL, and stops the writer: later writes answer `Unavailable`.
    /// `serve` calls it on a clean shutdown so no large WAL is left behind.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.writer.send(WriterTask::Close(done)).is_ok() {
            let _ = closed.await;
        }
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
                let _ = tx.send(commit.map_err(StoreError::unavailable).and(result));
            });
            (failed, completion)
        });
        self.writer
            .send(WriterTask::Write(WriteJob { durability, run }))
            .map_err(|_| StoreError::unavailable("sqlite writer stopped"))?;
        rx.await
            .map_err(|_| StoreError::unavailable("sqlite writer stopped"))?
    }

    /// Runs a read on the next free reader thread and awaits its answer. Even a
    /// point lookup can wait on a lock (up to the busy timeout), and listings
    /// scan whole tables, so reads never run on the caller's thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        self.readers
            .send(Box::new(move |conn| {
                let _ = tx.send(f(conn));
            }))
            .map_err(|_| StoreError::unavailable("sqlite readers stopped"))?;
        Ok(rx
            .await
            .map_err(|_| StoreError::unavailable("sqlite reader stopped"))??)
    }

    /// Makes every job an earlier process took, and never settled, visible at
    /// once instead of after its visibility timeout. Only for the process that
    /// owns the file (`serve` holds the data dir's lock), before its worker
    /// starts: then no taken job can be running anywhere. The receive counts
    /// stay, so a job whose runs end the process still runs out of attempts.
    pub async fn reclaim_taken_jobs(&self) -> StoreResult<usize> {
        let reclaimed = self
            .write(|c| {
                Ok(c.execute(
                    "UPDATE jobs SET visible_at = 0, receipt = NULL WHERE receipt IS NOT NULL",
                    [],
                )?)
            })
            .await?;
        self.jobs_arrived.notify_waiters();
        Ok(reclaimed)
    }

    /// Deletes events (with their outcomes and effect claims) and invocation
    /// records past their expiry; returns how many events and invocations went.
    /// Reads already ignore them; this only reclaims space.
    pub async fn purge_expired(&self, now: Timestamp) -> StoreResult<usize> {
        self.write_with(Durability::Relaxed, move |c| {
            for dependent in ["outcomes", "effects"] {
                c.execute(
                    &format!(
                        "DELETE FROM {dependent} WHERE correlation_id IN
                           (SELECT correlation_id FROM events WHERE expires_at <= ?1)"
                    ),
                    [now.0],
                )?;
            }
            let events = c.execute("DELETE FROM events WHERE expires_at <= ?1", [now.0])?;
            let invocations =
                c.execute("DELETE FROM invocations WHERE expires_at <= ?1", [now.0])?;
            Ok(events + invocations)
        })
        .await
    }
}

/// Brings the file to the newest schema version this code knows, one migration
/// at a time. A file written by a newer hookflow is refused, not guessed at.
fn migrate(conn: &mut Connection, migrations: &[&str]) -> StoreResult<()> {
    let known = migrations.len() as i64;
    let version = |c: &Connection| -> StoreResult<i64> {
        Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?)
    };
    let refuse_newer = |found: i64| {
        StoreError::unavailable(format!(
            "the database has schema version {found}, newer than the {known} this hookflow \
             knows: it was written by a newer hookflow; run that version (or a newer one) on it"
        ))
    };
    // The common case, a file already current, takes no write lock: another
    // process (a running server) may hold it.
    let found = version(conn)?;
    if found > known {
        return Err(refuse_newer(found));
    }
    if found == known {
        return Ok(());
    }
    // IMMEDIATE: two processes opening an old file at once migrate it once.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = version(&tx)?;
    if found > known {
        return Err(refuse_newer(found));
    }
    for (step, sql) in migrations.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql).map_err(|e| {
            StoreError::unavailable(format!("schema migration to version {}: {e}", step + 1))
        })?;
    }
    tx.pragma_update(None, "user_version", known)?;
    tx.commit()?;
    Ok(())
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        match err {
            // Raised by `from_json`: the row is there but cannot be decoded.
            rusqlite::Error::FromSqlConversionFailure(..) => StoreError::Corrupt(err.to_string()),
            other => StoreError::unavailable(other),
        }
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

/// A reader thread: takes the next read from the shared queue, runs it on its
/// own connection, until the store is dropped.
fn reader_loop(conn: Connection, reads: &Mutex<mpsc::Receiver<ReadFn>>) {
    loop {
        // The lock is held only while waiting for the next read, never while
        // running one, so the other threads go on serving.
        let next = match reads.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match next {
            Ok(read) => read(&conn),
            Err(_) => return,
        }
    }
}

/// The writer thread: takes every write waiting, runs each in its own savepoint
/// (one failing write does not undo the others), commits once, then answers all.
fn group_commit_loop(conn: Connection, mut wal: WalBound, tasks: mpsc::Receiver<WriterTask>) {
    let mut synchronous = Durability::Full;
    let mut closing = None;
    while closing.is_none() {
        let mut batch = match tasks.recv() {
            Ok(WriterTask::Write(job)) => vec![job],
            Ok(WriterTask::Close(done)) => {
                closing = Some(done);
                break;
            }
            Err(_) => return,
        };
        while batch.len() < MAX_GROUP {
            match tasks.try_recv() {
                Ok(WriterTask::Write(job)) => batch.push(job),
                Ok(WriterTask::Close(done)) => {
                    closing = Some(done);
                    break;
                }
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
        // Before the transaction: a checkpoint cannot run inside one.
        let held = wal.before_commit(&conn);
        if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Dropping the batch drops each caller's answer channel: they all get
            // `Unavailable` and may retry; nothing was written.
            tracing::error!(error = %err, writes = batch.len(), "sqlite: cannot begin a transaction");
            continue;
        }
        let mut completions = Vec::with_capacity(batch.len());
        for job in batch {
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back (disk full, I/O
                // error). The writes left are not run: outside a transaction
                // each would commit on its own while its caller hears the
                // batch failed.
                break;
            }
            completions.push(run_in_savepoint(&conn, job.run).1);
        }
        let commit = if conn.is_autocommit() {
            Err("the transaction was rolled back by SQLite".to_owned())
        } else if let Err(reason) = &held {
            // Run and rolled back: each caller gets its answer, nothing is written.
            Err(reason.clone())
        } else {
            conn.execute_batch("COMMIT").map_err(|e| e.to_string())
        };
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for done in completions {
            done(commit.clone());
        }
        if held.is_ok() {
            wal.after_commit(&conn, commit.is_ok());
        }
    }
    if let Some(done) = closing {
        // Every write queued before the close is committed: leave the WAL empty.
        if wal.reset(&conn, ResetMode::Truncate) != Reset::Emptied {
            tracing::warn!("sqlite: the WAL could not be emptied on shutdown");
        }
        let _ = done.send(());
    }
}

/// The writer's side of the WAL bound: resets the log after a commit that left
/// it past its bound, and after a failed commit holds further commits until a
/// checkpoint goes through again.
///
/// Why hold them: on a full disk the log can only give its space back by a
/// complete checkpoint, which first needs room in the database file for the
/// log's new pages. Space that comes back would otherwise be taken at once by
/// new commits growing the log, and the checkpoint would fail again for ever.
struct WalBound {
    path: PathBuf,
    max_bytes: u64,
    checkpoint_turn: Arc<Mutex<()>>,
    /// After a reset that did not finish: not before then.
    retry_at: Option<Instant>,
    /// A reset failed and nothing has succeeded since (logged once, not per try).
    stuck: bool,
    /// A commit failed: commits wait for a checkpoint that goes through.
    held: bool,
}

/// How a reset leaves the WAL file: see [`WalBound::reset`].
#[derive(Clone, Copy)]
enum ResetMode {
    Restart,
    Truncate,
}

/// What a reset achieved.
#[derive(PartialEq, Eq)]
enum Reset {
    /// Copied into the database file: the next commit starts the log over.
    Emptied,
    /// A lock or a reader in another process kept it from finishing.
    Blocked,
    /// The checkpoint failed (a full disk, an I/O error).
    Failed,
}

impl WalBound {
    /// Err while commits are held after a failed one: now and then it tries to
    /// reset the log first, and lets commits go on once a checkpoint went through.
    fn before_commit(&mut self, conn: &Connection) -> Result<(), String> {
        if !self.held {
            return Ok(());
        }
        if self.retry_at.is_none_or(|at| Instant::now() >= at) {
            if self.reset(conn, ResetMode::Truncate) == Reset::Failed {
                self.retry_at = Some(Instant::now() + RESET_RETRY);
            } else {
                self.held = false;
                self.retry_at = None;
                return Ok(());
            }
        }
        Err("a commit failed (disk full?): writes wait until the WAL can be checkpointed".into())
    }

    fn after_commit(&mut self, conn: &Connection, committed: bool) {
        if !committed {
            self.held = true;
            return;
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        if std::fs::metadata(&self.path).map_or(0, |m| m.len()) <= self.max_bytes {
            return;
        }
        self.retry_at = match self.reset(conn, ResetMode::Restart) {
            Reset::Emptied => None,
            Reset::Blocked | Reset::Failed => Some(Instant::now() + RESET_RETRY),
        };
    }

    /// Copies the whole WAL into the database file and waits for the readers
    /// still on it, so the next commit starts the log over from its first byte.
    /// Runs between commits on the writer's connection, so no commit lands
    /// meanwhile.
    ///
    /// `Restart` keeps the file's blocks (the next commits overwrite them, and
    /// `journal_size_limit` trims anything past the bound): under load, a log
    /// that must grow again from zero pays for block allocation in every fsync.
    /// `Truncate` gives the space back: on shutdown, and on a full disk.
    fn reset(&mut self, conn: &Connection, mode: ResetMode) -> Reset {
        let _turn = self
            .checkpoint_turn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = conn.busy_timeout(RESET_WAIT);
        let pragma = match mode {
            ResetMode::Restart => "PRAGMA wal_checkpoint(RESTART)",
            ResetMode::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
        };
        let outcome = conn.query_row(pragma, [], |r| r.get::<_, i64>(0));
        let _ = conn.busy_timeout(BUSY_TIMEOUT);
        let reset = match &outcome {
            Ok(0) => Reset::Emptied,
            Ok(_) => Reset::Blocked,
            Err(_) => Reset::Failed,
        };
        match (&outcome, &reset, self.stuck) {
            (_, Reset::Emptied, true) => {
                tracing::info!("sqlite: WAL reset again after earlier failures");
                self.stuck = false;
            }
            (Err(err), _, false) => {
                tracing::warn!(error = %err, "sqlite: WAL reset failed; trying again");
                self.stuck = true;
            }
            (Ok(_), Reset::Blocked, false) => {
                tracing::warn!("sqlite: WAL reset blocked by a reader; trying again");
                self.stuck = true;
            }
            _ => {}
        }
        reset
    }
}

/// Copies committed WAL frames into the database file until the store is dropped.
/// PASSIVE never blocks the writer or readers; it does what it can each round,
/// so the writer's reset finds little left to copy.
fn checkpoint_loop(conn: Connection, turn: &Mutex<()>, stop: mpsc::Receiver<()>) {
    let mut failing = false;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let outcome = {
            let _turn = turn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        };
        // Logged when it starts and stops failing: a full disk fails every round.
        match outcome {
            Err(err) if !failing => {
                tracing::warn!(error = %err, "sqlite: checkpoint failed");
                failing = true;
            }
            Ok(()) if failing => {
                tracing::info!("sqlite: checkpoints succeed again");
                failing = false;
            }
            _ => {}
        }
    }
    // Leave a compact file behind when the store is dropped.
    let _turn = turn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
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
        let token = token.reveal().to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT data FROM webhooks WHERE token = ?1")?
                .query_row([token], |r| from_json(&r.get::<_, String>(0)?))
                .optional()
        })
        .await
    }

    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.read(move |c| {
            c.prepare_cached("SELECT data FROM webhooks ORDER BY created_at, event_key")?
                .query_map([], |r| from_json(&r.get::<_, String>(0)?))?
                .collect()
        })
        .await
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
        let key = id.to_string();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT expires_at, listeners, data FROM events WHERE correlation_id = ?1 AND expires_at > ?2",
            )?
            .query_row(params![key, now], |r| {
                Ok(EventRecord {
                    expires_at: Timestamp(r.get(0)?),
                    listeners: from_json(&r.get::<_, String>(1)?)?,
                    event: from_json::<Event>(&r.get::<_, String>(2)?)?,
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
        self.write(move |c| {
            event_must_exist(c, &key)?;
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
        let name = name.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT data FROM pipelines WHERE name = ?1")?
                .query_row([name], |r| from_json(&r.get::<_, String>(0)?))
                .optional()
        })
        .await
    }

    async fn list_pipelines(&self) -> StoreResult<Vec<PipelineDefinition>> {
        self.read(move |c| {
            c.prepare_cached("SELECT data FROM pipelines ORDER BY name")?
                .query_map([], |r| from_json(&r.get::<_, String>(0)?))?
                .collect()
        })
        .await
    }

    async fn delete_pipeline(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        self.write(move |c| Ok(c.execute("DELETE FROM pipelines WHERE name = ?1", [name])? > 0))
            .await
    }

    async fn listeners_of(&self, key: &EventKey) -> StoreResult<Vec<String>> {
        let key = key.as_str().to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT name FROM pipelines WHERE listens_to = ?1 ORDER BY name")?
                .query_map([key], |r| r.get(0))?
                .collect()
        })
        .await
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
        let id = id.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT doc FROM outgoing_webhooks WHERE id = ?1")?
                .query_row([id], |r| from_json(&r.get::<_, String>(0)?))
                .optional()
        })
        .await
    }

    async fn list_outgoing(&self) -> StoreResult<Vec<OutgoingWebhook>> {
        self.read(move |c| {
            c.prepare_cached("SELECT doc FROM outgoing_webhooks ORDER BY id")?
                .query_map([], |r| from_json(&r.get::<_, String>(0)?))?
                .collect()
        })
        .await
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
        let key = id.to_string();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT doc FROM invocations WHERE reference_id = ?1 AND expires_at > ?2",
            )?
            .query_row(params![key, now], |r| from_json(&r.get::<_, String>(0)?))
            .optional()
        })
        .await
    }

    async fn list_invocations(
        &self,
        webhook_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Invocation>> {
        let now = Timestamp::now().0;
        let webhook_id = webhook_id.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            c.prepare_cached(
                "SELECT doc FROM invocations WHERE webhook_id = ?1 AND expires_at > ?2
                 ORDER BY created_at DESC, reference_id DESC LIMIT ?3",
            )?
            .query_map(params![webhook_id, now, limit], |r| {
                from_json(&r.get::<_, String>(0)?)
            })?
            .collect()
        })
        .await
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
        let deadline = tokio::time::Instant::now() + wait;
        let max = i64::try_from(max.max(1)).unwrap_or(i64::MAX);
        let visibility = millis(visibility);
        loop {
            let arrived = self.jobs_arrived.notified();
            let (taken, next_visible) = self
                .write_with(Durability::Relaxed, move |c| {
                    let now = Timestamp::now().0;
                    let taken = c
                        .prepare_cached(
                            "UPDATE jobs SET visible_at = ?1, receive_count = receive_count + 1,
                                 receipt = lower(hex(randomblob(16)))
                             WHERE id IN (SELECT id FROM jobs WHERE visible_at <= ?2
                                          ORDER BY visible_at, id LIMIT ?3)
                              RETURNING data, receipt, receive_count",
                        )?
                        .query_map(params![now + visibility, now, max], |r| {
                            Ok(Delivery {
                                body: r.get(0)?,
                                receipt: r.get(1)?,
                                receive_count: r.get(2)?,
                            })
                        })?
                        .collect::<rusqlite::Result<Vec<Delivery>>>()?;
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
            let now = tokio::time::Instant::now();
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

    async fn dead_letter_job(&self, delivery: &Delivery, reason: &str) -> StoreResult<()> {
        let receipt = delivery.receipt.clone();
        let reason = reason.to_owned();
        // Durable: a dead letter is the only trace left of the job.
        self.write(move |c| {
            // A stale receipt (the job was handed out again meanwhile) moves nothing.
            c.execute(
                "INSERT INTO dead_letters (job_id, receive_count, reason, dead_at, data)
                 SELECT id, receive_count, ?2, ?3, data FROM jobs WHERE receipt = ?1",
                params![receipt, reason, Timestamp::now().0],
            )?;
            c.execute("DELETE FROM jobs WHERE receipt = ?1", [&receipt])?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_version(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn a_new_file_gets_the_newest_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        drop(SqliteStore::open(&path).unwrap());
        assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
    }

    #[tokio::test]
    async fn a_file_from_before_versioning_is_adopted_as_version_1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let webhook = crate::testkit::sample_webhook();
        {
            // What the store created before the schema had a version.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute(
                "INSERT INTO webhooks (token, event_key, created_at, data) VALUES (?1, ?2, ?3, ?4)",
                params![
                    webhook.token.reveal(),
                    webhook.event_key.as_str(),
                    webhook.created_at.0,
                    serde_json::to_string(&webhook).unwrap()
                ],
            )
            .unwrap();
            assert_eq!(user_version(&path), 0);
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            user_version(&path),
            MIGRATIONS.len() as i64,
            "adopted as version 1, then migrated on"
        );
        assert_eq!(
            store.get_by_token(&webhook.token).await.unwrap(),
            Some(webhook),
            "the adopted file keeps its data"
        );
    }

    #[tokio::test]
    async fn a_version_1_file_gets_the_effects_table_and_keeps_its_events() {
        use crate::ports::{EffectLog, EventStore};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        let key = EventKey::parse("webhook.v1").unwrap();
        let record = crate::testkit::sample_event(&key, &["p"], 60_000);
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
            EventRow::of(&record).unwrap().insert(&conn).unwrap();
            assert_eq!(user_version(&path), 1);
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
        let id = record.event.correlation_id;
        assert_eq!(store.get_event(&id).await.unwrap(), Some(record));
        assert!(store.claim_effect(&id, "p/3/mail.send").await.unwrap());
        assert!(!store.claim_effect(&id, "p/3/mail.send").await.unwrap());
    }

    #[tokio::test]
    async fn purging_an_expired_event_drops_its_effect_claims() {
        use crate::ports::{EffectLog, EventStore};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("purge.db");
        let store = SqliteStore::open(&path).unwrap();
        let key = EventKey::parse("webhook.purge").unwrap();
        let expired = crate::testkit::sample_event(&key, &["p"], -1);
        let alive = crate::testkit::sample_event(&key, &["p"], 60_000);
        for record in [&expired, &alive] {
            store.put_event(record).await.unwrap();
            let id = record.event.correlation_id;
            assert!(store.claim_effect(&id, "p/3/mail.send").await.unwrap());
        }
        assert_eq!(store.purge_expired(Timestamp::now()).await.unwrap(), 1);
        let claims_of = |record: &EventRecord| -> i64 {
            Connection::open(&path)
                .unwrap()
                .query_row(
                    "SELECT count(*) FROM effects WHERE correlation_id = ?1",
                    [record.event.correlation_id.to_string()],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(claims_of(&expired), 0, "gone with its event");
        assert_eq!(claims_of(&alive), 1, "a live event keeps its claims");
    }

    #[test]
    fn a_file_from_a_newer_hookflow_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("newer.db");
        drop(SqliteStore::open(&path).unwrap());
        let newer = MIGRATIONS.len() as i64 + 1;
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();
        let Err(err) = SqliteStore::open(&path) else {
            panic!("a newer schema must not be opened");
        };
        let message = err.to_string();
        assert!(
            message.contains(&format!("schema version {newer}")) && message.contains("newer"),
            "{message}"
        );
        assert_eq!(user_version(&path), newer, "the file is left as it was");
    }

    /// A file at today's version, and today's migrations plus `added`.
    fn current_file_and_one_more_migration(
        added: &'static str,
    ) -> (tempfile::TempDir, PathBuf, Vec<&'static str>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("migrated.db");
        drop(SqliteStore::open(&path).unwrap());
        let mut migrations = MIGRATIONS.to_vec();
        migrations.push(added);
        (dir, path, migrations)
    }

    #[test]
    fn a_migration_appended_to_the_list_upgrades_existing_files() {
        let (_dir, path, next) = current_file_and_one_more_migration(
            "CREATE TABLE later_feature (id INTEGER PRIMARY KEY, data TEXT NOT NULL);",
        );
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &next).unwrap();
        assert_eq!(user_version(&path), next.len() as i64);
        conn.execute("INSERT INTO later_feature (data) VALUES ('x')", [])
            .unwrap();
        // Opening again with the same list is a no-op; with the old list, a refusal.
        migrate(&mut conn, &next).unwrap();
        assert!(migrate(&mut conn, MIGRATIONS).is_err());
    }

    #[test]
    fn a_failing_migration_leaves_the_file_at_its_version() {
        let (_dir, path, next) = current_file_and_one_more_migration(
            "CREATE TABLE half (id INTEGER); CREATE TABLE broken (;",
        );
        let mut conn = Connection::open(&path).unwrap();
        let err = migrate(&mut conn, &next).unwrap_err().to_string();
        assert!(err.contains(&format!("version {}", next.len())), "{err}");
        assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
        let half: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'half'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(half, 0, "the migration's transaction was rolled back");
    }

    /// A read that blocks its reader thread holds up neither the async thread
    /// that asked for it nor the other reads: on a single-threaded runtime, a
    /// second read is answered and releases the first.
    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_read_blocks_neither_the_runtime_nor_other_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("reads.db")).unwrap();
        let (release, released) = mpsc::channel::<()>();
        let slow = store.read(move |c| {
            // Inline on the runtime's only thread, this would wait out the timeout.
            let waited = released.recv_timeout(Duration::from_secs(10));
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|one| (one, waited.is_ok()))
        });
        let other = async {
            let n = store
                .read(|c| c.query_row("SELECT count(*) FROM webhooks", [], |r| r.get::<_, i64>(0)))
                .await;
            release.send(()).unwrap();
            n
        };
        let (slow, other) = tokio::join!(slow, other);
        assert_eq!(other.unwrap(), 0);
        assert_eq!(
            slow.unwrap(),
            (1, true),
            "the slow read was released by the other one"
        );
    }

    #[tokio::test]
    async fn close_commits_what_was_queued_and_empties_the_wal() {
        use crate::ports::WebhookStore;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("close.db");
        let store = SqliteStore::open(&path).unwrap();
        let webhook = crate::testkit::sample_webhook();
        store.insert_webhook(&webhook).await.unwrap();
        assert!(std::fs::metadata(wal_path(&path)).unwrap().len() > 0);
        store.close().await;
        assert_eq!(std::fs::metadata(wal_path(&path)).unwrap().len(), 0);
        assert!(
            store.delete_webhook(&webhook.token).await.is_err(),
            "no writes after close"
        );
        assert_eq!(
            store.get_by_token(&webhook.token).await.unwrap(),
            Some(webhook)
        );
    }

    #[tokio::test]
    async fn the_writer_resets_the_wal_once_it_passes_its_bound() {
        use crate::ports::EventStore;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bound.db");
        let store = SqliteStore::open_with_wal_limit(&path, MIN_WAL_MAX_BYTES).unwrap();
        let key = EventKey::parse("webhook.wal").unwrap();
        let (mut peak, mut resets, mut last) = (0, 0, 0);
        // One write per commit, a few pages each: several times the bound in all.
        for _ in 0..400 {
            let record = crate::testkit::sample_event(&key, &[], 60_000);
            store.put_event(&record).await.unwrap();
            let size = std::fs::metadata(wal_path(&path)).map_or(0, |m| m.len());
            resets += usize::from(size < last);
            peak = peak.max(size);
            last = size;
        }
        assert!(resets >= 2, "the bound was passed ({resets} resets)");
        assert!(
            peak <= MIN_WAL_MAX_BYTES + 64 * 1024,
            "peak {peak} bytes over the bound"
        );
    }
}
