//! [`DeadLetters`] on SQLite: the `dead_letters` table the queue moves jobs to.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::queue::insert_jobs;
use crate::domain::Timestamp;
use crate::ports::{
    DeadLetter, DeadLetterPage, DeadLetters, MAX_REDRIVE_PER_CALL, QueueDepth, QueueDepthGauge,
    Redriven, StoreResult,
};

/// A dead letter's id as the API shows it, or `None` for text that names no row.
fn row_id(id: &str) -> Option<i64> {
    id.parse().ok().filter(|n| *n > 0)
}

/// Moves the rows `ids` back into the queue as fresh jobs and deletes them, in
/// the caller's transaction; answers how many moved.
fn requeue(c: &Connection, ids: &[i64]) -> StoreResult<usize> {
    let mut bodies = Vec::with_capacity(ids.len());
    let mut read = c.prepare_cached("SELECT data FROM dead_letters WHERE id = ?1")?;
    let mut delete = c.prepare_cached("DELETE FROM dead_letters WHERE id = ?1")?;
    for id in ids {
        if let Some(body) = read.query_row([id], |r| r.get::<_, String>(0)).optional()? {
            delete.execute([id])?;
            bodies.push(body);
        }
    }
    insert_jobs(c, &bodies)?;
    Ok(bodies.len())
}

#[async_trait]
impl DeadLetters for SqliteStore {
    async fn list_dead_letters(&self, limit: usize) -> StoreResult<DeadLetterPage> {
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        let mut dead_letters = self
            .read(move |c| {
                c.prepare_cached(
                    "SELECT id, data, reason, receive_count, dead_at FROM dead_letters
                     ORDER BY id LIMIT ?1",
                )?
                .query_map([fetch], |r| {
                    Ok(DeadLetter {
                        id: r.get::<_, i64>(0)?.to_string(),
                        body: r.get(1)?,
                        reason: Some(r.get(2)?),
                        receive_count: Some(r.get(3)?),
                        dead_at: Timestamp(r.get(4)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let partial = dead_letters.len() > limit;
        dead_letters.truncate(limit);
        Ok(DeadLetterPage {
            dead_letters,
            partial,
        })
    }

    async fn redrive_dead_letter(&self, id: &str) -> StoreResult<bool> {
        let Some(id) = row_id(id) else {
            return Ok(false);
        };
        // One transaction: the job is queued and the dead letter gone, or neither.
        let moved = self.write(move |c| requeue(c, &[id])).await?;
        self.jobs_arrived.notify_waiters();
        Ok(moved == 1)
    }

    async fn redrive_all_dead_letters(&self) -> StoreResult<Redriven> {
        let bound = MAX_REDRIVE_PER_CALL as i64;
        let (count, more) = self
            .write(move |c| {
                let ids = c
                    .prepare_cached("SELECT id FROM dead_letters ORDER BY id LIMIT ?1")?
                    .query_map([bound + 1], |r| r.get::<_, i64>(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()?;
                let more = ids.len() > MAX_REDRIVE_PER_CALL;
                let take = ids.len().min(MAX_REDRIVE_PER_CALL);
                Ok((requeue(c, &ids[..take])?, more))
            })
            .await?;
        self.jobs_arrived.notify_waiters();
        Ok(Redriven { count, more })
    }

    async fn delete_dead_letter(&self, id: &str) -> StoreResult<bool> {
        let Some(id) = row_id(id) else {
            return Ok(false);
        };
        let deleted = self
            .write(move |c| Ok(c.execute("DELETE FROM dead_letters WHERE id = ?1", params![id])?))
            .await?;
        Ok(deleted == 1)
    }
}

#[async_trait]
impl QueueDepthGauge for SqliteStore {
    /// Two counts on a reader: the tables are small unless a backlog builds
    /// up, and then a count takes milliseconds per hundred thousand rows.
    async fn queue_depth(&self) -> StoreResult<QueueDepth> {
        self.read(|c| {
            let count = |table: &str| {
                c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n.max(0) as u64)
            };
            Ok(QueueDepth {
                jobs: count("jobs")?,
                dead_letters: count("dead_letters")?,
            })
        })
        .await
    }
}
