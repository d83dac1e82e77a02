//! The rules of [`DeadLetters`](crate::ports::DeadLetters), over the queue whose
//! dead letters they are.

use std::time::Duration;

use crate::domain::outgoing::ReferenceId;
use crate::domain::{CorrelationId, DeliveryJob, Job, PipelineJob, Timestamp};
use crate::ports::{DeadLetters, JobQueue, MAX_REDRIVE_PER_CALL, Redriven};

fn pipeline_job(pipeline: &str) -> Job {
    Job::Pipeline(PipelineJob {
        correlation_id: CorrelationId::generate(),
        pipeline: pipeline.to_owned(),
    })
}

/// Sends `jobs`, receives them and dead-letters each with the reason `reason`.
async fn dead_letter_all(queue: &dyn JobQueue, jobs: &[Job], reason: &str) {
    queue.send_jobs(jobs).await.unwrap();
    let mut moved = 0;
    while moved < jobs.len() {
        let received = queue
            .receive_jobs(10, Duration::from_secs(3), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(!received.is_empty(), "the sent jobs arrive");
        for delivery in &received {
            queue.dead_letter_job(delivery, reason).await.unwrap();
        }
        moved += received.len();
    }
}

/// Takes every job the queue hands out within a moment, and deletes them.
async fn drain(queue: &dyn JobQueue) -> Vec<(Job, u32)> {
    let mut jobs = Vec::new();
    loop {
        let received = queue
            .receive_jobs(10, Duration::from_secs(1), Duration::from_secs(60))
            .await
            .unwrap();
        if received.is_empty() {
            return jobs;
        }
        for delivery in received {
            queue.delete_job(&delivery.receipt).await.unwrap();
            jobs.push((delivery.job().unwrap(), delivery.receive_count));
        }
    }
}

/// Dead letters are listed (oldest first, without hiding or losing any), can
/// be redriven one or all (bounded per call) as fresh jobs, and deleted.
/// The queue and its dead letters must be empty when the suite starts.
pub async fn dead_letters_conformance(queue: &dyn JobQueue, dead: &dyn DeadLetters) {
    let empty = dead.list_dead_letters(10).await.unwrap();
    assert!(empty.dead_letters.is_empty(), "starts empty: {empty:?}");
    assert!(!empty.partial, "an empty list is complete");
    let before = Timestamp::now();

    let (a, b) = (pipeline_job("a"), pipeline_job("b"));
    let delivery = Job::Delivery(DeliveryJob {
        reference_id: ReferenceId::generate(),
    });
    // One at a time, so their order is the order they were dead-lettered.
    for (job, reason) in [
        (&a, "gave up on a"),
        (&b, "gave up on b"),
        (&delivery, "gave up"),
    ] {
        dead_letter_all(queue, std::slice::from_ref(job), reason).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let listed = dead.list_dead_letters(10).await.unwrap();
    assert!(!listed.partial, "all three fit: {listed:?}");
    let bodies: Vec<Job> = listed
        .dead_letters
        .iter()
        .map(|d| serde_json::from_str(&d.body).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [a.clone(), b.clone(), delivery.clone()],
        "oldest first"
    );
    let reasons: Vec<Option<&str>> = listed
        .dead_letters
        .iter()
        .map(|d| d.reason.as_deref())
        .collect();
    assert_eq!(
        reasons,
        [Some("gave up on a"), Some("gave up on b"), Some("gave up")]
    );
    for d in &listed.dead_letters {
        assert_eq!(d.receive_count, Some(1), "handed out once before: {d:?}");
        // SQS's timestamps may differ from this clock by a little.
        assert!(d.dead_at.0 >= before.0 - 5_000, "{d:?}");
        assert!(d.dead_at.0 <= Timestamp::now().0 + 5_000, "{d:?}");
    }
    let again = dead.list_dead_letters(10).await.unwrap();
    assert_eq!(again, listed, "listing hides and loses nothing");
    assert!(
        drain(queue).await.is_empty(),
        "dead letters are not in the queue"
    );

    let first_two = dead.list_dead_letters(2).await.unwrap();
    assert_eq!(first_two.dead_letters, listed.dead_letters[..2]);
    assert!(first_two.partial, "more than the limit is partial");
    let exactly = dead.list_dead_letters(3).await.unwrap();
    assert_eq!(exactly.dead_letters, listed.dead_letters);
    assert!(!exactly.partial, "exactly the limit is complete");

    // Redriving one: a fresh job in the queue, gone from the dead letters.
    let [dead_a, dead_b, dead_delivery] = &listed.dead_letters[..] else {
        unreachable!()
    };
    assert!(dead.redrive_dead_letter(&dead_b.id).await.unwrap());
    assert_eq!(
        drain(queue).await,
        [(b.clone(), 1)],
        "redriven as a fresh job, its count started over"
    );
    let left = dead.list_dead_letters(10).await.unwrap().dead_letters;
    assert_eq!(left, [dead_a.clone(), dead_delivery.clone()]);
    assert!(
        !dead.redrive_dead_letter(&dead_b.id).await.unwrap(),
        "a redriven dead letter is gone"
    );
    for unknown in ["0", "not-an-id", "99999999"] {
        assert!(
            !dead.redrive_dead_letter(unknown).await.unwrap(),
            "{unknown}"
        );
        assert!(
            !dead.delete_dead_letter(unknown).await.unwrap(),
            "{unknown}"
        );
    }

    // Deleting one.
    assert!(dead.delete_dead_letter(&dead_a.id).await.unwrap());
    assert!(
        !dead.delete_dead_letter(&dead_a.id).await.unwrap(),
        "deleted once"
    );
    assert_eq!(
        dead.list_dead_letters(10).await.unwrap().dead_letters,
        std::slice::from_ref(dead_delivery)
    );
    assert!(drain(queue).await.is_empty(), "a deleted one is not queued");

    // Redriving all.
    assert_eq!(
        dead.redrive_all_dead_letters().await.unwrap(),
        Redriven {
            count: 1,
            more: false
        }
    );
    assert_eq!(drain(queue).await, [(delivery.clone(), 1)]);
    assert!(
        dead.list_dead_letters(10)
            .await
            .unwrap()
            .dead_letters
            .is_empty()
    );

    // One call moves at most MAX_REDRIVE_PER_CALL; the next moves the rest.
    let many: Vec<Job> = (0..=MAX_REDRIVE_PER_CALL)
        .map(|i| pipeline_job(&format!("many-{i}")))
        .collect();
    dead_letter_all(queue, &many, "bound").await;
    assert_eq!(
        dead.redrive_all_dead_letters().await.unwrap(),
        Redriven {
            count: MAX_REDRIVE_PER_CALL,
            more: true
        }
    );
    assert_eq!(
        dead.redrive_all_dead_letters().await.unwrap(),
        Redriven {
            count: 1,
            more: false
        }
    );
    let mut requeued: Vec<String> = drain(queue)
        .await
        .into_iter()
        .map(|(job, _)| format!("{job:?}"))
        .collect();
    let mut expected: Vec<String> = many.iter().map(|job| format!("{job:?}")).collect();
    requeued.sort();
    expected.sort();
    assert_eq!(requeued, expected, "every one queued once");
    assert_eq!(
        dead.redrive_all_dead_letters().await.unwrap(),
        Redriven {
            count: 0,
            more: false
        },
        "nothing left"
    );
}
