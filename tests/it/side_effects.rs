//! What pipelines do to the outside world: mails sent at most once per step of
//! an event, and log lines a payload cannot forge.

use std::time::Duration;

use reqwest::StatusCode;

use crate::harness::{Server, mail_sink, mails_matching};

/// A job run again because a later step failed sends the mail of an earlier
/// step once. The test server answers 451 (try again later) to the first two
/// mails for a flaky-… recipient, so the job runs three times: the first mail
/// goes out on the first run only, the flaky one on the third.
#[tokio::test]
async fn a_mail_goes_out_once_although_a_later_step_makes_the_job_run_again() {
    let Some((url, mail_dir)) = mail_sink() else {
        return;
    };
    let server = Server::start_logged(&[
        ("HOOKFLOW_LOG", "info"),
        ("HOOKFLOW_SMTP_URL", url.as_str()),
        ("HOOKFLOW_MAX_ATTEMPTS", "5"),
        ("HOOKFLOW_RETRY_BASE_MS", "50"),
        ("HOOKFLOW_RECEIVE_WAIT_MS", "0"),
    ])
    .await;
    let hook = server.create_webhook("webhook.mail.once", &[]).await;
    let token = hook["uuid"].as_str().unwrap();
    let subject = uuid::Uuid::new_v4().simple().to_string();
    let yaml = format!(
        "pipeline:
  - event.listen: webhook.mail.once
  - iam.run.as: systemuser
  - mail.send: {{to: first-once@example.com, subject: {subject}-first}}
  - mail.send: {{to: flaky-once@example.com, subject: {subject}-flaky}}
  - body.set: sent
"
    );
    let (status, body) = server.put_pipeline("mail-once", &yaml).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, id, _) = server.trigger(token, "{}", "").await;
    let result = server.final_result(&id).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["value"], "sent");

    for (which, wanted) in [
        ("first", "first-once@example.com"),
        ("flaky", "flaky-once@example.com"),
    ] {
        let subject = format!("{subject}-{which}");
        let mails = mails_matching(&mail_dir, Duration::from_secs(2), |m| {
            m["subject"] == subject.as_str()
        })
        .await;
        assert_eq!(mails.len(), 1, "the {which} mail arrived once: {mails:?}");
        assert_eq!(mails[0]["rcptTos"][0], wanted);
    }

    let log = server.log_text();
    let runs_failed = log
        .lines()
        .filter(|l| l.contains("pipeline failed") && l.contains(&id))
        .count();
    assert_eq!(runs_failed, 2, "the job ran three times:\n{log}");
    let skipped = log.matches("mail.send skipped").count();
    assert_eq!(skipped, 2, "the reruns skipped the first mail:\n{log}");
    assert!(
        !log.contains("first-once@") && !log.contains("flaky-once@"),
        "no address is logged"
    );
}

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
