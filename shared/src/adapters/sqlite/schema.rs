//! The schema and its migrations, version by version (`PRAGMA user_version`).

use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;
use crate::ports::StoreResult;

/// The schema, version by version: entry `i` takes a file from `user_version`
/// `i` to `i + 1`, in one transaction with the version bump. Adding a migration
/// is appending one entry; never edit an entry that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: everything up to the dead-letter table. `IF NOT EXISTS` because files
    // written before the schema was versioned (user_version 0, tables present)
    // are adopted by running this step on them.
    "
CREATE TABLE IF NOT EXISTS webhooks (
    token      TEXT PRIMARY KEY,
    event_key  TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    data       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    correlation_id TEXT PRIMARY KEY,
    expires_at     INTEGER NOT NULL,
    listeners      TEXT NOT NULL,
    data           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_expiry ON events(expires_at);
CREATE TABLE IF NOT EXISTS outcomes (
    correlation_id TEXT NOT NULL,
    pipeline       TEXT NOT NULL,
    data           TEXT NOT NULL,
    PRIMARY KEY (correlation_id, pipeline)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pipelines (
    name       TEXT PRIMARY KEY,
    listens_to TEXT NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pipelines_by_event_key ON pipelines(listens_to);
CREATE TABLE IF NOT EXISTS jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT UNIQUE,
    data          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_visibility ON jobs(visible_at, id);
CREATE TABLE IF NOT EXISTS outgoing_webhooks (
    id  TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS invocations (
    reference_id TEXT PRIMARY KEY,
    webhook_id   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    doc          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invocations_by_webhook ON invocations(webhook_id, created_at);
CREATE INDEX IF NOT EXISTS invocations_by_expiry ON invocations(expires_at);
",
    // 2: claims on the side effects done at most once per event (a pipeline
    // step's mail), which go with their event (`purge_expired` deletes both);
    // and the jobs the worker gave up on (unreadable, or they kept ending the
    // process), kept for an operator to look at and requeue.
    "
CREATE TABLE effects (
    correlation_id TEXT NOT NULL,
    effect         TEXT NOT NULL,
    claimed_at     INTEGER NOT NULL,
    PRIMARY KEY (correlation_id, effect)
) WITHOUT ROWID;
CREATE TABLE dead_letters (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id        INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    dead_at       INTEGER NOT NULL,
    data          TEXT NOT NULL
);
",
    // 3: the calls each webhook's signature check refused. Apart from the
    // webhook's document so a refusal is one atomic increment that a
    // concurrent `webhook.put` (which rewrites the document) cannot undo.
    "
CREATE TABLE webhook_refusals (
    token     TEXT PRIMARY KEY,
    refused   INTEGER NOT NULL,
    last_code TEXT NOT NULL,
    last_at   INTEGER NOT NULL
) WITHOUT ROWID;
",
    // 4: the token each webhook had before `webhook.rotate`, which answers
    // until `expires_at` (checked on every read; `purge_expired` deletes the
    // row later). At most one per webhook: a rotation replaces it.
    "
CREATE TABLE webhook_previous_tokens (
    token         TEXT PRIMARY KEY,
    current_token TEXT NOT NULL UNIQUE,
    expires_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX webhook_previous_tokens_by_expiry ON webhook_previous_tokens(expires_at);
",
    // 5: delivery claims of the webhooks with `dedup`: the SHA-256 of (event
    // key, delivery key) and the event that holds it until `expires_at`;
    // `purge_expired` deletes the expired ones.
    "
CREATE TABLE dedup_claims (
    key_hash       BLOB PRIMARY KEY,
    correlation_id TEXT NOT NULL,
    expires_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX dedup_claims_by_expiry ON dedup_claims(expires_at);
",
    // 6: the event log. An event is kept until `kept_until` (the later of its
    // result's end and HOOKFLOW_EVENT_RETENTION_SECONDS), apart from
    // `expires_at`, when `/api/v3/result` stops answering. What a page of
    // `event.list` shows and filters on is in columns of its own, the status of
    // each pipeline included (`record_outcome` keeps it), so a page is one range
    // of one index and reads neither the payload nor an outcome. Rows written
    // before are filled in from their JSON.
    "
ALTER TABLE events ADD COLUMN kept_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN event_key TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN received_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN method TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN content_type TEXT;
ALTER TABLE events ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN replay_of TEXT;
ALTER TABLE events ADD COLUMN pipelines TEXT NOT NULL DEFAULT '{}';
ALTER TABLE events ADD COLUMN status TEXT NOT NULL DEFAULT 'processing';
UPDATE events SET
    kept_until = expires_at,
    event_key = json_extract(data, '$.eventKey'),
    received_at = json_extract(data, '$.receivedAt'),
    method = json_extract(data, '$.method'),
    content_type = json_extract(data, '$.contentType'),
    size = coalesce(json_extract(data, '$.size'), 0),
    replay_of = json_extract(data, '$.replayOf'),
    pipelines = (
        SELECT json_group_object(l.value, coalesce(
            (SELECT json_extract(o.data, '$.status') FROM outcomes o
              WHERE o.correlation_id = events.correlation_id AND o.pipeline = l.value),
            'processing'))
        FROM json_each(events.listeners) l
    );
UPDATE events SET status = CASE
    WHEN EXISTS (SELECT 1 FROM json_each(pipelines) WHERE value = 'error') THEN 'error'
    WHEN EXISTS (SELECT 1 FROM json_each(pipelines) WHERE value = 'processing') THEN 'processing'
    ELSE 'ok' END;
DROP INDEX events_by_expiry;
CREATE INDEX events_by_kept_until ON events(kept_until);
CREATE INDEX events_by_time ON events(received_at, correlation_id);
CREATE INDEX events_by_key ON events(event_key, received_at, correlation_id);
CREATE INDEX events_by_status ON events(status, received_at, correlation_id);
CREATE INDEX events_by_key_status ON events(event_key, status, received_at, correlation_id);
",
];
/// Brings the file to the newest schema version this code knows, one migration
/// at a time. A file written by a newer hookflow is refused, not guessed at.
pub(super) fn migrate(conn: &mut Connection, migrations: &[&str]) -> StoreResult<()> {
    let known = migrations.len() as i64;
    let version = |c: &Connection| -> StoreResult<i64> {
        Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?)
    };
    let refuse_newer = |found: i64| {
        StoreError::unavailable(format!(
            "the database has schema version {found}, newer than the {known} this hookflow \
             knows: it was written by a newer hookflow; run that version (or a newer one) on it"
        ))
    };
    // The common case, a file already current, takes no write lock: another
    // process (a running server) may hold it.
    let found = version(conn)?;
    if found > known {
        return Err(refuse_newer(found));
    }
    if found == known {
        return Ok(());
    }
    // IMMEDIATE: two processes opening an old file at once migrate it once.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = version(&tx)?;
    if found > known {
        return Err(refuse_newer(found));
    }
    for (step, sql) in migrations.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql).map_err(|e| {
            StoreError::unavailable(format!("schema migration to version {}: {e}", step + 1))
        })?;
    }
    tx.pragma_update(None, "user_version", known)?;
    tx.commit()?;
    Ok(())
}
