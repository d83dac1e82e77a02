//! Every adapter passes the same port conformance suites.

use hookflow_core::adapters::{MemoryQueue, MemoryStore, SqliteStore};
use hookflow_core::testkit::services::service_env;
use hookflow_core::testkit::{
    dead_letters_conformance, event_intake_conformance, event_log_conformance,
    event_store_conformance, invocation_store_conformance, job_queue_conformance,
    outgoing_store_conformance, pipeline_store_conformance, webhook_store_conformance,
};

#[tokio::test]
async fn memory_adapters() {
    let store = MemoryStore::new();
    webhook_store_conformance(&store).await;
    event_store_conformance(&store).await;
    event_log_conformance(&store).await;
    pipeline_store_conformance(&store).await;
    outgoing_store_conformance(&store).await;
    invocation_store_conformance(&store).await;
    let queue = std::sync::Arc::new(MemoryQueue::new());
    job_queue_conformance(queue.as_ref()).await;
    let store = std::sync::Arc::new(store);
    let intake = hookflow_core::ports::StoreThenEnqueue {
        events: store.clone(),
        queue: queue.clone(),
    };
    event_intake_conformance(&intake, store.as_ref(), queue.as_ref()).await;
}

#[tokio::test]
async fn sqlite_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("conformance.db")).unwrap();
    webhook_store_conformance(&store).await;
    event_store_conformance(&store).await;
    event_log_conformance(&store).await;
    pipeline_store_conformance(&store).await;
    outgoing_store_conformance(&store).await;
    invocation_store_conformance(&store).await;
    job_queue_conformance(&store).await;
    event_intake_conformance(&store, &store, &store).await;
}

#[tokio::test]
async fn memory_dead_letters() {
    let queue = MemoryQueue::new();
    dead_letters_conformance(&queue, &queue).await;
}

#[tokio::test]
async fn sqlite_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("dead_letters.db")).unwrap();
    dead_letters_conformance(&store, &store).await;
}

#[tokio::test]
async fn sqlite_data_survives_reopening() {
    use hookflow_core::ports::{JobQueue, WebhookStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reopen.db");
    let webhook = hookflow_core::testkit::sample_webhook();
    let job = hookflow_core::domain::Job::Pipeline(hookflow_core::domain::PipelineJob {
        correlation_id: hookflow_core::domain::CorrelationId::generate(),
        pipeline: "p".into(),
    });
    {
        let store = SqliteStore::open(&path).unwrap();
        store.insert_webhook(&webhook).await.unwrap();
        store.send_jobs(std::slice::from_ref(&job)).await.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.get_by_token(&webhook.token).await.unwrap(),
        Some(webhook)
    );
    let jobs = store
        .receive_jobs(
            10,
            std::time::Duration::ZERO,
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "queued jobs survive a restart");
    assert_eq!(jobs[0].job().unwrap(), job);
}

#[tokio::test]
async fn sqlite_outgoing_data_survives_reopening() {
    use hookflow_core::ports::{InvocationStore, OutgoingStore};
    use hookflow_core::testkit::{sample_invocation, sample_outgoing};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reopen-outgoing.db");
    let now = hookflow_core::domain::Timestamp::now();
    let webhook = sample_outgoing("orders");
    let invocation = sample_invocation("orders", now, now.plus_seconds(600));
    {
        let store = SqliteStore::open(&path).unwrap();
        store.put_outgoing(&webhook).await.unwrap();
        store.put_invocation(&invocation).await.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.get_outgoing("orders").await.unwrap(), Some(webhook));
    assert_eq!(
        store
            .get_invocation(&invocation.reference_id)
            .await
            .unwrap(),
        Some(invocation)
    );
}

#[tokio::test]
async fn sqlite_purges_expired_invocations() {
    use hookflow_core::domain::Timestamp;
    use hookflow_core::ports::InvocationStore;
    use hookflow_core::testkit::sample_invocation;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("purge-invocations.db")).unwrap();
    let now = Timestamp::now();
    let old = sample_invocation("orders", Timestamp(now.0 - 20), Timestamp(now.0 - 10));
    let fresh = sample_invocation("orders", now, now.plus_seconds(60));
    store.put_invocation(&old).await.unwrap();
    store.put_invocation(&fresh).await.unwrap();
    assert_eq!(
        store.purge_expired(Timestamp::now()).await.unwrap(),
        1,
        "the expired invocation is deleted"
    );
    assert_eq!(
        store.purge_expired(Timestamp::now()).await.unwrap(),
        0,
        "and only that one"
    );
    assert_eq!(
        store.list_invocations("orders", 10).await.unwrap(),
        vec![fresh]
    );
}

