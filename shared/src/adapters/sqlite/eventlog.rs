//! [`EventLog`](crate::ports::EventLog) on SQLite: a page is one range of one
//! index of `events` (migration 6), newest first.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;

use super::{SqliteStore, from_json};
use crate::domain::eventlog::{EventPage, EventQuery, EventSummary};
use crate::domain::{CorrelationId, EventKey, PipelineOutcome, Timestamp};
use crate::ports::{EventLog, EventStore, LoggedEvent, StoreResult};

/// The index a query walks, by which filters it has. Named (`INDEXED BY`) so
/// that the plan stays a range scan whatever statistics the planner has.
fn index_for(query: &EventQuery) -> &'static str {
    match (&query.event_key, &query.status) {
        (None, None) => "events_by_time",
        (Some(_), None) => "events_by_key",
        (None, Some(_)) => "events_by_status",
        (Some(_), Some(_)) => "events_by_key_status",
    }
}

/// The statement of one page and its values. Absent filters are left out,
/// not matched with wildcards, so the index's leading columns are all
/// equalities and the rest is one range.
pub(super) fn page_statement(query: &EventQuery, now: Timestamp) -> (String, Vec<SqlValue>) {
    // `until` and the cursor are both upper bounds; the lower wins. An empty
    // id sorts before every id, so (until, "") leaves out `until` itself.
    let until = query.until.map(|t| (t.0, String::new()));
    let after = query
        .after
        .map(|p| (p.received_at.0, p.correlation_id.to_string()));
    let (below_time, below_id) = match (until, after) {
        (Some(u), Some(a)) => u.min(a),
        (Some(bound), None) | (None, Some(bound)) => bound,
        (None, None) => (i64::MAX, String::new()),
    };
    let mut sql = format!(
        "SELECT correlation_id, event_key, received_at, method, content_type, size, replay_of, pipelines
         FROM events INDEXED BY {}
         WHERE (received_at, correlation_id) < (?, ?) AND received_at >= ? AND kept_until > ?",
        index_for(query)
    );
    let mut values = vec![
        SqlValue::Integer(below_time),
        SqlValue::Text(below_id),
        SqlValue::Integer(query.since.map_or(i64::MIN, |t| t.0)),
        SqlValue::Integer(now.0),
    ];
    if let Some(key) = &query.event_key {
        sql.push_str(" AND event_key = ?");
        values.push(SqlValue::Text(key.as_str().to_owned()));
    }
    if let Some(status) = query.status {
        sql.push_str(" AND status = ?");
        values.push(SqlValue::Text(status.as_str().to_owned()));
    }
    // One more than asked: whether there is a next page, without a second read.
    sql.push_str(" ORDER BY received_at DESC, correlation_id DESC LIMIT ?");
    values.push(SqlValue::Integer(query.limit as i64 + 1));
    (sql, values)
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn list_events(&self, query: &EventQuery) -> StoreResult<EventPage> {
        let (sql, values) = page_statement(query, Timestamp::now());
        let limit = query.limit;
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(values))?;
            let mut entries = Vec::with_capacity(limit.min(64));
            let mut more = false;
            while let Some(r) = rows.next()? {
                if entries.len() == limit {
                    more = true;
                    break;
                }
                let corrupt = |what: &str| {
                    rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Text,
                        format!("an event row has an invalid {what}").into(),
                    )
                };
                let id: String = r.get(0)?;
                let key: String = r.get(1)?;
                let replay_of: Option<String> = r.get(6)?;
                entries.push(EventSummary {
                    correlation_id: CorrelationId::parse(&id).ok_or_else(|| corrupt("id"))?,
                    event_key: EventKey::parse(&key).map_err(|_| corrupt("event key"))?,
                    received_at: Timestamp(r.get(2)?),
                    method: r.get(3)?,
                    content_type: r.get(4)?,
                    size: r.get::<_, i64>(5)?.max(0) as u64,
                    replay_of: match replay_of {
                        Some(text) => {
                            Some(CorrelationId::parse(&text).ok_or_else(|| corrupt("replayOf"))?)
                        }
                        None => None,
                    },
                    pipelines: from_json(&r.get::<_, String>(7)?)?,
                });
            }
            let next = if more {
                entries.last().map(EventSummary::position)
            } else {
                None
            };
            Ok(EventPage { entries, next })
        })
        .await
    }

    async fn logged_event(&self, id: &CorrelationId) -> StoreResult<Option<LoggedEvent>> {
        let Some(record) = self.get_event(id).await? else {
            return Ok(None);
        };
        let key = id.to_string();
        let outcomes = self
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT pipeline, data FROM outcomes WHERE correlation_id = ?1",
                )?;
                let rows = stmt.query_map([&key], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        from_json::<PipelineOutcome>(&r.get::<_, String>(1)?)?,
                    ))
                })?;
                rows.collect::<rusqlite::Result<BTreeMap<_, _>>>()
            })
            .await?;
        Ok(Some(LoggedEvent { record, outcomes }))
    }
}
