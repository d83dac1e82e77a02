//! Deeply nested JSON: what is accepted can always be stored, read back, run
//! and answered. One nesting bound (`MAX_JSON_DEPTH`, 64) holds everywhere.

use reqwest::StatusCode;
use serde_json::{Value, json};

use hookflow_core::testkit::endpoint::Reply;

use crate::harness::{ADMIN, Server, assert_error, client, json_of, stored_event_body};
use crate::outgoing::{ALLOW, OutgoingFixture, send};

/// The bound of `hookflow_core::limits::MAX_JSON_DEPTH`.
const BOUND: usize = 64;

/// `[[[…1…]]]` nested `levels` deep.
fn nested(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

/// Receives `body` as JSON on `token`.
async fn receive_json(server: &Server, token: &str, body: String) -> (StatusCode, String, Value) {
    server.trigger(token, &body, "").await
}

#[tokio::test]
async fn a_raw_json_body_is_kept_as_json_up_to_the_bound_and_as_text_beyond() {
    let server = Server::start().await;
    let hook = server
        .create_webhook("webhook.deep.bound", &[("payloadType", "raw")])
        .await;
    let token = hook["uuid"].as_str().unwrap();

    let (status, id, _) = receive_json(&server, token, nested(BOUND)).await;
    assert_eq!(status, StatusCode::OK);
    let event = stored_event_body(&server, &id).await.expect("stored");
    assert!(event["origin"].is_array(), "at the bound: parsed JSON");

    let (status, id, _) = receive_json(&server, token, nested(BOUND + 1)).await;
    assert_eq!(status, StatusCode::OK);
    let event = stored_event_body(&server, &id).await.expect("stored");
    assert_eq!(event["origin"], Value::String(nested(BOUND + 1)));
}

#[tokio::test]
async fn deep_bodies_with_a_listener_are_accepted_once_run_and_answered() {
    let server = Server::start().await;
    let raw = server
        .create_webhook("webhook.deep.raw", &[("payloadType", "raw")])
        .await;
    let base64 = server.create_webhook("webhook.deep.base64", &[]).await;
    // The seed's shape: the pipeline wraps the payload two levels deeper.
    for key in ["webhook.deep.raw", "webhook.deep.base64"] {
        let name = key.replace('.', "-");
        let yaml = format!(
            "pipeline:\n  - event.listen:\n      eventKey: {key}\n  - body.set:\n      value:\n        wrapped:\n          inner: ${{body.payload.origin}}\n"
        );
        let (status, body) = server.put_pipeline(&name, &yaml).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for hook in [&raw, &base64] {
        let token = hook["uuid"].as_str().unwrap();
        for levels in [125, 127, 200] {
            let (status, id, answer) = receive_json(&server, token, nested(levels)).await;
            assert_eq!(status, StatusCode::OK, "{levels} levels: {answer}");
            let result = if answer["status"] == "processing" {
                server.final_result(&id).await
            } else {
                answer
            };
            assert_eq!(result["status"], "ok", "{levels} levels: {result}");
            assert!(
                result["value"]["wrapped"]["inner"].is_string(),
                "{levels} levels: the deep body travels as text: {result}"
            );
            // Polling answers too (never 503), and says the same.
            let (status, polled) = json_of(
                client()
                    .get(server.at(&format!("/api/v3/result?correlationId={id}")))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{polled}");
            assert_eq!(polled["value"], result["value"]);
        }
    }
}

#[tokio::test]
async fn management_json_deeper_than_the_bound_is_refused() {
    let server = Server::start().await;
    let schema = format!(
        "{}{{}}{}",
        r#"{"items":"#.repeat(BOUND + 1),
        "}".repeat(BOUND + 1)
    );
    let registration = format!(
        r#"{{"id":"deep","url":"https://example.com/hook","method":"POST","schema":{schema}}}"#
    );
    let (status, body) = json_of(
        client()
            .post(server.at("/api/v3/command/outgoing.put"))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(registration)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "invalid_json");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("64"),
        "{body}"
    );
}

#[tokio::test]
async fn an_endpoint_answer_deeper_than_the_bound_is_kept_as_text() {
    let deep = nested(BOUND + 40);
    // The fixture checks that the registration is created (201).
    // Bound to a name, so the endpoint lives to the end of the test.
    let OutgoingFixture {
        server,
        endpoint: _endpoint,
        ..
    } = OutgoingFixture::options()
        .server_env(&[ALLOW])
        .answering(
            Reply::status(200)
                .header("content-type", "application/json")
                .body(deep.clone().into_bytes()),
        )
        .start(|endpoint| {
            json!({
                "id": "deep-answer",
                "url": format!("http://127.0.0.1:{}/hook", endpoint.port),
                "method": "POST",
            })
        })
        .await;
    let (status, answer) = send(&server, &json!({"webhookId": "deep-answer"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["data"], Value::String(deep.clone()));
    // The record holding it reads back.
    let (status, record) = server
        .command(
            "invocation.get",
            &[("referenceId", answer["referenceId"].as_str().unwrap())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["data"], Value::String(deep));
}
