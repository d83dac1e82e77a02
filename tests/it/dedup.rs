//! Duplicate deliveries (`webhook.put` `dedup`) over HTTP, on both backends: a
//! repeat within the window is answered with the first call's event and
//! result, marked `hookflow-duplicate: true`, and is neither stored nor run.

use std::time::Duration;

use futures_util::future::join_all;
use hookflow_core::testkit::endpoint::Reply;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{
    ADMIN, Backend, Server, assert_error, backend, client, json_of, stored_event_ids,
};
use crate::outgoing::{OutgoingFixture, post_json};

const RECEIVE: &str = "/api/v3/webhook.receive";

/// One delivery's answer: status, correlation id header, whether it is marked
/// a duplicate, and the JSON.
struct Answer {
    status: StatusCode,
    correlation_id: String,
    duplicate: bool,
    json: Value,
}

async fn deliver(server: &Server, token: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut req = client()
        .post(server.at(RECEIVE))
        .header("token", token)
        .header("content-type", "application/json");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.body(body.to_owned()).send().await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let correlation_id = header("pipeforce-result-correlationid").unwrap_or_default();
    let duplicate = match header("hookflow-duplicate").as_deref() {
        None => false,
        Some("true") => true,
        Some(other) => panic!("hookflow-duplicate: {other}"),
    };
    let (status, json) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["correlationId"], correlation_id.as_str(), "{json}");
    Answer {
        status,
        correlation_id,
        duplicate,
        json,
    }
}

/// Creates a webhook with `dedup` (a JSON object in a JSON body); its token.
async fn webhook_with(server: &Server, event_key: &str, settings: Value) -> String {
    let (status, answer) = put_webhook(server, json!({"eventKey": event_key}), settings).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["uuid"].as_str().unwrap().to_owned()
}

async fn put_webhook(server: &Server, mut fields: Value, settings: Value) -> (StatusCode, Value) {
    for (name, value) in settings.as_object().unwrap() {
        fields[name] = value.clone();
    }
    json_of(
        client()
            .post(server.at("/api/v3/command/webhook.put"))
            .bearer_auth(ADMIN)
            .json(&fields)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// A pipeline that sends each event's body to the outgoing webhook `count-runs`.
fn counting_pipeline(event_key: &str) -> String {
    format!(
        "pipeline:
  - event.listen:
      eventKey: {event_key}
  - iam.run.as: systemuser
  - webhook.send:
      webhookId: count-runs
      data: ${{@convert.fromJson(@convert.fromBase64(body.origin))}}
"
    )
}

/// A server whose pipeline on `event_key` calls a recording endpoint once per
/// run (answering `reply`), and the token of a webhook with `dedup`.
async fn counted_runs(
    env: &[(&'static str, &'static str)],
    reply: Reply,
    event_key: &str,
    dedup: Value,
) -> (OutgoingFixture, String) {
    let mut server_env = vec![crate::outgoing::ALLOW];
    server_env.extend_from_slice(env);
    let fixture = OutgoingFixture::options()
        .server_env(&server_env)
        .answering(reply)
        .start(
            |endpoint| json!({"id": "count-runs", "url": endpoint.url("/runs"), "method": "POST"}),
        )
        .await;
    let token = webhook_with(&fixture.server, event_key, json!({ "dedup": dedup })).await;
    let (status, stored) = fixture
        .server
        .put_pipeline("count-runs", &counting_pipeline(event_key))
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    (fixture, token)
}

#[tokio::test]
async fn thirty_two_racing_copies_store_one_event_and_run_it_once() {
    let (fixture, token) = counted_runs(
        &[],
        Reply::json(200, &json!({"run": 1})),
        "webhook.dedup.race",
        json!({"header": "webhook-id"}),
    )
    .await;
    let server = &fixture.server;
    let body = r#"{"order":17}"#;
    let copies = join_all((0..32).map(|_| {
        deliver(
            server,
            &token,
            &[("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")],
            body,
        )
    }))
    .await;
    let first = copies[0].correlation_id.clone();
    assert!(
        copies.iter().all(|a| a.correlation_id == first),
        "one correlation id for all copies"
    );
    assert_eq!(
        copies.iter().filter(|a| a.duplicate).count(),
        31,
        "all but one are duplicates"
    );
    let result = server.final_result(&first).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["value"]["data"], json!({"run": 1}), "{result}");
    // Runs of stored copies would still be under way: give them time to show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        fixture.endpoint.requests().len(),
        1,
        "the pipeline ran once"
    );
    if backend() == Backend::Embedded {
        assert_eq!(stored_event_ids(&server.database()).len(), 1, "one event");
    }
    // Every copy that saw the result finished carries it.
    for copy in copies.iter().filter(|a| a.json["status"] != "processing") {
        assert_eq!(copy.json["value"], result["value"], "{}", copy.json);
    }

    // Another delivery id is another event, run again.
    let other = deliver(server, &token, &[("webhook-id", "msg_other")], body).await;
    assert!(!other.duplicate);
    assert_ne!(other.correlation_id, first);
    server.final_result(&other.correlation_id).await;
    assert_eq!(fixture.endpoint.requests().len(), 2);
}

