//! [`ResultSignal`]s: in-process wake-ups when the worker shares the process
//! with the pollers, and a re-read interval when it does not (Lambda).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::domain::CorrelationId;
use crate::ports::{ResultSignal, Wakeup};

type Waiters = Mutex<HashMap<CorrelationId, Vec<oneshot::Sender<()>>>>;

/// Wakes long-polls in the same process the moment a result is recorded.
#[derive(Default, Clone)]
pub struct LocalSignal {
    waiters: Arc<Waiters>,
}

impl LocalSignal {
    /// A signal with nobody waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many ids have someone waiting (for leak checks in tests).
    pub fn waiting_ids(&self) -> usize {
        self.waiters.lock().expect("signal lock").len()
    }
}

impl ResultSignal for LocalSignal {
    fn subscribe(&self, id: &CorrelationId) -> Wakeup {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .expect("signal lock")
            .entry(*id)
            .or_default()
            .push(tx);
        Box::pin(Subscription {
            id: *id,
            waiters: self.waiters.clone(),
            rx,
        })
    }

    fn notify(&self, id: &CorrelationId) {
        let senders = self.waiters.lock().expect("signal lock").remove(id);
        for tx in senders.into_iter().flatten() {
            let _ = tx.send(());
        }
    }
}

/// A pending wake-up; removes itself from the map when dropped unfired, so ids
/// that never finish do not accumulate.
struct Subscription {
    id: CorrelationId,
    waiters: Arc<Waiters>,
    rx: oneshot::Receiver<()>,
}

impl Future for Subscription {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.rx).poll(cx).map(|_| ())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.rx.close();
        // A drop can run while a panic unwinds; panicking again on a poisoned
        // lock would abort the process, and the map is still consistent.
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = waiters.get_mut(&self.id) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                waiters.remove(&self.id);
            }
        }
    }
}

/// For pollers in another process than the worker: wakes after a fixed interval,
/// so the poller reads the result again.
pub struct PollingSignal {
    interval: std::time::Duration,
}

impl PollingSignal {
    /// Re-read every `interval`.
    pub fn new(interval: std::time::Duration) -> Self {
        PollingSignal { interval }
    }
}

impl ResultSignal for PollingSignal {
    fn subscribe(&self, _id: &CorrelationId) -> Wakeup {
        Box::pin(tokio::time::sleep(self.interval))
    }

    fn notify(&self, _id: &CorrelationId) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn notify_wakes_and_timeouts_clean_up() {
        let signal = LocalSignal::new();
        let id = CorrelationId::generate();
        let woken = signal.subscribe(&id);
        signal.notify(&id);
        tokio::time::timeout(Duration::from_secs(1), woken)
            .await
            .unwrap();

        let pending = signal.subscribe(&id);
        assert_eq!(signal.waiting_ids(), 1);
        assert!(
            tokio::time::timeout(Duration::from_millis(10), pending)
                .await
                .is_err()
        );
        assert_eq!(signal.waiting_ids(), 0);
    }
}
