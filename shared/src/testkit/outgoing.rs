//! The rules of [`OutgoingStore`](crate::ports::OutgoingStore), with a sample registration.

use std::collections::BTreeMap;

use serde_json::json;

use crate::domain::Timestamp;
use crate::domain::outgoing::{OutgoingWebhook, PayloadEncoding, SecretText, SigningSecret};
use crate::ports::OutgoingStore;

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
