//! `Gateway::admit` judges a request on its head; `Gateway::handle` answers the
//! same whether admit ran before (`serve`) or not (the Lambda path), and the
//! receive path reads the webhook store once either way.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use hookflow_core::config::AdminToken;
use hookflow_core::domain::rotation::Rotation;
use hookflow_core::domain::verify::Refusals;
use hookflow_core::domain::{Timestamp, Token, Webhook};
use hookflow_core::ports::Ports;
use hookflow_core::ports::{StoreResult, WebhookStore};
use hookflow_core::wiring;
use hookflow_core::{Gateway, Settings};
use http::{Request, Response};

const ADMIN: &str = "test-admin-token-0123456789";

/// Counts `get_by_token`, the receive path's webhook read, and the refusal
/// counter's writes.
struct CountingWebhooks {
    inner: Arc<dyn WebhookStore>,
    reads: AtomicUsize,
    refusal_writes: AtomicUsize,
}

#[async_trait]
impl WebhookStore for CountingWebhooks {
    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        self.inner.insert_webhook(webhook).await
    }
    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        self.inner.update_webhook(webhook).await
    }
    async fn get_by_token(&self, token: &Token) -> StoreResult<Option<Webhook>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_by_token(token).await
    }
    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.inner.list_webhooks().await
    }
    async fn delete_webhook(&self, token: &Token) -> StoreResult<bool> {
        self.inner.delete_webhook(token).await
    }
    async fn rotate_token(&self, current: &Token, rotation: &Rotation) -> StoreResult<Webhook> {
        self.inner.rotate_token(current, rotation).await
    }
    async fn record_refusal(&self, token: &Token, code: &str, at: Timestamp) -> StoreResult<()> {
        self.refusal_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.record_refusal(token, code, at).await
    }
    async fn refusals(&self, token: &Token) -> StoreResult<Option<Refusals>> {
        self.inner.refusals(token).await
    }
}

fn gateway() -> (Gateway, Arc<CountingWebhooks>) {
    let mut ports = Ports::memory();
    let webhooks = Arc::new(CountingWebhooks {
        inner: ports.webhooks.clone(),
        reads: AtomicUsize::new(0),
        refusal_writes: AtomicUsize::new(0),
    });
    ports.webhooks = webhooks.clone();
    let settings = Settings {
        admin_token: Some(AdminToken::new(ADMIN).unwrap()),
        ..Settings::default()
    };
    (wiring::gateway(ports, settings), webhooks)
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Bytes> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Bytes::from(body.to_owned())).unwrap()
}

/// The answer with `admit` run first on the head, as `serve` does.
async fn admitted_then_handled(gateway: &Gateway, req: Request<Bytes>) -> Response<Bytes> {
    let (mut parts, body) = req.into_parts();
    match gateway.admit(&mut parts).await {
        Ok(_) => gateway.handle(Request::from_parts(parts, body)).await,
        Err(answer) => answer,
    }
}

/// What a test compares: status, headers other than the per-call correlation id, body.
fn comparable(res: &Response<Bytes>) -> (u16, Vec<(String, String)>, String) {
    let headers = res
        .headers()
        .iter()
        // Ids that differ per call.
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "pipeforce-result-correlationid" | "x-request-id"
            )
        })
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let body = String::from_utf8(res.body().to_vec()).unwrap();
    // The correlation id differs per call; everything else must not.
    let body = match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(mut json) if json.get("correlationId").is_some() => {
            json["correlationId"] = serde_json::Value::Null;
            json.to_string()
        }
        _ => body,
    };
    (res.status().as_u16(), headers, body)
}

