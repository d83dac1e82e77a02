//! Bad input gets a clear 4xx, never a panic, and the server keeps serving.

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{
    ADMIN, Server, assert_error, client, json_body, json_of, raw, stored_event_body,
};

async fn still_serving(server: &Server, token: &str) {
    let res = client()
        .post(server.at(&format!("/api/v3/webhook.receive?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the server still serves");
}

#[tokio::test]
async fn oversized_bodies_with_and_without_content_length() {
    let server = Server::start_with(&[("HOOKFLOW_MAX_BODY_BYTES", "2048")]).await;
    let hook = server
        .create_webhook("webhook.big", &[("maxPayloadLength", "4194304")])
        .await;
    let token = hook["uuid"].as_str().unwrap();
    let path = format!("/api/v3/webhook.receive?token={token}");

    let (s, body) = json_of(
        client()
            .post(server.at(&path))
            .body(vec![b'x'; 4096])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &body, 413, "payload_too_large");

    // Chunked: no Content-Length to check up front; the limit applies while reading.
    let chunk = "x".repeat(1000);
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for _ in 0..4 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    let (status, answer) = raw(&server, request.as_bytes()).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(json_body(&answer)["error"]["code"], "payload_too_large");

    // A lying Content-Length larger than the limit.
    let (status, _) = raw(&server, format!("POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 999999999\r\n\r\nabc").as_bytes()).await;
    assert_eq!(status, 413);
    still_serving(&server, token).await;
}

#[tokio::test]
async fn broken_multipart_is_400() {
    let server = Server::start().await;
    let hook = server.create_webhook("webhook.mp", &[]).await;
    let token = hook["uuid"].as_str().unwrap();
    let url = server.at(&format!("/api/v3/webhook.receive?token={token}"));
    for (content_type, body) in [
        (
            "multipart/form-data; boundary=xyz",
            "--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
        ),
        (
            "multipart/form-data; boundary=xyz",
            "garbage without any boundary",
        ),
        ("multipart/form-data", "--xyz\r\n\r\n--xyz--"),
        (
            "multipart/form-data; boundary=xyz",
            "--xyz\r\nno-header-end",
        ),
    ] {
        let res = client()
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let (s, body) = json_of(res).await;
        assert_error(s, &body, 400, "invalid_multipart");
    }
    still_serving(&server, token).await;
}

#[tokio::test]
async fn broken_json_to_management_is_400() {
    let server = Server::start().await;
    let url = server.at("/api/v3/command/webhook.put");
    for body in [
        "{\"eventKey\": ",
        "[\"webhook.x\"]",
        "\"webhook.x\"",
        "{\"eventKey\": \"\u{0}\"}",
    ] {
        let res = client()
            .post(&url)
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (s, body) = json_of(res).await;
        assert_eq!(s.as_u16(), 400, "{body}");
        assert!(
            body["error"]["code"] == "invalid_json" || body["error"]["code"] == "invalid_event_key",
            "{body}"
        );
    }
}

#[tokio::test]
async fn wrong_methods_and_routes() {
    let server = Server::start().await;
    for (method, path, status, code) in [
        (
            "PUT",
            "/api/v3/command/webhook.put",
            405,
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/api/v3/command/webhook.delete",
            405,
            "method_not_allowed",
        ),
        ("PATCH", "/api/v3/result", 405, "method_not_allowed"),
        ("GET", "/", 404, "route_not_found"),
        ("GET", "/api/v3/nothing", 404, "route_not_found"),
        (
            "POST",
            "/api/v2/command/webhook.put",
            404,
            "route_not_found",
        ),
    ] {
        let res = client()
            .request(method.parse().unwrap(), server.at(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        let (s, body) = json_of(res).await;
        assert_error(s, &body, status, code);
    }
}

#[tokio::test]
async fn too_many_or_too_large_headers_are_431() {
    let server = Server::start().await;
    let hook = server.create_webhook("webhook.headers", &[]).await;
    let token = hook["uuid"].as_str().unwrap();
    let mut many = format!(
        "GET /api/v3/webhook.receive?token={token} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    );
    for i in 0..150 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (status, _) = raw(&server, many.as_bytes()).await;
    assert_eq!(status, 431);
    let huge = format!(
        "GET /api/v3/webhook.receive?token={token} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nx-big: {}\r\n\r\n",
        "v".repeat(1024 * 1024)
    );
    let (status, _) = raw(&server, huge.as_bytes()).await;
    assert_eq!(status, 431);
    still_serving(&server, token).await;
}

#[tokio::test]
async fn odd_header_values_are_stored_without_failing() {
    let server = Server::start().await;
    let hook = server.create_webhook("webhook.odd", &[]).await;
    let token = hook["uuid"].as_str().unwrap();
    let mut request = format!("POST /api/v3/webhook.receive HTTP/1.1\r\nHost: t\r\nConnection: close\r\ntoken: {token}\r\nContent-Length: 0\r\nx-latin1: caf").into_bytes();
    request.extend_from_slice(&[0xe9]);
    request.extend_from_slice(b"\r\nx-empty:\r\nX-Mixed-Case: Yes\r\n\r\n");
    let (status, answer) = raw(&server, &request).await;
    assert_eq!(status, 200, "{answer}");
    let id = json_body(&answer)["correlationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = stored_event_body(&server, &id).await.unwrap();
    let headers = &body["payload"]["headers"];
    assert_eq!(headers["x-latin1"], "caf\u{fffd}");
    assert_eq!(headers["x-empty"], "");
    assert_eq!(headers["x-mixed-case"], "Yes");
    assert!(headers.get("token").is_none());
    assert_eq!(body["origin"], Value::Null, "an empty body has no origin");
}

#[tokio::test]
async fn garbage_requests_do_not_take_the_server_down() {
    let server = Server::start().await;
    let hook = server.create_webhook("webhook.garbage", &[]).await;
    for request in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"GET /api/v3/result?correlationId=%ZZ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"POST /api/v3/webhook.receive?token=%00%ff HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"\x00\x01\x02\x03",
    ] {
        let (status, _) = raw(&server, request).await;
        assert!(status == 0 || (400..500).contains(&status), "{status}");
    }
    still_serving(&server, hook["uuid"].as_str().unwrap()).await;
}
