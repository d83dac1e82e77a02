//! The rules of [`PipelineStore`](crate::ports::PipelineStore).

use super::unique_key;
use crate::domain::{EventKey, PipelineDefinition, Timestamp};
use crate::ports::PipelineStore;

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
