//! The rules of [`JobQueue`](crate::ports::JobQueue) and [`EventIntake`](crate::ports::EventIntake).

use std::time::Duration;

use super::{sample_event, unique_key};
use crate::domain::outgoing::ReferenceId;
use crate::domain::{CorrelationId, DeliveryJob, Job, PipelineJob};
use crate::error::{Conflict, StoreError};
use crate::ports::{EventIntake, EventStore, JobQueue};

/// The rules of [`JobQueue`]: at-least-once delivery with visibility timeouts.
/// The queue must be empty when the suite starts.
pub async fn job_queue_conformance(queue: &dyn JobQueue) {
    let short = Duration::from_millis(50);
    let job = |p: &str| {
        Job::Pipeline(PipelineJob {
            correlation_id: CorrelationId::generate(),
            pipeline: p.to_owned(),
        })
    };
    // Both kinds of message travel the same queue.
    let delivery = Job::Delivery(DeliveryJob {
        reference_id: ReferenceId::generate(),
    });
    let label = |job: &Job| match job {
        Job::Pipeline(p) => p.pipeline.clone(),
        Job::Delivery(_) => "delivery".to_owned(),
    };
    assert!(
        queue
            .receive_jobs(10, short, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "starts empty"
    );
    queue.send_jobs(&[]).await.expect("sending nothing is fine");

    let (a, b, c) = (job("a"), job("b"), delivery.clone());
    queue
        .send_jobs(&[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    let first = queue
        .receive_jobs(2, short, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(first.len(), 2, "at most max jobs");
    assert!(
        first.iter().all(|d| d.receive_count == 1),
        "first delivery counts 1"
    );
    let rest = queue
        .receive_jobs(10, short, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(rest.len(), 1, "in-flight jobs are invisible");
    let mut seen: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|d| label(&d.job().unwrap()))
        .collect();
    seen.sort();
    assert_eq!(seen, ["a", "b", "delivery"], "every job delivered once");
    assert!(
        first
            .iter()
            .chain(&rest)
            .any(|d| d.job().unwrap() == delivery),
        "a delivery job arrives as it was sent"
    );

    for d in first.iter().chain(&rest) {
        queue.delete_job(&d.receipt).await.unwrap();
    }
    queue
        .delete_job(&first[0].receipt)
        .await
        .expect("deleting twice is harmless");
    assert!(
        queue
            .receive_jobs(10, short, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "deleted jobs are gone"
    );

    // A job not deleted within its visibility timeout comes back with a new receipt.
    let d = job("d");
    queue.send_jobs(std::slice::from_ref(&d)).await.unwrap();
    let taken = queue
        .receive_jobs(1, short, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let again = queue
        .receive_jobs(1, Duration::from_secs(3), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "redelivered after the visibility timeout");
    assert_eq!(again[0].job().unwrap(), d);
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(
        again[0].receipt, taken[0].receipt,
        "a redelivery has a new receipt"
    );

    // Released with a delay: invisible until the delay has passed.
    queue
        .release_job(&again[0].receipt, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(
        queue
            .receive_jobs(1, short, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "released job waits"
    );
    let retried = queue
        .receive_jobs(1, Duration::from_secs(3), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(retried.len(), 1, "released job returns after its delay");
    assert_eq!(retried[0].receive_count, 3);
    queue.delete_job(&retried[0].receipt).await.unwrap();

    // Dead-lettered: out of the queue for good, even past its visibility timeout.
    let f = job("f");
    queue.send_jobs(std::slice::from_ref(&f)).await.unwrap();
    let taken = queue
        .receive_jobs(1, Duration::from_secs(3), Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    queue
        .dead_letter_job(&taken[0], "conformance: given up")
        .await
        .unwrap();
    assert!(
        queue
            .receive_jobs(1, Duration::from_secs(1), Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "a dead-lettered job is never handed out again"
    );

    // A waiting receive wakes up when a job arrives.
    let e = job("e");
    let (received, ()) = tokio::join!(
        queue.receive_jobs(1, Duration::from_secs(5), Duration::from_secs(30)),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            queue.send_jobs(std::slice::from_ref(&e)).await.unwrap();
        }
    );
    let received = received.unwrap();
    assert_eq!(received.len(), 1, "long poll returns the new job");
    queue.delete_job(&received[0].receipt).await.unwrap();
}

/// The rules of [`EventIntake`]: after `accept`, the event is readable and each
/// job is queued; and the rules of a claimed accept ([`super::dedup_conformance`]).
/// The queue must be empty when the suite starts.
pub async fn event_intake_conformance(
    intake: &dyn EventIntake,
    events: &dyn EventStore,
    queue: &dyn JobQueue,
) {
    let key = unique_key("webhook.intake");
    let record = sample_event(&key, &["a", "b"], 60_000);
    let id = record.event.correlation_id;
    let jobs: Vec<PipelineJob> = ["a", "b"]
        .iter()
        .map(|p| PipelineJob {
            correlation_id: id,
            pipeline: p.to_string(),
        })
        .collect();
    intake.accept(&record, &jobs, None).await.expect("accept");
    assert_eq!(
        events.get_event(&id).await.unwrap(),
        Some(record.clone()),
        "event stored"
    );
    let queued = queue
        .receive_jobs(10, Duration::from_secs(1), Duration::from_secs(30))
        .await
        .unwrap();
    for d in &queued {
        queue.delete_job(&d.receipt).await.unwrap();
    }
    let mut queued: Vec<Job> = queued.into_iter().map(|d| d.job().unwrap()).collect();
    queued.sort_by_key(|j| format!("{j:?}"));
    let mut expected: Vec<Job> = jobs.iter().cloned().map(Job::from).collect();
    expected.sort_by_key(|j| format!("{j:?}"));
    assert_eq!(queued, expected, "one job per listener");
    let lonely = sample_event(&key, &[], 60_000);
    intake
        .accept(&lonely, &[], None)
        .await
        .expect("accept without listeners");
    assert!(
        events
            .get_event(&lonely.event.correlation_id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        matches!(
            intake.accept(&record, &jobs, None).await,
            Err(StoreError::Conflict(Conflict::AlreadyExists))
        ),
        "an id is accepted once"
    );
    super::dedup_conformance(intake, events, queue).await;
}
