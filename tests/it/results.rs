//! /api/v3/result: polling, long-poll bounds, redirects, 410 Gone.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Server, add_listener, assert_error, client, json_of};

async fn receive(server: &Server, token: &str, query: &str) -> reqwest::Response {
    client()
        .post(server.at(&format!(
            "/api/v3/command/webhook.receive?token={token}{query}"
        )))
        .body("{}")
        .send()
        .await
        .unwrap()
}

/// A server without a worker: results of events with listeners stay `processing`.
const NO_WORKER: (&str, &str) = ("HOOKFLOW_WORKER_CONCURRENCY", "0");

fn correlation_id(res: &reqwest::Response) -> String {
    res.headers()["pipeforce-result-correlationid"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn finished_results_are_pollable_by_either_parameter_name_or_header() {
    let server = Server::start().await;
    let hook = server.create_webhook("webhook.poll", &[]).await;
    let res = receive(&server, hook["uuid"].as_str().unwrap(), "").await;
    let id = correlation_id(&res);
    let expected = json!({"statusCode": 200, "status": "ok", "value": null, "pollingRedirectEnabled": false, "correlationId": id});
    let http = client();
    for url in [
        format!("/api/v3/result?correlationId={id}"),
        format!("/api/v3/result?pipeforce-result-correlationid={id}"),
    ] {
        let res = http.get(server.at(&url)).send().await.unwrap();
        assert_eq!(correlation_id(&res), id);
        let (s, body) = json_of(res).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body, expected);
    }
    let res = http
        .get(server.at("/api/v3/result"))
        .header("pipeforce-result-correlationid", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(res).await, (StatusCode::OK, expected.clone()));
    let res = http
        .post(server.at("/api/v3/result"))
        .form(&[("correlationId", &id)])
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(res).await, (StatusCode::OK, expected));
}

#[tokio::test]
async fn unknown_malformed_and_missing_ids() {
    let server = Server::start().await;
    let http = client();
    for id in ["0c0e5b4e-3c59-4f5e-9c46-2e2a1c0f0b3a", "nope"] {
        let (s, body) = json_of(
            http.get(server.at(&format!("/api/v3/result?correlationId={id}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(s, &body, 410, "result_gone");
    }
    let (s, body) = json_of(http.get(server.at("/api/v3/result")).send().await.unwrap()).await;
    assert_error(s, &body, 400, "correlation_id_missing");
    let (s, body) = json_of(
        http.get(server.at("/api/v3/result?correlationId="))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &body, 400, "correlation_id_missing");
    let (s, body) = json_of(
        http.delete(server.at("/api/v3/result?correlationId=x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &body, 405, "method_not_allowed");
}

#[tokio::test]
async fn results_expire_on_read_after_their_ttl() {
    let server = Server::start_with(&[("HOOKFLOW_RESULT_TTL_SECONDS", "1")]).await;
    let hook = server.create_webhook("webhook.ttl", &[]).await;
    let id = correlation_id(&receive(&server, hook["uuid"].as_str().unwrap(), "").await);
    let url = server.at(&format!("/api/v3/result?correlationId={id}"));
    assert_eq!(
        client().get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, body) = json_of(client().get(&url).send().await.unwrap()).await;
    assert_error(s, &body, 410, "result_gone");
}

#[tokio::test]
async fn processing_results_long_poll_then_answer_processing() {
    let server = Server::start_with(&[("HOOKFLOW_RECEIVE_WAIT_MS", "300"), NO_WORKER]).await;
    let hook = server.create_webhook("webhook.slow", &[]).await;
    add_listener(&server, "slow-pipeline", "webhook.slow").await;

    let started = Instant::now();
    let res = receive(&server, hook["uuid"].as_str().unwrap(), "").await;
    let waited = started.elapsed();
    let id = correlation_id(&res);
    let (s, body) = json_of(res).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        body,
        json!({"statusCode": 200, "status": "processing", "value": null, "pollingRedirectEnabled": false, "correlationId": id})
    );
    assert!(
        waited >= Duration::from_millis(300),
        "receive waits HOOKFLOW_RECEIVE_WAIT_MS ({waited:?})"
    );

    let started = Instant::now();
    let res = client()
        .get(server.at(&format!("/api/v3/result?correlationId={id}&maxWaitMs=400")))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    let (s, body) = json_of(res).await;
    assert_eq!((s, &body["status"]), (StatusCode::OK, &json!("processing")));
    assert!(
        waited >= Duration::from_millis(400),
        "long poll holds for maxWaitMs ({waited:?})"
    );

    let started = Instant::now();
    let res = client()
        .get(server.at(&format!("/api/v3/result?correlationId={id}&maxWaitMs=0")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "maxWaitMs=0 answers at once, not after the 10 s default wait"
    );

    let (s, body) = json_of(
        client()
            .get(server.at(&format!("/api/v3/result?correlationId={id}&maxWaitMs=soon")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &body, 400, "invalid_max_wait");
}

#[tokio::test]
async fn max_wait_is_capped_by_configuration() {
    let server = Server::start_with(&[
        ("HOOKFLOW_RECEIVE_WAIT_MS", "0"),
        ("HOOKFLOW_POLL_MAX_WAIT_MS", "300"),
        NO_WORKER,
    ])
    .await;
    let hook = server.create_webhook("webhook.capped", &[]).await;
    add_listener(&server, "p", "webhook.capped").await;
    let id = correlation_id(&receive(&server, hook["uuid"].as_str().unwrap(), "").await);
    let started = Instant::now();
    let res = client()
        .get(server.at(&format!(
            "/api/v3/result?correlationId={id}&maxWaitMs=60000"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn polling_redirect_sends_the_caller_to_the_result_and_the_result_to_itself() {
    let server = Server::start_with(&[("HOOKFLOW_RECEIVE_WAIT_MS", "0"), NO_WORKER]).await;
    let hook = server.create_webhook("webhook.redirect", &[]).await;
    add_listener(&server, "p", "webhook.redirect").await;
    let res = receive(
        &server,
        hook["uuid"].as_str().unwrap(),
        "&pollingRedirectEnabled=true",
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let id = correlation_id(&res);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!("/api/v3/result?correlationId={id}&pollingRedirectEnabled=true")
    );
    let (_, body) = json_of(res).await;
    assert_eq!(body["status"], "processing");
    assert_eq!(body["pollingRedirectEnabled"], true);

    let res = client()
        .get(server.at(&format!("{location}&maxWaitMs=50")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()["location"],
        format!("/api/v3/result?correlationId={id}&pollingRedirectEnabled=true&maxWaitMs=50")
            .as_str()
    );
    // The client may switch redirects off while polling.
    let res = client()
        .get(server.at(&format!(
            "/api/v3/result?correlationId={id}&pollingRedirectEnabled=false&maxWaitMs=0"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // A finished result is answered, not redirected, even when asked to redirect.
    let plain = server.create_webhook("webhook.plain", &[]).await;
    let res = receive(
        &server,
        plain["uuid"].as_str().unwrap(),
        "&pollingRedirectEnabled=true",
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (_, body) = json_of(res).await;
    assert_eq!(
        (&body["status"], &body["pollingRedirectEnabled"]),
        (&json!("ok"), &json!(true))
    );
}
