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
use crate::error::{Conflict, StoreError};
use crate::outgoing::model::{
    Attempt, Invocation, InvocationState, OutgoingWebhook, PayloadEncoding, PendingSend,
    ReferenceId, RequestSummary, SecretText, SigningSecret,
};
use crate::ports::{
    EventIntake, EventStore, InvocationStore, JobQueue, OutgoingStore, PipelineStore, Recorded,
    WebhookStore,
};

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

    effect_claims_conformance(store, &id2).await;

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

/// The rules of [`EffectLog`](crate::ports::EffectLog), on the stored
/// event `id` (finished, with outcomes) and a fresh one.
async fn effect_claims_conformance(store: &dyn EventStore, id: &CorrelationId) {
    let mail = "alpha/3/mail.send";
    assert!(store.claim_effect(id, mail).await.unwrap(), "first claim");
    assert!(
        !store.claim_effect(id, mail).await.unwrap(),
        "a second claim of the same effect is refused"
    );
    assert!(
        store.claim_effect(id, "alpha/4/mail.send").await.unwrap(),
        "another effect of the same event is claimed on its own"
    );
    let other = sample_event(&unique_key("webhook.effects"), &["alpha"], 60_000);
    store.put_event(&other).await.unwrap();
    assert!(
        store
            .claim_effect(&other.event.correlation_id, mail)
            .await
            .unwrap(),
        "the same effect of another event is claimed on its own"
    );
    store.release_effect(id, mail).await.unwrap();
    assert!(
        store.claim_effect(id, mail).await.unwrap(),
        "a released claim can be taken again"
    );
    assert!(
        !store.claim_effect(id, mail).await.unwrap(),
        "and then only once"
    );
    store
        .release_effect(&other.event.correlation_id, "never/1/claimed")
        .await
        .expect("releasing what was never claimed does nothing");
    assert!(
        matches!(
            store.claim_effect(&CorrelationId::generate(), mail).await,
            Err(StoreError::NotFound)
        ),
        "a claim for an unknown event"
    );
    let result = store.get_result(id).await.unwrap().expect("result");
    assert_eq!(
        result.outcomes.keys().collect::<Vec<_>>(),
        ["alpha", "beta"],
        "claims are not outcomes"
    );
    assert_eq!(result.status(), ResultStatus::Ok);
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
    let mut queued: Vec<Job> = queued.into_iter().map(|d| d.job().unwrap()).collect();
    queued.sort_by_key(|j| format!("{j:?}"));
    let mut expected: Vec<Job> = jobs.iter().cloned().map(Job::from).collect();
    expected.sort_by_key(|j| format!("{j:?}"));
    assert_eq!(queued, expected, "one job per listener");
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

/// A registration named `id` with every optional part filled in: pre-filled and
/// trigger-settable headers, a rotating secret, a schema, query parameters.
pub fn sample_outgoing(id: &str) -> OutgoingWebhook {
    let now = Timestamp::now();
    OutgoingWebhook {
        id: id.to_owned(),
        url: format!("https://hooks.example.com/{id}?fixed=1"),
        method: "POST".into(),
        headers: BTreeMap::from([
            (
                "authorization".to_string(),
                SecretText::new("Bearer s3cr3t"),
            ),
            ("x-tenant".to_string(), SecretText::new("")),
        ]),
        query_params: vec!["page".into(), "lang".into()],
        payload_encoding: PayloadEncoding::Base64,
        schema: Some(json!({
            "type": "object",
            "required": ["orderId"],
            "properties": {"orderId": {"type": "string"}, "amount": {"type": "integer"}}
        })),
        secrets: vec![
            SigningSecret {
                value: SecretText::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                retires_at: None,
            },
            SigningSecret {
                value: SecretText::new("whsec_b2xkIHNlY3JldCBvZiB0aGUgcm90YXRpb24="),
                retires_at: Some(now.plus_seconds(86_400)),
            },
        ],
        enabled: false,
        disabled_reason: Some("endpoint answered 410 Gone".into()),
        description: Some("conformance".into()),
        created_at: now,
        updated_at: Timestamp(now.0 + 1),
    }
}

/// An asynchronous invocation of `webhook_id` still waiting for its next
/// attempt: one failed attempt, a pending body, an answer in `data`.
pub fn sample_invocation(
    webhook_id: &str,
    created_at: Timestamp,
    expires_at: Timestamp,
) -> Invocation {
    Invocation {
        reference_id: ReferenceId::generate(),
        webhook_id: webhook_id.to_owned(),
        caller: "pipeline:orders".into(),
        correlation_id: Some(CorrelationId::generate().to_string()),
        asynchronous: true,
        created_at,
        updated_at: created_at,
        expires_at,
        request: RequestSummary {
            method: "POST".into(),
            url: "https://hooks.example.com/orders".into(),
            query_params: vec!["page".into()],
            headers: vec!["content-type".into(), "webhook-id".into()],
            body_bytes: 5,
            content_type: Some("application/octet-stream".into()),
            signed: true,
        },
        state: InvocationState::Processing,
        status: 503,
        error: true,
        error_message: Some("endpoint answered 503".into()),
        data: json!({"retry": true, "detail": ["busy", 1, null]}),
        duration_ms: 12,
        attempts: vec![Attempt {
            at: created_at,
            status: 503,
            duration_ms: 12,
            error_message: Some("endpoint answered 503".into()),
        }],
        next_attempt_at: Some(Timestamp(created_at.0 + 5_000)),
        pending: Some(PendingSend {
            // Not UTF-8: the body survives as bytes.
            body: vec![0, 1, 0xfe, 0xff, b'x'],
            content_type: Some("application/octet-stream".into()),
            headers: BTreeMap::from([("x-trigger".to_string(), SecretText::new("t0k3n"))]),
            query: vec![("page".into(), "2".into()), ("page".into(), "3".into())],
        }),
    }
}

/// The rules of [`OutgoingStore`].
pub async fn outgoing_store_conformance(store: &dyn OutgoingStore) {
    let id = |n: &str| format!("{n}-{}", uuid::Uuid::new_v4().simple());
    let (a, b) = (sample_outgoing(&id("b")), sample_outgoing(&id("a")));
    store.put_outgoing(&a).await.expect("put a");
    store.put_outgoing(&b).await.expect("put b");
    assert_eq!(
        store.get_outgoing(&a.id).await.unwrap(),
        Some(a.clone()),
        "a registration round-trips exactly"
    );
    assert_eq!(
        store.get_outgoing(&id("none")).await.unwrap(),
        None,
        "unknown registration"
    );

    let mut a2 = a.clone();
    a2.url = "https://other.example.com/hook".into();
    a2.method = "PUT".into();
    a2.headers.clear();
    a2.query_params.clear();
    a2.payload_encoding = PayloadEncoding::Json;
    a2.schema = None;
    a2.secrets.truncate(1);
    a2.enabled = true;
    a2.disabled_reason = None;
    a2.description = None;
    a2.updated_at = Timestamp(a.updated_at.0 + 1_000);
    store.put_outgoing(&a2).await.expect("put a again");
    assert_eq!(
        store.get_outgoing(&a.id).await.unwrap(),
        Some(a2.clone()),
        "put replaces"
    );

    let listed = store.list_outgoing().await.unwrap();
    assert!(
        listed.windows(2).all(|w| w[0].id < w[1].id),
        "list is sorted by id, one entry per id"
    );
    assert!(listed.contains(&a2), "list holds the replaced registration");
    assert!(listed.contains(&b), "list holds every registration");
    assert!(
        !listed.contains(&a),
        "list no longer holds the replaced version"
    );

    assert!(
        store.delete_outgoing(&a.id).await.unwrap(),
        "delete existing"
    );
    assert_eq!(
        store.get_outgoing(&a.id).await.unwrap(),
        None,
        "gone after delete"
    );
    assert!(!store.delete_outgoing(&a.id).await.unwrap(), "delete twice");
    assert!(
        !store
            .list_outgoing()
            .await
            .unwrap()
            .iter()
            .any(|w| w.id == a.id),
        "a deleted registration is not listed"
    );
    assert_eq!(
        store.get_outgoing(&b.id).await.unwrap(),
        Some(b.clone()),
        "deleting one leaves the others"
    );
    store.delete_outgoing(&b.id).await.unwrap();
}

/// The rules of [`InvocationStore`].
pub async fn invocation_store_conformance(store: &dyn InvocationStore) {
    let webhook = format!("orders-{}", uuid::Uuid::new_v4().simple());
    let other = format!("billing-{}", uuid::Uuid::new_v4().simple());
    let now = Timestamp::now();
    let later = Timestamp(now.0 + 600_000);
    let at = |offset_ms: i64| Timestamp(now.0 - 60_000 + offset_ms);
    let first = sample_invocation(&webhook, at(0), later);
    let second = sample_invocation(&webhook, at(1_000), later);
    let third = sample_invocation(&webhook, at(2_000), later);
    let elsewhere = sample_invocation(&other, at(3_000), later);
    // The newest of all, but past its TTL.
    let expired = sample_invocation(&webhook, at(4_000), Timestamp(now.0 - 1));
    for invocation in [&second, &elsewhere, &first, &expired, &third] {
        store.put_invocation(invocation).await.expect("put");
    }

    assert_eq!(
        store.get_invocation(&first.reference_id).await.unwrap(),
        Some(first.clone()),
        "an invocation round-trips exactly (pending body, attempts, data)"
    );
    assert_eq!(
        store
            .get_invocation(&ReferenceId::generate())
            .await
            .unwrap(),
        None,
        "unknown invocation"
    );
    assert_eq!(
        store.get_invocation(&expired.reference_id).await.unwrap(),
        None,
        "an expired invocation is gone on read"
    );

    let mut done = first.clone();
    done.state = InvocationState::Succeeded;
    done.status = 200;
    done.error = false;
    done.error_message = None;
    done.data = json!("accepted");
    done.duration_ms = 40;
    done.attempts.push(Attempt {
        at: Timestamp(first.created_at.0 + 5_000),
        status: 200,
        duration_ms: 40,
        error_message: None,
    });
    done.next_attempt_at = None;
    done.pending = None;
    done.updated_at = Timestamp(first.created_at.0 + 5_040);
    store.put_invocation(&done).await.expect("put again");
    assert_eq!(
        store.get_invocation(&first.reference_id).await.unwrap(),
        Some(done.clone()),
        "put replaces (state change)"
    );

    assert_eq!(
        store.list_invocations(&webhook, 10).await.unwrap(),
        vec![third.clone(), second.clone(), done.clone()],
        "one webhook's unexpired invocations, newest first"
    );
    assert_eq!(
        store.list_invocations(&webhook, 2).await.unwrap(),
        vec![third.clone(), second.clone()],
        "at most limit, the newest"
    );
    assert_eq!(
        store.list_invocations(&webhook, 1).await.unwrap(),
        vec![third.clone()],
        "an expired newer record does not take a place"
    );
    assert!(
        store
            .list_invocations(&webhook, 0)
            .await
            .unwrap()
            .is_empty(),
        "limit 0"
    );
    assert_eq!(
        store.list_invocations(&other, 10).await.unwrap(),
        vec![elsewhere.clone()],
        "only that webhook's invocations"
    );
    assert!(
        store
            .list_invocations(&format!("none-{}", uuid::Uuid::new_v4().simple()), 10)
            .await
            .unwrap()
            .is_empty(),
        "a webhook without invocations"
    );
}
