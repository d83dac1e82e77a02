//! DynamoDB stores (see the module docs of `aws` for the keys), with S3 claim
//! checks for events and outcomes too large for an item.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};

use crate::domain::dedup::{Admission, DedupClaim, DedupKey};
use crate::domain::rotation::Rotation;
use crate::domain::verify::Refusals;
use crate::domain::{
    CorrelationId, EventKey, EventRecord, PipelineDefinition, PipelineOutcome, ResultRecord,
    Timestamp, Token, Webhook,
};
use crate::error::{Conflict, StoreError};
use crate::ports::{EffectLog, EventStore, PipelineStore, Recorded, StoreResult, WebhookStore};

pub(super) use super::unavailable;

pub(super) type Item = HashMap<String, AttributeValue>;

/// The attribute holding a webhook's or a pipeline's JSON document.
const DATA: &str = "data";

/// Events whose JSON is larger than this go to S3 (an item holds 400 KB in all).
pub const MAX_INLINE_EVENT_BYTES: usize = 300_000;
/// Outcomes whose JSON is larger than this go to S3, for the same reason.
pub const MAX_INLINE_OUTCOME_BYTES: usize = 300_000;
/// Object key prefix of claim-checked events; the bucket's lifecycle rule expires it.
pub(super) const PAYLOAD_PREFIX: &str = "events/";
/// Object key prefix of claim-checked outcomes; expired by the same kind of rule.
pub(super) const OUTCOME_PAYLOAD_PREFIX: &str = "outcomes/";

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn text<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::unavailable(format!(
            "item lacks the text attribute {name}"
        ))),
    }
}

fn number(item: &Item, name: &str) -> StoreResult<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(StoreError::unavailable),
        _ => Err(StoreError::unavailable(format!(
            "item lacks the number attribute {name}"
        ))),
    }
}

pub(super) fn json<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> StoreResult<T> {
    serde_json::from_str(text(item, name)?).map_err(StoreError::unavailable)
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(StoreError::unavailable)
}

fn built<T>(result: Result<T, aws_sdk_dynamodb::error::BuildError>) -> StoreResult<T> {
    result.map_err(StoreError::unavailable)
}

/// The JSON in `attribute` of the item under `key_name = key` (consistent read).
pub(super) async fn get_json<T: serde::de::DeserializeOwned>(
    client: &Client,
    table: &str,
    key_name: &str,
    key: AttributeValue,
    attribute: &str,
) -> StoreResult<Option<T>> {
    get_item(client, table, key_name, key)
        .await?
        .map(|item| json(&item, attribute))
        .transpose()
}

/// The item under `key` of a table with a single key attribute, read consistently.
pub(super) async fn get_item(
    client: &Client,
    table: &str,
    key_name: &str,
    key: AttributeValue,
) -> StoreResult<Option<Item>> {
    let found = client
        .get_item()
        .table_name(table)
        .key(key_name, key)
        .consistent_read(true)
        .send()
        .await
        .map_err(unavailable)?;
    Ok(found.item)
}

/// The JSON in `attribute` of every item of `table` (whose `pk` starts with
/// `prefix`, if given). A scan: only the management listings use it.
pub(super) async fn scan_json<T: serde::de::DeserializeOwned>(
    client: &Client,
    table: &str,
    prefix: Option<&str>,
    attribute: &str,
) -> StoreResult<Vec<T>> {
    let mut scan = client.scan().table_name(table).consistent_read(true);
    if let Some(prefix) = prefix {
        scan = scan
            .filter_expression("begins_with(pk, :prefix)")
            .expression_attribute_values(":prefix", s(prefix));
    }
    let items: Vec<Item> = scan
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(unavailable)?;
    items.iter().map(|item| json(item, attribute)).collect()
}

/// Which items of a cancelled transaction failed their condition.
fn cancelled_conditions<R>(err: &SdkError<TransactWriteItemsError, R>) -> Option<Vec<bool>> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => Some(
            e.cancellation_reasons()
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect(),
        ),
        _ => None,
    }
}

/// Writes `items` in one transaction. A cancelled one answers which items
/// failed their condition (all `false`: cancelled for another reason, such as
/// a concurrent transaction on one of its items).
async fn transact(
    client: &Client,
    items: Vec<TransactWriteItem>,
) -> Result<(), Result<Vec<bool>, StoreError>> {
    match client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(err) => Err(cancelled_conditions(&err).ok_or_else(|| unavailable(err))),
    }
}