#[tokio::test]
async fn a_repeat_waits_for_the_first_result_and_answers_with_it() {
    // The pipeline's call takes 1.5 s; a receive waits up to 10 s for its result.
    let (fixture, token) = counted_runs(
        &[("HOOKFLOW_RECEIVE_WAIT_MS", "10000")],
        Reply::json(200, &json!({"slow": true})).delay(Duration::from_millis(1500)),
        "webhook.dedup.wait",
        json!({"header": "X-GitHub-Delivery"}),
    )
    .await;
    let server = &fixture.server;
    let delivery = [("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")];
    let (first, repeat) = tokio::join!(deliver(server, &token, &delivery, r#"{"n":1}"#), async {
        // Sent while the first one's pipeline is still running.
        tokio::time::sleep(Duration::from_millis(300)).await;
        deliver(server, &token, &delivery, r#"{"n":1}"#).await
    });
    assert!(!first.duplicate);
    assert!(repeat.duplicate);
    assert_eq!(repeat.correlation_id, first.correlation_id);
    assert_eq!(first.json["status"], "ok", "{}", first.json);
    assert_eq!(
        repeat.json, first.json,
        "the repeat carries the first result"
    );
    assert_eq!(repeat.json["value"]["data"], json!({"slow": true}));
    assert_eq!(
        fixture.endpoint.requests().len(),
        1,
        "the pipeline ran once"
    );
}

#[tokio::test]
async fn a_json_pointer_key_with_a_short_window() {
    let server = Server::start().await;
    let token = webhook_with(
        &server,
        "webhook.dedup.stripe",
        json!({"dedup": {"jsonPointer": "/id", "windowSeconds": 2}}),
    )
    .await;
    let event = |id: &str, note: &str| {
        json!({"id": id, "object": "event", "type": "charge.succeeded", "note": note}).to_string()
    };
    let first = deliver(&server, &token, &[], &event("evt_1", "a")).await;
    assert!(!first.duplicate);
    assert_eq!(first.json["status"], "ok", "{}", first.json);
    // The key is the id alone: a retry whose other fields differ is the same delivery.
    let repeat = deliver(&server, &token, &[], &event("evt_1", "b")).await;
    assert!(repeat.duplicate);
    assert_eq!(repeat.correlation_id, first.correlation_id);
    assert_eq!(repeat.json, first.json);

    // A body without the key is not deduplicated: each call is an event.
    let keyless = r#"{"object":"event","type":"ping"}"#;
    let a = deliver(&server, &token, &[], keyless).await;
    let b = deliver(&server, &token, &[], keyless).await;
    assert!(!a.duplicate && !b.duplicate);
    assert_ne!(a.correlation_id, b.correlation_id);
    let not_json = deliver(&server, &token, &[], "evt_1").await;
    assert!(!not_json.duplicate);

    let second = deliver(&server, &token, &[], &event("evt_2", "a")).await;
    assert!(!second.duplicate, "another key is another event");
    assert_ne!(second.correlation_id, first.correlation_id);

    // After the window, the same key is a new event.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let later = deliver(&server, &token, &[], &event("evt_1", "c")).await;
    assert!(!later.duplicate, "the window has passed");
    assert_ne!(later.correlation_id, first.correlation_id);
    if backend() == Backend::Embedded {
        let stored = stored_event_ids(&server.database());
        assert_eq!(
            stored.len(),
            6,
            "first, two keyless, not JSON, second, later"
        );
        assert!(stored.contains(&first.correlation_id));
    }
}

#[tokio::test]
async fn a_repeat_with_a_bad_signature_is_refused_before_dedup() {
    let server = Server::start().await;
    let secret = "It's a Secret to Everybody";
    let token = webhook_with(
        &server,
        "webhook.dedup.github",
        json!({
            "verify": {"scheme": "github", "secret": secret},
            "dedup": {"header": "X-GitHub-Delivery"},
        }),
    )
    .await;
    let good = (
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    );
    let bad = (
        "X-Hub-Signature-256",
        "sha256=0000000000000000000000000000000000000000000000000000000000000000",
    );
    let delivery = ("X-GitHub-Delivery", "d-1");

    // A forged call takes no claim: the genuine one after it is new.
    let res = client()
        .post(server.at(RECEIVE))
        .header("token", &token)
        .header(bad.0, bad.1)
        .header(delivery.0, delivery.1)
        .body("Hello, World!")
        .send()
        .await
        .unwrap();
    let (status, answer) = json_of(res).await;
    assert_error(status, &answer, 401, "signature_invalid");
    let first = deliver(&server, &token, &[good, delivery], "Hello, World!").await;
    assert!(!first.duplicate, "a refused call claimed nothing");

    // A repeat that does not verify is refused, not answered as a duplicate.
    let res = client()
        .post(server.at(RECEIVE))
        .header("token", &token)
        .header(bad.0, bad.1)
        .header(delivery.0, delivery.1)
        .body("Hello, World!")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("hookflow-duplicate").is_none());
    assert!(
        res.headers()
            .get("pipeforce-result-correlationid")
            .is_none()
    );
    let (status, answer) = json_of(res).await;
    assert_error(status, &answer, 401, "signature_invalid");

    let repeat = deliver(&server, &token, &[good, delivery], "Hello, World!").await;
    assert!(repeat.duplicate);
    assert_eq!(repeat.correlation_id, first.correlation_id);
    assert_eq!(repeat.status, StatusCode::OK);
}

