//! `hookflow bench --event-log`: fills a SQLite store with a large event log
//! (straight through the store, in big transactions) and measures pages of
//! `event.list` through the gateway, as the command answers them (routing,
//! parameters, the index read, the JSON), without the network.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Request;
use serde_json::Value;

use hookflow_core::adapters::SqliteStore;
use hookflow_core::config::Settings;
use hookflow_core::domain::{CorrelationId, Event, EventKey, EventRecord, Timestamp};
use hookflow_core::ports::Ports;

const ADMIN: &str = "bench-admin-token-0123456789";
/// Events spread over this many webhooks.
const EVENT_KEYS: usize = 50;
/// One event in this many has a listener that never finishes (`processing`);
/// the others have none (`ok`). A prime, so each key gets its share.
const PROCESSING_EVERY: usize = 97;
/// Events written per transaction while filling.
const BATCH: usize = 20_000;
/// Pages read per measurement.
const ROUNDS: usize = 200;
const PAGE: &str = "50";

fn event(i: usize, received_at: Timestamp) -> anyhow::Result<EventRecord> {
    let event_key = EventKey::parse(&format!("webhook.bench.k{}", i % EVENT_KEYS))?;
    let body = format!(r#"{{"lead":{{"n":{i},"email":"lead{i}@example.com"}}}}"#);
    let listeners = if i.is_multiple_of(PROCESSING_EVERY) {
        vec!["never-run".to_owned()]
    } else {
        Vec::new()
    };
    Ok(EventRecord {
        event: Event {
            correlation_id: CorrelationId::generate(),
            event_key,
            received_at,
            size: body.len() as u64,
            origin: serde_json::from_str(&body)?,
            method: "POST".into(),
            content_type: Some("application/json".into()),
            headers: BTreeMap::from([("content-type".into(), "application/json".into())]),
            params: BTreeMap::new(),
            files: Vec::new(),
            replay_of: None,
        },
        listeners,
        expires_at: received_at.plus_seconds(3600),
        retained_until: received_at.plus_seconds(3 * 24 * 3600),
    })
}

async fn list(gateway: &hookflow_core::api::Gateway, query: &str) -> anyhow::Result<Value> {
    let req = Request::builder()
        .method("GET")
        .uri(format!("/api/v3/command/event.list?{query}"))
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Bytes::new())?;
    let res = gateway.handle(req).await;
    if !res.status().is_success() {
        bail!("event.list?{query}: {} {:?}", res.status(), res.body());
    }
    Ok(serde_json::from_slice(res.body())?)
}

/// Median and 99th percentile of `ROUNDS` reads of one page.
async fn measure(
    gateway: &hookflow_core::api::Gateway,
    title: &str,
    query: &str,
) -> anyhow::Result<()> {
    let first = list(gateway, query).await?;
    let entries = first["events"].as_array().map_or(0, Vec::len);
    let mut took = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        list(gateway, query).await?;
        took.push(started.elapsed());
    }
    took.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{title:<44} {entries:>7} {:>10.2} {:>10.2}",
        ms(took[ROUNDS / 2]),
        ms(took[ROUNDS * 99 / 100])
    );
    Ok(())
}

pub async fn run(events: usize) -> anyhow::Result<ExitCode> {
    let dir = crate::bench::tempfile_dir()?;
    let store = Arc::new(SqliteStore::open(&dir.join("hookflow.db"))?);
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; run `cargo run --release -- bench --event-log` for real figures"
        );
    }
    // Received one after the other over the last two days, so all are kept.
    let now = Timestamp::now();
    let spacing_ms = (2 * 24 * 3600 * 1000 / events.max(1) as i64).max(1);
    let oldest = Timestamp(now.0 - spacing_ms * events as i64);
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..events {
        batch.push(event(i, Timestamp(oldest.0 + spacing_ms * i as i64))?);
        if batch.len() == BATCH || i + 1 == events {
            store.put_events(&batch).await?;
            batch.clear();
        }
    }
    let filled = started.elapsed();
    println!(
        "hookflow bench --event-log: {events} events in SQLite ({EVENT_KEYS} event keys, 1 in {PROCESSING_EVERY} processing), filled in {:.1} s ({:.0} events/s)",
        filled.as_secs_f64(),
        events as f64 / filled.as_secs_f64()
    );
    let settings =
        Settings::from_lookup(|name| (name == "HOOKFLOW_ADMIN_TOKEN").then(|| ADMIN.to_owned()))?;
    let gateway = hookflow_core::wiring::gateway(Ports::sqlite(store), settings);

    // A cursor half-way down the log: the page after the event received then.
    let middle = Timestamp(oldest.0 + spacing_ms * (events / 2) as i64);
    // RFC 3339 as hookflow writes it (`…T13:00:00.000Z`) needs no escaping in a query.
    let deep = list(&gateway, &format!("limit=1&until={}", middle.to_rfc3339())).await?;
    let cursor = deep["next"]
        .as_str()
        .context("no event older than the middle one")?
        .to_owned();

    println!();
    println!(
        "event.list, pages of {PAGE}, {ROUNDS} reads each {:>9} {:>10} {:>10}",
        "entries", "median ms", "p99 ms"
    );
    measure(&gateway, "first page (newest)", &format!("limit={PAGE}")).await?;
    measure(
        &gateway,
        "eventKey + status=processing (1 in 4,850)",
        &format!("limit={PAGE}&eventKey=webhook.bench.k7&status=processing"),
    )
    .await?;
    measure(
        &gateway,
        "status=processing (1 in 97)",
        &format!("limit={PAGE}&status=processing"),
    )
    .await?;
    measure(
        &gateway,
        &format!("deep page via cursor ({} events in)", events / 2),
        &format!("limit={PAGE}&cursor={cursor}"),
    )
    .await?;
    drop(gateway);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}