/// Whether a conditional put was refused because its condition failed.
fn condition_failed<R>(err: &SdkError<PutItemError, R>) -> bool {
    err.as_service_error()
        .is_some_and(|e| e.is_conditional_check_failed_exception())
}

/// Key prefix of a rotated-away token's item, which names the webhook's
/// current token until the grace ends (`expiresAtMs`).
const ALIAS_PREFIX: &str = "tokenalias#";
/// The webhooks table's TTL attribute (epoch seconds): only alias items have it.
const TTL_ATTRIBUTE: &str = "expiresAt";
/// Reads and conditional writes a rotation tries before it reports the
/// webhook as busy: each retry follows a change made between its read and write.
const ROTATE_ATTEMPTS: usize = 3;

/// Webhooks: `webhook#<token>` items plus `eventkey#<key>` uniqueness claims
/// and `tokenalias#<token>` items of rotated-away tokens.
pub struct DynamoWebhookStore {
    client: Client,
    table: String,
}

impl DynamoWebhookStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoWebhookStore {
            client,
            table: table.to_owned(),
        }
    }

    fn webhook_key(token: &Token) -> AttributeValue {
        s(format!("webhook#{}", token.reveal()))
    }

    fn refusals_key(token: &Token) -> AttributeValue {
        s(format!("refusals#{}", token.reveal()))
    }

    fn claim_key(key: &EventKey) -> AttributeValue {
        s(format!("eventkey#{key}"))
    }

    fn alias_key(token: &Token) -> AttributeValue {
        s(format!("{ALIAS_PREFIX}{}", token.reveal()))
    }

    /// Deletes `key` in a transaction, with no condition.
    fn plain_delete(&self, key: AttributeValue) -> StoreResult<TransactWriteItem> {
        Ok(TransactWriteItem::builder()
            .delete(built(
                Delete::builder()
                    .table_name(&self.table)
                    .key("pk", key)
                    .build(),
            )?)
            .build())
    }

    /// The webhook whose current token is `token`.
    async fn webhook_of(&self, token: &Token) -> StoreResult<Option<Webhook>> {
        get_json(
            &self.client,
            &self.table,
            "pk",
            Self::webhook_key(token),
            DATA,
        )
        .await
    }

    /// The stored webhook item under its current token, as stored.
    async fn webhook_item(&self, token: &Token) -> StoreResult<Option<Item>> {
        get_item(&self.client, &self.table, "pk", Self::webhook_key(token)).await
    }

    /// The webhook whose previous token `token` is, while its grace runs.
    /// Checked at read time: DynamoDB's TTL deletes the alias item days late.
    async fn webhook_by_alias(&self, token: &Token) -> StoreResult<Option<Webhook>> {
        let found = get_item(&self.client, &self.table, "pk", Self::alias_key(token)).await?;
        let now = Timestamp::now();
        let Some(alias) = found else {
            return Ok(None);
        };
        if number(&alias, "expiresAtMs")? <= now.0 {
            return Ok(None);
        }
        let current = Token::parse(text(&alias, "token")?)
            .ok_or_else(|| StoreError::Corrupt("an alias item holds no token".into()))?;
        let webhook = self.webhook_of(&current).await?;
        // The webhook's own record has the last word (a later rotation or a
        // delete that raced this read).
        Ok(webhook.filter(|w| w.answers_to(token, now)))
    }

    /// One attempt at [`WebhookStore::rotate_token`]: the webhook and its
    /// refusal count as read now, rewritten in one transaction whose
    /// conditions fail if either changed meanwhile. `Ok(None)`: something
    /// changed, read again.
    async fn try_rotate(
        &self,
        current: &Token,
        rotation: &Rotation,
    ) -> StoreResult<Option<Webhook>> {
        let item = self
            .webhook_item(current)
            .await?
            .ok_or(StoreError::NotFound)?;
        let stored_data = text(&item, DATA)?.to_owned();
        let webhook: Webhook = json(&item, DATA)?;
        let refusals = self.read_refusals(current).await?;
        let rotated = webhook.clone().rotated(rotation);
        let mut items = vec![
            TransactWriteItem::builder()
                .put(self.webhook_put(&rotated, "attribute_not_exists(pk)")?)
                .build(),
            TransactWriteItem::builder()
                .delete(built(
                    Delete::builder()
                        .table_name(&self.table)
                        .key("pk", Self::webhook_key(current))
                        .condition_expression("#data = :data")
                        .expression_attribute_names("#data", DATA)
                        .expression_attribute_values(":data", s(stored_data))
                        .build(),
                )?)
                .build(),
            TransactWriteItem::builder()
                .put(built(
                    Put::builder()
                        .table_name(&self.table)
                        .item("pk", Self::alias_key(current))
                        .item("token", s(rotated.token.reveal()))
                        .item(
                            TTL_ATTRIBUTE,
                            n(rotation.previous_expires_at.epoch_seconds() + 1),
                        )
                        .item("expiresAtMs", n(rotation.previous_expires_at.0))
                        .build(),
                )?)
                .build(),
            TransactWriteItem::builder()
                .put(built(
                    Put::builder()
                        .table_name(&self.table)
                        .item("pk", Self::claim_key(&webhook.event_key))
                        .item("token", s(rotated.token.reveal()))
                        .condition_expression("#token = :token")
                        .expression_attribute_names("#token", "token")
                        .expression_attribute_values(":token", s(current.reveal()))
                        .build(),
                )?)
                .build(),
        ];
        // The count moves only if no refusal was counted since it was read.
        let refusals_gone = match &refusals {
            Some(r) => {
                items.push(
                    TransactWriteItem::builder()
                        .put(built(
                            Put::builder()
                                .table_name(&self.table)
                                .item("pk", Self::refusals_key(&rotated.token))
                                .item("refused", n(r.refused as i64))
                                .item("lastCode", s(&r.last_code))
                                .item("lastAt", n(r.last_at.0))
                                .build(),
                        )?)
                        .build(),
                );
                Delete::builder()
                    .table_name(&self.table)
                    .key("pk", Self::refusals_key(current))
                    .condition_expression("refused = :refused")
                    .expression_attribute_values(":refused", n(r.refused as i64))
                    .build()
            }
            None => Delete::builder()
                .table_name(&self.table)
                .key("pk", Self::refusals_key(current))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        };
        items.push(
            TransactWriteItem::builder()
                .delete(built(refusals_gone)?)
                .build(),
        );
        if let Some(earlier) = webhook.previous_token {
            items.push(self.plain_delete(Self::alias_key(&earlier.token))?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(Some(rotated)),
            Err(Ok(failed)) if failed.first() == Some(&true) => {
                Err(StoreError::Conflict(Conflict::TokenTaken))
            }
            // Changed, deleted or rotated meanwhile, a refusal counted, or a
            // transaction conflict: the next attempt reads it all again.
            Err(Ok(_)) => Ok(None),
            Err(Err(err)) => Err(err),
        }
    }

    fn webhook_put(&self, webhook: &Webhook, condition: &str) -> StoreResult<Put> {
        built(
            Put::builder()
                .table_name(&self.table)
                .item("pk", Self::webhook_key(&webhook.token))
                .item("eventKey", s(webhook.event_key.as_str()))
                .item("createdAt", n(webhook.created_at.0))
                .item(DATA, s(to_json(webhook)?))
                .condition_expression(condition)
                .build(),
        )
    }

    /// Claims `key` for `token`; succeeds if free or already this token's.
    fn claim_put(&self, key: &EventKey, token: &Token) -> StoreResult<Put> {
        built(
            Put::builder()
                .table_name(&self.table)
                .item("pk", Self::claim_key(key))
                .item("token", s(token.reveal()))
                .condition_expression("attribute_not_exists(pk) OR #token = :token")
                .expression_attribute_names("#token", "token")
                .expression_attribute_values(":token", s(token.reveal()))
                .build(),
        )
    }

    fn claim_delete(&self, key: &EventKey, token: &Token) -> StoreResult<Delete> {
        built(
            Delete::builder()
                .table_name(&self.table)
                .key("pk", Self::claim_key(key))
                .condition_expression("#token = :token")
                .expression_attribute_names("#token", "token")
                .expression_attribute_values(":token", s(token.reveal()))
                .build(),
        )
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), Result<Vec<bool>, StoreError>> {
        transact(&self.client, items).await
    }
}

