//! Every adapter passes the same port conformance suites.

use hookflow_core::adapters::{MemoryQueue, MemoryStore, SqliteStore};
use hookflow_core::testkit::{
    event_intake_conformance, event_store_conformance, job_queue_conformance,
    pipeline_store_conformance, webhook_store_conformance,
};

#[tokio::test]
async fn memory_adapters() {
    let store = MemoryStore::new();
    webhook_store_conformance(&store).await;
    event_store_conformance(&store).await;
    pipeline_store_conformance(&store).await;
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
    pipeline_store_conformance(&store).await;
    job_queue_conformance(&store).await;
    event_intake_conformance(&store, &store, &store).await;
}

#[tokio::test]
async fn sqlite_data_survives_reopening() {
    use hookflow_core::ports::{JobQueue, WebhookStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reopen.db");
    let webhook = hookflow_core::testkit::sample_webhook();
    let job = hookflow_core::domain::PipelineJob {
        correlation_id: hookflow_core::domain::CorrelationId::generate(),
        pipeline: "p".into(),
    };
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
    assert_eq!(jobs[0].job, job);
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
