//! [`EventLog`](crate::ports::EventLog) on DynamoDB: one Query of a GSI per page.
//!
//! An event item carries what the log shows of it (method, content type, size,
//! `replayOf`, each listener's status, how many are pending, whether one
//! failed), projected into two GSIs sorted by `logSort` (`<received at, 13
//! digits>#<id>`, the log's order):
//! - [`EVENTS_BY_KEY`], partition `eventKey`: the listing of one webhook.
//! - [`EVENTS_BY_TIME`], partition `logPartition`, the same value on every
//!   event: the listing of all. One partition value is a hot partition by
//!   design: every event write lands on it (about 1,000 writes/s per partition
//!   before DynamoDB throttles the index, which throttles the table's writes
//!   too), and its sort key only grows, so splitting for heat does not spread
//!   it. The alternative, N write shards, would spread writes but make every
//!   page of the unfiltered listing N Queries merged, which this log does not
//!   do: a page is one Query. A deployment that outgrows one partition's
//!   write rate moves the all-events listing to per-day partitions.
//!
//! The status filter is a filter expression on the page's Query: it is exact
//! (an outcome and the statuses are written in one transaction), but a page
//! may hold fewer than `limit` entries, and carry a `next`, when many events
//! in its range have another status. So does a page over events past their
//! retention that TTL has not deleted yet.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Update};

use super::dynamo::{DynamoEventStore, EVENT_SK, Item, KEPT_UNTIL, PENDING, n, s, unavailable};
use crate::domain::eventlog::{EventPage, EventQuery, EventSummary, LogPosition, PipelineStatuses};
use crate::domain::{
    CorrelationId, EventKey, EventRecord, PipelineOutcome, ResultStatus, Timestamp,
};
use crate::error::StoreError;
use crate::ports::{EventLog, EventStore, LoggedEvent, StoreResult};

/// GSI of all events, newest first; see the module docs for its hot partition.
pub const EVENTS_BY_TIME: &str = "eventsByTime";
/// GSI of one event key's events, newest first.
pub const EVENTS_BY_KEY: &str = "eventsByKey";
/// Partition key of [`EVENTS_BY_TIME`].
pub const LOG_PARTITION: &str = "logPartition";
/// Sort key of both GSIs.
pub const LOG_SORT: &str = "logSort";
/// The one value of [`LOG_PARTITION`].
const ALL_EVENTS: &str = "events";
/// What the GSIs project besides the keys: the summary, never the payload
/// ([`EVENTS_BY_TIME`] adds `eventKey`, which is [`EVENTS_BY_KEY`]'s key).
pub const LOG_PROJECTION: &[&str] = &[
    "receivedAtMs",
    "method",
    "contentType",
    "size",
    "replayOf",
    "pipelines",
    PENDING,
    "failed",
    KEPT_UNTIL,
];

fn sort_key(received_at: Timestamp, id: &str) -> String {
    format!("{:013}#{id}", received_at.0.max(0))
}

/// The attributes an event item gets for the log.
pub(super) fn log_attributes(record: &EventRecord) -> Vec<(String, AttributeValue)> {
    let event = &record.event;
    let id = event.correlation_id.to_string();
    let mut attributes = vec![
        (LOG_PARTITION.to_owned(), s(ALL_EVENTS)),
        (LOG_SORT.to_owned(), s(sort_key(event.received_at, &id))),
        ("eventKey".to_owned(), s(event.event_key.as_str())),
        ("receivedAtMs".to_owned(), n(event.received_at.0)),
        ("method".to_owned(), s(&event.method)),
        (
            "size".to_owned(),
            n(i64::try_from(event.size).unwrap_or(i64::MAX)),
        ),
        (
            "pipelines".to_owned(),
            AttributeValue::M(
                record
                    .listeners
                    .iter()
                    .map(|l| (l.clone(), s(ResultStatus::Processing.as_str())))
                    .collect(),
            ),
        ),
        (PENDING.to_owned(), n(record.listeners.len() as i64)),
        (KEPT_UNTIL.to_owned(), n(record.kept_until().0)),
    ];
    if let Some(content_type) = &event.content_type {
        attributes.push(("contentType".to_owned(), s(content_type)));
    }
    if let Some(original) = event.replay_of {
        attributes.push(("replayOf".to_owned(), s(original.to_string())));
    }
    attributes
}

/// The change an outcome makes to its event's item: the pipeline's status, one
/// fewer pending, and `failed` for an error. Only on an item that keeps them.
pub(super) fn status_update(
    table: &str,
    id: &CorrelationId,
    pipeline: &str,
    outcome: &PipelineOutcome,
) -> StoreResult<Update> {
    let status = outcome.status();
    let mut set = "pipelines.#pipeline = :status".to_owned();
    if status == ResultStatus::Error {
        set.push_str(", failed = :yes");
    }
    let mut update = Update::builder()
        .table_name(table)
        .key("correlationId", s(id.to_string()))
        .key("sk", s(EVENT_SK))
        .update_expression(format!("SET {set} ADD #pending :minus_one"))
        .condition_expression("attribute_exists(#pending)")
        .expression_attribute_names("#pipeline", pipeline)
        .expression_attribute_names("#pending", PENDING)
        .expression_attribute_values(":status", s(status.as_str()))
        .expression_attribute_values(":minus_one", n(-1));
    if status == ResultStatus::Error {
        update = update.expression_attribute_values(":yes", AttributeValue::Bool(true));
    }
    update.build().map_err(StoreError::unavailable)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("an event item has no valid {what}"))
}

fn text_of<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

