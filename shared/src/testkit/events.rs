//! The rules of [`EventStore`](crate::ports::EventStore) and its effect claims.

use serde_json::json;

use super::{sample_event, unique_key};
use crate::domain::{CorrelationId, PipelineOutcome, ResultStatus};
use crate::error::{Conflict, StoreError};
use crate::ports::{EventStore, Recorded};

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
                .record_outcome(
                    &unknown,
                    "p",
                    &PipelineOutcome::Ok {
                        value: json!(1),
                        run: None
                    }
                )
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
        run: None,
    };
    assert_eq!(
        store.record_outcome(&id2, "alpha", &first).await.unwrap(),
        Recorded::New
    );
    let again = PipelineOutcome::Ok {
        value: json!("redelivered"),
        run: None,
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
        .record_outcome(
            &id2,
            "beta",
            &PipelineOutcome::Ok {
                value: json!("b"),
                run: None,
            },
        )
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
        run: None,
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
