//! One dead-letter policy, in `serve` on either backend: a job whose runs keep
//! ending the process stops after `HOOKFLOW_MAX_ATTEMPTS` deliveries with an
//! error outcome, and an unreadable message is moved aside, not dropped.

use std::time::{Duration, Instant};

use hookflow_core::testkit::endpoint::Endpoint;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Server, Storage, assert_error};
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

/// The pipeline the stored events of the dead-letter commands' tests run.
const UPPER: &str = "pipeline:
  - event.listen:
      eventKey: webhook.deadletters
  - body.set:
      value: ${@text.upperCase(@convert.fromBase64(body.origin))}
";

/// Stores an event for the `upper` pipeline, and its job among the dead
/// letters (`reason` as the worker or, without one, SQS's redrive policy
/// leaves it): a job that never ran, its result still `processing`.
async fn dead_pipeline_job(storage: &Storage, reason: Option<&str>) -> String {
    use hookflow_core::domain::{EventKey, Job, PipelineJob};
    let key = EventKey::parse("webhook.deadletters").unwrap();
    let record = hookflow_core::testkit::sample_event(&key, &["upper"], 600_000);
    storage.ports.events.put_event(&record).await.unwrap();
    let id = record.event.correlation_id;
    let job = Job::Pipeline(PipelineJob {
        correlation_id: id,
        pipeline: "upper".into(),
    });
    storage
        .put_dead_letter(&serde_json::to_string(&job).unwrap(), reason)
        .await;
    id.to_string()
}

/// The reason of the second dead letter: on SQS none, as the queue's redrive
/// policy leaves a job it moves; the embedded worker always gives one.
fn second_reason() -> Option<&'static str> {
    match crate::harness::backend() {
        crate::harness::Backend::Embedded => Some("the run ended the process"),
        crate::harness::Backend::Aws => None,
    }
}

