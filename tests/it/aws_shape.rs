//! The AWS shape's edges, over HTTP against the real binary (on moto with
//! `HOOKFLOW_TEST_BACKEND=aws`; the same tests hold on the embedded backend):
//! large bodies and results, long `Retry-After`s, a restart's first send, and
//! `serve --backend aws` without its settings.

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::StatusCode;
use serde_json::json;

use hookflow_core::testkit::endpoint::{Endpoint, Reply};

use crate::harness::{Backend, Server, backend, stored_event_body};
use crate::outgoing::{ALLOW, OutgoingFixture, epoch_millis, invocation, reference_id, send};

const UPPER: &str = "pipeline:
  - event.listen:
      eventKey: webhook.big
  - body.set:
      value: ${@text.upperCase(@convert.fromBase64(body.origin))}
";

/// A JSON body of exactly `size` bytes.
fn json_body(size: usize) -> String {
    let filler = size - r#"{"x":""}"#.len();
    format!(r#"{{"x":"{}"}}"#, "a".repeat(filler))
}

/// 300 KB, 1 MB and 4 MB bodies with the seed's one-step pipeline: the event
/// and the outcome outgrow a DynamoDB item and go to S3 by claim check. A
/// result larger than a result may hold (the 4 MB body as base64) ends as
/// `result_too_large` instead of being retried until it lands in the
/// dead-letter queue, with the poll saying `processing` forever.
#[tokio::test]
async fn bodies_and_results_up_to_4_mb_come_back_whole() {
    let server = Server::start().await;
    let token = server
        .create_webhook("webhook.big", &[("maxPayloadLength", "4194304")])
        .await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, stored) = server.put_pipeline("upper", UPPER).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    for size in [300_000, 1_000_000, 4_000_000] {
        let body = json_body(size);
        let (status, id, _) = server.trigger(&token, &body, "").await;
        assert_eq!(status, StatusCode::OK, "{size} bytes");
        let result = server.final_result(&id).await;
        assert_eq!(result["status"], "ok", "{size} bytes: {}", result["error"]);
        assert_eq!(
            result["value"].as_str().map(str::len),
            Some(size),
            "{size} bytes"
        );
        assert!(result["value"] == body.to_uppercase(), "{size} bytes");
        let event = stored_event_body(&server, &id).await.expect("stored");
        let origin = B64.decode(event["origin"].as_str().unwrap()).unwrap();
        assert!(
            origin == body.as_bytes(),
            "{size} bytes: the event is whole"
        );
    }

    let (status, stored) = server
        .put_pipeline(
            "upper",
            "pipeline:\n  - event.listen: {eventKey: webhook.big}\n  - body.set: {value: '${body.origin}'}\n",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let (_, id, _) = server.trigger(&token, &json_body(4_000_000), "").await;
    let result = server.final_result(&id).await;
    assert_eq!(result["status"], "error", "{}", result["error"]);
    assert_eq!(result["error"]["code"], "result_too_large", "{result}");
}

/// SQS hides a message for at most 12 hours from its receive. A `Retry-After`
/// of 12 hours used to be refused by SQS, and the delivery came back after the
/// visibility timeout (here 2 s) for an early retry. Now the delay is cut to
/// what SQS takes and the delivery waits out its 12 hours.
#[tokio::test]
async fn a_retry_after_of_twelve_hours_is_waited_out() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::options()
        .server_env(&[
            ALLOW,
            ("HOOKFLOW_VISIBILITY_TIMEOUT_SECONDS", "2"),
            ("HOOKFLOW_PIPELINE_TIMEOUT_MS", "1000"),
        ])
        .logged()
        .answering(Reply::status(503).header("retry-after", "43200"))
        .start(|endpoint| json!({"id": "busy", "url": endpoint.url("/b"), "method": "POST"}))
        .await;
    let (status, answer) = send(&server, &json!({"webhookId": "busy", "async": true})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = reference_id(&answer);
    endpoint.wait_for_requests(1, Duration::from_secs(20)).await;
    // Several visibility timeouts later, still one attempt.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(endpoint.requests().len(), 1, "no early retry");
    let record = invocation(&server, &id).await;
    assert_eq!(record["state"], "processing", "{record}");
    let due = epoch_millis(&record["nextAttemptAt"]) - epoch_millis(&record["attempts"][0]["at"]);
    assert!(due >= 43_199_000, "next attempt in {due} ms: {record}");
    let log = server.log_text();
    assert!(
        !log.contains("acknowledging a job failed"),
        "the queue took the delay: {log}"
    );
}

/// A stopped `serve --backend aws` used to leave its SQS long poll waiting at
/// the service, which took the next message out of sight for the visibility
/// timeout (180 s): a new process's first send waited that long. Now the
/// worker finishes its receive on stop and hands back what it brought.
#[tokio::test]
async fn after_a_restart_a_new_send_is_attempted_at_once() {
    let OutgoingFixture {
        mut server,
        endpoint,
        ..
    } = OutgoingFixture::options()
        .server_env(&[ALLOW])
        .start(
            |endpoint| json!({"id": "after-restart", "url": endpoint.url("/r"), "method": "POST"}),
        )
        .await;
    // Let the worker's receive be under way when the server stops.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.stop().await;
    if backend() == Backend::Aws {
        let storage = server.storage().await;
        let (sqs, url) = storage.sqs_queue().expect("an SQS queue");
        sqs.send_message()
            .queue_url(url)
            .message_body("probe")
            .send()
            .await
            .unwrap();
        let received = sqs
            .receive_message()
            .queue_url(url)
            .wait_time_seconds(3)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        assert_eq!(
            received.len(),
            1,
            "a message sent after the stop is not taken by the stopped server"
        );
        sqs.delete_message()
            .queue_url(url)
            .receipt_handle(received[0].receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    server.restart().await;
    let started = Instant::now();
    let (status, answer) = send(
        &server,
        &json!({"webhookId": "after-restart", "data": {"n": 1}, "async": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    // Far below the 180 s visibility timeout it used to wait.
    endpoint.wait_for_requests(1, Duration::from_secs(30)).await;
    eprintln!("first attempt {:?} after the send", started.elapsed());
}

/// `serve --backend aws` without region, credentials or resource names stops
/// at once and names them all, before any AWS call: it used to go looking for
/// credentials at the cloud metadata address (here a local listener that
/// counts connections).
#[tokio::test]
async fn serve_on_aws_without_its_settings_names_them_before_any_aws_call() {
    let metadata = Endpoint::never_answering().await;
    let metadata_url = metadata.url("");
    let home = tempfile::tempdir().unwrap();
    for provision in [false, true] {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookflow"));
        cmd.args([
            "serve",
            "--backend",
            "aws",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(home.path().join("data"));
        if provision {
            cmd.arg("--provision");
        }
        let output = cmd
            .env_clear()
            .env("HOME", home.path())
            .env("HOOKFLOW_LOG", "warn")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &metadata_url)
            .stdin(Stdio::null())
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .expect("stops")
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("AWS_REGION"), "{stderr}");
        assert!(stderr.contains("AWS_ACCESS_KEY_ID"), "{stderr}");
        assert_eq!(
            stderr.contains("HOOKFLOW_WEBHOOKS_TABLE") && stderr.contains("HOOKFLOW_QUEUE_URL"),
            !provision,
            "{stderr}"
        );
    }
    assert_eq!(metadata.accepted(), 0, "no call to the metadata address");
}
