//! The rules of [`InvocationStore`](crate::ports::InvocationStore), with a sample invocation.

use std::collections::BTreeMap;

use serde_json::json;

use crate::domain::outgoing::{
    Attempt, Invocation, InvocationState, PendingSend, ReferenceId, RequestSummary, SecretText,
};
use crate::domain::{CorrelationId, Timestamp};
use crate::ports::InvocationStore;

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
        sent: None,
        resend_of: Some(ReferenceId::generate()),
    }
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
