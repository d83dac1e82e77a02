//! A full data dir: receives answer 503; once space comes back they answer 200
//! again by themselves, and nothing answered 200 is lost.
//!
//! The data dir is a small tmpfs, so the test needs to be allowed to mount one
//! (root, as `make test` runs here); where it is not, it is skipped with a message.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tokio::time::Instant;

use crate::harness::{Load, Server, embedded_only, stored_event_ids};

const TMPFS_SIZE: &str = "16m";
const WAL_MAX_BYTES: u64 = 1024 * 1024;
/// What one group commit of the test's clients may add past the bound.
const ONE_GROUP_COMMIT: u64 = 512 * 1024;
const CLIENTS: usize = 32;
/// Calls that must be accepted after the space comes back. The log takes
/// kilobytes per call, so a WAL that is not reset would fill the freed space
/// again long before; stored events take well under half of it.
const CALLS_AFTER_RECOVERY: usize = 10_000;
/// Generous: the test asserts recovery, not its speed.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(180);

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None (after saying why) where mounting is not allowed.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            Ok(out) => {
                eprintln!(
                    "SKIP disk_full: cannot mount a tmpfs here ({})",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(err) => {
                eprintln!("SKIP disk_full: cannot run mount ({err})");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros to `path` until the file system refuses more.
fn fill(path: &Path) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("filler");
    for chunk in [64 * 1024, 4096, 512] {
        let zeros = vec![0u8; chunk];
        while matches!(file.write(&zeros), Ok(n) if n > 0) {}
    }
}

fn size_of(path: PathBuf) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receives_recover_by_themselves_once_disk_space_returns() {
    if !embedded_only("disk_full") {
        return;
    }
    let Some(tmpfs) = Tmpfs::mount(TMPFS_SIZE) else {
        return;
    };
    let data = tmpfs.path().join("data");
    let env = [(
        "HOOKFLOW_WAL_MAX_BYTES".to_owned(),
        WAL_MAX_BYTES.to_string(),
    )];
    let mut server = Server::spawn(&data, &env, "unused").await;
    let hook = server.create_webhook("webhook.disk.full", &[]).await;
    let load = Load::start(&server, hook["uuid"].as_str().unwrap(), CLIENTS);
    while load.ok() < 500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Fill the disk; keep taking whatever space frees up until receives fail.
    let filler = tmpfs.path().join("filler");
    let refused_before = load.unavailable();
    let deadline = Instant::now() + Duration::from_secs(60);
    while load.unavailable() < refused_before + 50 {
        assert!(
            Instant::now() < deadline,
            "receives never failed on a full disk"
        );
        fill(&filler);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The log must not keep what the disk gets back: a WAL that cannot be reset
    // needs fresh space for every commit, and fills the disk again.
    std::fs::remove_file(&filler).expect("free the space");
    let accepted_at_free = load.ok();
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    let mut wal_peak = 0;
    while load.ok() < accepted_at_free + CALLS_AFTER_RECOVERY {
        wal_peak = wal_peak.max(size_of(data.join("hookflow.db-wal")));
        assert!(
            Instant::now() < deadline,
            "only {} calls accepted in {RECOVERY_DEADLINE:?} after the space came back \
             ({} answered 503 in all; WAL {} bytes, database {} bytes)",
            load.ok() - accepted_at_free,
            load.unavailable(),
            size_of(data.join("hookflow.db-wal")),
            size_of(data.join("hookflow.db")),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert!(
        wal_peak <= WAL_MAX_BYTES + ONE_GROUP_COMMIT,
        "after the space came back the WAL reached {wal_peak} bytes, over its bound of {WAL_MAX_BYTES}"
    );
    server.stop().await;
    let others = load
        .counts()
        .other
        .load(std::sync::atomic::Ordering::Relaxed);
    let accepted = load.finish().await;
    assert_eq!(others, 0, "every call was answered 200 or 503");
    let stored = stored_event_ids(&server.database());
    let missing = accepted.iter().filter(|id| !stored.contains(*id)).count();
    assert_eq!(missing, 0, "of {} calls answered 200", accepted.len());
}
