//! Accepted calls survive restarts and `kill -9`.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Server, client, json_of, stored_event_body};

#[tokio::test]
async fn webhooks_and_results_survive_a_restart() {
    let mut server = Server::start().await;
    let hook = server
        .create_webhook("webhook.durable", &[("description", "kept")])
        .await;
    let token = hook["uuid"].as_str().unwrap().to_owned();
    let res = client()
        .post(server.at(&format!("/api/v3/webhook.receive?token={token}")))
        .body("a")
        .send()
        .await
        .unwrap();
    let id = res.headers()["pipeforce-result-correlationid"]
        .to_str()
        .unwrap()
        .to_owned();

    server.stop().await;
    server.restart().await;

    let (s, again) = server.command("webhook.get", &[("uuid", &token)]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["eventKey"], "webhook.durable");
    assert_eq!(again["description"], "kept");
    assert_eq!(again["createdAt"], hook["createdAt"]);
    let (s, result) = json_of(
        client()
            .get(server.at(&format!("/api/v3/result?correlationId={id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(result["status"], "ok");
    let res = client()
        .post(server.at(&format!("/api/v3/webhook.receive?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the same URL keeps working");
}

#[tokio::test]
async fn every_answered_call_is_in_the_store_after_kill_9() {
    let mut server = Server::start().await;
    let hook = server.create_webhook("webhook.crash", &[]).await;
    let url = server.at(&format!(
        "/api/v3/webhook.receive?token={}",
        hook["uuid"].as_str().unwrap()
    ));
    let http = client();
    let calls = (0..64).map(|i| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let res = http
                .post(&url)
                .header("content-type", "application/json")
                .body(format!("{{\"n\":{i}}}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            (
                i,
                res.headers()["pipeforce-result-correlationid"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            )
        }
    });
    let accepted = join_all_spawned(calls).await;
    // No grace: SIGKILL right after the last 200.
    server.kill9().await;
    for (i, id) in accepted {
        let body = stored_event_body(&server, &id)
            .await
            .unwrap_or_else(|| panic!("event {i} lost"));
        let origin = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{{\"n\":{i}}}"),
        );
        assert_eq!(body["origin"], json!(origin));
    }
}

/// Runs every future on its own task, at once, and collects their outputs in order.
async fn join_all_spawned<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
