//! Small edges of the front door (issue 9, section 7): methods, oversized
//! heads, the admin token's setting and where it is printed.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Server, json_body, raw};

fn assert_json_error(answer: &str, status: u16, code: &str) {
    let body = json_body(answer);
    assert_eq!(crate::harness::status_of(answer), status, "{answer}");
    assert_eq!(body["statusCode"], status, "{answer}");
    assert_eq!(body["error"]["code"], code, "{answer}");
}

#[tokio::test]
async fn methods_other_than_get_and_post_are_405_with_allow() {
    let server = Server::start().await;
    let host = server.addr().to_owned();
    for request in [
        // Authority form: a proxy tunnel request, no path at all.
        format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        "CONNECT /api/v3/webhook.receive HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            .to_owned(),
        "PUT /api/v3/webhook.receive HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            .to_owned(),
        "TRACE /api/v3/result HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_owned(),
        "PUT /api/v3/command/webhook.put HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 4000000\r\n\r\n"
            .to_owned(),
    ] {
        let (_, answer) = raw(&server, request.as_bytes()).await;
        assert_json_error(&answer, 405, "method_not_allowed");
        assert!(
            answer.to_ascii_lowercase().contains("\r\nallow: get, post\r\n"),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn heads_over_hookflows_bounds_get_json_errors() {
    let server = Server::start().await;
    let long_target = format!(
        "GET /api/v3/result?correlationId={} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let (_, answer) = raw(&server, long_target.as_bytes()).await;
    assert_json_error(&answer, 414, "uri_too_long");

    let mut many = "GET /api/v3/result HTTP/1.1\r\nHost: t\r\nConnection: close\r\n".to_owned();
    for i in 0..150 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (_, answer) = raw(&server, many.as_bytes()).await;
    assert_json_error(&answer, 431, "headers_too_large");

    let large = format!(
        "GET /api/v3/result HTTP/1.1\r\nHost: t\r\nConnection: close\r\nx-big: {}\r\n\r\n",
        "v".repeat(100 * 1024)
    );
    let (_, answer) = raw(&server, large.as_bytes()).await;
    assert_json_error(&answer, 431, "headers_too_large");

    // Beyond hyper's own buffer the head cannot even be parsed: its bare 431 (documented).
    let huge = format!(
        "GET /api/v3/result HTTP/1.1\r\nHost: t\r\nConnection: close\r\nx-big: {}\r\n\r\n",
        "v".repeat(1024 * 1024)
    );
    let (status, answer) = raw(&server, huge.as_bytes()).await;
    assert_eq!(status, 431, "{answer}");
    assert_eq!(json_body(&answer), Value::Null, "{answer}");
}

#[tokio::test]
async fn an_admin_token_of_only_spaces_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("HOOKFLOW_ADMIN_TOKEN", "    ")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the server must refuse to start, not serve")
        .unwrap();
    assert!(!status.success());
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("HOOKFLOW_ADMIN_TOKEN"), "{stderr}");
    assert!(
        !dir.path().join("admin-token").exists(),
        "no token was generated instead"
    );
}

#[tokio::test]
async fn a_generated_admin_token_is_printed_once_when_it_is_made() {
    // An empty setting is "unset": serve generates a token.
    let mut server = Server::start_with(&[("HOOKFLOW_ADMIN_TOKEN", "")]).await;
    let path = server.dir.join("admin-token");
    let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    let shown = banner(&server, 1).await.matches(&token).count();
    assert!(shown > 0, "shown when made");
    server.stop().await;
    server.restart().await;
    let printed = banner(&server, 2).await;
    assert_eq!(
        printed.matches(&token).count(),
        shown,
        "not shown again: {printed}"
    );
    assert!(
        printed.contains(&format!("admin token: kept in {}", path.display())),
        "{printed}"
    );
}

/// The server's stdout once it holds `starts` whole banners (the last line comes after the URL).
async fn banner(server: &Server, starts: usize) -> String {
    for _ in 0..100 {
        let printed = server.stdout_text();
        if printed.matches("Stop with Ctrl-C.").count() >= starts {
            return printed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no whole banner: {}", server.stdout_text());
}
