use std::path::PathBuf;
use std::time::Duration;

use rusqlite::params;

use super::*;
use crate::domain::{EventKey, EventRecord};
use crate::ports::WebhookStore;

fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_new_file_gets_the_newest_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    drop(SqliteStore::open(&path).unwrap());
    assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn a_file_from_before_versioning_is_adopted_as_version_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let webhook = crate::testkit::sample_webhook();
    {
        // What the store created before the schema had a version.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute(
            "INSERT INTO webhooks (token, event_key, created_at, data) VALUES (?1, ?2, ?3, ?4)",
            params![
                webhook.token.reveal(),
                webhook.event_key.as_str(),
                webhook.created_at.0,
                serde_json::to_string(&webhook).unwrap()
            ],
        )
        .unwrap();
        assert_eq!(user_version(&path), 0);
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        user_version(&path),
        MIGRATIONS.len() as i64,
        "adopted as version 1, then migrated on"
    );
    assert_eq!(
        store.get_by_token(&webhook.token).await.unwrap(),
        Some(webhook),
        "the adopted file keeps its data"
    );
}

/// An event as the schema before the event log (version 5 and earlier)
/// stored it: no log columns, and a JSON without `size`.
fn insert_old_event(conn: &Connection, record: &EventRecord) {
    let mut data = serde_json::to_value(&record.event).unwrap();
    data.as_object_mut().unwrap().remove("size");
    conn.execute(
        "INSERT INTO events (correlation_id, expires_at, listeners, data) VALUES (?1, ?2, ?3, ?4)",
        params![
            record.event.correlation_id.to_string(),
            record.expires_at.0,
            serde_json::to_string(&record.listeners).unwrap(),
            data.to_string()
        ],
    )
    .unwrap();
}

