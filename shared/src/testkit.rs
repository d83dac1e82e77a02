//! Port conformance suites: the same assertions for every adapter.
//!
//! An adapter's test calls e.g. `webhook_store_conformance(&store).await`; the
//! suite panics with a message naming the broken rule. Each suite uses fresh
//! random keys, so it can run against a shared, non-empty backend (moto).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::domain::{
    CorrelationId, DeliveryJob, Event, EventKey, EventRecord, Job, PayloadType, PipelineDefinition,
    PipelineJob, PipelineOutcome, ResultStatus, Timestamp, Token, Webhook,
};
use crate::outgoing::ReferenceId;
use crate::error::{Conflict, StoreError};
use crate::ports::{EventIntake, EventStore, JobQueue, PipelineStore, Recorded, WebhookStore};

fn unique_key(prefix: &str) -> EventKey {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    EventKey::parse(&format!("{prefix}.{suffix}")).expect("valid key")
}

/// A webhook with fresh token and key.
pub fn sample_webhook() -> Webhook {
    let now = Timestamp::now();
    Webhook {
        token: Token::generate(),
        event_key: unique_key("webhook.test"),
        description: Some("conformance".into()),
        enabled: true,
        payload_type: PayloadType::Base64,
        max_payload_length: 1024,
        created_at: now,
        updated_at: now,
    }
}

/// An event record for `key` expiring `ttl_ms` from now.
pub fn sample_event(key: &EventKey, listeners: &[&str], ttl_ms: i64) -> EventRecord {
    let now = Timestamp::now();
    EventRecord {
        event: Event {
            correlation_id: CorrelationId::generate(),
            event_key: key.clone(),
            received_at: now,
            origin: json!("eyJhIjoxfQ=="),
            method: "POST".into(),
            content_type: Some("application/json".into()),
            headers: BTreeMap::from([("x-test".to_string(), "1".to_string())]),
            params: BTreeMap::from([("a".to_string(), json!(["1", "2"]))]),
            files: vec![],
        },
        listeners: listeners.iter().map(|s| s.to_string()).collect(),
        expires_at: Timestamp(now.0 + ttl_ms),
    }
}

/// The rules of [`WebhookStore`].
pub async fn webhook_store_conformance(store: &dyn WebhookStore) {
    let a = sample_webhook();
    store.insert_webhook(&a).await.expect("insert a");
    assert_eq!(
        store.get_by_token(&a.token).await.unwrap(),
        Some(a.clone()),
        "get after insert"
    );
    assert_eq!(
        store.get_by_token(&Token::generate()).await.unwrap(),
        None,
        "unknown token"
    );

    let mut same_key = sample_webhook();
    same_key.event_key = a.event_key.clone();
    assert!(
        matches!(
            store.insert_webhook(&same_key).await,
            Err(StoreError::Conflict(Conflict::EventKeyTaken))
        ),
        "a second webhook with a taken eventKey is a conflict"
    );
    let mut same_token = sample_webhook();
    same_token.token = a.token;
    assert!(
        matches!(
            store.insert_webhook(&same_token).await,
            Err(StoreError::Conflict(Conflict::TokenTaken))
        ),
        "a second webhook with a taken token is a conflict"
    );
    assert_eq!(
        store.get_by_token(&same_token.token).await.unwrap(),
        Some(a.clone()),
        "conflict changed nothing"
    );

    let b = sample_webhook();
    store.insert_webhook(&b).await.expect("insert b");
    let mut b2 = b.clone();
    b2.event_key = a.event_key.clone();
    assert!(
        matches!(
            store.update_webhook(&b2).await,
            Err(StoreError::Conflict(Conflict::EventKeyTaken))
        ),
        "renaming onto a taken eventKey is a conflict"
    );
    b2.event_key = unique_key("webhook.renamed");
    b2.enabled = false;
    b2.updated_at = Timestamp(b2.updated_at.0 + 1);
    store.update_webhook(&b2).await.expect("update b");
    assert_eq!(
        store.get_by_token(&b.token).await.unwrap(),
        Some(b2.clone()),
        "get after update"
    );
    // The old key is free again.
    let mut c = sample_webhook();
    c.event_key = b.event_key.clone();
    store
        .insert_webhook(&c)
        .await
        .expect("old key reusable after rename");

    assert!(
        matches!(
            store.update_webhook(&sample_webhook()).await,
            Err(StoreError::NotFound)
        ),
        "update of an unknown webhook"
    );

    let listed = store.list_webhooks().await.unwrap();
    for w in [&a, &b2, &c] {
        assert!(listed.contains(w), "list contains every webhook");
    }

    assert!(
        store.delete_webhook(&a.token).await.unwrap(),
        "delete existing"
    );
    assert!(
        !store.delete_webhook(&a.token).await.unwrap(),
        "delete twice"
    );
    assert_eq!(
        store.get_by_token(&a.token).await.unwrap(),
        None,
        "gone after delete"
    );
    let mut reuse = sample_webhook();
    reuse.event_key = a.event_key.clone();
    store
        .insert_webhook(&reuse)
        .await
        .expect("key of a deleted webhook is free");
}

