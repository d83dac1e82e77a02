//! Token rotation (`webhook.rotate`) over HTTP, on both backends: the new
//! token works at once, the old one until its grace ends, and the webhook
//! keeps everything else.

use std::time::Duration;

use hookflow_core::domain::Timestamp;
use hookflow_core::webhooks::rotation::MAX_ROTATION_GRACE_SECONDS;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{ADMIN, Server, assert_error, client, json_of, stored_event_body};

const UPPER: &str = "pipeline:
  - event.listen:
      eventKey: webhook.rotate.kept
  - body.set:
      value: ${@text.upperCase(@convert.fromBase64(body.origin))}
";

fn uuid_of(webhook: &Value) -> String {
    webhook["uuid"].as_str().expect("uuid").to_owned()
}

async fn rotate(server: &Server, params: &[(&str, &str)]) -> (StatusCode, Value) {
    server.command("webhook.rotate", params).await
}

/// Rotates `token` with `grace_seconds` and answers the new token; the answer
/// must be the rotated webhook.
async fn rotated(server: &Server, token: &str, grace_seconds: &str) -> (String, Value) {
    let (status, answer) =
        rotate(server, &[("uuid", token), ("graceSeconds", grace_seconds)]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    (uuid_of(&answer), answer)
}

/// The status of a receive through `token`.
async fn receive_status(server: &Server, token: &str) -> (StatusCode, Value) {
    let (status, _, answer) = server.trigger(token, "{\"n\":1}", "").await;
    (status, answer)
}

#[tokio::test]
async fn both_tokens_reach_the_same_webhook_during_the_grace() {
    let server = Server::start().await;
    let created = server.create_webhook("webhook.rotate.kept", &[]).await;
    let old = uuid_of(&created);
    let (status, stored) = server.put_pipeline("upper", UPPER).await;
    assert_eq!(status, StatusCode::OK, "{stored}");

    let before = Timestamp::now();
    let (new, answer) = rotated(&server, &old, "86400").await;
    assert_ne!(new, old);
    assert_eq!(
        answer["webhookUrl"].as_str().unwrap(),
        created["webhookUrl"].as_str().unwrap().replace(&old, &new)
    );
    for kept in [
        "eventKey",
        "createdAt",
        "enabled",
        "payloadType",
        "description",
    ] {
        assert_eq!(answer[kept], created[kept], "{kept} is kept");
    }
    // RFC 3339 text of one fixed width, so the text order is the time order.
    let ends = answer["previousTokenExpiresAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        ends.as_str() >= before.plus_seconds(86_400).to_rfc3339().as_str()
            && ends.as_str() <= Timestamp::now().plus_seconds(86_400).to_rfc3339().as_str(),
        "{ends}"
    );

    // The pipeline runs for calls through either token.
    for token in [&new, &old] {
        let (status, id, result) = server.trigger(token, "hello", "").await;
        assert_eq!(status, StatusCode::OK, "{result}");
        assert_eq!(result["value"], "HELLO", "{result}");
        let event = stored_event_body(&server, &id).await.expect("stored");
        assert_eq!(event["eventKey"], "webhook.rotate.kept");
    }

    // Shown with its grace, never with the previous token; by either token.
    for token in [&new, &old] {
        let (status, shown) = server.command("webhook.get", &[("uuid", token)]).await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(shown, answer);
        assert!(!shown.to_string().contains(old.as_str()), "{shown}");
    }
    let (_, all) = server.command("webhook.get", &[]).await;
    assert_eq!(all, json!([answer]), "listed once");
    assert!(!all.to_string().contains(old.as_str()));
}

#[tokio::test]
async fn after_the_grace_the_old_token_is_unknown() {
    let server = Server::start().await;
    let old = uuid_of(&server.create_webhook("webhook.rotate.ends", &[]).await);
    let (new, answer) = rotated(&server, &old, "3").await;
    let (status, shown) = receive_status(&server, &old).await;
    assert_eq!(status, StatusCode::OK, "during the grace: {shown}");

    // The lookup cache holds the webhook under the old token by now; it must
    // not outlive the grace.
    let ends = answer["previousTokenExpiresAt"]
        .as_str()
        .unwrap()
        .to_owned();
    while Timestamp::now().to_rfc3339() < ends {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = receive_status(&server, &old).await;
    assert_error(status, &body, 404, "webhook_not_found");
    let (status, _) = receive_status(&server, &new).await;
    assert_eq!(status, StatusCode::OK);

    let (_, shown) = server.command("webhook.get", &[("uuid", &new)]).await;
    assert!(shown.get("previousTokenExpiresAt").is_none(), "{shown}");
    let (status, body) = server.command("webhook.get", &[("uuid", &old)]).await;
    assert_error(status, &body, 404, "webhook_not_found");

    // A grace of 0 ends the old token with the rotation.
    let (newest, answer) = rotated(&server, &new, "0").await;
    assert!(answer["previousTokenExpiresAt"].is_string(), "{answer}");
    let (status, body) = receive_status(&server, &new).await;
    assert_error(status, &body, 404, "webhook_not_found");
    let (status, _) = receive_status(&server, &newest).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn rotating_again_ends_the_first_token_at_once() {
    let server = Server::start().await;
    let first = uuid_of(&server.create_webhook("webhook.rotate.twice", &[]).await);
    let (second, _) = rotated(&server, &first, "86400").await;
    let (status, _) = receive_status(&server, &first).await;
    assert_eq!(status, StatusCode::OK, "the first token during its grace");

    let (third, _) = rotated(&server, &second, "86400").await;
    let (status, body) = receive_status(&server, &first).await;
    assert_error(status, &body, 404, "webhook_not_found");
    for token in [&second, &third] {
        let (status, body) = receive_status(&server, token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // During a grace the previous token names the webhook in commands too.
    let (status, deleted) = server.command("webhook.delete", &[("uuid", &second)]).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["uuid"], third.as_str());
    for token in [&second, &third] {
        let (status, body) = receive_status(&server, token).await;
        assert_error(status, &body, 404, "webhook_not_found");
    }
}

#[tokio::test]
async fn a_disabled_webhook_is_rotated_and_stays_disabled() {
    let server = Server::start().await;
    let old = uuid_of(
        &server
            .create_webhook("webhook.rotate.off", &[("enabled", "false")])
            .await,
    );
    let (new, answer) = rotated(&server, &old, "60").await;
    assert_eq!(answer["enabled"], false);
    for token in [&old, &new] {
        let (status, body) = receive_status(&server, token).await;
        assert_error(status, &body, 404, "webhook_not_found");
    }
    let (status, shown) = server
        .command("webhook.put", &[("uuid", &new), ("enabled", "true")])
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    for token in [&old, &new] {
        let (status, body) = receive_status(&server, token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn grace_seconds_is_bounded_and_bad_input_is_refused() {
    let server = Server::start().await;
    let token = uuid_of(&server.create_webhook("webhook.rotate.bounds", &[]).await);

    let too_long = (MAX_ROTATION_GRACE_SECONDS + 1).to_string();
    for bad in [too_long.as_str(), "-1", "1.5", "a day"] {
        let (status, body) = rotate(&server, &[("uuid", &token), ("graceSeconds", bad)]).await;
        assert_error(status, &body, 400, "invalid_grace_seconds");
    }
    let (status, body) = receive_status(&server, &token).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a refused rotation changed nothing: {body}"
    );

    let before = Timestamp::now();
    let longest = MAX_ROTATION_GRACE_SECONDS.to_string();
    let (new, answer) = rotated(&server, &token, &longest).await;
    let ends = answer["previousTokenExpiresAt"].as_str().unwrap();
    assert!(
        ends >= before
            .plus_seconds(u64::from(MAX_ROTATION_GRACE_SECONDS))
            .to_rfc3339()
            .as_str(),
        "{ends}"
    );

    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, body) = rotate(&server, &[("uuid", &unknown)]).await;
    assert_error(status, &body, 404, "webhook_not_found");
    let (status, body) = rotate(&server, &[]).await;
    assert_error(status, &body, 400, "uuid_missing");
    let (status, body) = rotate(&server, &[("uuid", "not-a-uuid")]).await;
    assert_error(status, &body, 400, "invalid_uuid");

    // Like every command, it needs the admin token.
    let url = server.at(&format!("/api/v3/command/webhook.rotate?uuid={new}"));
    for wrong in [None, Some("x"), Some(&ADMIN[..ADMIN.len() - 1])] {
        let mut req = client().post(&url);
        if let Some(wrong) = wrong {
            req = req.bearer_auth(wrong);
        }
        let (status, body) = json_of(req.send().await.unwrap()).await;
        assert_error(status, &body, 401, "unauthorized");
    }
    let (status, body) = receive_status(&server, &new).await;
    assert_eq!(status, StatusCode::OK, "still the current token: {body}");
}
