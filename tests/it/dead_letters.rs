//! One dead-letter policy, in `serve` on either backend: a job whose runs keep
//! ending the process stops after `HOOKFLOW_MAX_ATTEMPTS` deliveries with an
//! error outcome, and an unreadable message is moved aside, not dropped.

use std::time::{Duration, Instant};

use hookflow_core::testkit::endpoint::Endpoint;
use serde_json::json;

use crate::outgoing::{ALLOW, OutgoingFixture};

/// Waits until `count` connections reached `endpoint`.
async fn wait_for_calls(endpoint: &Endpoint, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while endpoint.accepted() < count {
        assert!(
            Instant::now() < deadline,
            "run {count} did not reach the endpoint within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// On the embedded backend only: there a delivery is exactly one handing out
/// by this process. On SQS the long poll of a process killed mid-wait goes on at
/// the service and can take the message out of sight once more, which counts
/// as a delivery too (README "Running, retries and failures"); the SQS side of
/// the policy is tested through the Lambda handler (`shared/tests/lambda_events.rs`)
/// and the dead-letter queue by the conformance suite on moto.
#[tokio::test]
async fn a_job_that_keeps_ending_the_process_is_dead_lettered_with_an_error_outcome() {
    if !crate::harness::embedded_only(
        "a_job_that_keeps_ending_the_process_is_dead_lettered_with_an_error_outcome",
    ) {
        return;
    }
    // The endpoint accepts and never answers: a run calling it stays in its
    // step until the process is killed.
    let OutgoingFixture {
        mut server,
        endpoint,
        ..
    } = OutgoingFixture::options()
        .server_env(&[
            ALLOW,
            ("HOOKFLOW_MAX_ATTEMPTS", "2"),
            ("HOOKFLOW_RECEIVE_WAIT_MS", "0"),
            // A restarted embedded server hands a killed run's job out at once;
            // this only keeps a stray run from outliving the test.
            ("HOOKFLOW_PIPELINE_TIMEOUT_MS", "2500"),
            ("HOOKFLOW_VISIBILITY_TIMEOUT_SECONDS", "3"),
        ])
        .never_answering()
        .start(|endpoint| json!({"id": "silent", "url": endpoint.url("/hook"), "method": "POST"}))
        .await;
    let (status, body) = server
        .put_pipeline(
            "stuck",
            "pipeline:\n  - event.listen: {eventKey: webhook.stuck}\n  - iam.run.as: systemuser\n  - webhook.send: silent\n",
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    let token = server.create_webhook("webhook.stuck", &[]).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, id, answer) = server.trigger(&token, "{}", "").await;
    assert_eq!(answer["status"], "processing", "{answer}");

    // Each of the allowed deliveries ends with the process (as an abort or the
    // OOM killer would end it): the run is inside its step when kill -9 comes.
    for run in 1..=2 {
        wait_for_calls(&endpoint, run).await;
        server.kill9().await;
        server.restart().await;
    }

    let result = server.final_result(&id).await;
    assert_eq!(result["status"], "error", "{result}");
    assert_eq!(result["error"]["code"], "internal_error", "{result}");
    assert_eq!(result["error"]["message"], "the run ended the process");
    let storage = server.storage().await;
    let dead = storage.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].0.contains(&id),
        "the job's message is kept: {dead:?}"
    );
    assert!(dead[0].1.contains("handed out 3 times"), "{dead:?}");
    // Taken off the queue, and its third delivery never ran.
    let deadline = Instant::now() + Duration::from_secs(5);
    while storage.pending_jobs().await != 0 {
        assert!(Instant::now() < deadline, "the job is still queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(endpoint.accepted(), 2);
}
