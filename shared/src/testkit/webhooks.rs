//! The rules of [`WebhookStore`](crate::ports::WebhookStore).

use super::{sample_webhook, unique_key};
use crate::domain::rotation::Rotation;
use crate::domain::verify::Refusals;
use crate::domain::{Timestamp, Token};
use crate::error::{Conflict, StoreError};
use crate::inbound::verify::Verification;
use crate::ports::WebhookStore;

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

    // The signature check is stored with its secrets in clear (only answers mask them).
    let mut verified = sample_webhook();
    verified.verify = Some(
        Verification::from_json(&serde_json::json!({
            "scheme": "hmac", "secrets": ["old-secret", "new-secret"], "header": "X-Signature",
            "algorithm": "sha512", "encoding": "base64", "prefix": "v1=", "toleranceSeconds": 60
        }))
        .expect("valid verify"),
    );
    store
        .insert_webhook(&verified)
        .await
        .expect("insert verified");
    assert_eq!(
        store.get_by_token(&verified.token).await.unwrap(),
        Some(verified.clone()),
        "verify round-trips with its secrets"
    );
    assert_eq!(store.refusals(&verified.token).await.unwrap(), None);
    store
        .record_refusal(&verified.token, "signature_missing", Timestamp(1_000))
        .await
        .expect("count a refusal");
    store
        .record_refusal(&verified.token, "signature_invalid", Timestamp(2_000))
        .await
        .expect("count a refusal");
    let unknown = Token::generate();
    store
        .record_refusal(&unknown, "signature_invalid", Timestamp(2_000))
        .await
        .expect("a refusal of no webhook");
    assert_eq!(
        store.refusals(&unknown).await.unwrap(),
        None,
        "nothing is counted for a token no webhook has"
    );

    verified.verify = None;
    store
        .update_webhook(&verified)
        .await
        .expect("remove verify");
    assert_eq!(
        store.get_by_token(&verified.token).await.unwrap(),
        Some(verified.clone()),
        "an update removes verify"
    );
    assert_eq!(
        store.refusals(&verified.token).await.unwrap(),
        Some(Refusals {
            refused: 2,
            last_code: "signature_invalid".into(),
            last_at: Timestamp(2_000),
        }),
        "refusals are counted, the last one kept, and an update keeps them"
    );
    // Refusals arriving at once are each counted: an increment, not read-then-write.
    let racing = (0..16)
        .map(|i| store.record_refusal(&verified.token, "signature_missing", Timestamp(3_000 + i)));
    for counted in futures_util::future::join_all(racing).await {
        counted.expect("count a racing refusal");
    }
    assert_eq!(
        store
            .refusals(&verified.token)
            .await
            .unwrap()
            .map(|r| r.refused),
        Some(18),
        "16 racing refusals all counted"
    );
    assert!(store.delete_webhook(&verified.token).await.unwrap());
    assert_eq!(
        store.refusals(&verified.token).await.unwrap(),
        None,
        "a delete removes the count"
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

    rotation_conformance(store).await;
}

/// A rotation to a fresh token whose predecessor answers for `grace_ms` more
/// (a negative grace: its grace is already over).
fn rotation(grace_ms: i64) -> Rotation {
    let now = Timestamp::now();
    Rotation {
        new_token: Token::generate(),
        at: now,
        previous_expires_at: Timestamp(now.0 + grace_ms),
    }
}

const HOUR_MS: i64 = 3_600_000;

