//! A short-lived, per-process cache of the receive path's lookups (webhook by
//! token, listeners by event key), so a warm Lambda calls DynamoDB only to store
//! the event. Changes made through this process drop the entry at once; changes
//! made elsewhere (another Lambda instance) are seen within the TTL.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::domain::rotation::Rotation;
use crate::domain::verify::Refusals;
use crate::domain::{EventKey, PipelineDefinition, Timestamp, Token, Webhook};
use crate::ports::{PipelineStore, StoreResult, WebhookStore};

/// Most entries kept; beyond it the cache starts over (tokens are unbounded input).
const MAX_ENTRIES: usize = 10_000;

struct TtlMap<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlMap<K, V> {
    fn new(ttl: Duration) -> Self {
        TtlMap {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().expect("cache lock");
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    fn forget(&self, key: &K) {
        self.entries.lock().expect("cache lock").remove(key);
    }

    fn clear(&self) {
        self.entries.lock().expect("cache lock").clear();
    }
}

/// [`WebhookStore`] with `get_by_token` cached for `ttl` (found webhooks only:
/// a webhook created under a given uuid must work at once). An entry found
/// through a rotated-away token answers only until that token's grace ends,
/// however young the entry. A write clears every entry, not only the token's:
/// the webhook may also be cached under its previous token.
pub struct CachedWebhooks {
    inner: Arc<dyn WebhookStore>,
    cache: TtlMap<Token, Webhook>,
}

impl CachedWebhooks {
    pub fn new(inner: Arc<dyn WebhookStore>, ttl: Duration) -> Self {
        CachedWebhooks {
            inner,
            cache: TtlMap::new(ttl),
        }
    }
}

#[async_trait]
impl WebhookStore for CachedWebhooks {
    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        self.inner.insert_webhook(webhook).await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        // Dropped after the write as well: a lookup between the two would
        // otherwise put the old webhook back for a whole TTL.
        self.cache.clear();
        let written = self.inner.update_webhook(webhook).await;
        self.cache.clear();
        written
    }

    async fn get_by_token(&self, token: &Token) -> StoreResult<Option<Webhook>> {
        if let Some(hit) = self.cache.get(token) {
            if hit.answers_to(token, Timestamp::now()) {
                return Ok(Some(hit));
            }
            self.cache.forget(token);
        }
        let found = self.inner.get_by_token(token).await?;
        if let Some(webhook) = &found {
            self.cache.put(*token, webhook.clone());
        }
        Ok(found)
    }

    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.inner.list_webhooks().await
    }

    async fn delete_webhook(&self, token: &Token) -> StoreResult<bool> {
        self.cache.clear();
        let deleted = self.inner.delete_webhook(token).await;
        self.cache.clear();
        deleted
    }

    async fn rotate_token(&self, current: &Token, rotation: &Rotation) -> StoreResult<Webhook> {
        self.cache.clear();
        let rotated = self.inner.rotate_token(current, rotation).await;
        self.cache.clear();
        rotated
    }

    async fn record_refusal(&self, token: &Token, code: &str, at: Timestamp) -> StoreResult<()> {
        self.inner.record_refusal(token, code, at).await
    }

    async fn refusals(&self, token: &Token) -> StoreResult<Option<Refusals>> {
        self.inner.refusals(token).await
    }

    /// Always asks the store: a health check answered from the cache would
    /// report a store that is down as up.
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
}

/// [`PipelineStore`] with `listeners_of` cached for `ttl`.
pub struct CachedPipelines {
    inner: Arc<dyn PipelineStore>,
    cache: TtlMap<EventKey, Vec<String>>,
}

impl CachedPipelines {
    pub fn new(inner: Arc<dyn PipelineStore>, ttl: Duration) -> Self {
        CachedPipelines {
            inner,
            cache: TtlMap::new(ttl),
        }
    }
}

#[async_trait]
impl PipelineStore for CachedPipelines {
    async fn put_pipeline(&self, pipeline: &PipelineDefinition) -> StoreResult<()> {
        self.cache.clear();
        let written = self.inner.put_pipeline(pipeline).await;
        self.cache.clear();
        written
    }

    async fn get_pipeline(&self, name: &str) -> StoreResult<Option<PipelineDefinition>> {
        self.inner.get_pipeline(name).await
    }

    async fn list_pipelines(&self) -> StoreResult<Vec<PipelineDefinition>> {
        self.inner.list_pipelines().await
    }

    async fn delete_pipeline(&self, name: &str) -> StoreResult<bool> {
        self.cache.clear();
        let deleted = self.inner.delete_pipeline(name).await;
        self.cache.clear();
        deleted
    }

    async fn listeners_of(&self, key: &EventKey) -> StoreResult<Vec<String>> {
        if let Some(hit) = self.cache.get(key) {
            return Ok(hit);
        }
        let names = self.inner.listeners_of(key).await?;
        self.cache.put(key.clone(), names.clone());
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::MemoryStore;
    use crate::testkit::sample_webhook;

    fn rotation(grace: Duration) -> Rotation {
        let now = Timestamp::now();
        Rotation {
            new_token: Token::generate(),
            at: now,
            previous_expires_at: Timestamp(now.0 + grace.as_millis() as i64),
        }
    }

    #[tokio::test]
    async fn an_entry_found_through_a_previous_token_ends_with_its_grace() {
        let store = Arc::new(MemoryStore::new());
        let cached = CachedWebhooks::new(store.clone(), Duration::from_secs(3600));
        let webhook = sample_webhook();
        store.insert_webhook(&webhook).await.unwrap();
        // Rotated by another process: this one's cache is not told.
        let rotated = store
            .rotate_token(&webhook.token, &rotation(Duration::from_millis(300)))
            .await
            .unwrap();
        let through_old = cached.get_by_token(&webhook.token).await.unwrap();
        assert_eq!(through_old.map(|w| w.token), Some(rotated.token));

        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            cached.get_by_token(&webhook.token).await.unwrap(),
            None,
            "the grace is over although the entry is younger than the TTL"
        );
        assert!(cached.get_by_token(&rotated.token).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_rotation_through_the_cache_forgets_the_tokens_it_changed() {
        let store = Arc::new(MemoryStore::new());
        let cached = CachedWebhooks::new(store.clone(), Duration::from_secs(3600));
        let webhook = sample_webhook();
        store.insert_webhook(&webhook).await.unwrap();
        assert!(cached.get_by_token(&webhook.token).await.unwrap().is_some());

        let first = cached
            .rotate_token(&webhook.token, &rotation(Duration::from_secs(3600)))
            .await
            .unwrap();
        let through_old = cached.get_by_token(&webhook.token).await.unwrap();
        assert_eq!(
            through_old.map(|w| w.token),
            Some(first.token),
            "the entry cached under the old token before the rotation is gone"
        );

        // Rotating again ends the first token's grace at once, here too.
        cached
            .rotate_token(&first.token, &rotation(Duration::from_secs(3600)))
            .await
            .unwrap();
        assert_eq!(cached.get_by_token(&webhook.token).await.unwrap(), None);
    }
}