#[tokio::test]
async fn sqlite_purges_expired_events_only() {
    use hookflow_core::ports::EventStore;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("purge.db")).unwrap();
    let key = hookflow_core::domain::EventKey::parse("webhook.purge").unwrap();
    let old = hookflow_core::testkit::sample_event(&key, &[], -10);
    let fresh = hookflow_core::testkit::sample_event(&key, &[], 60_000);
    store.put_event(&old).await.unwrap();
    store.put_event(&fresh).await.unwrap();
    assert_eq!(
        store
            .purge_expired(hookflow_core::domain::Timestamp::now())
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .get_event(&fresh.event.correlation_id)
            .await
            .unwrap()
            .is_some()
    );
}

/// The DynamoDB/SQS/S3 adapters on moto (`make test` starts it).
#[tokio::test]
async fn aws_adapters_on_moto() {
    use hookflow_core::adapters::aws::{
        DynamoEventStore, DynamoInvocationStore, DynamoOutgoingStore, DynamoPipelineStore,
        DynamoWebhookStore, SqsJobQueue,
    };
    let Some((clients, resources)) = moto_resources("conf").await else {
        return;
    };
    let webhooks = DynamoWebhookStore::new(clients.dynamodb.clone(), &resources.webhooks_table);
    let events = std::sync::Arc::new(DynamoEventStore::new(
        clients.dynamodb.clone(),
        clients.s3.clone(),
        &resources.events_table,
        &resources.payload_bucket,
    ));
    let pipelines = DynamoPipelineStore::new(clients.dynamodb.clone(), &resources.pipelines_table);
    let queue = std::sync::Arc::new(
        SqsJobQueue::new(clients.sqs.clone(), &resources.queue_url)
            .with_dead_letter_queue(resources.dead_letter_queue_url.clone()),
    );
    webhook_store_conformance(&webhooks).await;
    event_store_conformance(events.as_ref()).await;
    event_log_conformance(events.as_ref()).await;
    pipeline_store_conformance(&pipelines).await;
    let outgoing = DynamoOutgoingStore::new(clients.dynamodb.clone(), &resources.outgoing_table);
    outgoing_store_conformance(&outgoing).await;
    let invocations =
        DynamoInvocationStore::new(clients.dynamodb.clone(), &resources.invocations_table);
    invocation_store_conformance(&invocations).await;
    job_queue_conformance(queue.as_ref()).await;
    let intake = hookflow_core::ports::StoreThenEnqueue {
        events: events.clone(),
        queue: queue.clone(),
    };
    event_intake_conformance(&intake, events.as_ref(), queue.as_ref()).await;
}

