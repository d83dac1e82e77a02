//! A byte budget shared by all connections: how much memory request bodies (or
//! large answers) may hold at once. Taking waits a short while for others to
//! give back; a request that cannot get its share is refused, never left hanging.

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub struct Budget {
    capacity: usize,
    used: Mutex<usize>,
    released: Notify,
}

impl Budget {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Budget {
            capacity,
            used: Mutex::new(0),
            released: Notify::new(),
        })
    }

    /// A reservation of nothing yet, to grow as bytes arrive.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        *self.used.lock().expect("budget lock")
    }

    /// Takes `bytes`, waiting up to `wait` for them to be free. Asking for more
    /// than the whole budget asks for the whole budget, so nothing waits forever.
    async fn take(&self, bytes: usize, wait: Duration) -> bool {
        let bytes = bytes.min(self.capacity);
        if self.try_take(bytes) {
            return true;
        }
        let deadline = Instant::now() + wait;
        loop {
            // Registered before the check, so a release in between still wakes us.
            let mut released = pin!(self.released.notified());
            released.as_mut().enable();
            if self.try_take(bytes) {
                return true;
            }
            // Out of time: answer now rather than yield to the timer once more
            // (a refused answer's memory is freed at once, not after the run queue).
            if Instant::now() >= deadline
                || tokio::time::timeout_at(deadline, released).await.is_err()
            {
                return false;
            }
        }
    }

    fn try_take(&self, bytes: usize) -> bool {
        let mut used = self.used.lock().expect("budget lock");
        let fits = *used + bytes <= self.capacity;
        if fits {
            *used += bytes;
        }
        fits
    }

    /// Counts `bytes` whether or not they fit: for what is already in memory and
    /// must be sent anyway. Others then wait until it is given back.
    fn force(&self, bytes: usize) {
        *self.used.lock().expect("budget lock") += bytes;
    }

    fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        {
            let mut used = self.used.lock().expect("budget lock");
            *used = used.saturating_sub(bytes);
        }
        self.released.notify_waiters();
    }
}

/// Bytes held from a [`Budget`], given back when dropped.
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Grows the reservation to `total` bytes, waiting up to `wait`; false (and
    /// unchanged) if the budget cannot give that much in time.
    pub async fn grow_to(&mut self, total: usize, wait: Duration) -> bool {
        let total = total.min(self.budget.capacity);
        if total <= self.bytes {
            return true;
        }
        if !self.budget.take(total - self.bytes, wait).await {
            return false;
        }
        self.bytes = total;
        true
    }

    /// Grows the reservation to `total` bytes without waiting, over the budget if need be.
    pub fn force_to(&mut self, total: usize) {
        if total > self.bytes {
            self.budget.force(total - self.bytes);
            self.bytes = total;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_WAIT: Duration = Duration::ZERO;

    #[tokio::test]
    async fn reservations_are_bounded_and_given_back() {
        let budget = Budget::new(100);
        let mut a = budget.reservation();
        assert!(a.grow_to(60, NO_WAIT).await);
        let mut b = budget.reservation();
        assert!(!b.grow_to(41, NO_WAIT).await, "over the budget");
        assert_eq!(b.bytes(), 0);
        assert!(b.grow_to(40, NO_WAIT).await, "exactly at the budget");
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn a_waiter_gets_what_is_given_back_within_its_wait() {
        let budget = Budget::new(100);
        let mut holder = budget.reservation();
        assert!(holder.grow_to(100, NO_WAIT).await);
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move {
                let mut r = budget.reservation();
                r.grow_to(50, Duration::from_secs(30)).await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(holder);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn more_than_the_budget_asks_for_all_of_it_instead_of_waiting_forever() {
        let budget = Budget::new(100);
        let mut r = budget.reservation();
        assert!(r.grow_to(1000, NO_WAIT).await);
        assert_eq!(r.bytes(), 100);
    }

    #[tokio::test]
    async fn forced_bytes_count_against_others() {
        let budget = Budget::new(100);
        let mut forced = budget.reservation();
        forced.force_to(150);
        let mut other = budget.reservation();
        assert!(!other.grow_to(1, NO_WAIT).await);
        drop(forced);
        assert!(other.grow_to(100, NO_WAIT).await);
    }
}
