//! The group-commit engine: one writer thread that commits whatever has queued
//! up in one transaction, the reader pool, and the WAL bound (background
//! PASSIVE checkpoints, and a complete reset by the writer once the log passes
//! its bound).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

/// Most writes committed in one transaction.
const MAX_GROUP: usize = 1024;
/// Reader threads (each with its own connection) beside the writer.
pub(super) const READERS: usize = 4;
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
pub(super) type WriteFn = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;
/// A read run on one of the reader threads; it answers through its own channel.
pub(super) type ReadFn = Box<dyn FnOnce(&Connection) + Send>;

/// Whether a write must be on disk before it is answered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// fsync before answering: accepted events, outcomes, configuration.
    Full,
    /// Queue bookkeeping (taking, releasing, deleting a job): lost on power
    /// failure, it only means a job is handed out once more, which the worker
    /// tolerates. Still safe against a process crash (WAL).
    Relaxed,
}

pub(super) struct WriteJob {
    pub(super) durability: Durability,
    pub(super) run: WriteFn,
}
pub(super) type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// What the writer thread is asked to do, in order.
pub(super) enum WriterTask {
    Write(WriteJob),
    /// Commit what came before, leave an empty WAL, stop, then answer.
    Close(oneshot::Sender<()>),
}
pub(super) fn open_connection(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
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
/// A reader thread: takes the next read from the shared queue, runs it on its
/// own connection, until the store is dropped.
pub(super) fn reader_loop(conn: Connection, reads: &Mutex<mpsc::Receiver<ReadFn>>) {
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
pub(super) fn group_commit_loop(
    conn: Connection,
    mut wal: WalBound,
    tasks: mpsc::Receiver<WriterTask>,
) {
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
pub(super) struct WalBound {
    pub(super) path: PathBuf,
    pub(super) max_bytes: u64,
    pub(super) checkpoint_turn: Arc<Mutex<()>>,
    /// After a reset that did not finish: not before then.
    pub(super) retry_at: Option<Instant>,
    /// A reset failed and nothing has succeeded since (logged once, not per try).
    pub(super) stuck: bool,
    /// A commit failed: commits wait for a checkpoint that goes through.
    pub(super) held: bool,
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
pub(super) fn checkpoint_loop(conn: Connection, turn: &Mutex<()>, stop: mpsc::Receiver<()>) {
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
