//! The wait loop of `receive_jobs` for the queues that live in this process
//! (SQLite, memory): like an SQS long poll, it answers as soon as jobs are
//! visible, and with nothing once the wait is over.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ports::{Delivery, StoreResult};

/// What one look at the queue found: the jobs it took, or else when the next
/// queued job becomes visible (`None` when nothing is queued).
pub(crate) type Look = Result<Vec<Delivery>, Option<Instant>>;

/// Takes visible jobs with `look`; while there are none, sleeps until the next
/// job becomes visible, `arrived` is notified, the `wait` is over, or at most
/// `recheck` has passed (for queues that other processes can fill without
/// notifying this one).
pub(crate) async fn receive_within<F, Fut>(
    wait: Duration,
    recheck: Option<Duration>,
    arrived: &Notify,
    mut look: F,
) -> StoreResult<Vec<Delivery>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<Look>>,
{
    let deadline = Instant::now() + wait;
    loop {
        // Subscribed before looking, so a job sent in between still wakes us.
        let notified = arrived.notified();
        let next_visible = match look().await? {
            Ok(taken) => return Ok(taken),
            Err(next) => next,
        };
        let now = Instant::now();
        if now >= deadline {
            return Ok(Vec::new());
        }
        let mut until = next_visible.map_or(deadline, |t| t.min(deadline)).max(now);
        if let Some(recheck) = recheck {
            until = until.min(now + recheck);
        }
        let _ = tokio::time::timeout_at(until, notified).await;
    }
}