/// The SQS dead-letter queue on moto, on fresh queues: the port's rules, and
/// a message SQS's redrive policy moved (no reason, no count) is listed and
/// redriven like the worker's own.
#[tokio::test]
async fn aws_dead_letters_on_moto() {
    use aws_sdk_sqs::types::QueueAttributeName;
    use hookflow_core::adapters::aws::SqsJobQueue;
    use hookflow_core::ports::{DeadLetters, JobQueue};
    let Some((clients, resources)) = moto_resources("dlq").await else {
        return;
    };
    let queue = SqsJobQueue::new(clients.sqs.clone(), &resources.queue_url)
        .with_dead_letter_queue(resources.dead_letter_queue_url.clone());
    dead_letters_conformance(&queue, &queue).await;

    // The redrive policy moves a message after maxReceiveCount receives; here
    // a queue of its own whose policy moves it after one.
    let dead_letter_arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(resources.dead_letter_queue_url.as_deref().unwrap())
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&QueueAttributeName::QueueArn)
        .unwrap();
    let strict = clients
        .sqs
        .create_queue()
        .queue_name(format!("{}-strict", resources.webhooks_table))
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": 1})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let strict_queue = SqsJobQueue::new(clients.sqs.clone(), &strict)
        .with_dead_letter_queue(resources.dead_letter_queue_url.clone());
    let job = hookflow_core::domain::Job::Pipeline(hookflow_core::domain::PipelineJob {
        correlation_id: hookflow_core::domain::CorrelationId::generate(),
        pipeline: "moved".into(),
    });
    strict_queue
        .send_jobs(std::slice::from_ref(&job))
        .await
        .unwrap();
    let short = std::time::Duration::from_millis(0);
    let first = strict_queue
        .receive_jobs(1, std::time::Duration::from_secs(2), short)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // Its second receive finds the count spent: the policy moves it instead.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let listed = loop {
        let second = strict_queue
            .receive_jobs(1, std::time::Duration::from_secs(1), short)
            .await
            .unwrap();
        assert!(second.is_empty(), "moved, not handed out again: {second:?}");
        let listed = queue.list_dead_letters(10).await.unwrap().dead_letters;
        if !listed.is_empty() || std::time::Instant::now() > deadline {
            break listed;
        }
    };
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].body, serde_json::to_string(&job).unwrap());
    assert_eq!(listed[0].reason, None, "the policy gives no reason");
    assert_eq!(listed[0].receive_count, None, "nor a count");
    assert!(queue.redrive_dead_letter(&listed[0].id).await.unwrap());
    let redriven = queue
        .receive_jobs(
            1,
            std::time::Duration::from_secs(2),
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(redriven.len(), 1, "back in the main queue");
    assert_eq!(redriven[0].job().unwrap(), job);
    assert_eq!(redriven[0].receive_count, 1, "as a fresh job");
    queue.delete_job(&redriven[0].receipt).await.unwrap();
}

/// A scan of the SQS dead-letter queue stops after `MAX_DEAD_LETTER_RECEIVES`
/// receives of ten, however many messages wait: a list then says `partial`.
#[tokio::test]
async fn aws_a_dead_letter_scan_stops_at_its_receive_bound() {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    use hookflow_core::adapters::aws::{MAX_DEAD_LETTER_RECEIVES, SqsJobQueue};
    use hookflow_core::ports::DeadLetters;
    let Some((clients, resources)) = moto_resources("dlqb").await else {
        return;
    };
    let dead_letter_queue = resources.dead_letter_queue_url.clone().unwrap();
    let bound = MAX_DEAD_LETTER_RECEIVES * 10;
    let waiting = bound + 20;
    for batch in 0..waiting / 10 {
        let entries = (0..10).map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .message_body(format!("not a job {}", batch * 10 + i))
                .build()
                .unwrap()
        });
        clients
            .sqs
            .send_message_batch()
            .queue_url(&dead_letter_queue)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .unwrap();
    }
    let queue = SqsJobQueue::new(clients.sqs.clone(), &resources.queue_url)
        .with_dead_letter_queue(Some(dead_letter_queue));
    // A limit above what waits: only the receive bound ends the scan.
    let page = queue.list_dead_letters(waiting * 2).await.unwrap();
    assert_eq!(
        page.dead_letters.len(),
        bound,
        "one scan reads at most {bound}"
    );
    assert!(page.partial, "a list cut by the bound says so");
    // Nothing was lost or kept hidden: the next scan sees as many again.
    let again = queue.list_dead_letters(waiting * 2).await.unwrap();
    assert_eq!(again.dead_letters.len(), bound);
}

