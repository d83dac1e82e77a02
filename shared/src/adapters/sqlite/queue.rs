//! [`JobQueue`](crate::ports::JobQueue) on SQLite: the durable queue of the embedded shape.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::engine::Durability;
use super::{SqliteStore, to_json};
use crate::adapters::job_wait::receive_within;
use crate::domain::{Job, Timestamp};
use crate::ports::{Delivery, JobQueue, StoreResult};

/// Longest an idle `receive_jobs` waits before looking at the table again.
const RECHECK_EVERY: Duration = Duration::from_secs(1);
pub(super) fn job_rows<J: Into<Job> + Clone>(jobs: &[J]) -> StoreResult<Vec<String>> {
    jobs.iter().map(|j| to_json(&j.clone().into())).collect()
}

pub(super) fn insert_jobs(c: &Connection, rows: &[String]) -> StoreResult<()> {
    let now = Timestamp::now().0;
    let mut insert = c.prepare_cached("INSERT INTO jobs (visible_at, data) VALUES (?1, ?2)")?;
    for data in rows {
        insert.execute(params![now, data])?;
    }
    Ok(())
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
        let max = i64::try_from(max.max(1)).unwrap_or(i64::MAX);
        let visibility = millis(visibility);
        // Jobs sent by another process on the same file raise no in-process
        // signal; looking again every second picks them up.
        receive_within(wait, Some(RECHECK_EVERY), &self.jobs_arrived, || async {
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
                return Ok(Ok(taken));
            }
            let now = tokio::time::Instant::now();
            Ok(Err(
                next_visible.map(|ms| now + Duration::from_millis(ms.max(0) as u64))
            ))
        })
        .await
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
