//! Pipelines over HTTP against the real binary: the seeds' examples, fan-out,
//! permissions, mail through a real SMTP server, retries, redelivery, crashes.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hookflow_core::testkit::endpoint::closed_port;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Server, assert_error, client, json_of, mail_sink, mails_matching};

/// seeds/002, unchanged.
pub(crate) const SEED_MAIL: &str = "pipeline:

 - event.listen:
     eventKey: webhook.lead.created
    

 - iam.run.as: systemuser

 - mail.send:
     to: name@company.tld
     subject: \"New lead was created!\"
     body: ${@convert.fromBase64(body.payload.origin)}
";

/// seeds/002's message.receive example, with the iam.run.as the spec requires.
pub(crate) const SEED_MESSAGE: &str = "pipeline:

 - message.receive:
     key: pipeforce.event.webhook.lead.created

 - iam.run.as: systemuser

 - mail.send:
     to: name@company.tld
     subject: \"New lead was created!\"
     body: ${body.payload}
";

/// seeds/003, unchanged: `mail` as anonymousUser, refused.
pub(crate) const SEED_ANONYMOUS_MAIL: &str = "pipeline:
 - event.listen:
     eventKey: webhook.lead.created
 - mail:
     to: name@company.tld
     subject: \"New lead was created!\"
     body: \"#{@convert.fromBase64(body.origin)}\"
";

const HELLO: &str = "pipeline:
  - event.listen:
      eventKey: webhook.lead.created
  - body.set:
      value: ${@text.upperCase(@convert.fromBase64(body.origin))}
";

async fn with_mail(extra: &[(&str, &str)]) -> Option<(Server, std::path::PathBuf)> {
    let (url, dir) = mail_sink()?;
    let mut env = vec![("HOOKFLOW_SMTP_URL", url.as_str())];
    env.extend_from_slice(extra);
    Some((Server::start_with(&env).await, dir))
}