/// The clients, and fresh resources named `<tag>-<random>` provisioned on moto;
/// `None` (the test skips) without moto.
async fn moto_resources(
    tag: &str,
) -> Option<(
    hookflow_core::adapters::aws::AwsClients,
    hookflow_core::adapters::aws::AwsResources,
)> {
    use hookflow_core::adapters::aws::{AwsClients, provision};
    service_env("moto", ["AWS_ENDPOINT_URL"])?;
    let clients = AwsClients::from_env().await;
    let prefix = format!("{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let resources = provision(&clients, &prefix)
        .await
        .expect("provision on moto");
    Some((clients, resources))
}

/// A DynamoDB event store on fresh resources named `<tag>-…` on moto, with
/// the clients and the payload bucket; `None` (the test skips) without moto.
async fn moto_event_store(
    tag: &str,
) -> Option<(
    hookflow_core::adapters::aws::AwsClients,
    String,
    hookflow_core::adapters::aws::DynamoEventStore,
)> {
    use hookflow_core::adapters::aws::DynamoEventStore;
    let (clients, resources) = moto_resources(tag).await?;
    let events = DynamoEventStore::new(
        clients.dynamodb.clone(),
        clients.s3.clone(),
        &resources.events_table,
        &resources.payload_bucket,
    );
    Some((clients, resources.payload_bucket, events))
}

/// An event too large for a DynamoDB item is kept in S3 and read back whole.
#[tokio::test]
async fn aws_large_events_are_claim_checked_in_s3() {
    use hookflow_core::ports::EventStore;
    let Some((clients, payload_bucket, events)) = moto_event_store("big").await else {
        return;
    };
    let key = hookflow_core::domain::EventKey::parse("webhook.big").unwrap();
    let mut record = hookflow_core::testkit::sample_event(&key, &["p"], 60_000);
    record.event.origin = serde_json::Value::String("x".repeat(3 * 1024 * 1024));
    events
        .put_event(&record)
        .await
        .expect("a 3 MiB event is accepted");
    let stored = events
        .get_event(&record.event.correlation_id)
        .await
        .unwrap()
        .expect("read back");
    assert_eq!(stored, record);
    let objects = clients
        .s3
        .list_objects_v2()
        .bucket(&payload_bucket)
        .prefix("events/")
        .send()
        .await
        .unwrap();
    assert_eq!(objects.key_count(), Some(1), "the payload went to S3");
    let result = events
        .get_result(&record.event.correlation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.listeners, ["p"]);
}

/// A large event is claim-checked before its transaction: a duplicate of it
/// deletes the object it wrote, so the bucket keeps one copy of the delivery.
#[tokio::test]
async fn aws_a_large_duplicate_leaves_no_second_object() {
    use hookflow_core::domain::Timestamp;
    use hookflow_core::domain::dedup::{Admission, DedupClaim, DedupKey};
    use hookflow_core::ports::EventStore;
    let Some((clients, payload_bucket, events)) = moto_event_store("dup").await else {
        return;
    };
    let key = hookflow_core::domain::EventKey::parse("webhook.big.dup").unwrap();
    let now = Timestamp::now();
    let claim = DedupClaim {
        key: DedupKey([7; 32]),
        claimed_at: now,
        expires_at: now.plus_seconds(60),
    };
    let large = |record: &mut hookflow_core::domain::EventRecord| {
        record.event.origin = serde_json::Value::String("x".repeat(400_000));
    };
    let mut first = hookflow_core::testkit::sample_event(&key, &["p"], 60_000);
    large(&mut first);
    let mut repeat = hookflow_core::testkit::sample_event(&key, &["p"], 60_000);
    large(&mut repeat);
    assert_eq!(
        events.put_claimed_event(&first, &claim).await.unwrap(),
        Admission::New
    );
    assert_eq!(
        events.put_claimed_event(&repeat, &claim).await.unwrap(),
        Admission::Duplicate(first.event.correlation_id)
    );
    let objects = clients
        .s3
        .list_objects_v2()
        .bucket(&payload_bucket)
        .prefix("events/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = objects.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        [format!("events/{}.json", first.event.correlation_id)],
        "only the stored event's payload"
    );
    assert_eq!(
        events.get_event(&first.event.correlation_id).await.unwrap(),
        Some(first)
    );
}

/// Outcomes too large for a DynamoDB item are claim-checked in S3 like events:
/// one at the inline bound stays in the item, one byte more goes to S3, and
/// 1 MB and 4 MB outcomes are read back whole.
#[tokio::test]
async fn aws_large_outcomes_are_claim_checked_in_s3() {
    use hookflow_core::adapters::aws::MAX_INLINE_OUTCOME_BYTES;
    use hookflow_core::domain::PipelineOutcome;
    use hookflow_core::ports::{EventStore, Recorded};
    let Some((clients, payload_bucket, events)) = moto_event_store("out").await else {
        return;
    };
    let overhead = serde_json::to_vec(&PipelineOutcome::Ok {
        value: serde_json::json!(""),
        run: None,
    })
    .unwrap()
    .len();
    let sizes = [
        MAX_INLINE_OUTCOME_BYTES,
        MAX_INLINE_OUTCOME_BYTES + 1,
        1_000_000,
        4_000_000,
    ];
    let names: Vec<String> = (0..sizes.len()).map(|i| format!("p{i}")).collect();
    let key = hookflow_core::domain::EventKey::parse("webhook.big").unwrap();
    let listeners: Vec<&str> = names.iter().map(String::as_str).collect();
    let record = hookflow_core::testkit::sample_event(&key, &listeners, 60_000);
    let id = record.event.correlation_id;
    events.put_event(&record).await.unwrap();
    let mut written = Vec::new();
    for (name, size) in names.iter().zip(sizes) {
        let outcome = PipelineOutcome::Ok {
            value: serde_json::json!("y".repeat(size - overhead)),
            run: None,
        };
        assert_eq!(serde_json::to_vec(&outcome).unwrap().len(), size);
        let recorded = events.record_outcome(&id, name, &outcome).await;
        assert_eq!(recorded.unwrap(), Recorded::New, "{size} bytes");
        // A redelivery neither replaces it nor fails.
        let again = PipelineOutcome::Ok {
            value: serde_json::json!("z".repeat(size - overhead)),
            run: None,
        };
        assert_eq!(
            events.record_outcome(&id, name, &again).await.unwrap(),
            Recorded::AlreadyThere
        );
        written.push((name.clone(), outcome));
    }
    let result = events.get_result(&id).await.unwrap().expect("a result");
    for (name, outcome) in written {
        assert!(result.outcomes[&name] == outcome, "{name} read back whole");
    }
    let objects = clients
        .s3
        .list_objects_v2()
        .bucket(&payload_bucket)
        .prefix("outcomes/")
        .send()
        .await
        .unwrap();
    // Three kept, plus the objects of the redeliveries that lost (they expire).
    assert_eq!(objects.key_count(), Some(6), "over the bound: in S3");
}

/// SQS counts its 12 hours of visibility from the receive and refuses a change
/// past them: a release for 12 hours is cut to what SQS takes, not refused.
#[tokio::test]
async fn aws_a_release_for_twelve_hours_is_taken() {
    use hookflow_core::adapters::aws::{MAX_RELEASE_DELAY, SqsJobQueue};
    use hookflow_core::domain::{DeliveryJob, Job};
    use hookflow_core::outgoing::ReferenceId;
    use hookflow_core::ports::JobQueue;
    use std::time::Duration;
    let Some((clients, resources)) = moto_resources("rel").await else {
        return;
    };
    let queue = SqsJobQueue::new(clients.sqs.clone(), &resources.queue_url);
    let job = Job::Delivery(DeliveryJob {
        reference_id: ReferenceId::generate(),
    });
    for delay in [MAX_RELEASE_DELAY, Duration::from_secs(12 * 3600)] {
        queue.send_jobs(std::slice::from_ref(&job)).await.unwrap();
        let taken = queue
            .receive_jobs(1, Duration::from_secs(2), Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        // The job was held a moment, as a worker holds it while it runs.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        queue
            .release_job(&taken[0].receipt, delay)
            .await
            .unwrap_or_else(|e| panic!("a release for {delay:?} is taken: {e}"));
    }
    let again = queue
        .receive_jobs(10, Duration::from_secs(1), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(again.is_empty(), "both stay hidden");
}

/// A failed AWS call is described in one short line: the service's code and
/// message, not the SDK's debug chain with the raw response's headers.
#[tokio::test]
async fn aws_failures_are_described_in_one_short_line() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use hookflow_core::adapters::aws::describe_failure;
    let Some((clients, resources)) = moto_resources("err").await else {
        return;
    };
    let payload = "secret-payload-".repeat(40_000);
    let err = clients
        .dynamodb
        .put_item()
        .table_name(&resources.events_table)
        .item("correlationId", AttributeValue::S("x".into()))
        .item("sk", AttributeValue::S("event".into()))
        .item("data", AttributeValue::S(payload))
        .send()
        .await
        .expect_err("an item over 400 KB is refused");
    let text = describe_failure(&err);
    assert!(text.starts_with("ValidationException: "), "{text}");
    assert!(
        text.chars().count() <= 241,
        "{} characters: {text}",
        text.len()
    );
    assert!(!text.contains("secret-payload"), "{text}");
}
