//! [`OutgoingStore`](crate::ports::OutgoingStore) and [`InvocationStore`](crate::ports::InvocationStore) on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, from_json, to_json};
use crate::domain::Timestamp;
use crate::domain::outgoing::{Invocation, OutgoingWebhook, ReferenceId};
use crate::ports::{InvocationStore, OutgoingStore, StoreResult};

#[async_trait]
impl OutgoingStore for SqliteStore {
    async fn put_outgoing(&self, webhook: &OutgoingWebhook) -> StoreResult<()> {
        let id = webhook.id.clone();
        let doc = to_json(webhook)?;
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO outgoing_webhooks (id, doc) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
            )?
            .execute(params![id, doc])?;
            Ok(())
        })
        .await
    }

    async fn get_outgoing(&self, id: &str) -> StoreResult<Option<OutgoingWebhook>> {
        let id = id.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT doc FROM outgoing_webhooks WHERE id = ?1")?
                .query_row([id], |r| from_json(&r.get::<_, String>(0)?))
                .optional()
        })
        .await
    }

    async fn list_outgoing(&self) -> StoreResult<Vec<OutgoingWebhook>> {
        self.read(move |c| {
            c.prepare_cached("SELECT doc FROM outgoing_webhooks ORDER BY id")?
                .query_map([], |r| from_json(&r.get::<_, String>(0)?))?
                .collect()
        })
        .await
    }

    async fn delete_outgoing(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |c| Ok(c.execute("DELETE FROM outgoing_webhooks WHERE id = ?1", [id])? > 0))
            .await
    }
}

#[async_trait]
impl InvocationStore for SqliteStore {
    async fn put_invocation(&self, invocation: &Invocation) -> StoreResult<()> {
        let id = invocation.reference_id.to_string();
        let webhook_id = invocation.webhook_id.clone();
        let (created_at, expires_at) = (invocation.created_at.0, invocation.expires_at.0);
        let doc = to_json(invocation)?;
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO invocations (reference_id, webhook_id, created_at, expires_at, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(reference_id) DO UPDATE SET webhook_id = excluded.webhook_id,
                   created_at = excluded.created_at, expires_at = excluded.expires_at,
                   doc = excluded.doc",
            )?
            .execute(params![id, webhook_id, created_at, expires_at, doc])?;
            Ok(())
        })
        .await
    }

    async fn get_invocation(&self, id: &ReferenceId) -> StoreResult<Option<Invocation>> {
        let now = Timestamp::now().0;
        let key = id.to_string();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT doc FROM invocations WHERE reference_id = ?1 AND expires_at > ?2",
            )?
            .query_row(params![key, now], |r| from_json(&r.get::<_, String>(0)?))
            .optional()
        })
        .await
    }

    async fn list_invocations(
        &self,
        webhook_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Invocation>> {
        let now = Timestamp::now().0;
        let webhook_id = webhook_id.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            c.prepare_cached(
                "SELECT doc FROM invocations WHERE webhook_id = ?1 AND expires_at > ?2
                 ORDER BY created_at DESC, reference_id DESC LIMIT ?3",
            )?
            .query_map(params![webhook_id, now, limit], |r| {
                from_json(&r.get::<_, String>(0)?)
            })?
            .collect()
        })
        .await
    }
}
