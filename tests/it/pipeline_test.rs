//! `pipeline.test` over HTTP against the real binary (both backends): the
//! seed pipelines on a sample body and on a stored event, with their exact
//! step traces; dry runs that send no mail and call no endpoint, and
//! `sideEffects=true` runs that do; truncation; limits; refusals.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hookflow_core::testkit::endpoint::Reply;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::hookflow;
use crate::harness::{
    ADMIN, Server, add_listener, assert_error, client, json_of, mail_sink, mails_matching,
    stored_event_body,
};
use crate::outgoing::{ALLOW, OutgoingFixture, post_json};
use crate::pipelines::{SEED_ANONYMOUS_MAIL, SEED_MAIL, SEED_MESSAGE};

/// seeds/001's hello world.
const HELLO: &str = "pipeline:
  - event.listen:
      eventKey: webhook.lead.created
  - body.set:
      value: ${@text.upperCase(@convert.fromBase64(body.origin))}
";

/// seeds/004: a pipeline that calls an outgoing webhook.
const SEED_WEBHOOK: &str = "pipeline:
  - event.listen:
      eventKey: webhook.lead.created
  - iam.run.as: systemuser
  - webhook.send:
      webhookId: notify-crm
      data: ${@convert.fromJson(@convert.fromBase64(body.origin))}
";

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The event body a receive of `payload` gives pipelines, as a sample.
fn sample_of(payload: &str) -> Value {
    let origin = B64.encode(payload);
    json!({
        "eventKey": "webhook.lead.created",
        "origin": origin,
        "payload": {"origin": origin, "method": "POST", "params": {}}
    })
}

/// `pipeline.test` with a JSON body; the answer's step durations are checked
/// to be numbers and removed, so the rest can be compared exactly.
async fn test_pipeline(server: &Server, body: &Value) -> (StatusCode, Value) {
    let (status, answer) = post_json(server, "pipeline.test", body).await;
    (status, without_durations(answer))
}

fn without_durations(mut answer: Value) -> Value {
    if let Some(steps) = answer["steps"].as_array_mut() {
        for step in steps {
            let ms = step
                .as_object_mut()
                .unwrap()
                .remove("durationMs")
                .unwrap_or_else(|| panic!("no durationMs in {step}"));
            assert!(ms.as_f64().is_some_and(|ms| ms >= 0.0), "{ms}");
        }
    }
    answer
}

fn step(index: u32, command: &str, line: u32, body: &Value) -> Value {
    json!({"index": index, "command": command, "line": line, "body": body, "vars": {}})
}

fn dry_mail(subject: &str, body: &str) -> Value {
    json!({
        "dryRun": true, "command": "mail.send", "from": "hookflow@localhost",
        "to": ["name@company.tld"], "cc": [], "bcc": [], "subject": subject, "body": body
    })
}

/// A server with a webhook for `webhook.lead.created` and a listener that
/// keeps its events; answers the stored body of a receive of `payload`.
async fn stored_event(server: &Server, payload: &str) -> (String, Value) {
    let token = server.create_webhook("webhook.lead.created", &[]).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    add_listener(server, "keeper", "webhook.lead.created").await;
    let (status, id, _) = server.trigger(&token, payload, "").await;
    assert_eq!(status, StatusCode::OK);
    let body = stored_event_body(server, &id)
        .await
        .expect("the event is stored");
    (id, body)
}

/// Each seed's trace, for the run starting from `body` (a sample or a
/// stored event's body), and its final value.
fn seed_traces(body: &Value, payload: &str) -> Vec<(&'static str, Value)> {
    let payload_json = serde_json::to_string_pretty(&body["payload"]).unwrap();
    let mail = dry_mail("New lead was created!", payload);
    let message_mail = dry_mail("New lead was created!", &payload_json);
    let refused = "user 'anonymousUser' may not run mail.send; switch to a user holding 'mail.send' with iam.run.as";
    let mut failed = step(2, "mail.send", 4, body);
    failed["error"] = json!({"code": "permission_denied", "message": refused});
    vec![
        (
            HELLO,
            json!({
                "status": "ok",
                "value": payload.to_uppercase(),
                "steps": [step(1, "event.listen", 2, body), step(2, "body.set", 4, &json!(payload.to_uppercase()))],
            }),
        ),
        (
            SEED_MAIL,
            json!({
                "status": "ok",
                "value": mail,
                "steps": [step(1, "event.listen", 3, body), step(2, "iam.run.as", 7, body), step(3, "mail.send", 9, &mail)],
            }),
        ),
        (
            SEED_MESSAGE,
            json!({
                "status": "ok",
                "value": message_mail,
                "steps": [step(1, "message.receive", 3, body), step(2, "iam.run.as", 6, body), step(3, "mail.send", 8, &message_mail)],
            }),
        ),
        (
            SEED_ANONYMOUS_MAIL,
            json!({
                "status": "error",
                "value": null,
                "steps": [
                    step(1, "event.listen", 2, body),
                    failed,
                ],
                "error": {"code": "permission_denied", "message": refused, "step": "mail.send (step 2, line 4)"},
            }),
        ),
    ]
}