/// The rules of [`EventStore`].
pub async fn event_store_conformance(store: &dyn EventStore) {
    let key = unique_key("webhook.events");
    let none = sample_event(&key, &[], 60_000);
    let id = none.event.correlation_id;
    store.put_event(&none).await.expect("put");
    assert_eq!(
        store.get_event(&id).await.unwrap(),
        Some(none.clone()),
        "event round-trips exactly"
    );
    assert!(
        matches!(
            store.put_event(&none).await,
            Err(StoreError::Conflict(Conflict::AlreadyExists))
        ),
        "an id is written once"
    );
    let result = store.get_result(&id).await.unwrap().expect("result");
    assert_eq!(
        result.status(),
        ResultStatus::Ok,
        "no listener: finished at once"
    );
    assert_eq!(result.value(), json!(null));
    assert_eq!(result.expires_at, none.expires_at);

    let unknown = CorrelationId::generate();
    assert_eq!(
        store.get_result(&unknown).await.unwrap(),
        None,
        "unknown result"
    );
    assert!(
        matches!(
            store
                .record_outcome(&unknown, "p", &PipelineOutcome::Ok { value: json!(1) })
                .await,
            Err(StoreError::NotFound)
        ),
        "outcome for an unknown event"
    );

    let two = sample_event(&key, &["alpha", "beta"], 60_000);
    let id2 = two.event.correlation_id;
    store.put_event(&two).await.unwrap();
    assert_eq!(
        store.get_result(&id2).await.unwrap().unwrap().status(),
        ResultStatus::Processing
    );
    let first = PipelineOutcome::Ok {
        value: json!({"n": 1}),
    };
    assert_eq!(
        store.record_outcome(&id2, "alpha", &first).await.unwrap(),
        Recorded::New
    );
    let again = PipelineOutcome::Ok {
        value: json!("redelivered"),
    };
    assert_eq!(
        store.record_outcome(&id2, "alpha", &again).await.unwrap(),
        Recorded::AlreadyThere,
        "a redelivery records nothing new"
    );
    let partial = store.get_result(&id2).await.unwrap().unwrap();
    assert_eq!(
        partial.status(),
        ResultStatus::Processing,
        "one of two finished"
    );
    assert_eq!(
        partial.outcomes.get("alpha"),
        Some(&first),
        "first outcome kept"
    );
    store
        .record_outcome(&id2, "beta", &PipelineOutcome::Ok { value: json!("b") })
        .await
        .unwrap();
    let done = store.get_result(&id2).await.unwrap().unwrap();
    assert_eq!(done.status(), ResultStatus::Ok);
    assert_eq!(done.value(), json!({"alpha": {"n": 1}, "beta": "b"}));

    let failing = sample_event(&key, &["gamma"], 60_000);
    store.put_event(&failing).await.unwrap();
    let error = PipelineOutcome::Error {
        code: "step_failed".into(),
        message: "boom".into(),
        step: Some("2".into()),
    };
    store
        .record_outcome(&failing.event.correlation_id, "gamma", &error)
        .await
        .unwrap();
    let failed = store
        .get_result(&failing.event.correlation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.status(), ResultStatus::Error);
    assert_eq!(
        failed.error(),
        Some(json!({"code": "step_failed", "message": "boom", "pipeline": "gamma", "step": "2"}))
    );

    let expired = sample_event(&key, &[], -1);
    store.put_event(&expired).await.unwrap();
    assert_eq!(
        store
            .get_event(&expired.event.correlation_id)
            .await
            .unwrap(),
        None,
        "expired event is gone on read"
    );
    assert_eq!(
        store
            .get_result(&expired.event.correlation_id)
            .await
            .unwrap(),
        None,
        "expired result is gone on read"
    );
}