#[tokio::test]
async fn dedup_is_validated_at_its_bounds_shown_and_removable() {
    let server = Server::start().await;
    for bad in [
        json!({"header": "webhook-id", "windowSeconds": 0}),
        json!({"header": "webhook-id", "windowSeconds": 604_801}),
        json!({"header": "webhook-id", "jsonPointer": "/id"}),
        json!({}),
        json!({"windowSeconds": 60}),
        json!({"jsonPointer": "id"}),
        json!({"header": "Webhook Id"}),
        json!({"header": "webhook-id", "scope": "all"}),
        json!("webhook-id"),
    ] {
        let (status, answer) = put_webhook(
            &server,
            json!({"eventKey": "webhook.dedup.bad"}),
            json!({ "dedup": bad }),
        )
        .await;
        assert_error(status, &answer, 400, "invalid_dedup");
    }
    let (_, all) = server.command("webhook.get", &[]).await;
    assert_eq!(all, json!([]), "nothing was created");

    for (window, event_key) in [
        (1, "webhook.dedup.shortest"),
        (604_800, "webhook.dedup.longest"),
    ] {
        let (status, created) = put_webhook(
            &server,
            json!({"eventKey": event_key}),
            json!({"dedup": {"header": "Idempotency-Key", "windowSeconds": window}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{created}");
        assert_eq!(
            created["dedup"],
            json!({"header": "idempotency-key", "windowSeconds": window})
        );
    }

    // A form caller sends the object as JSON text; the default window is a day.
    let created = server
        .create_webhook(
            "webhook.dedup.form",
            &[("dedup", r#"{"jsonPointer":"/id"}"#)],
        )
        .await;
    assert_eq!(
        created["dedup"],
        json!({"jsonPointer": "/id", "windowSeconds": 86_400})
    );
    let token = created["uuid"].as_str().unwrap();
    let (_, shown) = server.command("webhook.get", &[("uuid", token)]).await;
    assert_eq!(shown["dedup"], created["dedup"]);
    let (_, all) = server.command("webhook.get", &[]).await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|w| w["dedup"].is_object())
    );

    // Another change keeps it; JSON null removes it, and so does empty text.
    let (status, changed) = put_webhook(
        &server,
        json!({"uuid": token}),
        json!({"description": "kept"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["dedup"], created["dedup"]);
    let (status, changed) =
        put_webhook(&server, json!({"uuid": token}), json!({"dedup": null})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert!(changed.get("dedup").is_none(), "{changed}");
    let a = deliver(&server, token, &[], r#"{"id":"evt_1"}"#).await;
    let b = deliver(&server, token, &[], r#"{"id":"evt_1"}"#).await;
    assert!(!b.duplicate);
    assert_ne!(a.correlation_id, b.correlation_id);

    let (status, _) = post_json(
        &server,
        "webhook.put",
        &json!({"uuid": token, "dedup": {"jsonPointer": "/id"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, changed) = server
        .command("webhook.put", &[("uuid", token), ("dedup", "")])
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert!(changed.get("dedup").is_none(), "{changed}");
}

#[tokio::test]
async fn a_repeat_after_the_first_result_expired_is_still_a_duplicate() {
    // Results live 1 s here; the key is remembered for a minute.
    let server = Server::start_with(&[("HOOKFLOW_RESULT_TTL_SECONDS", "1")]).await;
    let token = webhook_with(
        &server,
        "webhook.dedup.expired",
        json!({"dedup": {"header": "webhook-id", "windowSeconds": 60}}),
    )
    .await;
    let (status, stored) = server
        .put_pipeline(
            "done",
            "pipeline:\n  - event.listen:\n      eventKey: webhook.dedup.expired\n  - body.set:\n      value: done\n",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let delivery = [("webhook-id", "msg_expired")];
    let first = deliver(&server, &token, &delivery, "{}").await;
    assert_eq!(first.json["value"], "done", "{}", first.json);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let repeat = deliver(&server, &token, &delivery, "{}").await;
    assert!(repeat.duplicate);
    assert_eq!(repeat.correlation_id, first.correlation_id);
    // Not `processing`, which would never end: taken, with no result kept.
    assert_eq!(repeat.json["status"], "ok", "{}", repeat.json);
    assert_eq!(repeat.json["value"], Value::Null);
}
