//! The event log: what `event.list` asks the stores for and what it shows of
//! each event (a summary, never the payload).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CorrelationId, EventKey, EventRecord, PipelineOutcome, ResultStatus, Timestamp};

/// Most entries one `event.list` page holds.
pub const MAX_EVENT_PAGE: usize = 200;
/// Entries of a page when `limit` is not given.
pub const DEFAULT_EVENT_PAGE: usize = 50;

/// Where a page of the log ends: the last event it looked at. Pages go newest
/// first, ordered by (received at, correlation id), so a position names one
/// place in the order whatever arrives later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogPosition {
    #[serde(rename = "t")]
    pub received_at: Timestamp,
    #[serde(rename = "id")]
    pub correlation_id: CorrelationId,
}

/// One page asked of the log. `since` is inclusive, `until` exclusive.
#[derive(Clone, Debug, PartialEq)]
pub struct EventQuery {
    pub event_key: Option<EventKey>,
    pub status: Option<ResultStatus>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// 1 ..= [`MAX_EVENT_PAGE`].
    pub limit: usize,
    /// Entries strictly older than this position; from the newest without one.
    pub after: Option<LogPosition>,
}

impl EventQuery {
    /// The newest `limit` events, unfiltered.
    pub fn newest(limit: usize) -> Self {
        EventQuery {
            event_key: None,
            status: None,
            since: None,
            until: None,
            limit,
            after: None,
        }
    }

    /// Whether an event received at `received_at` lies in the asked time range.
    pub fn in_range(&self, received_at: Timestamp) -> bool {
        self.since.is_none_or(|since| received_at >= since)
            && self.until.is_none_or(|until| received_at < until)
    }
}

/// A page of the log: newest first, and where the next one starts (`None` on
/// the last page). A backend may answer fewer than `limit` entries with a
/// `next` (a filtered DynamoDB page); only `next: None` ends the listing.
#[derive(Clone, Debug, PartialEq)]
pub struct EventPage {
    pub entries: Vec<EventSummary>,
    pub next: Option<LogPosition>,
}

/// What the log shows of one event.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSummary {
    pub correlation_id: CorrelationId,
    pub event_key: EventKey,
    pub received_at: Timestamp,
    pub method: String,
    pub content_type: Option<String>,
    /// Bytes of the body as received.
    pub size: u64,
    pub replay_of: Option<CorrelationId>,
    /// Each listening pipeline and how far it got.
    pub pipelines: PipelineStatuses,
}

impl EventSummary {
    /// The summary of a stored event and the outcomes recorded so far.
    pub fn of(record: &EventRecord, outcomes: &BTreeMap<String, PipelineOutcome>) -> Self {
        let event = &record.event;
        EventSummary {
            correlation_id: event.correlation_id,
            event_key: event.event_key.clone(),
            received_at: event.received_at,
            method: event.method.clone(),
            content_type: event.content_type.clone(),
            size: event.size,
            replay_of: event.replay_of,
            pipelines: PipelineStatuses::of(&record.listeners, outcomes),
        }
    }

    pub fn status(&self) -> ResultStatus {
        self.pipelines.status()
    }

    /// Where this entry lies in the log's order.
    pub fn position(&self) -> LogPosition {
        LogPosition {
            received_at: self.received_at,
            correlation_id: self.correlation_id,
        }
    }
}

/// Each listening pipeline of an event and its status: `processing` until its
/// outcome is recorded. Kept next to the event by the stores, so a page of the
/// log reads no outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PipelineStatuses(pub BTreeMap<String, ResultStatus>);

impl PipelineStatuses {
    /// Every listener `processing`: an event just stored.
    pub fn pending(listeners: &[String]) -> Self {
        PipelineStatuses(
            listeners
                .iter()
                .map(|l| (l.clone(), ResultStatus::Processing))
                .collect(),
        )
    }

    pub fn of(listeners: &[String], outcomes: &BTreeMap<String, PipelineOutcome>) -> Self {
        let mut statuses = Self::pending(listeners);
        for (pipeline, outcome) in outcomes {
            statuses.record(pipeline, outcome);
        }
        statuses
    }

    /// Notes the outcome of `pipeline`.
    pub fn record(&mut self, pipeline: &str, outcome: &PipelineOutcome) {
        self.0.insert(pipeline.to_owned(), outcome.status());
    }

    /// The event's status, as its result has it: `error` once one pipeline
    /// failed, `ok` when all finished (or none listens), else `processing`.
    pub fn status(&self) -> ResultStatus {
        if self.0.values().any(|s| *s == ResultStatus::Error) {
            ResultStatus::Error
        } else if self.0.values().any(|s| *s == ResultStatus::Processing) {
            ResultStatus::Processing
        } else {
            ResultStatus::Ok
        }
    }
}

impl ResultStatus {
    /// The name the API and the stores use.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Processing => "processing",
            ResultStatus::Ok => "ok",
            ResultStatus::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ResultStatus::Processing,
            ResultStatus::Ok,
            ResultStatus::Error,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::{Event, RunFacts};

    /// What was stored before the log existed reads as it did, the new
    /// fields empty; what is stored now keeps them.
    #[test]
    fn outcomes_and_events_stored_before_the_log_still_read() {
        let old: PipelineOutcome =
            serde_json::from_value(json!({"status": "ok", "value": 1})).unwrap();
        assert_eq!(
            old,
            PipelineOutcome::Ok {
                value: json!(1),
                run: None
            }
        );
        let ran = old.clone().with_run(RunFacts {
            duration_ms: 5,
            attempts: 2,
        });
        let text = serde_json::to_value(&ran).unwrap();
        assert_eq!(
            text,
            json!({"status": "ok", "value": 1, "run": {"durationMs": 5, "attempts": 2}})
        );
        assert_eq!(
            serde_json::from_value::<PipelineOutcome>(text).unwrap(),
            ran
        );
        let old_error = json!({"status": "error", "code": "c", "message": "m", "step": null});
        assert_eq!(
            serde_json::from_value::<PipelineOutcome>(old_error)
                .unwrap()
                .run(),
            None
        );

        let event: Event = serde_json::from_value(json!({
            "correlationId": "8e793988-a155-4989-bae1-ccd0ca199231",
            "eventKey": "webhook.old",
            "receivedAt": 1,
            "origin": null,
            "method": "POST",
            "contentType": null,
            "headers": {},
            "params": {},
            "files": [],
        }))
        .unwrap();
        assert_eq!((event.size, event.replay_of), (0, None));
    }

    #[test]
    fn the_status_of_an_event_is_its_results() {
        let statuses = |pairs: &[(&str, ResultStatus)]| {
            PipelineStatuses(pairs.iter().map(|(p, s)| (p.to_string(), *s)).collect()).status()
        };
        use ResultStatus::{Error, Ok, Processing};
        assert_eq!(statuses(&[]), Ok, "nobody listens");
        assert_eq!(statuses(&[("a", Ok), ("b", Processing)]), Processing);
        assert_eq!(
            statuses(&[("a", Error), ("b", Processing)]),
            Error,
            "failed at once"
        );
        assert_eq!(statuses(&[("a", Ok), ("b", Ok)]), Ok);
        for status in [Ok, Error, Processing] {
            assert_eq!(ResultStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(ResultStatus::parse("done"), None);
    }
}