/// Migration 6 fills the log's columns of the events already stored, their
/// statuses from the outcomes already recorded, so they are listed at once.
#[tokio::test]
async fn a_version_5_file_lists_its_events_with_their_statuses() {
    use crate::domain::eventlog::EventQuery;
    use crate::domain::{PipelineOutcome, ResultStatus};
    use crate::ports::{EventLog, EventStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v5.db");
    let key = EventKey::parse("webhook.v5").unwrap();
    let mut records: Vec<EventRecord> = (0..4)
        .map(|_| crate::testkit::sample_event(&key, &["a", "b"], 60_000))
        .collect();
    records[3].listeners.clear();
    for (i, record) in records.iter_mut().enumerate() {
        record.event.received_at = Timestamp(record.event.received_at.0 + i as i64);
        record.event.size = 0;
    }
    let outcome = |status: &str| match status {
        "ok" => PipelineOutcome::Ok {
            value: serde_json::json!(1),
            run: None,
        },
        _ => PipelineOutcome::Error {
            code: "x".into(),
            message: "y".into(),
            step: None,
            run: None,
        },
    };
    {
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &MIGRATIONS[..5]).unwrap();
        for record in &records {
            insert_old_event(&conn, record);
        }
        // 0: both ok; 1: one ok, one running; 2: one failed; 3: nobody listens.
        for (i, pipeline, status) in [
            (0, "a", "ok"),
            (0, "b", "ok"),
            (1, "a", "ok"),
            (2, "b", "error"),
        ] {
            conn.execute(
                "INSERT INTO outcomes (correlation_id, pipeline, data) VALUES (?1, ?2, ?3)",
                params![
                    records[i].event.correlation_id.to_string(),
                    pipeline,
                    serde_json::to_string(&outcome(status)).unwrap()
                ],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
    let page = store.list_events(&EventQuery::newest(10)).await.unwrap();
    let statuses: Vec<(String, ResultStatus)> = page
        .entries
        .iter()
        .map(|e| (e.correlation_id.to_string(), e.status()))
        .collect();
    let expected: Vec<(String, ResultStatus)> = [
        (3, ResultStatus::Ok),
        (2, ResultStatus::Error),
        (1, ResultStatus::Processing),
        (0, ResultStatus::Ok),
    ]
    .into_iter()
    .map(|(i, s)| (records[i].event.correlation_id.to_string(), s))
    .collect();
    assert_eq!(statuses, expected);
    assert_eq!(page.entries[2].pipelines.0["b"], ResultStatus::Processing);
    assert_eq!(page.entries[3].method, "POST");
    // Kept as long as its result was (it had no retention of its own), and readable.
    let id = records[1].event.correlation_id;
    assert_eq!(
        store.get_event(&id).await.unwrap(),
        Some(records[1].clone())
    );
    // And the log goes on from there.
    store
        .record_outcome(&id, "b", &outcome("ok"))
        .await
        .unwrap();
    let page = store.list_events(&EventQuery::newest(10)).await.unwrap();
    assert_eq!(page.entries[2].status(), ResultStatus::Ok);
}

#[tokio::test]
async fn a_version_1_file_gets_the_effects_table_and_keeps_its_events() {
    use crate::ports::{EffectLog, EventStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let key = EventKey::parse("webhook.v1").unwrap();
    let mut record = crate::testkit::sample_event(&key, &["p"], 60_000);
    // Stored before sizes were kept: read back as 0.
    record.event.size = 0;
    {
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
        insert_old_event(&conn, &record);
        assert_eq!(user_version(&path), 1);
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
    let id = record.event.correlation_id;
    assert_eq!(store.get_event(&id).await.unwrap(), Some(record));
    assert!(store.claim_effect(&id, "p/3/mail.send").await.unwrap());
    assert!(!store.claim_effect(&id, "p/3/mail.send").await.unwrap());
}

#[tokio::test]
async fn purging_an_expired_event_drops_its_effect_claims() {
    use crate::ports::{EffectLog, EventStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("purge.db");
    let store = SqliteStore::open(&path).unwrap();
    let key = EventKey::parse("webhook.purge").unwrap();
    let expired = crate::testkit::sample_event(&key, &["p"], -1);
    let alive = crate::testkit::sample_event(&key, &["p"], 60_000);
    for record in [&expired, &alive] {
        store.put_event(record).await.unwrap();
        let id = record.event.correlation_id;
        assert!(store.claim_effect(&id, "p/3/mail.send").await.unwrap());
    }
    assert_eq!(store.purge_expired(Timestamp::now()).await.unwrap(), 1);
    let claims_of = |record: &EventRecord| -> i64 {
        Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM effects WHERE correlation_id = ?1",
                [record.event.correlation_id.to_string()],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(claims_of(&expired), 0, "gone with its event");
    assert_eq!(claims_of(&alive), 1, "a live event keeps its claims");
}

#[tokio::test]
async fn purging_drops_expired_delivery_claims_only() {
    use crate::domain::dedup::{DedupClaim, DedupKey};
    use crate::ports::EventStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claims.db");
    let store = SqliteStore::open(&path).unwrap();
    let key = EventKey::parse("webhook.claims").unwrap();
    let now = Timestamp::now();
    // Claims outlive their events or not, by their own window.
    for (byte, window_ms) in [(1u8, -1), (2, 60_000)] {
        let claim = DedupClaim {
            key: DedupKey([byte; 32]),
            claimed_at: Timestamp(now.0 - 10_000),
            expires_at: Timestamp(now.0 + window_ms),
        };
        let record = crate::testkit::sample_event(&key, &[], 60_000);
        store.put_claimed_event(&record, &claim).await.unwrap();
    }
    assert_eq!(store.purge_expired(now).await.unwrap(), 1);
    let left: Vec<Vec<u8>> = Connection::open(&path)
        .unwrap()
        .prepare("SELECT key_hash FROM dedup_claims")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(left, [vec![2u8; 32]], "the live claim stays");
}

#[test]
fn a_file_from_a_newer_hookflow_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    drop(SqliteStore::open(&path).unwrap());
    let newer = MIGRATIONS.len() as i64 + 1;
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let Err(err) = SqliteStore::open(&path) else {
        panic!("a newer schema must not be opened");
    };
    let message = err.to_string();
    assert!(
        message.contains(&format!("schema version {newer}")) && message.contains("newer"),
        "{message}"
    );
    assert_eq!(user_version(&path), newer, "the file is left as it was");
}

/// A file at today's version, and today's migrations plus `added`.
fn current_file_and_one_more_migration(
    added: &'static str,
) -> (tempfile::TempDir, PathBuf, Vec<&'static str>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("migrated.db");
    drop(SqliteStore::open(&path).unwrap());
    let mut migrations = MIGRATIONS.to_vec();
    migrations.push(added);
    (dir, path, migrations)
}

#[test]
fn a_migration_appended_to_the_list_upgrades_existing_files() {
    let (_dir, path, next) = current_file_and_one_more_migration(
        "CREATE TABLE later_feature (id INTEGER PRIMARY KEY, data TEXT NOT NULL);",
    );
    let mut conn = Connection::open(&path).unwrap();
    migrate(&mut conn, &next).unwrap();
    assert_eq!(user_version(&path), next.len() as i64);
    conn.execute("INSERT INTO later_feature (data) VALUES ('x')", [])
        .unwrap();
    // Opening again with the same list is a no-op; with the old list, a refusal.
    migrate(&mut conn, &next).unwrap();
    assert!(migrate(&mut conn, MIGRATIONS).is_err());
}

#[test]
fn a_failing_migration_leaves_the_file_at_its_version() {
    let (_dir, path, next) = current_file_and_one_more_migration(
        "CREATE TABLE half (id INTEGER); CREATE TABLE broken (;",
    );
    let mut conn = Connection::open(&path).unwrap();
    let err = migrate(&mut conn, &next).unwrap_err().to_string();
    assert!(err.contains(&format!("version {}", next.len())), "{err}");
    assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
    let half: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'half'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(half, 0, "the migration's transaction was rolled back");
}

/// A read that blocks its reader thread holds up neither the async thread
/// that asked for it nor the other reads: on a single-threaded runtime, a
/// second read is answered and releases the first.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_read_blocks_neither_the_runtime_nor_other_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("reads.db")).unwrap();
    let (release, released) = mpsc::channel::<()>();
    let slow = store.read(move |c| {
        // Inline on the runtime's only thread, this would wait out the timeout.
        let waited = released.recv_timeout(Duration::from_secs(10));
        c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .map(|one| (one, waited.is_ok()))
    });
    let other = async {
        let n = store
            .read(|c| c.query_row("SELECT count(*) FROM webhooks", [], |r| r.get::<_, i64>(0)))
            .await;
        release.send(()).unwrap();
        n
    };
    let (slow, other) = tokio::join!(slow, other);
    assert_eq!(other.unwrap(), 0);
    assert_eq!(
        slow.unwrap(),
        (1, true),
        "the slow read was released by the other one"
    );
}

#[tokio::test]
async fn close_commits_what_was_queued_and_empties_the_wal() {
    use crate::ports::WebhookStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("close.db");
    let store = SqliteStore::open(&path).unwrap();
    let webhook = crate::testkit::sample_webhook();
    store.insert_webhook(&webhook).await.unwrap();
    assert!(std::fs::metadata(wal_path(&path)).unwrap().len() > 0);
    store.close().await;
    assert_eq!(std::fs::metadata(wal_path(&path)).unwrap().len(), 0);
    assert!(
        store.delete_webhook(&webhook.token).await.is_err(),
        "no writes after close"
    );
    assert_eq!(
        store.get_by_token(&webhook.token).await.unwrap(),
        Some(webhook)
    );
}

#[tokio::test]
async fn the_writer_resets_the_wal_once_it_passes_its_bound() {
    use crate::ports::EventStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bound.db");
    let store = SqliteStore::open_with_wal_limit(&path, MIN_WAL_MAX_BYTES).unwrap();
    let key = EventKey::parse("webhook.wal").unwrap();
    let (mut peak, mut resets, mut last) = (0, 0, 0);
    // One write per commit, a few pages each: several times the bound in all.
    for _ in 0..400 {
        let record = crate::testkit::sample_event(&key, &[], 60_000);
        store.put_event(&record).await.unwrap();
        let size = std::fs::metadata(wal_path(&path)).map_or(0, |m| m.len());
        resets += usize::from(size < last);
        peak = peak.max(size);
        last = size;
    }
    assert!(resets >= 2, "the bound was passed ({resets} resets)");
    assert!(
        peak <= MIN_WAL_MAX_BYTES + 64 * 1024,
        "peak {peak} bytes over the bound"
    );
}

#[tokio::test]
async fn a_version_3_file_gets_previous_tokens_and_its_webhooks_rotate() {
    use crate::domain::Token;
    use crate::domain::rotation::Rotation;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    let webhook = crate::testkit::sample_webhook();
    {
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &MIGRATIONS[..3]).unwrap();
        // A document as written before rotation existed: no `previousToken`.
        let mut document = serde_json::to_value(&webhook).unwrap();
        assert!(
            document
                .as_object_mut()
                .unwrap()
                .remove("previousToken")
                .is_none()
        );
        conn.execute(
            "INSERT INTO webhooks (token, event_key, created_at, data) VALUES (?1, ?2, ?3, ?4)",
            params![
                webhook.token.reveal(),
                webhook.event_key.as_str(),
                webhook.created_at.0,
                document.to_string()
            ],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(user_version(&path), MIGRATIONS.len() as i64);
    assert_eq!(
        store.get_by_token(&webhook.token).await.unwrap(),
        Some(webhook.clone())
    );

    let now = Timestamp::now();
    let expired_soon = Rotation {
        new_token: Token::generate(),
        at: now,
        previous_expires_at: Timestamp(now.0 + 60_000),
    };
    store
        .rotate_token(&webhook.token, &expired_soon)
        .await
        .unwrap();
    let aliases = || -> i64 {
        Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM webhook_previous_tokens", [], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert_eq!(aliases(), 1);
    assert_eq!(
        store.purge_expired(now).await.unwrap(),
        0,
        "still in its grace"
    );
    assert_eq!(aliases(), 1);
    assert_eq!(
        store
            .purge_expired(Timestamp(now.0 + 60_000))
            .await
            .unwrap(),
        1,
        "purged once its grace is over"
    );
    assert_eq!(aliases(), 0);
    assert!(
        store
            .get_by_token(&expired_soon.new_token)
            .await
            .unwrap()
            .is_some()
    );
}

/// Every kind of `event.list` page is one index range in the log's order: a
/// SEARCH, no SCAN of the table, no sort of its rows.
#[tokio::test]
async fn every_event_log_page_is_one_index_range() {
    use crate::domain::ResultStatus;
    use crate::domain::eventlog::{EventQuery, LogPosition};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    let key = EventKey::parse("webhook.plan").unwrap();
    let after = LogPosition {
        received_at: Timestamp(1),
        correlation_id: crate::domain::CorrelationId::generate(),
    };
    for (event_key, status) in [
        (None, None),
        (Some(key.clone()), None),
        (None, Some(ResultStatus::Error)),
        (Some(key.clone()), Some(ResultStatus::Processing)),
    ] {
        let query = EventQuery {
            event_key,
            status,
            since: Some(Timestamp(0)),
            after: Some(after),
            ..EventQuery::newest(50)
        };
        let (sql, values) = super::eventlog::page_statement(&query, Timestamp::now());
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(values), |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join(" | ");
        assert!(
            plan.starts_with("SEARCH events USING INDEX") && plan.contains("received_at"),
            "{query:?}: {plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{query:?}: {plan}");
    }
}