fn number_of(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn summary_of(item: &Item) -> StoreResult<EventSummary> {
    let id = text_of(item, "correlationId")
        .and_then(CorrelationId::parse)
        .ok_or_else(|| corrupt("correlationId"))?;
    let statuses = match item.get("pipelines") {
        Some(AttributeValue::M(map)) => map
            .iter()
            .map(|(pipeline, status)| {
                let status = match status {
                    AttributeValue::S(text) => ResultStatus::parse(text),
                    _ => None,
                };
                status
                    .map(|s| (pipeline.clone(), s))
                    .ok_or_else(|| corrupt("pipeline status"))
            })
            .collect::<StoreResult<BTreeMap<_, _>>>()?,
        _ => return Err(corrupt("pipelines")),
    };
    Ok(EventSummary {
        correlation_id: id,
        event_key: text_of(item, "eventKey")
            .and_then(|k| EventKey::parse(k).ok())
            .ok_or_else(|| corrupt("eventKey"))?,
        received_at: Timestamp(
            number_of(item, "receivedAtMs").ok_or_else(|| corrupt("receivedAtMs"))?,
        ),
        method: text_of(item, "method").unwrap_or_default().to_owned(),
        content_type: text_of(item, "contentType").map(str::to_owned),
        size: number_of(item, "size").unwrap_or(0).max(0) as u64,
        replay_of: text_of(item, "replayOf").and_then(CorrelationId::parse),
        pipelines: PipelineStatuses(statuses),
    })
}

/// The position of a `logSort` value.
fn position_of(item: &HashMap<String, AttributeValue>) -> StoreResult<LogPosition> {
    let sort = text_of(item, LOG_SORT).ok_or_else(|| corrupt(LOG_SORT))?;
    let (time, id) = sort.split_once('#').ok_or_else(|| corrupt(LOG_SORT))?;
    Ok(LogPosition {
        received_at: Timestamp(time.parse().map_err(|_| corrupt(LOG_SORT))?),
        correlation_id: CorrelationId::parse(id).ok_or_else(|| corrupt(LOG_SORT))?,
    })
}

#[async_trait]
impl EventLog for DynamoEventStore {
    async fn list_events(&self, query: &EventQuery) -> StoreResult<EventPage> {
        let (index, partition_name, partition) = match &query.event_key {
            Some(key) => (EVENTS_BY_KEY, "eventKey", key.as_str().to_owned()),
            None => (EVENTS_BY_TIME, LOG_PARTITION, ALL_EVENTS.to_owned()),
        };
        // `since` inclusive, `until` exclusive: "~" sorts after every id.
        let low = sort_key(query.since.unwrap_or(Timestamp(0)), "");
        let high = match query.until {
            Some(until) => sort_key(Timestamp(until.0 - 1), "~"),
            None => sort_key(Timestamp(9_999_999_999_999), "~"),
        };
        let start = match query.after {
            // Nothing older than the range's start: an empty last page.
            Some(after) if sort_key(after.received_at, &after.correlation_id.to_string()) < low => {
                return Ok(EventPage {
                    entries: Vec::new(),
                    next: None,
                });
            }
            // A position beyond the range's end starts the range from its top
            // (DynamoDB refuses a start key outside the key condition).
            Some(after)
                if sort_key(after.received_at, &after.correlation_id.to_string()) > high =>
            {
                None
            }
            Some(after) => {
                let id = after.correlation_id.to_string();
                Some(HashMap::from([
                    ("correlationId".to_owned(), s(&id)),
                    ("sk".to_owned(), s(EVENT_SK)),
                    (partition_name.to_owned(), s(&partition)),
                    (LOG_SORT.to_owned(), s(sort_key(after.received_at, &id))),
                ]))
            }
            None => None,
        };
        let mut filter = format!("{KEPT_UNTIL} > :now");
        match query.status {
            None => {}
            Some(ResultStatus::Error) => filter.push_str(" AND attribute_exists(failed)"),
            Some(ResultStatus::Ok) => {
                filter.push_str(" AND #pending <= :zero AND attribute_not_exists(failed)");
            }
            Some(ResultStatus::Processing) => {
                filter.push_str(" AND #pending > :zero AND attribute_not_exists(failed)");
            }
        }
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#partition = :partition AND #sort BETWEEN :low AND :high")
            .expression_attribute_names("#partition", partition_name)
            .expression_attribute_names("#sort", LOG_SORT)
            .expression_attribute_values(":partition", s(partition))
            .expression_attribute_values(":low", s(low))
            .expression_attribute_values(":high", s(high))
            .expression_attribute_values(":now", n(Timestamp::now().0))
            .filter_expression(filter)
            .scan_index_forward(false)
            // One more than asked: an unfiltered page knows whether a next exists.
            .limit(query.limit as i32 + 1)
            .set_exclusive_start_key(start);
        if matches!(
            query.status,
            Some(ResultStatus::Ok | ResultStatus::Processing)
        ) {
            request = request
                .expression_attribute_names("#pending", PENDING)
                .expression_attribute_values(":zero", n(0));
        }
        let answer = request.send().await.map_err(unavailable)?;
        let mut entries = answer
            .items()
            .iter()
            .map(summary_of)
            .collect::<StoreResult<Vec<_>>>()?;
        let next = if entries.len() > query.limit {
            entries.truncate(query.limit);
            entries.last().map(EventSummary::position)
        } else {
            match answer.last_evaluated_key() {
                Some(key) => Some(position_of(key)?),
                None => None,
            }
        };
        Ok(EventPage { entries, next })
    }

    async fn logged_event(&self, id: &CorrelationId) -> StoreResult<Option<LoggedEvent>> {
        let Some(record) = self.get_event(id).await? else {
            return Ok(None);
        };
        let outcomes = self.outcomes(id).await?;
        Ok(Some(LoggedEvent { record, outcomes }))
    }
}