#[async_trait]
impl WebhookStore for DynamoWebhookStore {
    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let items = vec![
            TransactWriteItem::builder()
                .put(self.webhook_put(webhook, "attribute_not_exists(pk)")?)
                .build(),
            TransactWriteItem::builder()
                .put(self.claim_put(&webhook.event_key, &webhook.token)?)
                .build(),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(Ok(failed)) if failed.first() == Some(&true) => {
                Err(StoreError::Conflict(Conflict::TokenTaken))
            }
            Err(Ok(_)) => Err(StoreError::Conflict(Conflict::EventKeyTaken)),
            Err(Err(err)) => Err(err),
        }
    }

    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let current = self
            .webhook_of(&webhook.token)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut items = vec![
            TransactWriteItem::builder()
                .put(self.webhook_put(webhook, "attribute_exists(pk)")?)
                .build(),
        ];
        if current.event_key != webhook.event_key {
            items.push(
                TransactWriteItem::builder()
                    .put(self.claim_put(&webhook.event_key, &webhook.token)?)
                    .build(),
            );
            items.push(
                TransactWriteItem::builder()
                    .delete(self.claim_delete(&current.event_key, &webhook.token)?)
                    .build(),
            );
        }
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(Ok(failed)) if failed.first() == Some(&true) => Err(StoreError::NotFound),
            Err(Ok(_)) => Err(StoreError::Conflict(Conflict::EventKeyTaken)),
            Err(Err(err)) => Err(err),
        }
    }

    async fn get_by_token(&self, token: &Token) -> StoreResult<Option<Webhook>> {
        match self.webhook_of(token).await? {
            Some(webhook) => Ok(Some(webhook)),
            None => self.webhook_by_alias(token).await,
        }
    }

    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        let mut all: Vec<Webhook> =
            scan_json(&self.client, &self.table, Some("webhook#"), DATA).await?;
        all.sort_by(|a, b| (a.created_at, &a.event_key).cmp(&(b.created_at, &b.event_key)));
        Ok(all)
    }

    async fn delete_webhook(&self, token: &Token) -> StoreResult<bool> {
        let Some(current) = self.webhook_of(token).await? else {
            return Ok(false);
        };
        let mut items = vec![
            TransactWriteItem::builder()
                .delete(built(
                    Delete::builder()
                        .table_name(&self.table)
                        .key("pk", Self::webhook_key(token))
                        .condition_expression("attribute_exists(pk)")
                        .build(),
                )?)
                .build(),
            TransactWriteItem::builder()
                .delete(self.claim_delete(&current.event_key, token)?)
                .build(),
            self.plain_delete(Self::refusals_key(token))?,
        ];
        if let Some(previous) = current.previous_token {
            items.push(self.plain_delete(Self::alias_key(&previous.token))?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(Ok(_)) => Ok(false),
            Err(Err(err)) => Err(err),
        }
    }

    async fn rotate_token(&self, current: &Token, rotation: &Rotation) -> StoreResult<Webhook> {
        for _ in 0..ROTATE_ATTEMPTS {
            if let Some(rotated) = self.try_rotate(current, rotation).await? {
                return Ok(rotated);
            }
        }
        Err(StoreError::unavailable(
            "the webhook kept changing while its token was rotated",
        ))
    }

    /// `ADD` is DynamoDB's atomic increment,
    /// in one transaction with a check that the webhook exists, so a refusal
    /// racing a delete leaves no count behind.
    async fn record_refusal(&self, token: &Token, code: &str, at: Timestamp) -> StoreResult<()> {
        let items = vec![
            TransactWriteItem::builder()
                .condition_check(built(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .key("pk", Self::webhook_key(token))
                        .condition_expression("attribute_exists(pk)")
                        .build(),
                )?)
                .build(),
            TransactWriteItem::builder()
                .update(built(
                    Update::builder()
                        .table_name(&self.table)
                        .key("pk", Self::refusals_key(token))
                        .update_expression("ADD refused :one SET lastCode = :code, lastAt = :at")
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":code", s(code))
                        .expression_attribute_values(":at", n(at.0))
                        .build(),
                )?)
                .build(),
        ];
        match self.transact(items).await {
            // Cancelled by the check: the webhook is gone, nothing to count.
            Ok(()) | Err(Ok(_)) => Ok(()),
            Err(Err(err)) => Err(err),
        }
    }

    async fn refusals(&self, token: &Token) -> StoreResult<Option<Refusals>> {
        self.read_refusals(token).await
    }
}