/// `deadletter.list` until it shows `count` dead letters (the worker moves an
/// unreadable message there a moment after it is queued).
async fn list_of(server: &Server, count: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = server.command("deadletter.list", &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["deadLetters"].as_array().unwrap().len() == count {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "never {count} dead letters: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The entry of `list` whose field `field` is `value`, its `deadAt` checked
/// and removed (its exact value is the store's clock).
fn entry(list: &Value, field: &str, value: &str) -> Value {
    let mut found = list["deadLetters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d[field] == value)
        .unwrap_or_else(|| panic!("no dead letter with {field} {value}: {list}"))
        .clone();
    let dead_at = found["deadAt"].as_str().unwrap().to_owned();
    assert!(
        dead_at.len() == 24 && dead_at.ends_with('Z'),
        "an RFC 3339 time: {dead_at}"
    );
    found.as_object_mut().unwrap().remove("deadAt");
    found
}

#[tokio::test]
async fn dead_letters_are_listed_redriven_and_deleted_over_http() {
    let server = Server::start().await;
    let (status, body) = server.put_pipeline("upper", UPPER).await;
    assert!(status.is_success(), "{status}: {body}");
    let storage = server.storage().await;
    let gave_up = dead_pipeline_job(&storage, Some("handed out 3 times")).await;
    // On SQS, as the queue's redrive policy moves a job: no reason, no count.
    let moved = dead_pipeline_job(&storage, second_reason()).await;
    // Dead-lettered by the worker itself.
    storage.send_unreadable_job().await;

    let listed = list_of(&server, 3).await;
    assert_eq!(listed["partial"], false, "{listed}");
    let first = entry(&listed, "correlationId", &gave_up);
    let first_id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(
        first,
        json!({"id": first_id, "kind": "pipeline", "correlationId": gave_up,
               "pipeline": "upper", "attempts": 3, "reason": "handed out 3 times"})
    );
    let second = entry(&listed, "correlationId", &moved);
    let second_id = second["id"].as_str().unwrap().to_owned();
    let (attempts, reason) = match second_reason() {
        Some(reason) => (json!(3), json!(reason)),
        None => (Value::Null, Value::Null),
    };
    assert_eq!(
        second,
        json!({"id": second_id, "kind": "pipeline", "correlationId": moved,
               "pipeline": "upper", "attempts": attempts, "reason": reason})
    );
    let unreadable = entry(&listed, "kind", "unreadable");
    let unreadable_id = unreadable["id"].as_str().unwrap().to_owned();
    assert_eq!(unreadable["message"], "not a job", "{unreadable}");
    assert_eq!(unreadable["attempts"], 1, "{unreadable}");
    assert!(
        unreadable["reason"]
            .as_str()
            .unwrap()
            .starts_with("unreadable message: "),
        "{unreadable}"
    );
    let (_, again) = server.command("deadletter.list", &[]).await;
    assert_eq!(again, listed, "listing hides and loses nothing");

    // Redriven, the job runs and its result arrives.
    assert_eq!(
        server
            .command("deadletter.redrive", &[("id", &first_id)])
            .await,
        (StatusCode::OK, json!({"redriven": 1, "more": false}))
    );
    let result = server.final_result(&gave_up).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["value"], "{\"A\":1}", "{result}");
    let left = list_of(&server, 2).await;
    assert!(
        left["deadLetters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["id"] != first_id.as_str()),
        "{left}"
    );
    let (status, body) = server
        .command("deadletter.redrive", &[("id", &first_id)])
        .await;
    assert_error(status, &body, 404, "dead_letter_not_found");

    // Deleted, it is gone; a second delete finds nothing.
    assert_eq!(
        server
            .command("deadletter.delete", &[("id", &unreadable_id)])
            .await,
        (
            StatusCode::OK,
            json!({"id": unreadable_id, "deleted": true})
        )
    );
    let (status, body) = server
        .command("deadletter.delete", &[("id", &unreadable_id)])
        .await;
    assert_error(status, &body, 404, "dead_letter_not_found");
    list_of(&server, 1).await;

    // Redrive all: the rest runs.
    assert_eq!(
        server.command("deadletter.redrive", &[]).await,
        (StatusCode::OK, json!({"redriven": 1, "more": false}))
    );
    let result = server.final_result(&moved).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(
        list_of(&server, 0).await,
        json!({"deadLetters": [], "partial": false})
    );
    assert_eq!(
        server.command("deadletter.redrive", &[]).await,
        (StatusCode::OK, json!({"redriven": 0, "more": false}))
    );
}

#[tokio::test]
async fn dead_letter_commands_refuse_bad_input() {
    let server = Server::start().await;
    for limit in ["0", "201", "ten", "-1"] {
        let (status, body) = server.command("deadletter.list", &[("limit", limit)]).await;
        assert_error(status, &body, 400, "invalid_limit");
    }
    let (status, body) = server.command("deadletter.list", &[("limit", "200")]).await;
    assert_eq!(status, StatusCode::OK, "the largest limit: {body}");
    let (status, body) = server.command("deadletter.delete", &[]).await;
    assert_error(status, &body, 400, "id_missing");
    let (status, body) = server.command("deadletter.delete", &[("id", " ")]).await;
    assert_error(status, &body, 400, "id_missing");
    let (status, body) = server.command("deadletter.redrive", &[("id", "")]).await;
    assert_error(status, &body, 400, "id_missing");
    for id in ["12345", "no-such-message"] {
        let (status, body) = server.command("deadletter.delete", &[("id", id)]).await;
        assert_error(status, &body, 404, "dead_letter_not_found");
        let (status, body) = server.command("deadletter.redrive", &[("id", id)]).await;
        assert_error(status, &body, 404, "dead_letter_not_found");
    }
}

/// `hookflow_queue_depth` and `hookflow_dead_letters` count the queue when
/// Prometheus scrapes, and `queue.get` when asked.
#[tokio::test]
async fn the_queue_and_its_dead_letters_are_counted_when_scraped() {
    use crate::observe::{free_port, sample};
    let metrics = format!("127.0.0.1:{}", free_port());
    let server = Server::start_with(&[
        ("HOOKFLOW_METRICS_ADDR", &metrics),
        // Nothing takes the jobs: they stay queued.
        ("HOOKFLOW_WORKER_CONCURRENCY", "0"),
        ("HOOKFLOW_RECEIVE_WAIT_MS", "0"),
    ])
    .await;
    let scrape = || async {
        let text = crate::harness::client()
            .get(format!("http://{metrics}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (
            sample(&text, "hookflow_queue_depth"),
            sample(&text, "hookflow_dead_letters"),
        )
    };
    assert_eq!(scrape().await, (Some(0.0), Some(0.0)), "an empty queue");

    let token = server.create_webhook("webhook.counted", &[]).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    crate::harness::add_listener(&server, "counted", "webhook.counted").await;
    for _ in 0..3 {
        let (status, _, answer) = server.trigger(&token, "{}", "").await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let storage = server.storage().await;
    storage
        .put_dead_letter("not a job", Some("moved aside"))
        .await;
    assert_eq!(scrape().await, (Some(3.0), Some(1.0)));
    // The same counts through the API (the console's header).
    let (status, counts) = server.command("queue.get", &[]).await;
    assert_eq!(status, StatusCode::OK, "{counts}");
    assert_eq!(counts, json!({"queued": 3, "deadLetters": 1}));
}
