//! The rules of [`EventLog`](crate::ports::EventLog).

use std::collections::{BTreeMap, HashSet};

use serde_json::json;

use super::{sample_event, unique_key};
use crate::domain::eventlog::{EventQuery, EventSummary, PipelineStatuses};
use crate::domain::{
    CorrelationId, EventKey, EventRecord, PipelineOutcome, ResultStatus, RunFacts, Timestamp,
};
use crate::ports::{EventLog, EventStore, LoggedEvent};

/// An event of `key` received at `at`, kept a minute.
fn event_at(key: &EventKey, listeners: &[&str], at: Timestamp) -> EventRecord {
    let mut record = sample_event(key, listeners, 60_000);
    record.event.received_at = at;
    record
}

/// Every entry of the listing, page by page, checking that no page repeats
/// an entry and that the order is newest first throughout.
async fn all_pages(log: &dyn EventLog, mut query: EventQuery) -> Vec<EventSummary> {
    let mut all: Vec<EventSummary> = Vec::new();
    for _ in 0..1000 {
        let page = log.list_events(&query).await.expect("list");
        assert!(
            page.entries.len() <= query.limit,
            "a page holds at most limit"
        );
        all.extend(page.entries);
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    let ids: HashSet<CorrelationId> = all.iter().map(|e| e.correlation_id).collect();
    assert_eq!(ids.len(), all.len(), "no entry on two pages");
    assert!(
        all.windows(2).all(|w| w[0].position() > w[1].position()),
        "newest first"
    );
    all
}

fn ids(entries: &[EventSummary]) -> Vec<CorrelationId> {
    entries.iter().map(|e| e.correlation_id).collect()
}

/// The rules of [`EventLog`], on a store that may hold other events: this
/// suite's events lie in a time window of their own, far in the future.
pub async fn event_log_conformance<S: EventStore + EventLog>(store: &S) {
    let window = Timestamp(
        7_000_000_000_000 + (uuid::Uuid::new_v4().as_u128() % 1_000_000_000) as i64 * 1000,
    );
    let at = |offset: i64| Timestamp(window.0 + offset);
    let mine = |limit: usize| EventQuery {
        since: Some(window),
        until: Some(at(1000)),
        ..EventQuery::newest(limit)
    };
    let key = unique_key("webhook.log");
    let other_key = unique_key("webhook.log.other");

    // Seven of one key (two in the same millisecond), two of another.
    let mut records = Vec::new();
    for offset in [0, 1, 2, 3, 3, 5, 6] {
        records.push(event_at(&key, &["p"], at(offset)));
    }
    for offset in [4, 7] {
        records.push(event_at(&other_key, &[], at(offset)));
    }
    records[6].event.method = "PUT".into();
    records[6].event.content_type = None;
    records[6].event.size = 12_345;
    records[6].event.replay_of = Some(records[0].event.correlation_id);
    for record in &records {
        store.put_event(record).await.expect("put");
    }
    let mut newest_first: Vec<&EventRecord> = records.iter().collect();
    newest_first.sort_by_key(|r| std::cmp::Reverse((r.event.received_at, r.event.correlation_id)));
    let expected: Vec<CorrelationId> = newest_first
        .iter()
        .map(|r| r.event.correlation_id)
        .collect();

    // Pages of 4 while a new event arrives: nothing missed, nothing twice.
    let first = store.list_events(&mine(4)).await.unwrap();
    assert_eq!(ids(&first.entries), expected[..4], "the newest page first");
    let next = first.next.expect("more pages");
    let newcomer = event_at(&key, &["p"], at(500));
    store.put_event(&newcomer).await.unwrap();
    let rest = all_pages(
        store,
        EventQuery {
            after: Some(next),
            ..mine(4)
        },
    )
    .await;
    assert_eq!(
        ids(&rest),
        expected[4..],
        "the rest, unshifted by the newcomer"
    );
    let everything = all_pages(store, mine(200)).await;
    assert_eq!(everything[0].correlation_id, newcomer.event.correlation_id);
    assert_eq!(ids(&everything[1..]), expected);

    // The summary.
    let replayed = everything
        .iter()
        .find(|e| e.correlation_id == records[6].event.correlation_id)
        .unwrap();
    assert_eq!(
        replayed,
        &EventSummary {
            correlation_id: records[6].event.correlation_id,
            event_key: key.clone(),
            received_at: at(6),
            method: "PUT".into(),
            content_type: None,
            size: 12_345,
            replay_of: Some(records[0].event.correlation_id),
            pipelines: PipelineStatuses(BTreeMap::from([(
                "p".to_string(),
                ResultStatus::Processing
            )])),
        }
    );
    let no_listeners = everything
        .iter()
        .find(|e| e.correlation_id == records[7].event.correlation_id)
        .unwrap();
    assert_eq!(
        no_listeners.status(),
        ResultStatus::Ok,
        "nobody listens: ok at once"
    );
    assert_eq!(
        no_listeners.content_type.as_deref(),
        Some("application/json")
    );

    // By event key.
    let by_key = all_pages(
        store,
        EventQuery {
            event_key: Some(other_key.clone()),
            ..mine(1)
        },
    )
    .await;
    assert_eq!(
        ids(&by_key),
        vec![
            records[8].event.correlation_id,
            records[7].event.correlation_id
        ]
    );

    // By time: since inclusive, until exclusive.
    let ranged = all_pages(
        store,
        EventQuery {
            since: Some(at(3)),
            until: Some(at(6)),
            ..mine(2)
        },
    )
    .await;
    let in_range: Vec<CorrelationId> = newest_first
        .iter()
        .filter(|r| (at(3)..at(6)).contains(&r.event.received_at))
        .map(|r| r.event.correlation_id)
        .collect();
    assert_eq!(ids(&ranged), in_range);

    // By status, as pipelines finish.
    let ran = RunFacts {
        duration_ms: 12,
        attempts: 2,
    };
    let ok = PipelineOutcome::Ok {
        value: json!({"done": true}),
        run: Some(ran),
    };
    let failed = PipelineOutcome::Error {
        code: "step_failed".into(),
        message: "boom".into(),
        step: Some("2".into()),
        run: None,
    };
    store
        .record_outcome(&records[1].event.correlation_id, "p", &ok)
        .await
        .unwrap();
    store
        .record_outcome(&records[2].event.correlation_id, "p", &failed)
        .await
        .unwrap();
    let with = |status| EventQuery {
        status: Some(status),
        event_key: Some(key.clone()),
        ..mine(2)
    };
    assert_eq!(
        ids(&all_pages(store, with(ResultStatus::Error)).await),
        vec![records[2].event.correlation_id]
    );
    assert_eq!(
        ids(&all_pages(store, with(ResultStatus::Ok)).await),
        vec![records[1].event.correlation_id]
    );
    let processing = all_pages(store, with(ResultStatus::Processing)).await;
    assert_eq!(processing.len(), 6, "the newcomer and five unfinished");
    assert!(!ids(&processing).contains(&records[1].event.correlation_id));
    let unfiltered_error = all_pages(
        store,
        EventQuery {
            status: Some(ResultStatus::Error),
            ..mine(3)
        },
    )
    .await;
    assert_eq!(
        ids(&unfiltered_error),
        vec![records[2].event.correlation_id]
    );
    let ok_all = all_pages(
        store,
        EventQuery {
            status: Some(ResultStatus::Ok),
            ..mine(3)
        },
    )
    .await;
    assert_eq!(
        ids(&ok_all),
        vec![
            records[8].event.correlation_id,
            records[7].event.correlation_id,
            records[1].event.correlation_id
        ],
        "finished, and nobody listening"
    );

    // The event with its outcomes, the run's facts kept.
    let logged = store
        .logged_event(&records[1].event.correlation_id)
        .await
        .unwrap()
        .expect("logged");
    assert_eq!(
        logged,
        LoggedEvent {
            record: records[1].clone(),
            outcomes: BTreeMap::from([("p".to_string(), ok.clone())]),
        }
    );
    assert_eq!(
        store
            .logged_event(&CorrelationId::generate())
            .await
            .unwrap(),
        None
    );

    // Retention outlasts the result: /result is gone, the log still has it.
    let mut kept = event_at(&key, &["p"], at(800));
    kept.expires_at = Timestamp::now();
    kept.retained_until = Timestamp(Timestamp::now().0 + 60_000);
    store.put_event(&kept).await.unwrap();
    store
        .record_outcome(&kept.event.correlation_id, "p", &ok)
        .await
        .unwrap();
    let id = kept.event.correlation_id;
    assert_eq!(
        store.get_result(&id).await.unwrap(),
        None,
        "the result has ended"
    );
    assert!(
        store.get_event(&id).await.unwrap().is_some(),
        "the event is kept"
    );
    assert_eq!(
        store
            .logged_event(&id)
            .await
            .unwrap()
            .map(|l| l.outcomes.len()),
        Some(1),
        "and so are its outcomes"
    );
    let newest = store.list_events(&mine(1)).await.unwrap();
    assert_eq!(ids(&newest.entries), vec![id]);

    // Past its retention, an event leaves the log (whether deleted yet or not).
    let mut gone = event_at(&key, &[], at(900));
    gone.expires_at = Timestamp(Timestamp::now().0 - 10);
    gone.retained_until = gone.expires_at;
    store.put_event(&gone).await.unwrap();
    assert_eq!(
        store
            .logged_event(&gone.event.correlation_id)
            .await
            .unwrap(),
        None
    );
    let newest = store.list_events(&mine(1)).await.unwrap();
    assert_eq!(
        ids(&newest.entries),
        vec![id],
        "an event past retention is not listed"
    );
}