impl DynamoWebhookStore {
    /// The refusal count of `token` (also moved by a rotation).
    async fn read_refusals(&self, token: &Token) -> StoreResult<Option<Refusals>> {
        let found = get_item(&self.client, &self.table, "pk", Self::refusals_key(token)).await?;
        let Some(item) = found else {
            return Ok(None);
        };
        Ok(Some(Refusals {
            refused: number(&item, "refused")? as u64,
            last_code: text(&item, "lastCode")?.to_owned(),
            last_at: Timestamp(number(&item, "lastAt")?),
        }))
    }
}

/// Pipelines by name, with the `byEventKey` index for the receive path.
pub struct DynamoPipelineStore {
    client: Client,
    table: String,
}

/// The pipelines table's index from event key to pipeline names.
pub const PIPELINES_BY_EVENT_KEY: &str = "byEventKey";

impl DynamoPipelineStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoPipelineStore {
            client,
            table: table.to_owned(),
        }
    }
}

#[async_trait]
impl PipelineStore for DynamoPipelineStore {
    async fn put_pipeline(&self, pipeline: &PipelineDefinition) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("name", s(&pipeline.name))
            .item("eventKey", s(pipeline.listens_to.as_str()))
            .item(DATA, s(to_json(pipeline)?))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get_pipeline(&self, name: &str) -> StoreResult<Option<PipelineDefinition>> {
        get_json(&self.client, &self.table, "name", s(name), DATA).await
    }