/// The rules of [`PipelineStore`].
pub async fn pipeline_store_conformance(store: &dyn PipelineStore) {
    let key = unique_key("webhook.pipes");
    let other = unique_key("webhook.other");
    let name = |n: &str| format!("{n}-{}", uuid::Uuid::new_v4().simple());
    let def = |name: &str, key: &EventKey| PipelineDefinition {
        name: name.to_owned(),
        listens_to: key.clone(),
        source: format!("pipeline:\n  - event.listen:\n      eventKey: {key}\n"),
        updated_at: Timestamp::now(),
    };
    let (b, a) = (name("b"), name("a"));
    let (def_a, def_b) = (def(&a, &key), def(&b, &key));
    store.put_pipeline(&def_b).await.unwrap();
    store.put_pipeline(&def_a).await.unwrap();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(
        store.listeners_of(&key).await.unwrap(),
        expected,
        "listeners sorted by name"
    );
    assert_eq!(
        store.get_pipeline(&a).await.unwrap(),
        Some(def_a),
        "get after put"
    );
    assert_eq!(
        store.get_pipeline(&name("none")).await.unwrap(),
        None,
        "unknown pipeline"
    );
    // Replacing a pipeline moves it to another event.
    let moved = def(&b, &other);
    store.put_pipeline(&moved).await.unwrap();
    assert_eq!(
        store.get_pipeline(&b).await.unwrap(),
        Some(moved.clone()),
        "put replaces"
    );
    assert_eq!(store.listeners_of(&key).await.unwrap(), vec![a.clone()]);
    assert_eq!(store.listeners_of(&other).await.unwrap(), vec![b.clone()]);
    let listed = store.list_pipelines().await.unwrap();
    assert!(
        listed.iter().any(|p| p.name == a) && listed.contains(&moved),
        "list"
    );
    assert!(store.delete_pipeline(&a).await.unwrap());
    assert!(!store.delete_pipeline(&a).await.unwrap(), "delete twice");
    assert_eq!(store.get_pipeline(&a).await.unwrap(), None);
    assert!(
        store.listeners_of(&key).await.unwrap().is_empty(),
        "deleted pipeline no longer listens"
    );
}

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
        .map(|d| label(&d.job))
        .collect();
    seen.sort();
    assert_eq!(seen, ["a", "b", "delivery"], "every job delivered once");
    assert!(
        first.iter().chain(&rest).any(|d| d.job == delivery),
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
    assert_eq!(again[0].job, d);
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
/// job is queued. The queue must be empty when the suite starts.
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
    intake.accept(&record, &jobs).await.expect("accept");
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
    let mut queued: Vec<Job> = queued.into_iter().map(|d| d.job).collect();
    queued.sort_by_key(|j| format!("{j:?}"));
    let mut expected: Vec<Job> = jobs.iter().cloned().map(Job::from).collect();
    expected.sort_by_key(|j| format!("{j:?}"));
    assert_eq!(
        queued,
        expected,
        "one job per listener"
    );
    let lonely = sample_event(&key, &[], 60_000);
    intake
        .accept(&lonely, &[])
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
            intake.accept(&record, &jobs).await,
            Err(StoreError::Conflict(Conflict::AlreadyExists))
        ),
        "an id is accepted once"
    );
}
