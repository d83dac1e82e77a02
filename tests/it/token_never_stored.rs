//! The webhook's token is a credential: however a caller sends it (header,
//! query, form field, multipart part), no stored event, outcome, mail or log
//! line holds it. `origin` is the body without the credential.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::StatusCode;
use reqwest::multipart::Form;

use crate::harness::{Server, client, json_of, mail_sink, mails_matching, stored_event_body};

/// The seed's mail pipeline, mailing the raw body, plus a step that logs it.
fn pipeline(event_key: &str, to: &str) -> String {
    format!(
        "pipeline:
  - event.listen:
      eventKey: {event_key}
  - log:
      message: \"origin: ${{@convert.fromBase64(body.origin)}}\"
  - iam.run.as: systemuser
  - mail.send:
      to: {to}
      subject: ${{body.correlationId}}
      body: ${{@convert.fromBase64(body.payload.origin)}}
  - body.set:
      value: ${{body}}
"
    )
}

#[tokio::test]
async fn no_stored_event_outcome_mail_or_log_line_holds_the_token() {
    let Some((smtp, mail_dir)) = mail_sink() else {
        return;
    };
    let server = Server::start_logged(&[
        ("HOOKFLOW_SMTP_URL", smtp.as_str()),
        ("HOOKFLOW_LOG", "debug"),
    ])
    .await;
    let hook = server.create_webhook("webhook.secret.token", &[]).await;
    let token = hook["uuid"].as_str().unwrap().to_owned();
    let to = "token-audit@example.com";
    let (status, body) = server
        .put_pipeline("token-audit", &pipeline("webhook.secret.token", to))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let path = server.at("/api/v3/command/webhook.receive");
    let http = client();
    let ways: Vec<(&str, reqwest::RequestBuilder, &str)> = vec![
        (
            "header",
            http.post(&path).header("token", &token).body("lead=1"),
            "lead=1",
        ),
        (
            "query token",
            http.post(format!("{path}?token={token}")).body("lead=2"),
            "lead=2",
        ),
        (
            "query uuid",
            http.post(format!("{path}?uuid={token}")).body("lead=3"),
            "lead=3",
        ),
        (
            "form token",
            http.post(&path)
                .form(&[("lead", "4"), ("token", token.as_str()), ("note", "a b")]),
            "lead=4&note=a+b",
        ),
        (
            "form uuid",
            http.post(&path)
                .form(&[("uuid", token.as_str()), ("lead", "5")]),
            "lead=5",
        ),
        (
            "multipart token",
            http.post(&path)
                .multipart(Form::new().text("lead", "6").text("token", token.clone())),
            "",
        ),
        (
            "multipart uuid",
            http.post(&path)
                .multipart(Form::new().text("uuid", token.clone()).text("lead", "7")),
            "",
        ),
    ];
    let mut ids = Vec::new();
    for (way, request, expected_origin) in ways {
        let (status, answer) = json_of(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{way}: {answer}");
        let id = answer["correlationId"].as_str().unwrap().to_owned();
        let result = if answer["status"] == "processing" {
            server.final_result(&id).await
        } else {
            answer
        };
        assert_eq!(result["status"], "ok", "{way}: {result}");
        assert!(
            !result.to_string().contains(&token),
            "{way}: the outcome holds the token: {result}"
        );
        let event = stored_event_body(&server, &id).await.expect("stored");
        assert!(
            !event.to_string().contains(&token),
            "{way}: the stored event holds the token: {event}"
        );
        let origin = B64
            .decode(event["origin"].as_str().expect("base64 origin"))
            .unwrap();
        let origin = String::from_utf8(origin).unwrap();
        if expected_origin.is_empty() {
            // Multipart: re-encoded without the credential part, the rest kept.
            assert!(origin.contains("name=\"lead\""), "{way}: {origin}");
            assert!(!origin.contains("name=\"token\""), "{way}: {origin}");
            assert!(!origin.contains("name=\"uuid\""), "{way}: {origin}");
        } else {
            assert_eq!(origin, expected_origin, "{way}");
        }
        ids.push((way, id));
    }

    for (way, id) in &ids {
        let mails = mails_matching(&mail_dir, Duration::from_secs(10), |mail| {
            mail["subject"] == id.as_str()
        })
        .await;
        assert_eq!(mails.len(), 1, "{way}: one mail");
        assert!(
            !mails[0].to_string().contains(&token),
            "{way}: the mail holds the token: {}",
            mails[0]
        );
    }
    let log = server.log_text();
    assert!(
        log.contains("origin: lead=1"),
        "the log step wrote its line (the test would prove nothing otherwise)"
    );
    assert!(
        !log.contains(&token),
        "a log line holds the token:\n{}",
        log.lines()
            .filter(|l| l.contains(&token))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