#[tokio::test]
async fn pipeline_test_traces_every_seed_on_a_sample_and_on_a_stored_event() {
    let server = Server::start().await;
    let payload = format!("lead {}", unique());
    let (id, stored) = stored_event(&server, &payload).await;
    let sample = sample_of(&payload);
    for (input, body, kind) in [
        (json!({"sample": sample}), &sample, "sample"),
        (json!({"correlationId": id}), &stored, "event"),
    ] {
        for (seed, want) in seed_traces(body, &payload) {
            let mut request = input.clone();
            request["pipeline"] = json!(seed);
            let (status, answer) = test_pipeline(&server, &request).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            let mut want = want.clone();
            want["pipeline"] = json!("pipeline.test");
            want["input"] = json!(kind);
            want["sideEffects"] = json!(false);
            assert_eq!(answer, want, "{seed}");
        }
    }
    // Nothing of the tests was recorded on the event: only its listener's outcome.
    let result = server.final_result(&id).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["value"]["correlationId"], id, "{result}");
}

#[tokio::test]
async fn pipeline_test_runs_a_stored_pipeline_and_takes_yaml_as_the_body() {
    let server = Server::start().await;
    // Stored under a key no webhook sends, so only the test runs it.
    let stored = HELLO.replace("webhook.lead.created", "webhook.never.sent");
    let (status, _) = server.put_pipeline("hello", &stored).await;
    assert_eq!(status, StatusCode::OK);
    let sample = sample_of("hi there");
    let (status, answer) =
        test_pipeline(&server, &json!({"name": "hello", "sample": sample})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["pipeline"], "hello");
    assert_eq!(answer["value"], "HI THERE");
    assert_eq!(
        answer["steps"][1],
        step(2, "body.set", 4, &json!("HI THERE"))
    );

    // The YAML as the body, the sample as a JSON text parameter (the CLI's `-f`).
    let res = client()
        .post(server.at("/api/v3/command/pipeline.test"))
        .query(&[("sample", sample.to_string())])
        .bearer_auth(ADMIN)
        .header("content-type", "application/yaml")
        .body(HELLO)
        .send()
        .await
        .unwrap();
    let (status, answer) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["pipeline"], "pipeline.test");
    assert_eq!(answer["value"], "HI THERE");
    let (status, listed) = server.command("pipeline.get", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "the given YAML was not stored"
    );
}

#[tokio::test]
async fn pipeline_test_refuses_bad_requests_with_codes() {
    let server = Server::start().await;
    let sample = json!({"sample": {"a": 1}});
    let cases = [
        (json!({"sample": {"a": 1}}), 400, "pipeline_missing"),
        (
            json!({"name": "hello", "pipeline": HELLO, "sample": 1}),
            400,
            "pipeline_ambiguous",
        ),
        (
            json!({"name": "nope", "sample": 1}),
            404,
            "pipeline_not_found",
        ),
        (
            json!({"pipeline": "pipeline:\n  - body.set: 1\n", "sample": 1}),
            400,
            "invalid_pipeline",
        ),
        (json!({"pipeline": HELLO}), 400, "input_missing"),
        (
            json!({"pipeline": HELLO, "sample": 1, "correlationId": "8e793988-a155-4989-bae1-ccd0ca199231"}),
            400,
            "input_ambiguous",
        ),
        (
            json!({"pipeline": HELLO, "correlationId": "8e793988-a155-4989-bae1-ccd0ca199231"}),
            404,
            "event_not_found",
        ),
        (
            json!({"pipeline": HELLO, "correlationId": "not-an-id"}),
            404,
            "event_not_found",
        ),
    ];
    for (body, want_status, want_code) in cases {
        let (status, answer) = post_json(&server, "pipeline.test", &body).await;
        assert_error(status, &answer, want_status, want_code);
    }
    let (status, answer) = post_json(&server, "pipeline.test", &sample).await;
    assert_error(status, &answer, 400, "pipeline_missing");
    let (status, answer) = server
        .command(
            "pipeline.test",
            &[("pipeline", HELLO), ("sample", "{not json")],
        )
        .await;
    assert_error(status, &answer, 400, "invalid_sample");
    let (status, answer) = post_json(
        &server,
        "pipeline.test",
        &json!({"pipeline": "pipeline:\n  - event.listen: a.b\n  - nope: 1\n", "sample": 1}),
    )
    .await;
    assert_error(status, &answer, 400, "invalid_pipeline");
    assert_eq!(answer["error"]["line"], 3);
}

