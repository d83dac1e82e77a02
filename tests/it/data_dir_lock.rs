//! One `serve` per data dir: a second one is refused, naming the first's PID,
//! and the dir is free again once the first has stopped (or was killed).

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::process::Command;

use crate::harness::{ADMIN, Server, embedded_only};

/// Starts a second `serve` on `server`'s data dir and waits for it to exit.
async fn second_serve(server: &Server) -> std::process::Output {
    let second = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&server.dir)
        .env("HOOKFLOW_ADMIN_TOKEN", ADMIN)
        .env("HOOKFLOW_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("a second serve on the same data dir must exit, not serve")
        .expect("run hookflow")
}

#[tokio::test]
async fn a_second_serve_on_the_same_data_dir_is_refused() {
    if !embedded_only("data_dir_lock") {
        return;
    }
    let mut first = Server::start().await;
    let pid = first.child.id().expect("running");

    let refused = second_serve(&first).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("PID {pid}")) && stderr.contains("in use"),
        "the refusal names the holder: {stderr}"
    );
    let (status, _) = first.command("webhook.get", &[]).await;
    assert_eq!(status, StatusCode::OK, "the first keeps serving");

    first.stop().await;
    first.restart().await;
    let (status, _) = first.command("webhook.get", &[]).await;
    assert_eq!(status, StatusCode::OK, "free again after a clean stop");

    first.kill9().await;
    first.restart().await;
    let (status, _) = first.command("webhook.get", &[]).await;
    assert_eq!(status, StatusCode::OK, "free again after kill -9");
    let pid = first.child.id().expect("running");
    let refused = second_serve(&first).await;
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(&format!("PID {pid}")),
        "names the new holder"
    );
}
