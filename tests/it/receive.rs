//! webhook.receive: token sources, body kinds, the stored event, the answer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::harness::{Server, assert_error, client, json_of, stored_event_body};

/// Checks the 200 answer of a receive with no listener; returns the correlation id.
async fn accepted(res: reqwest::Response) -> String {
    let header = res
        .headers()
        .get("pipeforce-result-correlationid")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(res.headers()["content-type"], "application/json");
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = header.expect("pipeforce-result-correlationid header");
    assert_eq!(
        body,
        json!({"statusCode": 200, "status": "ok", "value": null, "pollingRedirectEnabled": false, "correlationId": id})
    );
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "statusCode",
            "status",
            "value",
            "pollingRedirectEnabled",
            "correlationId"
        ]
    );
    id
}

async fn setup(extra: &[(&str, &str)]) -> (Server, String) {
    let server = Server::start().await;
    let hook = server.create_webhook("webhook.lead.created", extra).await;
    let token = hook["uuid"].as_str().unwrap().to_owned();
    (server, token)
}

#[tokio::test]
async fn json_post_with_token_in_query_becomes_the_documented_event() {
    let (server, token) = setup(&[]).await;
    let payload = r#"{"name":"Ada","company":"Analytical Engines"}"#;
    let res = client()
        .post(server.at(&format!(
            "/api/v3/command/webhook.receive?token={token}&source=crm&tag=a&tag=b"
        )))
        .header("content-type", "application/json")
        .header("x-request-id", "r-1")
        .header("cookie", "session=secret")
        .header("authorization", "Bearer secret")
        .body(payload)
        .send()
        .await
        .unwrap();
    let id = accepted(res).await;
    let body = stored_event_body(&server, &id).await.expect("event stored");
    let origin = B64.encode(payload);
    let received_at = body["receivedAt"].as_str().unwrap().to_owned();
    let headers = &body["payload"]["headers"];
    assert_eq!(headers["x-request-id"], "r-1");
    assert_eq!(headers["content-type"], "application/json");
    for secret in ["cookie", "authorization", "token"] {
        assert!(headers.get(secret).is_none(), "{secret} must not be stored");
    }
    assert_eq!(
        body,
        json!({
            "eventKey": "webhook.lead.created",
            "messageKey": "pipeforce.event.webhook.lead.created",
            "correlationId": id,
            "receivedAt": received_at,
            "origin": origin,
            "payload": {
                "origin": origin,
                "method": "POST",
                "contentType": "application/json",
                "headers": headers.clone(),
                "params": {"source": "crm", "tag": ["a", "b"]},
                "files": []
            }
        })
    );
    assert!(
        !body.to_string().contains(&token),
        "the token appears nowhere in the event"
    );
}

