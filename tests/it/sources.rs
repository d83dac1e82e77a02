//! `allowedSources` per webhook: the caller's address is the TCP peer, and
//! `X-Forwarded-For` counts only through `HOOKFLOW_TRUSTED_PROXIES`. The test
//! client calls from 127.0.0.1.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{ADMIN, Server, add_listener, assert_error, client, json_of};

async fn receive(server: &Server, token: &str, forwarded_for: Option<&str>) -> (StatusCode, Value) {
    let mut req = client()
        .post(server.at("/api/v3/webhook.receive"))
        .header("token", token)
        .header("content-type", "application/json");
    if let Some(chain) = forwarded_for {
        req = req.header("x-forwarded-for", chain);
    }
    json_of(
        req.body(r#"{"marker":"source-test"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn pending_jobs(server: &Server) -> i64 {
    server.storage().await.pending_jobs().await
}

#[tokio::test]
async fn a_source_outside_the_allowlist_is_refused_before_the_signature() {
    let server = Server::start().await;
    // Only 10/8 may call; and every call must be signed, which this test never does.
    let verify = json!({"scheme": "github", "secret": "s3cret"}).to_string();
    let elsewhere = server
        .create_webhook(
            "webhook.sources.elsewhere",
            &[("allowedSources", "10.0.0.0/8"), ("verify", &verify)],
        )
        .await;
    assert_eq!(elsewhere["allowedSources"], json!(["10.0.0.0/8"]));
    let token = elsewhere["uuid"].as_str().unwrap();
    add_listener(&server, "sources-elsewhere", "webhook.sources.elsewhere").await;
    let before = pending_jobs(&server).await;

    // Unsigned, from the wrong address: the source answers first.
    let (status, answer) = receive(&server, token, None).await;
    assert_error(status, &answer, 403, "source_not_allowed");
    // An X-Forwarded-For naming an allowed address is not believed: no trusted proxies.
    let (status, answer) = receive(&server, token, Some("10.1.2.3")).await;
    assert_error(status, &answer, 403, "source_not_allowed");
    // With the token in the head, the source is judged before the body is
    // parsed: a broken multipart body from elsewhere is 403, not 400.
    let (status, answer) = json_of(
        client()
            .post(server.at("/api/v3/webhook.receive"))
            .header("token", token)
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body("--XyZ\r\nbroken")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &answer, 403, "source_not_allowed");
    assert_eq!(
        pending_jobs(&server).await,
        before,
        "a refused call stores nothing"
    );
    let (_, shown) = server.command("webhook.get", &[("uuid", token)]).await;
    assert_eq!(shown["verification"]["refused"], 3, "{shown}");
    assert_eq!(
        shown["verification"]["lastRefusal"]["code"], "source_not_allowed",
        "{shown}"
    );

    // Allowing loopback lets the call through to the signature check.
    let (status, changed) = server
        .command(
            "webhook.put",
            &[("uuid", token), ("allowedSources", "127.0.0.0/8, ::1")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["allowedSources"], json!(["127.0.0.0/8", "::1/128"]));
    let (status, answer) = receive(&server, token, None).await;
    assert_error(status, &answer, 401, "signature_missing");

    // Sent empty, the allowlist goes: any source again.
    let (status, changed) = server
        .command(
            "webhook.put",
            &[("uuid", token), ("allowedSources", ""), ("verify", "")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert!(changed.get("allowedSources").is_none(), "{changed}");
    let (status, answer) = receive(&server, token, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn allowed_sources_are_validated_and_take_a_json_list() {
    let server = &Server::start().await;
    let put = |body: Value| async move {
        json_of(
            client()
                .post(server.at("/api/v3/command/webhook.put"))
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    for bad in [
        json!(["10.0.0.0/33"]),
        json!(["partner.example"]),
        json!("nonsense"),
    ] {
        let (status, answer) =
            put(json!({"eventKey": "webhook.sources.bad", "allowedSources": bad})).await;
        assert_error(status, &answer, 400, "invalid_allowed_sources");
    }
    let (status, created) = put(json!({
        "eventKey": "webhook.sources.list",
        "allowedSources": ["127.0.0.1", "192.30.252.0/22"]
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(
        created["allowedSources"],
        json!(["127.0.0.1/32", "192.30.252.0/22"])
    );
    let token = created["uuid"].as_str().unwrap();
    let (status, answer) = receive(server, token, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // A webhook that can refuse calls shows its refusal counter.
    let (_, shown) = server.command("webhook.get", &[("uuid", token)]).await;
    assert_eq!(
        shown["verification"],
        json!({"refused": 0, "lastRefusal": null}),
        "{shown}"
    );
}

#[tokio::test]
async fn forwarded_for_counts_only_through_trusted_proxies() {
    // The test client stands in for a proxy on loopback.
    let server = Server::start_with(&[("HOOKFLOW_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let created = server
        .create_webhook(
            "webhook.sources.proxied",
            &[("allowedSources", "203.0.113.0/24")],
        )
        .await;
    let token = created["uuid"].as_str().unwrap();
    for (chain, expected) in [
        // Through the proxy from an allowed caller.
        (Some("203.0.113.7"), 200),
        // The proxy itself, with no one behind it, is not allowed.
        (None, 403),
        // The caller wrote 203.0.113.7 itself; the proxy appended the real address.
        (Some("203.0.113.7, 198.51.100.1"), 403),
        // Two trusted hops are walked past.
        (Some("203.0.113.9, 127.0.0.1"), 200),
        // A malformed hop ends what can be believed: the proxy stands, and is refused.
        (Some("203.0.113.7, not-an-address"), 403),
    ] {
        let (status, answer) = receive(&server, token, chain).await;
        assert_eq!(status.as_u16(), expected, "{chain:?}: {answer}");
    }
}
