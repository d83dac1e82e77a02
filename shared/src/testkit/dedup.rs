//! The rules of delivery claims: [`EventIntake::accept`] with a claim, and
//! [`EventStore::release_claim`].

use std::time::Duration;

use futures_util::future::join_all;

use super::{sample_event, unique_key};
use crate::domain::dedup::{Admission, DedupClaim, DedupKey};
use crate::domain::{EventKey, EventRecord, Job, PipelineJob, Timestamp};
use crate::ports::{EventIntake, EventStore, JobQueue};

/// How many copies of one delivery race in the concurrency rule.
pub const RACING_COPIES: usize = 32;

fn fresh_key() -> DedupKey {
    DedupKey(crate::random::secret_bytes())
}

fn claim(key: DedupKey, claimed_at: Timestamp, window_ms: i64) -> DedupClaim {
    DedupClaim {
        key,
        claimed_at,
        expires_at: Timestamp(claimed_at.0 + window_ms),
    }
}

/// An event with one listener `p`, and its job.
fn event_with_job(key: &EventKey) -> (EventRecord, Vec<PipelineJob>) {
    let record = sample_event(key, &["p"], 60_000);
    let jobs = vec![PipelineJob {
        correlation_id: record.event.correlation_id,
        pipeline: "p".into(),
    }];
    (record, jobs)
}

/// The correlation ids of the jobs now in the queue (taken out of it).
async fn drain(queue: &dyn JobQueue) -> Vec<crate::domain::CorrelationId> {
    let mut ids = Vec::new();
    loop {
        let taken = queue
            .receive_jobs(10, Duration::from_millis(500), Duration::from_secs(30))
            .await
            .unwrap();
        if taken.is_empty() {
            return ids;
        }
        for delivery in taken {
            queue.delete_job(&delivery.receipt).await.unwrap();
            if let Ok(Job::Pipeline(job)) = delivery.job() {
                ids.push(job.correlation_id);
            }
        }
    }
}

/// The rules of a claimed accept: a new key stores the event and queues its
/// jobs; a live key stores and queues nothing and names the first event; an
/// expired or released claim is taken over; of [`RACING_COPIES`] accepts of one
/// key at once, exactly one is new. The queue must be empty when it starts.
pub async fn dedup_conformance(
    intake: &dyn EventIntake,
    events: &dyn EventStore,
    queue: &dyn JobQueue,
) {
    let event_key = unique_key("webhook.dedup");
    let now = Timestamp::now();

    let key = fresh_key();
    let (first, first_jobs) = event_with_job(&event_key);
    let first_id = first.event.correlation_id;
    assert_eq!(
        intake
            .accept(&first, &first_jobs, Some(&claim(key, now, 60_000)))
            .await
            .unwrap(),
        Admission::New,
        "a new key is new"
    );
    let (repeat, repeat_jobs) = event_with_job(&event_key);
    assert_eq!(
        intake
            .accept(&repeat, &repeat_jobs, Some(&claim(key, now, 60_000)))
            .await
            .unwrap(),
        Admission::Duplicate(first_id),
        "a held key names the first event"
    );
    assert!(events.get_event(&first_id).await.unwrap().is_some());
    assert_eq!(
        events
            .get_event(&repeat.event.correlation_id)
            .await
            .unwrap(),
        None,
        "a duplicate is not stored"
    );
    assert_eq!(
        drain(queue).await,
        vec![first_id],
        "only the new event's jobs are queued"
    );

    // A claim that ended before the next delivery is taken over.
    let expiring = fresh_key();
    let long_ago = Timestamp(now.0 - 10_000);
    let (old, old_jobs) = event_with_job(&event_key);
    let old_claim = claim(expiring, long_ago, 1_000);
    assert_eq!(
        intake
            .accept(&old, &old_jobs, Some(&old_claim))
            .await
            .unwrap(),
        Admission::New
    );
    let (later, later_jobs) = event_with_job(&event_key);
    assert_eq!(
        intake
            .accept(&later, &later_jobs, Some(&claim(expiring, now, 60_000)))
            .await
            .unwrap(),
        Admission::New,
        "an expired claim is taken over"
    );
    let (again, again_jobs) = event_with_job(&event_key);
    assert_eq!(
        intake
            .accept(&again, &again_jobs, Some(&claim(expiring, now, 60_000)))
            .await
            .unwrap(),
        Admission::Duplicate(later.event.correlation_id),
        "the claim taken over names its new holder"
    );

    // A released claim frees the key; releasing someone else's does nothing.
    events
        .release_claim(&expiring, &old.event.correlation_id)
        .await
        .unwrap();
    let (third, third_jobs) = event_with_job(&event_key);
    assert_eq!(
        intake
            .accept(&third, &third_jobs, Some(&claim(expiring, now, 60_000)))
            .await
            .unwrap(),
        Admission::Duplicate(later.event.correlation_id),
        "only the holder releases a claim"
    );
    events
        .release_claim(&expiring, &later.event.correlation_id)
        .await
        .unwrap();
    assert_eq!(
        intake
            .accept(&third, &third_jobs, Some(&claim(expiring, now, 60_000)))
            .await
            .unwrap(),
        Admission::New,
        "a released key is new"
    );
    drain(queue).await;

    // Copies of one delivery racing: one event, the others name it.
    let racing = fresh_key();
    let copies: Vec<(EventRecord, Vec<PipelineJob>)> = (0..RACING_COPIES)
        .map(|_| event_with_job(&event_key))
        .collect();
    let racing_claim = claim(racing, Timestamp::now(), 60_000);
    let admissions: Vec<Admission> = join_all(
        copies
            .iter()
            .map(|(record, jobs)| intake.accept(record, jobs, Some(&racing_claim))),
    )
    .await
    .into_iter()
    .map(|answer| answer.expect("a racing accept"))
    .collect();
    let winners: Vec<usize> = (0..RACING_COPIES)
        .filter(|i| admissions[*i] == Admission::New)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one copy is new: {admissions:?}");
    let winner = copies[winners[0]].0.event.correlation_id;
    assert!(
        admissions
            .iter()
            .all(|a| *a == Admission::New || *a == Admission::Duplicate(winner)),
        "every other copy names the one stored: {admissions:?}"
    );
    for (record, _) in &copies {
        let id = record.event.correlation_id;
        assert_eq!(
            events.get_event(&id).await.unwrap().is_some(),
            id == winner,
            "only the new copy is stored"
        );
    }
    assert_eq!(drain(queue).await, vec![winner], "one job for the race");
}