#[tokio::test]
async fn token_from_header_query_uuid_form_and_multipart() {
    let (server, token) = setup(&[]).await;
    let http = client();
    let path = "/api/v3/command/webhook.receive";
    // Header `token`, GET.
    accepted(
        http.get(server.at(path))
            .header("token", &token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Query `token` and `uuid`, GET and on the short alias path.
    accepted(
        http.get(server.at(&format!("{path}?token={token}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    accepted(
        http.get(server.at(&format!("/api/v3/webhook.receive?uuid={token}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Form body field.
    let id = accepted(
        http.post(server.at(path))
            .form(&[("token", token.as_str()), ("lead", "42")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let body = stored_event_body(&server, &id).await.unwrap();
    assert_eq!(body["payload"]["params"], json!({"lead": "42"}));
    assert_eq!(
        body["payload"]["contentType"],
        "application/x-www-form-urlencoded"
    );
    // `origin` is the body without the credential.
    assert_eq!(body["origin"], B64.encode("lead=42"));
    // Multipart field `uuid`.
    let form = Form::new().text("uuid", token.clone()).text("note", "hi");
    let id = accepted(
        http.post(server.at(path))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let body = stored_event_body(&server, &id).await.unwrap();
    assert_eq!(body["payload"]["params"], json!({"note": "hi"}));
    // The header wins over a wrong query token.
    accepted(
        http.get(server.at(&format!(
            "{path}?token=00000000-0000-4000-8000-000000000000"
        )))
        .header("token", &token)
        .send()
        .await
        .unwrap(),
    )
    .await;
}

#[tokio::test]
async fn multipart_files_are_listed_with_base64_content() {
    let (server, token) = setup(&[]).await;
    let pdf_a = b"%PDF-1.4 fileA \x00\x01\x02".to_vec();
    let pdf_b = b"%PDF-1.4 fileB".to_vec();
    let form = Form::new()
        .part(
            "file",
            Part::bytes(pdf_a.clone())
                .file_name("fileA.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        )
        .part(
            "file",
            Part::bytes(pdf_b.clone())
                .file_name("fileB.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        )
        .text("comment", "two files");
    let res = client()
        .post(server.at(&format!("/api/v3/command/webhook.receive?uuid={token}")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let id = accepted(res).await;
    let body = stored_event_body(&server, &id).await.unwrap();
    assert_eq!(
        body["payload"]["files"],
        json!([
            {"name": "file", "filename": "fileA.pdf", "contentType": "application/pdf", "size": pdf_a.len(), "content": B64.encode(&pdf_a)},
            {"name": "file", "filename": "fileB.pdf", "contentType": "application/pdf", "size": pdf_b.len(), "content": B64.encode(&pdf_b)},
        ])
    );
    assert_eq!(body["payload"]["params"], json!({"comment": "two files"}));
    assert!(
        body["payload"]["contentType"]
            .as_str()
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    let raw = B64.decode(body["origin"].as_str().unwrap()).unwrap();
    assert!(
        raw.windows(pdf_a.len()).any(|w| w == pdf_a.as_slice()),
        "origin is the raw multipart body"
    );
}

#[tokio::test]
async fn payload_types_raw_and_ignore() {
    let server = Server::start().await;
    let raw = server
        .create_webhook("webhook.raw", &[("payloadType", "raw")])
        .await;
    let ignore = server
        .create_webhook("webhook.ignore", &[("payloadType", "ignore")])
        .await;
    let http = client();
    let url = |hook: &Value| {
        server.at(&format!(
            "/api/v3/webhook.receive?token={}",
            hook["uuid"].as_str().unwrap()
        ))
    };

    let id = accepted(
        http.post(url(&raw))
            .header("content-type", "application/json")
            .body(r#"{"a":[1,2]}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let body = stored_event_body(&server, &id).await.unwrap();
    assert_eq!(body["origin"], json!({"a": [1, 2]}));
    assert_eq!(body["payload"]["origin"], json!({"a": [1, 2]}));

    let id = accepted(
        http.post(url(&raw))
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        stored_event_body(&server, &id).await.unwrap()["origin"],
        "hello"
    );

    let form = Form::new().part("file", Part::bytes(b"data".to_vec()).file_name("x.bin"));
    let id = accepted(
        http.post(format!("{}&q=1", url(&ignore)))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let body = stored_event_body(&server, &id).await.unwrap();
    assert_eq!(body["origin"], Value::Null);
    assert_eq!(body["payload"]["files"], json!([]));
    assert_eq!(body["payload"]["params"], json!({"q": "1"}));
}

#[tokio::test]
async fn broken_json_is_kept_as_the_raw_payload() {
    let (server, token) = setup(&[]).await;
    let broken = r#"{"name": "Ada", "#;
    let res = client()
        .post(server.at(&format!("/api/v3/webhook.receive?token={token}")))
        .header("content-type", "application/json")
        .body(broken)
        .send()
        .await
        .unwrap();
    let id = accepted(res).await;
    let body = stored_event_body(&server, &id).await.unwrap();
    assert_eq!(body["origin"], B64.encode(broken));
}

#[tokio::test]
async fn missing_unknown_and_disabled_tokens() {
    let (server, token) = setup(&[]).await;
    let http = client();
    let url = server.at("/api/v3/command/webhook.receive");
    let (s, body) = json_of(http.post(&url).body("x").send().await.unwrap()).await;
    assert_error(s, &body, 401, "token_missing");
    let (s, body) = json_of(http.post(&url).header("token", "").send().await.unwrap()).await;
    assert_error(s, &body, 401, "token_missing");
    for unknown in [
        "00000000-0000-4000-8000-000000000000",
        "not-a-uuid",
        "'; DROP TABLE webhooks; --",
    ] {
        let (s, body) = json_of(
            http.post(&url)
                .query(&[("token", unknown)])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(s, &body, 404, "webhook_not_found");
    }
    server
        .command("webhook.put", &[("uuid", &token), ("enabled", "false")])
        .await;
    let (s, body) = json_of(
        http.post(&url)
            .header("token", &token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &body, 404, "webhook_not_found");
    server
        .command("webhook.put", &[("uuid", &token), ("enabled", "true")])
        .await;
    accepted(
        http.post(&url)
            .header("token", &token)
            .send()
            .await
            .unwrap(),
    )
    .await;
}

#[tokio::test]
async fn only_get_and_post() {
    let (server, token) = setup(&[]).await;
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS"] {
        let res = client()
            .request(
                method.parse().unwrap(),
                server.at(&format!("/api/v3/command/webhook.receive?token={token}")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["allow"], "GET, POST");
        let (s, body) = json_of(res).await;
        assert_error(s, &body, 405, "method_not_allowed");
    }
}

#[tokio::test]
async fn payload_over_the_webhook_limit_is_413_and_not_stored() {
    let (server, token) = setup(&[("maxPayloadLength", "1000")]).await;
    let http = client();
    let url = server.at(&format!("/api/v3/command/webhook.receive?token={token}"));
    accepted(http.post(&url).body(vec![b'a'; 1000]).send().await.unwrap()).await;
    let res = http.post(&url).body(vec![b'a'; 1001]).send().await.unwrap();
    assert!(
        res.headers()
            .get("pipeforce-result-correlationid")
            .is_none()
    );
    let (s, body) = json_of(res).await;
    assert_error(s, &body, 413, "payload_too_large");
}
