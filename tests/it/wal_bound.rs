//! The SQLite WAL stays under `HOOKFLOW_WAL_MAX_BYTES` at full speed, and a
//! clean shutdown leaves it empty.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hookflow_core::adapters::sqlite::wal_path;

use crate::harness::{Load, Server, embedded_only, stored_event_ids};

/// The bound the test server runs with: the smallest the setting accepts.
const WAL_MAX_BYTES: u64 = 1024 * 1024;
/// What one group commit of the test's clients may add past the bound before
/// the writer resets the log (a few pages per write, eight writers).
const ONE_GROUP_COMMIT: u64 = 256 * 1024;
const CLIENTS: usize = 8;
/// Calls to drive through: a few kilobytes of log each, several times the bound.
const CALLS: usize = 4_000;

/// Largest size seen, and how often the file shrank (each a reset).
struct WalSamples {
    peak: u64,
    resets: usize,
}

/// Samples the size of `wal` every few milliseconds until `stop` is set.
async fn sample(wal: std::path::PathBuf, stop: Arc<AtomicBool>) -> WalSamples {
    let (mut peak, mut resets, mut last) = (0, 0, 0);
    while !stop.load(Ordering::Relaxed) {
        let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
        if size < last {
            resets += 1;
        }
        peak = peak.max(size);
        last = size;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    WalSamples { peak, resets }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wal_stays_under_its_bound_at_full_speed_and_sigterm_empties_it() {
    if !embedded_only("wal_bound") {
        return;
    }
    let bound = WAL_MAX_BYTES.to_string();
    let mut server = Server::start_with(&[("HOOKFLOW_WAL_MAX_BYTES", &bound)]).await;
    let hook = server.create_webhook("webhook.wal.bound", &[]).await;
    let wal = wal_path(&server.database());
    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample(wal.clone(), sampling.clone()));

    let load = Load::start(&server, hook["uuid"].as_str().unwrap(), CLIENTS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while load.ok() < CALLS && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sampling.store(true, Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    let answered = load.ok();
    assert!(
        samples.peak <= WAL_MAX_BYTES + ONE_GROUP_COMMIT,
        "the WAL reached {} bytes, over its bound of {WAL_MAX_BYTES} (+{ONE_GROUP_COMMIT} for one group commit)",
        samples.peak
    );
    assert!(
        samples.resets >= 2,
        "the load passed the bound at least twice ({answered} calls, WAL peak {} bytes, {} resets): \
         otherwise this test proves nothing",
        samples.peak,
        samples.resets
    );

    // SIGTERM with the clients still sending.
    server.stop().await;
    let others = load.counts().other.load(Ordering::Relaxed);
    let accepted = load.finish().await;
    assert_eq!(others, 0, "every call answered was answered 200 or 503");
    let left = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(
        left, 0,
        "a clean shutdown leaves an empty WAL, found {left} bytes"
    );
    let stored = stored_event_ids(&server.database());
    let missing = accepted.iter().filter(|id| !stored.contains(*id)).count();
    assert_eq!(missing, 0, "of {} calls answered 200", accepted.len());
}
