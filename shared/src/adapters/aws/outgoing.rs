//! DynamoDB stores of outgoing webhooks and their invocation records (see the
//! module docs of `aws` for the keys). Each record is one JSON document in `doc`,
//! the same serde document every adapter keeps.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;

use super::dynamo::{Item, get_json, json, n, s, scan_json, to_json, unavailable};
use crate::domain::Timestamp;
use crate::domain::outgoing::{Invocation, OutgoingWebhook, ReferenceId};
use crate::ports::{InvocationStore, OutgoingStore, StoreResult};

/// The attribute holding a record's JSON document.
const DOC: &str = "doc";

/// The invocations table's index from webhook id to its invocations, newest first.
pub const INVOCATIONS_BY_WEBHOOK: &str = "byWebhook";

/// Outgoing webhook registrations by `id`.
pub struct DynamoOutgoingStore {
    client: Client,
    table: String,
}

impl DynamoOutgoingStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoOutgoingStore {
            client,
            table: table.to_owned(),
        }
    }
}

#[async_trait]
impl OutgoingStore for DynamoOutgoingStore {
    async fn put_outgoing(&self, webhook: &OutgoingWebhook) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("id", s(&webhook.id))
            .item(DOC, s(to_json(webhook)?))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get_outgoing(&self, id: &str) -> StoreResult<Option<OutgoingWebhook>> {
        get_json(&self.client, &self.table, "id", s(id), DOC).await
    }

    async fn list_outgoing(&self) -> StoreResult<Vec<OutgoingWebhook>> {
        let mut all: Vec<OutgoingWebhook> = scan_json(&self.client, &self.table, None, DOC).await?;
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    async fn delete_outgoing(&self, id: &str) -> StoreResult<bool> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", s(id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(deleted.attributes.is_some_and(|a| !a.is_empty()))
    }
}

/// Invocation records by `referenceId`, with the `byWebhook` index (`webhookId`,
/// `createdAt`) for listings. `expiresAt` (epoch seconds) is the TTL attribute;
/// reads check the document's `expiresAt` themselves, because TTL deletion lags
/// by up to days.
pub struct DynamoInvocationStore {
    client: Client,
    table: String,
}

impl DynamoInvocationStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoInvocationStore {
            client,
            table: table.to_owned(),
        }
    }

    /// The record in `item`, unless it expired by `now`.
    fn alive(item: &Item, now: Timestamp) -> StoreResult<Option<Invocation>> {
        let invocation: Invocation = json(item, DOC)?;
        Ok((!invocation.is_expired(now)).then_some(invocation))
    }
}

#[async_trait]
impl InvocationStore for DynamoInvocationStore {
    async fn put_invocation(&self, invocation: &Invocation) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("referenceId", s(invocation.reference_id.to_string()))
            .item("webhookId", s(&invocation.webhook_id))
            .item("createdAt", n(invocation.created_at.0))
            // Rounded up, so TTL never drops a record before its millisecond expiry.
            .item("expiresAt", n(invocation.expires_at.epoch_seconds() + 1))
            .item(DOC, s(to_json(invocation)?))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get_invocation(&self, id: &ReferenceId) -> StoreResult<Option<Invocation>> {
        let found: Option<Invocation> = get_json(
            &self.client,
            &self.table,
            "referenceId",
            s(id.to_string()),
            DOC,
        )
        .await?;
        let now = Timestamp::now();
        Ok(found.filter(|invocation| !invocation.is_expired(now)))
    }

    async fn list_invocations(
        &self,
        webhook_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Invocation>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = Timestamp::now();
        // Pages of `limit` records, newest first. Expired records TTL has not yet
        // deleted are skipped and later pages fill their places; no page is
        // fetched once `limit` records are collected.
        let page_size = i32::try_from(limit).unwrap_or(i32::MAX);
        let mut items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INVOCATIONS_BY_WEBHOOK)
            .key_condition_expression("webhookId = :webhook")
            .expression_attribute_values(":webhook", s(webhook_id))
            .scan_index_forward(false)
            .limit(page_size)
            .into_paginator()
            .items()
            .send();
        let mut found = Vec::with_capacity(limit.min(100));
        while found.len() < limit {
            let Some(item) = items.next().await else {
                break;
            };
            if let Some(invocation) = Self::alive(&item.map_err(unavailable)?, now)? {
                found.push(invocation);
            }
        }
        Ok(found)
    }
}