async fn webhook_token(server: &Server, key: &str) -> String {
    server.create_webhook(key, &[]).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[tokio::test]
async fn hello_world_comes_back_in_the_receive_answer() {
    let server = Server::start().await;
    let token = webhook_token(&server, "webhook.lead.created").await;
    let (s, stored) = server.put_pipeline("hello", HELLO).await;
    assert_eq!(s, StatusCode::OK, "{stored}");
    assert_eq!(stored["name"], "hello");
    assert_eq!(stored["eventKey"], "webhook.lead.created");
    assert_eq!(stored["source"], HELLO);

    let (status, id, answer) = server.trigger(&token, "hello world", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({"statusCode": 200, "status": "ok", "value": "HELLO WORLD", "pollingRedirectEnabled": false, "correlationId": id})
    );
    let (_, polled) = json_of(
        client()
            .get(server.at(&format!("/api/v3/result?correlationId={id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(polled, answer, "polling gives the same result");
}

#[tokio::test]
async fn seed_event_listen_pipeline_mails_the_decoded_payload() {
    let Some((server, mail_dir)) = with_mail(&[]).await else {
        return;
    };
    let token = webhook_token(&server, "webhook.lead.created").await;
    let seed = SEED_MAIL;
    let (s, body) = server.put_pipeline("lead-mail", seed).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let payload = format!(r#"{{"lead":"{}"}}"#, unique());
    let (status, id, answer) = server.trigger(&token, &payload, "").await;
    assert_eq!(status, StatusCode::OK);
    let result = if answer["status"] == "processing" {
        server.final_result(&id).await
    } else {
        answer
    };
    assert_eq!(result["status"], "ok", "{result}");
    // mail.send keeps the body: the value is the event.
    assert_eq!(result["value"]["eventKey"], "webhook.lead.created");
    assert_eq!(result["value"]["correlationId"], id);
    let mails = mails_matching(&mail_dir, Duration::from_secs(5), |m| {
        m["body"].as_str().is_some_and(|b| b.trim_end() == payload)
    })
    .await;
    assert_eq!(mails.len(), 1, "one mail with the decoded payload");
    assert_eq!(mails[0]["subject"], "New lead was created!");
    assert_eq!(mails[0]["rcptTos"], json!(["name@company.tld"]));
    assert_eq!(mails[0]["mailFrom"], "hookflow@localhost");
}

#[tokio::test]
async fn seed_pipelines_without_iam_run_as_are_refused_then_allowed() {
    let Some((server, mail_dir)) = with_mail(&[("HOOKFLOW_USERS", "mailer=mail.send")]).await
    else {
        return;
    };
    let token = webhook_token(&server, "webhook.lead.created").await;
    let seed = SEED_ANONYMOUS_MAIL;
    let (s, _) = server.put_pipeline("seed-003", seed).await;
    assert_eq!(s, StatusCode::OK);
    let marker = unique();
    let (_, id, answer) = server.trigger(&token, &marker, "").await;
    let result = if answer["status"] == "processing" {
        server.final_result(&id).await
    } else {
        answer
    };
    assert_eq!(result["statusCode"], 500);
    assert_eq!(result["status"], "error");
    assert_eq!(result["error"]["code"], "permission_denied");
    assert_eq!(result["error"]["pipeline"], "seed-003");
    assert_eq!(result["error"]["step"], "mail.send (step 2, line 4)");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anonymousUser")
    );
    assert!(
        mails_matching(&mail_dir, Duration::from_millis(300), |m| m["body"]
            .as_str()
            .is_some_and(|b| b.contains(&marker)))
        .await
        .is_empty()
    );

    // The same with a configured user switched to first.
    let allowed = seed.replace(" - mail:", " - iam.run.as: mailer\n - mail:");
    let (s, _) = server.put_pipeline("seed-003", &allowed).await;
    assert_eq!(s, StatusCode::OK);
    let (_, id, answer) = server.trigger(&token, &marker, "").await;
    let result = if answer["status"] == "processing" {
        server.final_result(&id).await
    } else {
        answer
    };
    assert_eq!(result["status"], "ok", "{result}");
    let mails = mails_matching(&mail_dir, Duration::from_secs(5), |m| {
        m["body"].as_str().is_some_and(|b| b.trim_end() == marker)
    })
    .await;
    assert_eq!(mails.len(), 1);
}

#[tokio::test]
async fn seed_message_receive_pipeline_mails_the_payload_as_json() {
    let Some((server, mail_dir)) = with_mail(&[]).await else {
        return;
    };
    let token = webhook_token(&server, "webhook.lead.created").await;
    let pipeline = SEED_MESSAGE;
    let (s, stored) = server.put_pipeline("by-message", pipeline).await;
    assert_eq!(s, StatusCode::OK, "{stored}");
    assert_eq!(stored["eventKey"], "webhook.lead.created");
    let marker = unique();
    let (_, id, answer) = server
        .trigger(&token, &format!(r#"{{"m":"{marker}"}}"#), "&source=crm")
        .await;
    let result = if answer["status"] == "processing" {
        server.final_result(&id).await
    } else {
        answer
    };
    assert_eq!(result["status"], "ok", "{result}");
    let origin = B64.encode(format!(r#"{{"m":"{marker}"}}"#));
    let mails = mails_matching(&mail_dir, Duration::from_secs(5), |m| {
        m["body"].as_str().is_some_and(|b| b.contains(&origin))
    })
    .await;
    assert_eq!(mails.len(), 1);
    let mailed: Value =
        serde_json::from_str(mails[0]["body"].as_str().unwrap()).expect("the payload as JSON");
    assert_eq!(mailed["origin"], origin);
    assert_eq!(mailed["method"], "POST");
    assert_eq!(mailed["params"], json!({"source": "crm"}));
}

#[tokio::test]
async fn two_pipelines_on_one_event_give_an_object_keyed_by_name() {
    let server = Server::start().await;
    let token = webhook_token(&server, "webhook.fan.out").await;
    for (name, value) in [
        (
            "upper",
            "${@text.upperCase(@convert.fromBase64(body.origin))}",
        ),
        (
            "lower",
            "${@text.lowerCase(@convert.fromBase64(body.origin))}",
        ),
    ] {
        let yaml = format!(
            "pipeline:\n  - event.listen: {{eventKey: webhook.fan.out}}\n  - body.set:\n      value: {value}\n"
        );
        assert_eq!(server.put_pipeline(name, &yaml).await.0, StatusCode::OK);
    }
    let other =
        "pipeline:\n  - event.listen: {eventKey: webhook.other}\n  - body.set: {value: 1}\n";
    assert_eq!(server.put_pipeline("other", other).await.0, StatusCode::OK);
    let (_, id, answer) = server.trigger(&token, "Hello World", "").await;
    let result = if answer["status"] == "processing" {
        server.final_result(&id).await
    } else {
        answer
    };
    assert_eq!(
        result["value"],
        json!({"lower": "hello world", "upper": "HELLO WORLD"})
    );
}

#[tokio::test]
async fn vars_and_var_set() {
    let server = Server::start().await;
    let token = webhook_token(&server, "webhook.vars").await;
    let yaml = "vars:
  greeting: Hello
  count: 41
pipeline:
  - event.listen:
      eventKey: webhook.vars
  - var.set:
      key: name
      value: ${@convert.fromJson(@convert.fromBase64(body.origin)).name}
  - body.set:
      value:
        text: \"${vars.greeting}, ${var.name}!\"
        answer: ${vars.count + 1}
        vip: ${var.name == 'Ada'}
";
    let (s, body) = server.put_pipeline("vars", yaml).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, _, answer) = server.trigger(&token, r#"{"name":"Ada"}"#, "").await;
    assert_eq!(
        answer["value"],
        json!({"text": "Hello, Ada!", "answer": 42, "vip": true})
    );
}

#[tokio::test]
async fn a_failing_pipeline_reports_the_step() {
    let server = Server::start().await;
    let token = webhook_token(&server, "webhook.fails").await;
    let yaml = "pipeline:
  - event.listen:
      eventKey: webhook.fails
  - log: parsing the order
  - body.set:
      value: ${@convert.fromJson(@convert.fromBase64(body.origin))}
";
    server.put_pipeline("parse", yaml).await;
    let (status, id, answer) = server.trigger(&token, "this is not JSON", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "error");
    assert_eq!(answer["statusCode"], 500);
    assert_eq!(answer["correlationId"], id);
    assert_eq!(answer["error"]["code"], "expression_failed");
    assert_eq!(answer["error"]["pipeline"], "parse");
    assert_eq!(answer["error"]["step"], "body.set (step 3, line 5)");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("${@convert.fromJson(@convert.fromBase64(body.origin))}")
            && message.contains("not valid JSON"),
        "{message}"
    );
}

#[tokio::test]
async fn pipeline_put_rejects_bad_pipelines_with_line_and_reason() {
    let server = Server::start().await;
    for (yaml, line, fragment) in [
        (
            "pipeline:\n  - event.listen: {eventKey: webhook.a}\n  - mail.sned: {to: x}\n",
            3,
            "unknown command 'mail.sned'",
        ),
        ("pipeline:\n  - body.set: {value: 1}\n", 2, "trigger"),
        (
            "pipeline:\n  - event.listen: {eventKey: webhook.a}\n  - body.set:\n      value: ${body.}\n",
            4,
            "expression",
        ),
        (
            "pipeline:\n  - event.listen: {eventKey: webhook.a}\n  - body.set: {value: [1, 2}\n",
            3,
            "",
        ),
        (
            "pipeline:\n  - event.listen: {eventKey: webhook.a}\n  - iam.run.as: root\n",
            3,
            "unknown user",
        ),
    ] {
        let (s, body) = server.put_pipeline("bad", yaml).await;
        assert_error(s, &body, 400, "invalid_pipeline");
        assert_eq!(body["error"]["line"], line, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(fragment),
            "{body}"
        );
    }
    let (s, body) = server.put_pipeline("bad name!", HELLO).await;
    assert_error(s, &body, 400, "invalid_name");
    let (s, body) = server
        .put_pipeline("huge", &format!("{HELLO}# {}\n", "x".repeat(70_000)))
        .await;
    assert_error(s, &body, 413, "payload_too_large");
    let (s, body) = server.command("pipeline.get", &[]).await;
    assert_eq!((s, body), (StatusCode::OK, json!([])), "nothing was stored");
}

#[tokio::test]
async fn pipeline_get_and_delete() {
    let server = Server::start().await;
    let (_, stored) = server.put_pipeline("hello", HELLO).await;
    let form_yaml = HELLO.replace("upperCase", "lowerCase");
    let (s, second) = server
        .command(
            "pipeline.put",
            &[("name", "lower"), ("pipeline", &form_yaml)],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{second}");
    let (_, all) = server.command("pipeline.get", &[]).await;
    assert_eq!(
        all,
        json!([stored.clone(), second]),
        "sorted by name... hello < lower"
    );
    let (_, one) = server.command("pipeline.get", &[("name", "hello")]).await;
    assert_eq!(one, stored);
    let (s, deleted) = server
        .command("pipeline.delete", &[("name", "hello")])
        .await;
    assert_eq!((s, deleted), (StatusCode::OK, stored));
    let (s, body) = server
        .command("pipeline.delete", &[("name", "hello")])
        .await;
    assert_error(s, &body, 404, "pipeline_not_found");
    let (s, body) = server.command("pipeline.get", &[("name", "hello")]).await;
    assert_error(s, &body, 404, "pipeline_not_found");
    let (s, body) = server.command("pipeline.delete", &[]).await;
    assert_error(s, &body, 400, "name_missing");
}

#[tokio::test]
async fn redirect_polling_while_processing() {
    let Some((server, _)) = with_mail(&[("HOOKFLOW_RECEIVE_WAIT_MS", "0")]).await else {
        return;
    };
    let token = webhook_token(&server, "webhook.slow").await;
    let yaml = "pipeline:
  - event.listen: {eventKey: webhook.slow}
  - iam.run.as: systemuser
  - mail.send:
      to: slow-redirect@example.com
      subject: slow
  - body.set:
      value: done
";
    server.put_pipeline("slow", yaml).await;
    let (status, id, answer) = server
        .trigger(&token, "{}", "&pollingRedirectEnabled=true")
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{answer}");
    assert_eq!(answer["status"], "processing");
    // A client that follows redirects ends up with the result.
    let following = reqwest::Client::new();
    let res = following
        .get(server.at(&format!(
            "/api/v3/result?correlationId={id}&pollingRedirectEnabled=true&maxWaitMs=500"
        )))
        .send()
        .await
        .unwrap();
    let (status, result) = json_of(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result["status"], "ok");
    assert_eq!(result["value"], "done");
}

#[tokio::test]
async fn transient_mail_failures_are_retried_then_succeed() {
    let Some((server, mail_dir)) = with_mail(&[
        ("HOOKFLOW_RETRY_BASE_MS", "50"),
        ("HOOKFLOW_RECEIVE_WAIT_MS", "0"),
    ])
    .await
    else {
        return;
    };
    let token = webhook_token(&server, "webhook.flaky").await;
    let subject = unique();
    let yaml = format!(
        "pipeline:\n  - event.listen: {{eventKey: webhook.flaky}}\n  - iam.run.as: systemuser\n  - mail.send:\n      to: flaky-1@example.com\n      subject: {subject}\n  - body.set: {{value: sent}}\n"
    );
    server.put_pipeline("flaky", &yaml).await;
    let (_, id, _) = server.trigger(&token, "{}", "").await;
    let result = server.final_result(&id).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["value"], "sent");
    let mails = mails_matching(&mail_dir, Duration::from_secs(2), |m| {
        m["subject"] == subject.as_str()
    })
    .await;
    assert_eq!(mails.len(), 1, "delivered once, on the third attempt");
}

#[tokio::test]
async fn unreachable_mail_server_gives_up_after_max_attempts() {
    // A port nobody listens on.
    let closed = closed_port();
    let url = format!("smtp://127.0.0.1:{closed}");
    let server = Server::start_with(&[
        ("HOOKFLOW_SMTP_URL", url.as_str()),
        ("HOOKFLOW_MAX_ATTEMPTS", "3"),
        ("HOOKFLOW_RETRY_BASE_MS", "50"),
        ("HOOKFLOW_RECEIVE_WAIT_MS", "0"),
    ])
    .await;
    let token = webhook_token(&server, "webhook.down").await;
    let yaml = "pipeline:\n  - event.listen: {eventKey: webhook.down}\n  - iam.run.as: systemuser\n  - mail.send: {to: x@example.com}\n";
    server.put_pipeline("down", yaml).await;
    let (_, id, _) = server.trigger(&token, "{}", "").await;
    let result = server.final_result(&id).await;
    assert_eq!(result["status"], "error", "{result}");
    assert_eq!(result["error"]["code"], "mail_unavailable");
    assert_eq!(result["error"]["step"], "mail.send (step 3, line 4)");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("(gave up after 3 attempts)"),
        "{result}"
    );
}

#[tokio::test]
async fn a_redelivered_job_records_one_outcome_and_runs_once() {
    let Some((server, mail_dir)) = with_mail(&[]).await else {
        return;
    };
    let token = webhook_token(&server, "webhook.once").await;
    let subject = unique();
    let yaml = format!(
        "pipeline:\n  - event.listen: {{eventKey: webhook.once}}\n  - iam.run.as: systemuser\n  - mail.send: {{to: once@example.com, subject: {subject}}}\n  - body.set: {{value: first}}\n"
    );
    server.put_pipeline("once", &yaml).await;
    let (_, id, answer) = server.trigger(&token, "{}", "").await;
    assert_eq!(answer["value"], "first");

    // The queue hands the same job out again (as SQS may): same event, same pipeline.
    let storage = server.storage().await;
    let job = hookflow_core::domain::Job::Pipeline(hookflow_core::domain::PipelineJob {
        correlation_id: hookflow_core::domain::CorrelationId::parse(&id).unwrap(),
        pipeline: "once".into(),
    });
    storage
        .ports
        .queue
        .send_jobs(&[job.clone(), job.clone()])
        .await
        .unwrap();
    // The embedded worker looks at the shared file at least once a second.
    for _ in 0..100 {
        if storage.pending_jobs().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        storage.pending_jobs().await,
        0,
        "the redelivered jobs were consumed"
    );
    let result = storage
        .ports
        .events
        .get_result(&job.as_pipeline().unwrap().correlation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.outcomes.len(), 1);
    let mails = mails_matching(&mail_dir, Duration::from_millis(500), |m| {
        m["subject"] == subject.as_str()
    })
    .await;
    assert_eq!(mails.len(), 1, "the pipeline did not run again");
    assert_eq!(server.final_result(&id).await["value"], "first");
}

#[tokio::test]
async fn a_job_interrupted_by_a_crash_is_run_after_restart() {
    let Some((url, mail_dir)) = mail_sink() else {
        return;
    };
    let mut server = Server::start_with(&[
        ("HOOKFLOW_SMTP_URL", url.as_str()),
        ("HOOKFLOW_RECEIVE_WAIT_MS", "0"),
        ("HOOKFLOW_PIPELINE_TIMEOUT_MS", "3000"),
        ("HOOKFLOW_VISIBILITY_TIMEOUT_SECONDS", "4"),
    ])
    .await;
    let token = webhook_token(&server, "webhook.crash").await;
    let subject = unique();
    // The mail server takes 1.5 s for slow-… recipients: the first run is
    // still in mail.send when the server is killed.
    let yaml = format!(
        "pipeline:\n  - event.listen: {{eventKey: webhook.crash}}\n  - iam.run.as: systemuser\n  - mail.send: {{to: slow-crash@example.com, subject: {subject}}}\n  - body.set: {{value: survived}}\n"
    );
    server.put_pipeline("crash", &yaml).await;
    let (_, id, answer) = server.trigger(&token, "{}", "").await;
    assert_eq!(answer["status"], "processing");
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill9().await;
    server.restart().await;
    let result = server.final_result(&id).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["value"], "survived");
    // mail.send is at most once: the run after the restart finds the claim
    // the killed run took before sending and goes on without sending. A real
    // server may have accepted the mail before the crash, so it is not sent
    // again; this test server drops a message whose connection broke before
    // it answered, so here none may arrive. (Killed before the worker reached
    // mail.send, the run after the restart sends it: one.)
    let mails = mails_matching(&mail_dir, Duration::from_secs(2), |m| {
        m["subject"] == subject.as_str()
    })
    .await;
    assert!(mails.len() <= 1, "the mail was not sent twice: {mails:?}");
}

#[tokio::test]
async fn an_unreadable_job_is_dead_lettered_and_blocks_nothing() {
    let server = Server::start().await;
    let token = webhook_token(&server, "webhook.lead.created").await;
    server.put_pipeline("hello", HELLO).await;
    let storage = server.storage().await;
    storage.send_unreadable_job().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, _, answer) = server.trigger(&token, "still works", "").await;
    assert_eq!(answer["value"], "STILL WORKS");
    // The answer can come a moment before the worker deletes the finished job.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut left = storage.pending_jobs().await;
    while left != 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = storage.pending_jobs().await;
    }
    assert_eq!(left, 0, "the unreadable job left the queue");
    let dead = storage.dead_letters().await;
    assert_eq!(
        dead.len(),
        1,
        "kept as a dead letter, not dropped: {dead:?}"
    );
    assert_eq!(dead[0].0, "not a job");
    assert!(dead[0].1.starts_with("unreadable message: "), "{dead:?}");
}