#[tokio::test]
async fn pipeline_test_truncates_large_values_and_marks_them() {
    let server = Server::start().await;
    // A JSON text of 20 002 bytes: over the 16 KiB a value is shown whole.
    let big = "x".repeat(20_000);
    let pipeline = "pipeline:\n  - event.listen: a.b\n  - body.set: {value: {kept: small}}\n";
    let (status, answer) =
        test_pipeline(&server, &json!({"pipeline": pipeline, "sample": big})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let marker =
        json!({"truncated": true, "bytes": 20_002, "preview": format!("\"{}", "x".repeat(199))});
    assert_eq!(answer["steps"][0]["body"], marker);
    assert_eq!(answer["steps"][1]["body"], json!({"kept": "small"}));
    // At the bound: 16 384 bytes of JSON are shown whole.
    let at_bound = "x".repeat(16 * 1024 - 2);
    let echo = "pipeline:\n  - event.listen: a.b\n  - body.set: \"${body}\"\n";
    let (_, answer) = test_pipeline(&server, &json!({"pipeline": echo, "sample": at_bound})).await;
    assert_eq!(answer["steps"][0]["body"], json!(at_bound));
    assert_eq!(answer["value"], json!(at_bound));
    let over = format!("{at_bound}x");
    let (_, answer) = test_pipeline(&server, &json!({"pipeline": echo, "sample": over})).await;
    assert_eq!(answer["value"]["truncated"], true);
    assert_eq!(answer["value"]["bytes"], 16 * 1024 + 1);
}

#[tokio::test]
async fn pipeline_test_stops_a_runaway_pipeline_at_its_limits() {
    let server = Server::start_with(&[("HOOKFLOW_PIPELINE_BUDGET_BYTES", "1048576")]).await;
    let doubling = (0..40)
        .map(|_| "  - body.set: \"${body}${body}\"\n")
        .collect::<String>();
    let pipeline = format!("pipeline:\n  - event.listen: a.b\n{doubling}");
    let (status, answer) = test_pipeline(
        &server,
        &json!({"pipeline": pipeline, "sample": "0123456789abcdef"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "error");
    assert_eq!(answer["error"]["code"], "limit_exceeded", "{answer}");
    let steps = answer["steps"].as_array().unwrap();
    let last = steps.last().unwrap();
    assert_eq!(last["error"]["code"], "limit_exceeded");
    assert_eq!(
        answer["error"]["step"],
        format!("body.set (step {}, line {})", last["index"], last["line"])
    );
    assert!(steps.len() < 41, "stopped before the end: {}", steps.len());
    assert!(
        answer.to_string().len() < 512 * 1024,
        "the answer stays bounded"
    );
}

#[tokio::test]
async fn pipeline_test_sends_no_mail_in_a_dry_run_and_one_with_side_effects() {
    let Some((url, mail_dir)) = mail_sink() else {
        return;
    };
    let server = Server::start_with(&[
        ("HOOKFLOW_SMTP_URL", url.as_str()),
        ("HOOKFLOW_USERS", "mailer=mail.send"),
    ])
    .await;
    let marker = unique();
    let sample = sample_of(&marker);
    let mailed = |mail: &Value| mail["body"].as_str().is_some_and(|b| b.contains(&marker));

    let (status, answer) =
        test_pipeline(&server, &json!({"pipeline": SEED_MAIL, "sample": sample})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["value"], dry_mail("New lead was created!", &marker));
    assert!(
        mails_matching(&mail_dir, Duration::from_millis(500), mailed)
            .await
            .is_empty(),
        "a dry run sends no mail"
    );

    // Refused without the permission, with side effects too.
    let (_, answer) = test_pipeline(
        &server,
        &json!({"pipeline": SEED_ANONYMOUS_MAIL, "sample": sample, "sideEffects": true}),
    )
    .await;
    assert_eq!(answer["error"]["code"], "permission_denied", "{answer}");

    let (status, answer) = test_pipeline(
        &server,
        &json!({"pipeline": SEED_MAIL, "sample": sample, "sideEffects": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "ok", "{answer}");
    assert_eq!(answer["sideEffects"], true);
    assert_eq!(answer["value"], sample, "a real mail.send keeps the body");
    let mails = mails_matching(&mail_dir, Duration::from_secs(5), mailed).await;
    assert_eq!(mails.len(), 1, "one mail with side effects");
    assert_eq!(mails[0]["subject"], "New lead was created!");
    assert_eq!(mails[0]["rcptTos"], json!(["name@company.tld"]));
}

#[tokio::test]
async fn pipeline_test_calls_no_endpoint_in_a_dry_run_and_once_with_side_effects() {
    let fixture = OutgoingFixture::options()
        .server_env(&[ALLOW])
        .answering(Reply::json(200, &json!({"ok": true})))
        .start(|endpoint| {
            json!({
                "id": "notify-crm",
                "url": endpoint.url("/orders?apiKey=s3cret-query"),
                "method": "POST",
                "headers": {"Authorization": "Bearer s3cret-header"},
                "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            })
        })
        .await;
    let (server, endpoint) = (&fixture.server, &fixture.endpoint);
    // With an event's id, as a stored event has: a test still sends every time.
    let mut sample = sample_of(r#"{"order": 17}"#);
    sample["correlationId"] = json!("8e793988-a155-4989-bae1-ccd0ca199231");
    let masked_url = endpoint.url("/orders?apiKey=********");

    let (status, answer) =
        test_pipeline(server, &json!({"pipeline": SEED_WEBHOOK, "sample": sample})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let record = json!({
        "dryRun": true, "command": "webhook.send", "webhookId": "notify-crm", "async": false,
        "method": "POST", "url": masked_url,
        "headers": ["authorization", "content-type", "webhook-id", "webhook-signature", "webhook-timestamp"],
        "body": {"order": 17},
    });
    assert_eq!(answer["value"], record);
    assert_eq!(answer["steps"][2], step(3, "webhook.send", 5, &record));
    let text = answer.to_string();
    for secret in ["s3cret-query", "s3cret-header", "whsec_", "v1,"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(endpoint.requests().is_empty(), "a dry run calls nobody");
    let (_, recorded) = server
        .command("invocation.get", &[("webhookId", "notify-crm")])
        .await;
    assert_eq!(recorded, json!([]), "a dry run records no invocation");

    let (status, answer) = test_pipeline(
        server,
        &json!({"pipeline": SEED_WEBHOOK, "sample": sample, "sideEffects": "true"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["value"]["status"], 200, "{answer}");
    assert_eq!(answer["value"]["data"], json!({"ok": true}));
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1, "side effects call the endpoint once");
    assert_eq!(requests[0].json(), json!({"order": 17}));
    let (_, recorded) = server
        .command("invocation.get", &[("webhookId", "notify-crm")])
        .await;
    assert_eq!(recorded.as_array().unwrap().len(), 1);
    assert_eq!(recorded[0]["caller"], "pipeline:pipeline.test");
    // A second test run is not taken for a redelivery of the first: it calls again.
    let (_, again) = test_pipeline(
        server,
        &json!({"pipeline": SEED_WEBHOOK, "sample": sample, "sideEffects": true}),
    )
    .await;
    assert_eq!(again["value"]["status"], 200, "{again}");
    assert_ne!(
        again["value"]["referenceId"],
        answer["value"]["referenceId"]
    );
    assert_eq!(endpoint.requests().len(), 2);

    // Without the permission, no call either way.
    let anonymous = SEED_WEBHOOK.replace("  - iam.run.as: systemuser\n", "");
    let (_, answer) = test_pipeline(
        server,
        &json!({"pipeline": anonymous, "sample": sample, "sideEffects": true}),
    )
    .await;
    assert_eq!(answer["error"]["code"], "permission_denied", "{answer}");
    assert_eq!(endpoint.requests().len(), 2);
}

#[tokio::test]
async fn pipeline_test_works_from_the_cli_as_the_readme_shows() {
    let server = Server::start().await;
    let env = [
        ("HOOKFLOW_ADMIN_TOKEN", ADMIN),
        ("HOOKFLOW_URL", server.url.as_str()),
    ];
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), HELLO).unwrap();
    let sample = format!("sample={}", sample_of("from the cli"));
    let path = file.path().to_str().unwrap();
    let (code, out, err) = hookflow(&["command", "pipeline.test", "-f", path, &sample], &env);
    assert_eq!(code, 0, "{err}");
    let answer: Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(answer["value"], "FROM THE CLI", "{answer}");

    let (code, _, err) = hookflow(&["command", "pipeline.test", "name=nope", &sample], &env);
    assert_eq!(code, 1);
    assert!(err.contains("pipeline_not_found"), "{err}");
}
