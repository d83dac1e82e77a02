//! What pipelines do to the outside world: mails sent at most once per step of
//! an event, and log lines a payload cannot forge.

use reqwest::StatusCode;

use crate::harness::Server;

#[tokio::test]
async fn a_payload_cannot_forge_a_log_line() {
    let server = Server::start_logged(&[("HOOKFLOW_LOG", "info")]).await;
    let hook = server.create_webhook("webhook.logged", &[]).await;
    let token = hook["uuid"].as_str().unwrap();
    let yaml = "pipeline:
  - event.listen:
      eventKey: webhook.logged
  - log: ${@convert.fromBase64(body.origin)}
";
    let (status, body) = server.put_pipeline("logged", yaml).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let forged = "hello\n2026-11-26T00:00:00.000000Z  INFO hookflow_core::api::admin: webhook deleted event_key=webhook.forged\r\n\u{1b}[2J";
    let (status, id, answer) = server.trigger(token, forged, "").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let result = server.final_result(&id).await;
    assert_eq!(result["status"], "ok", "{result}");

    let log = server.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("webhook.forged"))
        .collect();
    assert_eq!(lines.len(), 1, "the text stays on one line:\n{log}");
    assert!(lines[0].contains("pipeline log"), "{}", lines[0]);
    assert!(lines[0].contains(r"hello\n2026-11-26"), "{}", lines[0]);
    assert!(
        !log.contains('\u{1b}'),
        "no raw escape sequence reaches the log"
    );
}