    async fn list_pipelines(&self) -> StoreResult<Vec<PipelineDefinition>> {
        let mut all: Vec<PipelineDefinition> =
            scan_json(&self.client, &self.table, None, DATA).await?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn delete_pipeline(&self, name: &str) -> StoreResult<bool> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("name", s(name))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(deleted.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn listeners_of(&self, key: &EventKey) -> StoreResult<Vec<String>> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PIPELINES_BY_EVENT_KEY)
            .key_condition_expression("eventKey = :key")
            .expression_attribute_values(":key", s(key.as_str()))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(unavailable)?;
        let mut names = items
            .iter()
            .map(|item| text(item, "name").map(str::to_owned))
            .collect::<StoreResult<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }
}

/// Events and their outcomes; large events are claim-checked in S3.
pub struct DynamoEventStore {
    pub(super) client: Client,
    s3: aws_sdk_s3::Client,
    pub(super) table: String,
    bucket: String,
}

pub(super) const EVENT_SK: &str = "event";
/// Until when an event stays in the log (ms): the later of its result's end
/// and its retention. `expiresAt`, the TTL, is this in seconds.
pub(super) const KEPT_UNTIL: &str = "keptUntilMs";
/// How many listeners of an event have no outcome yet (the log's status).
pub(super) const PENDING: &str = "pending";
const OUTCOME_PREFIX: &str = "outcome#";
/// Claims on side effects (`EffectLog`); a result's Query passes over them.
const EFFECT_PREFIX: &str = "effect#";
/// Delivery claims (`dedup`): `dedup#<hash>` partitions of their own, apart
/// from every event's, with the sort key [`DEDUP_SK`].
const DEDUP_PREFIX: &str = "dedup#";
const DEDUP_SK: &str = "dedup";
/// Tries of a claimed event's transaction that a concurrent one cancelled.
const CLAIM_ATTEMPTS: u32 = 5;

impl DynamoEventStore {
    pub fn new(client: Client, s3: aws_sdk_s3::Client, table: &str, bucket: &str) -> Self {
        DynamoEventStore {
            client,
            s3,
            table: table.to_owned(),
            bucket: bucket.to_owned(),
        }
    }

    /// Whether the result of an event item still answers at `now`.
    fn alive(item: &Item, now: Timestamp) -> StoreResult<bool> {
        Ok(number(item, "expiresAtMs")? > now.0)
    }

    /// Until when an event item stays in the log; items written before the
    /// log existed have only their result's end.
    pub(super) fn kept_until(item: &Item) -> StoreResult<Timestamp> {
        number(item, KEPT_UNTIL)
            .or_else(|_| number(item, "expiresAtMs"))
            .map(Timestamp)
    }

    /// The TTL (`expiresAt`, epoch seconds) of event `id`, which the other
    /// items of its partition copy so they expire with it; `NotFound` if the
    /// event is unknown.
    async fn event_expiry(&self, id: &CorrelationId) -> StoreResult<i64> {
        self.event_head(id).await.map(|(expiry, _)| expiry)
    }