#[tokio::test]
async fn both_ways_give_the_same_answers_and_one_webhook_read() {
    let (gateway, webhooks) = gateway();
    let created = gateway
        .handle(request(
            "POST",
            "/api/v3/command/webhook.put",
            &[
                ("authorization", &format!("Bearer {ADMIN}")),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "eventKey=webhook.admit&maxPayloadLength=10",
        ))
        .await;
    assert_eq!(created.status(), 200);
    let hook: serde_json::Value = serde_json::from_slice(created.body()).unwrap();
    let token = hook["uuid"].as_str().unwrap().to_owned();
    let unknown = uuid::Uuid::new_v4().to_string();
    // Method, path, headers, body.
    type Case<'a> = (&'a str, String, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "POST",
            format!("/api/v3/webhook.receive?token={token}"),
            vec![],
            "{}",
        ),
        (
            "POST",
            "/api/v3/webhook.receive".into(),
            vec![("token", token.clone())],
            "{}",
        ),
        (
            "POST",
            "/api/v3/webhook.receive".into(),
            vec![("content-type", "application/x-www-form-urlencoded".into())],
            "token=",
        ),
        (
            "POST",
            format!("/api/v3/webhook.receive?token={unknown}"),
            vec![],
            "{}",
        ),
        ("POST", "/api/v3/webhook.receive".into(), vec![], "{}"),
        (
            "POST",
            format!("/api/v3/webhook.receive?token={token}"),
            vec![],
            "more than ten bytes",
        ),
        (
            "POST",
            format!("/api/v3/webhook.receive?token={token}"),
            vec![("content-length", "11".into())],
            "eleven byte",
        ),
        ("PUT", "/api/v3/result".into(), vec![], ""),
        ("CONNECT", "/api/v3/webhook.receive".into(), vec![], ""),
        ("POST", "/api/v3/command/webhook.get".into(), vec![], ""),
        ("GET", "/nowhere".into(), vec![], ""),
        (
            "GET",
            format!("/api/v3/result?correlationId={}", "x".repeat(9000)),
            vec![],
            "",
        ),
    ];
    for (method, uri, headers, body) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let body = if body == "token=" {
            format!("token={token}")
        } else {
            body.to_owned()
        };
        let before = webhooks.reads.load(Ordering::SeqCst);
        let lambda = gateway.handle(request(method, &uri, &headers, &body)).await;
        let lambda_reads = webhooks.reads.load(Ordering::SeqCst) - before;
        let before = webhooks.reads.load(Ordering::SeqCst);
        let serve = admitted_then_handled(&gateway, request(method, &uri, &headers, &body)).await;
        let serve_reads = webhooks.reads.load(Ordering::SeqCst) - before;
        assert_eq!(comparable(&lambda), comparable(&serve), "{method} {uri}");
        assert!(
            lambda_reads <= 1,
            "{method} {uri}: {lambda_reads} webhook reads"
        );
        assert_eq!(lambda_reads, serve_reads, "{method} {uri}");
    }
}

#[tokio::test]
async fn the_head_alone_decides_refusals() {
    let (gateway, _) = gateway();
    for (method, uri, headers, status, code) in [
        ("CONNECT", "/", vec![], 405, "method_not_allowed"),
        ("TRACE", "/api/v3/result", vec![], 405, "method_not_allowed"),
        (
            "POST",
            "/api/v3/command/webhook.put",
            vec![],
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/api/v3/command/webhook.put",
            vec![("content-length", "99999999")],
            413,
            "payload_too_large",
        ),
        (
            "GET",
            "/api/v3/webhook.receive",
            vec![],
            401,
            "token_missing",
        ),
    ] {
        let (mut parts, ()) = request(method, uri, &headers, "").map(|_| ()).into_parts();
        let Err(refused) = gateway.admit(&mut parts).await else {
            panic!("{method} {uri} must be refused on its head");
        };
        assert_eq!(refused.status().as_u16(), status, "{method} {uri}");
        let body: serde_json::Value = serde_json::from_slice(refused.body()).unwrap();
        assert_eq!(body["error"]["code"], code, "{method} {uri}");
    }
    // A form body may carry the token: admitted, to be looked for once the body is read.
    let (mut parts, ()) = request(
        "POST",
        "/api/v3/webhook.receive",
        &[("content-type", "multipart/form-data; boundary=x")],
        "",
    )
    .map(|_| ())
    .into_parts();
    let Ok(admission) = gateway.admit(&mut parts).await else {
        panic!("a form body may carry the token");
    };
    assert_eq!(admission.body_limit(), Settings::default().max_body_bytes);
}

/// A verified call costs the same one webhook read as any other and writes
/// nothing for the refusal counter; only a refused call writes it.
#[tokio::test]
async fn only_a_refused_signature_writes_the_refusal_counter() {
    let (gateway, webhooks) = gateway();
    let created = gateway
        .handle(request(
            "POST",
            "/api/v3/command/webhook.put",
            &[
                ("authorization", &format!("Bearer {ADMIN}")),
                ("content-type", "application/json"),
            ],
            r#"{"eventKey":"webhook.verified","verify":{"scheme":"github","secret":"It's a Secret to Everybody"}}"#,
        ))
        .await;
    assert_eq!(created.status(), 200);
    let hook: serde_json::Value = serde_json::from_slice(created.body()).unwrap();
    let token = hook["uuid"].as_str().unwrap().to_owned();
    let signature = (
        "x-hub-signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    );
    let reads_before = webhooks.reads.load(Ordering::SeqCst);
    let accepted = admitted_then_handled(
        &gateway,
        request(
            "POST",
            "/api/v3/webhook.receive",
            &[("token", &token), signature],
            "Hello, World!",
        ),
    )
    .await;
    assert_eq!(accepted.status(), 200);
    assert_eq!(webhooks.reads.load(Ordering::SeqCst) - reads_before, 1);
    assert_eq!(webhooks.refusal_writes.load(Ordering::SeqCst), 0);

    let refused = admitted_then_handled(
        &gateway,
        request(
            "POST",
            "/api/v3/webhook.receive",
            &[("token", &token), signature],
            "Hello, World?",
        ),
    )
    .await;
    assert_eq!(refused.status(), 401);
    assert_eq!(webhooks.refusal_writes.load(Ordering::SeqCst), 1);
}
