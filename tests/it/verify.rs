//! Signature verification per webhook (`webhook.put` `verify`): each scheme
//! checked against the provider's own code or documented vectors, over HTTP,
//! on both backends.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{
    ADMIN, Backend, Server, add_listener, assert_error, backend, client, json_of, stored_event_ids,
    venv_python,
};

const RECEIVE: &str = "/api/v3/webhook.receive";

/// Creates a webhook with `verify` (sent as a JSON object in a JSON body) and
/// returns its token.
async fn webhook_verifying(server: &Server, event_key: &str, verify: Value) -> String {
    let (status, answer) = json_of(
        client()
            .post(server.at("/api/v3/command/webhook.put"))
            .bearer_auth(ADMIN)
            .json(&json!({"eventKey": event_key, "verify": verify}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["uuid"].as_str().unwrap().to_owned()
}

/// POSTs `body` to the webhook with `headers`.
async fn receive(
    server: &Server,
    token: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Value) {
    let mut req = client()
        .post(server.at(RECEIVE))
        .header("token", token)
        .header("content-type", "application/json");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    json_of(req.body(body.to_owned()).send().await.unwrap()).await
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Headers the `standardwebhooks` package signs `body` with (tests/sign_webhook.py).
fn standard_webhooks_headers(
    python: &std::path::Path,
    secret: &str,
    timestamp: i64,
    body: &str,
) -> Vec<(String, String)> {
    signed_by_reference(
        python,
        json!({"secret": secret, "id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "timestamp": timestamp, "body": body}),
    )
}

/// The headers tests/sign_webhook.py answers for `input`: the sender's own
/// library signs (the secret goes over stdin, never on a command line).
fn signed_by_reference(python: &std::path::Path, input: Value) -> Vec<(String, String)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sign_webhook.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the signer");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the signer failed");
    let headers: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    headers
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
        .collect()
}

fn pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Events stored so far: a refused call must add none. The embedded backend
/// counts its events table; both count the queued jobs (the webhook has a listener).
async fn stored(server: &Server) -> (usize, i64) {
    let events = match backend() {
        Backend::Embedded => stored_event_ids(&server.database()).len(),
        Backend::Aws => 0,
    };
    (events, server.storage().await.pending_jobs().await)
}

#[tokio::test]
async fn standard_webhooks_signed_by_the_reference_package_with_rotation() {
    let Some(python) = venv_python() else {
        return;
    };
    let server = Server::start_logged(&[]).await;
    let old = hookflow_core::outgoing::signing::generate_secret();
    let new = hookflow_core::outgoing::signing::generate_secret();
    let token = webhook_verifying(
        &server,
        "webhook.signed.sw",
        json!({"scheme": "standard-webhooks", "secrets": [old, new]}),
    )
    .await;
    add_listener(&server, "signed-sw", "webhook.signed.sw").await;
    let body = r#"{"type":"invoice.paid","amount":4200}"#;

    // Rotation: a call signed with either secret is accepted.
    for secret in [&old, &new] {
        let headers = standard_webhooks_headers(&python, secret, now_seconds(), body);
        let (status, answer) = receive(&server, &token, &pairs(&headers), body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let before = stored(&server).await;

    let signed = standard_webhooks_headers(&python, &new, now_seconds(), body);
    let tampered = body.replace("4200", "4200,\"note\":\"refused-body-marker\"");
    let (status, answer) = receive(&server, &token, &pairs(&signed), &tampered).await;
    assert_error(status, &answer, 401, "signature_invalid");

    let (status, answer) = receive(&server, &token, &[], body).await;
    assert_error(status, &answer, 401, "signature_missing");
    let without_signature: Vec<(&str, &str)> = pairs(&signed)
        .into_iter()
        .filter(|(k, _)| *k != "webhook-signature")
        .collect();
    let (status, answer) = receive(&server, &token, &without_signature, body).await;
    assert_error(status, &answer, 401, "signature_missing");

    // Signed correctly, but 301 s old: one second past the default tolerance.
    let old_call = standard_webhooks_headers(&python, &new, now_seconds() - 301, body);
    let (status, answer) = receive(&server, &token, &pairs(&old_call), body).await;
    assert_error(status, &answer, 401, "timestamp_out_of_tolerance");
    // A future one comes closer while it travels: 30 s of slack for a loaded machine
    // (the exact bound is unit-tested in inbound::verify).
    let future_call = standard_webhooks_headers(&python, &new, now_seconds() + 330, body);
    let (status, answer) = receive(&server, &token, &pairs(&future_call), body).await;
    assert_error(status, &answer, 401, "timestamp_out_of_tolerance");

    assert_eq!(
        stored(&server).await,
        before,
        "a refused call stores nothing"
    );

    // The secrets are in no answer and not in the log; refused bodies not in the log.
    let (_, shown) = server
        .command("webhook.get", &[("uuid", token.as_str())])
        .await;
    assert_eq!(
        shown["verify"]["secrets"],
        json!(["********", "********"]),
        "{shown}"
    );
    // Five refusals counted, the last one's reason kept.
    assert_eq!(shown["verification"]["refused"], 5, "{shown}");
    assert_eq!(
        shown["verification"]["lastRefusal"]["code"], "timestamp_out_of_tolerance",
        "{shown}"
    );
    assert!(
        shown["verification"]["lastRefusal"]["at"].is_string(),
        "{shown}"
    );
    let log = server.log_text();
    for secret in [&old, &new] {
        assert!(!shown.to_string().contains(secret.as_str()));
        assert!(!log.contains(secret.as_str()), "a secret in the log");
    }
    assert!(
        !log.contains("refused-body-marker"),
        "a refused body in the log"
    );
}

#[tokio::test]
async fn github_documented_example_over_http() {
    let server = Server::start().await;
    let token = webhook_verifying(
        &server,
        "webhook.signed.github",
        json!({"scheme": "github", "secret": "It's a Secret to Everybody"}),
    )
    .await;
    let signature = (
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    );
    let (_, shown) = server
        .command("webhook.get", &[("uuid", token.as_str())])
        .await;
    assert_eq!(
        shown["verification"],
        json!({"refused": 0, "lastRefusal": null}),
        "{shown}"
    );
    let (status, answer) = receive(&server, &token, &[signature], "Hello, World!").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = receive(&server, &token, &[signature], "Hello, World?").await;
    assert_error(status, &answer, 401, "signature_invalid");
}

/// The `stripe` package's own signing helper
/// (`WebhookSignature.generate_signature_header`) makes a header that
/// verifies; the same header over a tampered body, or too old, does not.
#[tokio::test]
async fn stripe_signed_by_the_stripe_package() {
    let Some(python) = venv_python() else {
        return;
    };
    let server = Server::start().await;
    let secret = hookflow_core::outgoing::signing::generate_secret();
    let token = webhook_verifying(
        &server,
        "webhook.signed.stripe.package",
        json!({"scheme": "stripe", "secret": secret}),
    )
    .await;
    let body =
        r#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"charge.succeeded"}"#;
    let sign = |timestamp: i64| {
        signed_by_reference(
            &python,
            json!({"scheme": "stripe", "secret": secret, "timestamp": timestamp, "body": body}),
        )
    };
    let signed = sign(now_seconds());
    let (status, answer) = receive(&server, &token, &pairs(&signed), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let tampered = body.replace("charge.succeeded", "charge.refunded");
    let (status, answer) = receive(&server, &token, &pairs(&signed), &tampered).await;
    assert_error(status, &answer, 401, "signature_invalid");
    let stale = sign(now_seconds() - 301);
    let (status, answer) = receive(&server, &token, &pairs(&stale), body).await;
    assert_error(status, &answer, 401, "timestamp_out_of_tolerance");
}

/// Stripe's scheme, signed here with the hmac crate (not hookflow's code):
/// `t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<body>">`; Shopify's likewise.
#[tokio::test]
async fn stripe_and_shopify_signed_by_a_separate_implementation() {
    let server = Server::start().await;
    let stripe_secret = "whsec_stripe_test_secret";
    let stripe = webhook_verifying(
        &server,
        "webhook.signed.stripe",
        json!({"scheme": "stripe", "secret": stripe_secret}),
    )
    .await;
    let body = r#"{"id":"evt_1","type":"charge.succeeded"}"#;
    let t = now_seconds().to_string();
    let v1 = hex(&hmac_sha256(
        stripe_secret.as_bytes(),
        &[t.as_bytes(), b".", body.as_bytes()],
    ));
    let header = format!("t={t},v1={v1}");
    let (status, answer) = receive(&server, &stripe, &[("Stripe-Signature", &header)], body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = receive(
        &server,
        &stripe,
        &[("Stripe-Signature", &header)],
        r#"{"id":"evt_2"}"#,
    )
    .await;
    assert_error(status, &answer, 401, "signature_invalid");

    let shopify_secret = "shpss_test_secret";
    let shopify = webhook_verifying(
        &server,
        "webhook.signed.shopify",
        json!({"scheme": "shopify", "secret": shopify_secret}),
    )
    .await;
    let sent = BASE64.encode(hmac_sha256(shopify_secret.as_bytes(), &[body.as_bytes()]));
    let (status, answer) =
        receive(&server, &shopify, &[("X-Shopify-Hmac-Sha256", &sent)], body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) =
        receive(&server, &shopify, &[("X-Shopify-Hmac-Sha256", &sent)], "{}").await;
    assert_error(status, &answer, 401, "signature_invalid");
}

#[tokio::test]
async fn verify_is_validated_masked_and_removable() {
    let server = Server::start().await;
    let http = client();
    let url = server.at("/api/v3/command/webhook.put");
    for bad in [
        json!({"scheme": "gitlab", "secret": "x"}),
        json!({"scheme": "github"}),
        json!({"scheme": "github", "secrets": ["1", "2", "3", "4", "5", "6"]}),
        json!("github"),
    ] {
        let (status, answer) = json_of(
            http.post(&url)
                .bearer_auth(ADMIN)
                .json(&json!({"eventKey": "webhook.bad.verify", "verify": bad}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(status, &answer, 400, "invalid_verify");
    }
    // A form (or query) caller sends the object as JSON text.
    let secret = "form-secret-value";
    let verify =
        json!({"scheme": "hmac", "secret": secret, "header": "X-Signature", "prefix": "sha256="});
    let created = server
        .create_webhook("webhook.form.verify", &[("verify", &verify.to_string())])
        .await;
    assert_eq!(
        created["verify"],
        json!({"scheme": "hmac", "header": "x-signature", "algorithm": "sha256", "encoding": "hex",
               "prefix": "sha256=", "secrets": ["********"], "toleranceSeconds": 300})
    );
    assert!(!created.to_string().contains(secret));
    let token = created["uuid"].as_str().unwrap();
    let (status, answer) = receive(&server, token, &[], "{}").await;
    assert_error(status, &answer, 401, "signature_missing");
    let signature = format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), &[b"{}"])));
    let (status, answer) = receive(&server, token, &[("X-Signature", &signature)], "{}").await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // An empty verify removes the check.
    let (status, changed) = server
        .command("webhook.put", &[("uuid", token), ("verify", "")])
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert!(changed.get("verify").is_none(), "{changed}");
    let (status, answer) = receive(&server, token, &[], "{}").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}
