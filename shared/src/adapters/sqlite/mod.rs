//! SQLite adapter: the embedded shape's storage and durable queue, in one SQLite file.
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

mod dead_letters;
mod engine;
mod eventlog;
mod events;
mod outgoing;
mod pipelines;
mod queue;
mod schema;
#[cfg(test)]
mod tests;
mod webhooks;

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{Notify, oneshot};

use crate::domain::Timestamp;
use crate::error::StoreError;
use crate::ports::StoreResult;
use engine::{
    Completion, Durability, READERS, ReadFn, WalBound, WriteFn, WriteJob, WriterTask,
    checkpoint_loop, group_commit_loop, open_connection, reader_loop,
};
use schema::{MIGRATIONS, migrate};

pub use crate::config::{DEFAULT_WAL_MAX_BYTES, MAX_WAL_MAX_BYTES, MIN_WAL_MAX_BYTES};
pub use engine::wal_path;

/// Everything of the embedded shape in one SQLite file (WAL, `synchronous=FULL`).
pub struct SqliteStore {
    writer: mpsc::Sender<WriterTask>,
    /// Dropped with the store, which stops the checkpoint thread.
    _checkpointer: mpsc::Sender<()>,
    /// Dropped with the store, which stops the reader threads.
    readers: mpsc::Sender<ReadFn>,
    jobs_arrived: Arc<Notify>,
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

    /// Deletes events (with their outcomes and effect claims), invocation
    /// records and rotated-away webhook tokens past their expiry; returns how
    /// many of those went.
    /// Reads already ignore them; this only reclaims space.
    pub async fn purge_expired(&self, now: Timestamp) -> StoreResult<usize> {
        self.write_with(Durability::Relaxed, move |c| {
            for dependent in ["outcomes", "effects"] {
                c.execute(
                    &format!(
                        "DELETE FROM {dependent} WHERE correlation_id IN
                           (SELECT correlation_id FROM events WHERE kept_until <= ?1)"
                    ),
                    [now.0],
                )?;
            }
            let events = c.execute("DELETE FROM events WHERE kept_until <= ?1", [now.0])?;
            let invocations =
                c.execute("DELETE FROM invocations WHERE expires_at <= ?1", [now.0])?;
            let previous_tokens = c.execute(
                "DELETE FROM webhook_previous_tokens WHERE expires_at <= ?1",
                [now.0],
            )?;
            let claims = c.execute("DELETE FROM dedup_claims WHERE expires_at <= ?1", [now.0])?;
            Ok(events + invocations + previous_tokens + claims)
        })
        .await
    }
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

/// `serve` owns the file (the data dir's lock), so it does the upkeep.
#[async_trait::async_trait]
impl crate::ports::Housekeeping for SqliteStore {
    async fn reclaim_taken_jobs(&self) -> StoreResult<usize> {
        SqliteStore::reclaim_taken_jobs(self).await
    }
    async fn purge_expired(&self, now: Timestamp) -> StoreResult<usize> {
        SqliteStore::purge_expired(self, now).await
    }
    async fn close(&self) {
        SqliteStore::close(self).await
    }
}