/// The rules of [`WebhookStore::rotate_token`] and of the tokens it leaves.
async fn rotation_conformance(store: &dyn WebhookStore) {
    let w = sample_webhook();
    store.insert_webhook(&w).await.expect("insert");
    for code in ["signature_missing", "signature_invalid"] {
        store
            .record_refusal(&w.token, code, Timestamp(1_000))
            .await
            .expect("count a refusal");
    }

    let first = rotation(HOUR_MS);
    let rotated = store.rotate_token(&w.token, &first).await.expect("rotate");
    let mut expected = w.clone().rotated(&first);
    assert_eq!(rotated, expected, "the webhook as rotated");
    assert_eq!(
        (rotated.token, &rotated.event_key, rotated.created_at),
        (first.new_token, &w.event_key, w.created_at),
        "a new token; key and creation kept"
    );
    for token in [&first.new_token, &w.token] {
        assert_eq!(
            store.get_by_token(token).await.unwrap(),
            Some(expected.clone()),
            "both tokens resolve to the webhook, with the new token in it"
        );
    }
    assert_eq!(
        store
            .refusals(&first.new_token)
            .await
            .unwrap()
            .map(|r| r.refused),
        Some(2),
        "the refusal count follows the token"
    );
    assert_eq!(store.refusals(&w.token).await.unwrap(), None);
    store
        .record_refusal(&first.new_token, "signature_invalid", Timestamp(2_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .refusals(&first.new_token)
            .await
            .unwrap()
            .map(|r| r.refused),
        Some(3),
        "later refusals add to the moved count"
    );
    let listed = store.list_webhooks().await.unwrap();
    let same_key: Vec<_> = listed
        .iter()
        .filter(|l| l.event_key == w.event_key)
        .collect();
    assert_eq!(
        same_key,
        vec![&expected],
        "listed once, under its new token"
    );

    // The event key stays claimed, by the new token.
    let mut rival = sample_webhook();
    rival.event_key = w.event_key.clone();
    assert!(
        matches!(
            store.insert_webhook(&rival).await,
            Err(StoreError::Conflict(Conflict::EventKeyTaken))
        ),
        "the key stays taken after a rotation"
    );
    expected.description = Some("edited after the rotation".into());
    expected.event_key = unique_key("webhook.rotated");
    store
        .update_webhook(&expected)
        .await
        .expect("edit under the new token");
    assert_eq!(
        store.get_by_token(&w.token).await.unwrap(),
        Some(expected.clone()),
        "the previous token reaches the edited webhook"
    );
    store
        .insert_webhook(&rival)
        .await
        .expect("the key left by the rename is free");

    assert!(
        matches!(
            store.rotate_token(&w.token, &rotation(HOUR_MS)).await,
            Err(StoreError::NotFound)
        ),
        "only a current token can be rotated"
    );
    assert!(
        matches!(
            store
                .rotate_token(&Token::generate(), &rotation(HOUR_MS))
                .await,
            Err(StoreError::NotFound)
        ),
        "rotate an unknown token"
    );

    let second = rotation(HOUR_MS);
    let again = store
        .rotate_token(&first.new_token, &second)
        .await
        .expect("rotate again during the grace");
    assert_eq!(
        store.get_by_token(&w.token).await.unwrap(),
        None,
        "rotating again ends the first token's grace at once"
    );
    for token in [&second.new_token, &first.new_token] {
        assert_eq!(
            store.get_by_token(token).await.unwrap(),
            Some(again.clone())
        );
    }

    let ended = rotation(-1);
    let third = store
        .rotate_token(&second.new_token, &ended)
        .await
        .expect("rotate with a grace already over");
    assert_eq!(
        store.get_by_token(&second.new_token).await.unwrap(),
        None,
        "after its grace the previous token resolves to nothing"
    );
    assert_eq!(
        store.get_by_token(&ended.new_token).await.unwrap(),
        Some(third)
    );
    // A token whose grace is over may become another webhook's own token.
    let mut reborn = sample_webhook();
    reborn.token = second.new_token;
    store
        .insert_webhook(&reborn)
        .await
        .expect("insert under an expired previous token");
    assert_eq!(
        store.get_by_token(&second.new_token).await.unwrap(),
        Some(reborn),
        "a webhook's own token wins over an expired alias"
    );

    let last = rotation(HOUR_MS);
    store
        .rotate_token(&ended.new_token, &last)
        .await
        .expect("rotate");
    assert!(
        !store.delete_webhook(&ended.new_token).await.unwrap(),
        "a delete names the current token"
    );
    assert!(store.delete_webhook(&last.new_token).await.unwrap());
    for token in [&last.new_token, &ended.new_token] {
        assert_eq!(
            store.get_by_token(token).await.unwrap(),
            None,
            "a delete after a rotation removes the previous token too"
        );
    }
    assert_eq!(store.refusals(&last.new_token).await.unwrap(), None);
}
