//! The event -> queue -> result path in one process, on the in-memory ports:
//! long polls are woken the moment a result lands, not by a sleep loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookflow_core::config::AdminToken;
use hookflow_core::domain::{EventKey, PipelineDefinition, PipelineOutcome, Timestamp};
use hookflow_core::ports::Ports;
use hookflow_core::wiring;
use hookflow_core::{Gateway, Settings};
use http::{Request, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-token-0123456789";

fn gateway(receive_wait_ms: u64) -> Arc<Gateway> {
    let settings = Settings {
        admin_token: Some(AdminToken::new(ADMIN).unwrap()),
        receive_wait: Duration::from_millis(receive_wait_ms),
        ..Settings::default()
    };
    Arc::new(wiring::gateway(Ports::memory(), settings))
}

async fn call(
    gw: &Gateway,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, http::HeaderMap, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(body.to_owned()))
        .unwrap();
    let res = gw.handle(req).await;
    let status = res.status();
    let headers = res.headers().clone();
    (
        status,
        headers,
        serde_json::from_slice(res.body()).unwrap_or(Value::Null),
    )
}

/// A webhook for `key` with one (fake-named) pipeline listening, so results stay open.
async fn webhook_with_listener(gw: &Gateway, key: &str) -> String {
    let (status, _, hook) = call(
        gw,
        "POST",
        "/api/v3/command/webhook.put",
        &format!("eventKey={key}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    gw.ports()
        .pipelines
        .put_pipeline(&PipelineDefinition {
            name: "upper".into(),
            listens_to: EventKey::parse(key).unwrap(),
            source: String::new(),
            updated_at: Timestamp::now(),
        })
        .await
        .unwrap();
    hook["uuid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn long_poll_wakes_as_soon_as_the_result_lands() {
    let gw = gateway(0);
    let token = webhook_with_listener(&gw, "webhook.poll.wake").await;
    let (status, headers, answer) = call(
        &gw,
        "POST",
        &format!("/api/v3/command/webhook.receive?token={token}"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "processing");
    let id = headers["pipeforce-result-correlationid"]
        .to_str()
        .unwrap()
        .to_owned();

    let poller = {
        let gw = gw.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let out = call(
                &gw,
                "GET",
                &format!("/api/v3/result?correlationId={id}&maxWaitMs=20000"),
                "",
            )
            .await;
            (out, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!poller.is_finished(), "the poll waits while processing");

    // Play the worker: take the queued job, record its outcome, signal.
    let ports = gw.ports();
    let jobs = ports
        .queue
        .receive_jobs(10, Duration::from_secs(1), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "one job per listening pipeline");
    assert_eq!(
        jobs[0].job().unwrap().as_pipeline().unwrap().pipeline,
        "upper"
    );
    assert_eq!(
        jobs[0]
            .job()
            .unwrap()
            .as_pipeline()
            .unwrap()
            .correlation_id
            .to_string(),
        id
    );
    let landed = Instant::now();
    ports
        .events
        .record_outcome(
            &jobs[0].job().unwrap().as_pipeline().unwrap().correlation_id,
            "upper",
            &PipelineOutcome::Ok {
                value: json!("HELLO WORLD"),
                run: None,
            },
        )
        .await
        .unwrap();
    ports
        .signal
        .notify(&jobs[0].job().unwrap().as_pipeline().unwrap().correlation_id);

    let ((status, _, answer), waited) = poller.await.unwrap();
    let latency = landed.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({"statusCode": 200, "status": "ok", "value": "HELLO WORLD", "pollingRedirectEnabled": false, "correlationId": id})
    );
    assert!(waited >= Duration::from_millis(200));
    // Woken, not timed out: far below the 20 s bound.
    assert!(
        latency < Duration::from_secs(2),
        "woken promptly, took {latency:?}"
    );
}

#[tokio::test]
async fn receive_answers_with_the_result_when_it_lands_within_the_wait() {
    let gw = gateway(5_000);
    let token = webhook_with_listener(&gw, "webhook.poll.inline").await;
    let worker = {
        let gw = gw.clone();
        tokio::spawn(async move {
            let ports = gw.ports();
            let jobs = ports
                .queue
                .receive_jobs(1, Duration::from_secs(5), Duration::from_secs(30))
                .await
                .unwrap();
            let id = jobs[0].job().unwrap().as_pipeline().unwrap().correlation_id;
            ports
                .events
                .record_outcome(
                    &id,
                    "upper",
                    &PipelineOutcome::Ok {
                        value: json!("HELLO WORLD"),
                        run: None,
                    },
                )
                .await
                .unwrap();
            ports.signal.notify(&id);
        })
    };
    let started = Instant::now();
    let (status, _, answer) = call(
        &gw,
        "POST",
        &format!("/api/v3/command/webhook.receive?token={token}"),
        "",
    )
    .await;
    worker.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "ok");
    assert_eq!(answer["value"], "HELLO WORLD");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "did not sit out the whole wait"
    );
}

#[tokio::test]
async fn failed_pipeline_reads_as_error_with_its_step() {
    let gw = gateway(0);
    let token = webhook_with_listener(&gw, "webhook.poll.fail").await;
    let (_, headers, _) = call(
        &gw,
        "POST",
        &format!("/api/v3/webhook.receive?token={token}"),
        "",
    )
    .await;
    let id = headers["pipeforce-result-correlationid"]
        .to_str()
        .unwrap()
        .to_owned();
    let outcome = PipelineOutcome::Error {
        code: "expression_failed".into(),
        message: "no such path".into(),
        step: Some("2".into()),
        run: None,
    };
    let cid = hookflow_core::domain::CorrelationId::parse(&id).unwrap();
    gw.ports()
        .events
        .record_outcome(&cid, "upper", &outcome)
        .await
        .unwrap();
    let (status, _, answer) = call(
        &gw,
        "GET",
        &format!("/api/v3/result?correlationId={id}&maxWaitMs=0"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({"statusCode": 500, "status": "error", "value": null, "pollingRedirectEnabled": false, "correlationId": id,
               "error": {"code": "expression_failed", "message": "no such path", "pipeline": "upper", "step": "2"}})
    );
}