    /// The TTL of event `id` and whether its item keeps the log's pipeline
    /// statuses (items written before the log do not); `NotFound` if unknown.
    async fn event_head(&self, id: &CorrelationId) -> StoreResult<(i64, bool)> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("correlationId", s(id.to_string()))
            .key("sk", s(EVENT_SK))
            .projection_expression("expiresAt, #pending")
            .expression_attribute_names("#pending", PENDING)
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        match found.item {
            Some(item) => Ok((number(&item, "expiresAt")?, item.contains_key(PENDING))),
            None => Err(StoreError::NotFound),
        }
    }

    /// The item of a new event, and the key of its payload in the bucket when
    /// it is too large for the item (written here, before the item).
    async fn event_item(&self, record: &EventRecord) -> StoreResult<(Item, Option<String>)> {
        let id = record.event.correlation_id.to_string();
        let data = to_json(&record.event)?;
        let mut item = Item::from([
            ("correlationId".to_owned(), s(&id)),
            ("sk".to_owned(), s(EVENT_SK)),
            ("listeners".to_owned(), s(to_json(&record.listeners)?)),
            (
                "expiresAt".to_owned(),
                n(record.kept_until().epoch_seconds() + 1),
            ),
            ("expiresAtMs".to_owned(), n(record.expires_at.0)),
        ]);
        item.extend(super::eventlog::log_attributes(record));
        if data.len() > MAX_INLINE_EVENT_BYTES {
            let key = format!("{PAYLOAD_PREFIX}{id}.json");
            self.claim_check(&key, data).await?;
            item.insert("s3Key".to_owned(), s(&key));
            Ok((item, Some(key)))
        } else {
            item.insert(DATA.to_owned(), s(data));
            Ok((item, None))
        }
    }

    fn claim_key(key: &DedupKey) -> AttributeValue {
        s(format!("{DEDUP_PREFIX}{}", key.to_text()))
    }

    /// The event holding the claim on `key`, if any (a consistent read).
    async fn claim_holder(&self, key: &DedupKey) -> StoreResult<Option<CorrelationId>> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("correlationId", Self::claim_key(key))
            .key("sk", s(DEDUP_SK))
            .projection_expression("eventId")
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = found.item else {
            return Ok(None);
        };
        let id = text(&item, "eventId")?;
        CorrelationId::parse(id)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("a dedup claim names no event: {id}")))
    }

    /// Deletes the payload object of an event that was not stored (a
    /// duplicate), so a repeated large delivery leaves no second copy. Should
    /// this fail, the bucket's lifecycle rule deletes it within a day.
    async fn drop_unstored_payload(&self, key: Option<&str>) {
        let Some(key) = key else { return };
        if let Err(err) = self
            .s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            tracing::warn!(error = %unavailable(err), "the payload of a duplicate stays until the bucket's lifecycle rule");
        }
    }

    /// The JSON document kept in the bucket under `key`.
    async fn load_claim_checked<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> StoreResult<T> {
        let object = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(unavailable)?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(StoreError::unavailable)?
            .into_bytes();
        serde_json::from_slice(&bytes).map_err(StoreError::unavailable)
    }

    /// The outcomes among the items of an event's partition (effect claims
    /// share it), claim-checked ones loaded from the bucket.
    async fn outcomes_of(&self, items: &[Item]) -> StoreResult<BTreeMap<String, PipelineOutcome>> {
        let mut outcomes = BTreeMap::new();
        for item in items {
            if let Some(pipeline) = text(item, "sk")?.strip_prefix(OUTCOME_PREFIX) {
                let outcome = match item.get("outcomeS3Key") {
                    Some(AttributeValue::S(key)) => self.load_claim_checked(key).await?,
                    _ => json::<PipelineOutcome>(item, "outcome")?,
                };
                outcomes.insert(pipeline.to_owned(), outcome);
            }
        }
        Ok(outcomes)
    }

    /// Every item of event `id` (the event, its outcomes and claims), or those
    /// whose sort key starts with `sk_prefix`; only the `projection`'s
    /// attributes when one is given. Strongly consistent: a worker's outcome
    /// must be seen by the next read.
    async fn event_items(
        &self,
        id: &CorrelationId,
        sk_prefix: Option<&str>,
        projection: Option<&str>,
    ) -> StoreResult<Vec<Item>> {
        let key_condition = match sk_prefix {
            Some(_) => "correlationId = :id AND begins_with(sk, :prefix)",
            None => "correlationId = :id",
        };
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(key_condition)
            .expression_attribute_values(":id", s(id.to_string()))
            .consistent_read(true);
        if let Some(prefix) = sk_prefix {
            query = query.expression_attribute_values(":prefix", s(prefix));
        }
        if let Some(projection) = projection {
            query = query.projection_expression(projection);
        }
        query
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(unavailable)
    }

    /// The outcomes recorded for event `id`, whether its result still answers or not.
    pub(super) async fn outcomes(
        &self,
        id: &CorrelationId,
    ) -> StoreResult<BTreeMap<String, PipelineOutcome>> {
        let items = self.event_items(id, Some(OUTCOME_PREFIX), None).await?;
        self.outcomes_of(&items).await
    }

    /// Keeps `data` in the bucket under `key`.
    async fn claim_check(&self, key: &str, data: String) -> StoreResult<()> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(data.into_bytes().into())
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl EventStore for DynamoEventStore {
    async fn put_event(&self, record: &EventRecord) -> StoreResult<()> {
        let (item, _) = self.event_item(record).await?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(correlationId)");
        match put.send().await {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => {
                Err(StoreError::Conflict(Conflict::AlreadyExists))
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn put_claimed_event(
        &self,
        record: &EventRecord,
        claim: &DedupClaim,
    ) -> StoreResult<Admission> {
        let (item, s3_key) = self.event_item(record).await?;
        let items = vec![
            TransactWriteItem::builder()
                .put(built(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(correlationId)")
                        .build(),
                )?)
                .build(),
            TransactWriteItem::builder()
                .put(built(
                    Put::builder()
                        .table_name(&self.table)
                        .item("correlationId", Self::claim_key(&claim.key))
                        .item("sk", s(DEDUP_SK))
                        .item("eventId", s(record.event.correlation_id.to_string()))
                        .item("expiresAt", n(claim.expires_at.epoch_seconds() + 1))
                        .item("expiresAtMs", n(claim.expires_at.0))
                        // TTL deletes lag by days: an expired claim still
                        // there is taken over.
                        .condition_expression(
                            "attribute_not_exists(correlationId) OR expiresAtMs <= :now",
                        )
                        .expression_attribute_values(":now", n(claim.claimed_at.0))
                        .build(),
                )?)
                .build(),
        ];
        for attempt in 1..=CLAIM_ATTEMPTS {
            let failed = match transact(&self.client, items.clone()).await {
                Ok(()) => return Ok(Admission::New),
                Err(Err(err)) => return Err(err),
                Err(Ok(failed)) => failed,
            };
            if failed.get(1) == Some(&true) {
                // Held by another event, unless it was released meanwhile (then try again).
                if let Some(first) = self.claim_holder(&claim.key).await? {
                    self.drop_unstored_payload(s3_key.as_deref()).await;
                    return Ok(Admission::Duplicate(first));
                }
            } else if failed.first() == Some(&true) {
                return Err(StoreError::Conflict(Conflict::AlreadyExists));
            } else if attempt < CLAIM_ATTEMPTS {
                // Cancelled by a concurrent transaction on the claim (the
                // same delivery racing): after it, the condition decides.
                let pause = std::time::Duration::from_millis(20 * u64::from(attempt));
                tokio::time::sleep(crate::random::jittered(pause, 0.5)).await;
            }
        }
        self.drop_unstored_payload(s3_key.as_deref()).await;
        Err(StoreError::unavailable(
            "the delivery claim kept conflicting with concurrent writes",
        ))
    }

    async fn release_claim(&self, key: &DedupKey, id: &CorrelationId) -> StoreResult<()> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("correlationId", Self::claim_key(key))
            .key("sk", s(DEDUP_SK))
            .condition_expression("eventId = :id")
            .expression_attribute_values(":id", s(id.to_string()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            // Held by another event (or gone): not ours to release.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn get_event(&self, id: &CorrelationId) -> StoreResult<Option<EventRecord>> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("correlationId", s(id.to_string()))
            .key("sk", s(EVENT_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = found.item else {
            return Ok(None);
        };
        let retained_until = Self::kept_until(&item)?;
        if retained_until <= Timestamp::now() {
            return Ok(None);
        }
        let event = match item.get("s3Key") {
            Some(AttributeValue::S(key)) => self.load_claim_checked(key).await?,
            _ => json(&item, DATA)?,
        };
        Ok(Some(EventRecord {
            event,
            listeners: json(&item, "listeners")?,
            expires_at: Timestamp(number(&item, "expiresAtMs")?),
            retained_until,
        }))
    }

    async fn get_result(&self, id: &CorrelationId) -> StoreResult<Option<ResultRecord>> {
        let now = Timestamp::now();
        // The event's payload is not needed for a result.
        let projection = "sk, listeners, expiresAtMs, outcome, outcomeS3Key";
        let items = self.event_items(id, None, Some(projection)).await?;
        let Some(event) = items
            .iter()
            .find(|i| text(i, "sk").is_ok_and(|sk| sk == EVENT_SK))
        else {
            return Ok(None);
        };
        if !Self::alive(event, now)? {
            return Ok(None);
        }
        let outcomes = self.outcomes_of(&items).await?;
        Ok(Some(ResultRecord {
            correlation_id: *id,
            listeners: json(event, "listeners")?,
            outcomes,
            expires_at: Timestamp(number(event, "expiresAtMs")?),
        }))
    }

    async fn record_outcome(
        &self,
        id: &CorrelationId,
        pipeline: &str,
        outcome: &PipelineOutcome,
    ) -> StoreResult<Recorded> {
        let (expires_at, keeps_statuses) = self.event_head(id).await?;
        let mut put = Put::builder()
            .table_name(&self.table)
            .item("correlationId", s(id.to_string()))
            .item("sk", s(format!("{OUTCOME_PREFIX}{pipeline}")))
            .item("expiresAt", n(expires_at))
            // First write wins: a redelivered job must not replace the outcome.
            .condition_expression("attribute_not_exists(sk)");
        let data = to_json(outcome)?;
        if data.len() > MAX_INLINE_OUTCOME_BYTES {
            // A key of its own per write: a redelivery that loses the race for
            // the item must not overwrite the object the winner points to.
            let key = format!(
                "{OUTCOME_PAYLOAD_PREFIX}{id}/{pipeline}-{}.json",
                uuid::Uuid::new_v4().simple()
            );
            self.claim_check(&key, data).await?;
            put = put.item("outcomeS3Key", s(key));
        } else {
            put = put.item("outcome", s(data));
        }
        let put = built(put.build())?;
        if !keeps_statuses {
            // An event from before the log: nothing of it is listed.
            let written = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put.item))
                .set_condition_expression(put.condition_expression)
                .send()
                .await;
            return match written {
                Ok(_) => Ok(Recorded::New),
                Err(err) if condition_failed(&err) => Ok(Recorded::AlreadyThere),
                Err(err) => Err(unavailable(err)),
            };
        }
        // The outcome and the log's statuses in one transaction, so a listing
        // by status is never behind the result.
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder()
                .update(super::eventlog::status_update(
                    &self.table,
                    id,
                    pipeline,
                    outcome,
                )?)
                .build(),
        ];
        for attempt in 1..=CLAIM_ATTEMPTS {
            match transact(&self.client, items.clone()).await {
                Ok(()) => return Ok(Recorded::New),
                Err(Err(err)) => return Err(err),
                Err(Ok(failed)) if failed.first() == Some(&true) => {
                    return Ok(Recorded::AlreadyThere);
                }
                Err(Ok(failed)) if failed.get(1) == Some(&true) => {
                    return Err(StoreError::NotFound);
                }
                // Cancelled by another pipeline's outcome of the same event,
                // written at the same moment: after it, this one goes through.
                Err(Ok(_)) if attempt < CLAIM_ATTEMPTS => {
                    let pause = std::time::Duration::from_millis(20 * u64::from(attempt));
                    tokio::time::sleep(crate::random::jittered(pause, 0.5)).await;
                }
                Err(Ok(_)) => {}
            }
        }
        Err(StoreError::unavailable(
            "the outcome kept conflicting with concurrent writes",
        ))
    }
}

#[async_trait]
impl EffectLog for DynamoEventStore {
    async fn claim_effect(&self, id: &CorrelationId, effect: &str) -> StoreResult<bool> {
        let expires_at = self.event_expiry(id).await?;
        let claimed = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("correlationId", s(id.to_string()))
            .item("sk", s(format!("{EFFECT_PREFIX}{effect}")))
            .item("claimedAtMs", n(Timestamp::now().0))
            .item("expiresAt", n(expires_at))
            .condition_expression("attribute_not_exists(sk)")
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn release_effect(&self, id: &CorrelationId, effect: &str) -> StoreResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("correlationId", s(id.to_string()))
            .key("sk", s(format!("{EFFECT_PREFIX}{effect}")))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
