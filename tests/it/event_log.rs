//! The event log over HTTP, on both backends: `event.list` (pages, filters,
//! statuses), `event.get`, retention apart from the result TTL, and
//! `event.replay`, which answers as `webhook.receive` does and really sends again.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Server, assert_error, client, json_of};
use crate::outgoing::OutgoingFixture;

/// A pipeline that keeps the event as its body: its result is the event as
/// pipelines see it.
fn keep(event_key: &str) -> String {
    format!("pipeline:\n  - event.listen:\n      eventKey: {event_key}\n")
}

/// A pipeline that fails at its second step on any body that is not JSON.
fn parse(event_key: &str) -> String {
    format!(
        "pipeline:
  - event.listen:
      eventKey: {event_key}
  - body.set:
      value: ${{@convert.fromJson(@convert.fromBase64(body.origin))}}
"
    )
}

async fn token_of(server: &Server, event_key: &str) -> String {
    server.create_webhook(event_key, &[]).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn put(server: &Server, name: &str, yaml: &str) {
    let (status, answer) = server.put_pipeline(name, yaml).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// Receives `body` and waits until its result is final; answers the id.
async fn received(server: &Server, token: &str, body: &str) -> String {
    let (status, id, answer) = server.trigger(token, body, "").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    if answer["status"] == "processing" {
        server.final_result(&id).await;
    }
    id
}

async fn list(server: &Server, params: &[(&str, &str)]) -> Value {
    let (status, page) = server.command("event.list", params).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

fn ids_of(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["correlationId"].as_str().unwrap().to_owned())
        .collect()
}

/// Every id of a listing, following `next` to the end.
async fn all_ids(server: &Server, params: &[(&str, &str)]) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut with = params.to_vec();
        if let Some(cursor) = &cursor {
            with.push(("cursor", cursor));
        }
        let page = list(server, &with).await;
        ids.extend(ids_of(&page));
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

async fn get(server: &Server, id: &str) -> (StatusCode, Value) {
    server.command("event.get", &[("correlationId", id)]).await
}

async fn received_at(server: &Server, id: &str) -> String {
    get(server, id).await.1["receivedAt"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_log_pages_newest_first_without_gaps_while_events_arrive() {
    let server = Server::start().await;
    let a = token_of(&server, "webhook.log.a").await;
    let b = token_of(&server, "webhook.log.b").await;
    put(&server, "keep-a", &keep("webhook.log.a")).await;
    let mut sent = Vec::new();
    for (i, token) in [&a, &b, &a, &a, &b, &a, &a].into_iter().enumerate() {
        sent.push(received(&server, token, &format!("{{\"n\":{i}}}")).await);
    }
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();

    let first = list(&server, &[("limit", "3")]).await;
    assert_eq!(ids_of(&first), newest_first[..3]);
    // Events arriving between pages shift nothing after the cursor.
    let late = received(&server, &a, "{\"late\":true}").await;
    let rest = {
        let cursor = first["next"].as_str().expect("a next page").to_owned();
        let mut ids = Vec::new();
        let mut cursor = Some(cursor);
        while let Some(at) = cursor {
            let page = list(&server, &[("limit", "3"), ("cursor", &at)]).await;
            ids.extend(ids_of(&page));
            cursor = page["next"].as_str().map(str::to_owned);
        }
        ids
    };
    assert_eq!(rest, newest_first[3..], "the rest, no gap, no repeat");
    let everything = all_ids(&server, &[("limit", "2")]).await;
    assert_eq!(everything[0], late);
    assert_eq!(everything[1..], newest_first[..]);
    assert_eq!(everything.iter().collect::<HashSet<_>>().len(), 8);

    // One entry, exactly: a summary, no payload.
    let page = list(&server, &[("limit", "1"), ("eventKey", "webhook.log.b")]).await;
    let entry = &page["events"][0];
    assert_eq!(
        entry,
        &json!({
            "correlationId": sent[4],
            "eventKey": "webhook.log.b",
            "receivedAt": entry["receivedAt"],
            "method": "POST",
            "contentType": "application/json",
            "size": 7,
            "status": "ok",
            "pipelines": {},
        })
    );
    let (_, got) = get(&server, &sent[4]).await;
    assert_eq!(entry["receivedAt"], got["receivedAt"]);
    assert!(page["next"].is_string(), "{page}");

    // By webhook: its token or its event key, never stored with the events.
    let of_b = vec![sent[4].clone(), sent[1].clone()];
    assert_eq!(
        all_ids(&server, &[("eventKey", "webhook.log.b")]).await,
        of_b
    );
    assert_eq!(all_ids(&server, &[("uuid", &b)]).await, of_b);
    assert_eq!(
        all_ids(&server, &[("uuid", &b), ("eventKey", "webhook.log.b")]).await,
        of_b
    );
    let of_a = all_ids(&server, &[("uuid", &a), ("limit", "200")]).await;
    assert_eq!(of_a.len(), 6);

    // By time: since inclusive, until exclusive.
    let since = received_at(&server, &sent[2]).await;
    let until = received_at(&server, &sent[5]).await;
    let ranged = all_ids(&server, &[("since", &since), ("until", &until)]).await;
    assert_eq!(
        ranged,
        vec![sent[4].clone(), sent[3].clone(), sent[2].clone()]
    );

    // By status.
    assert_eq!(all_ids(&server, &[("status", "ok")]).await, everything);
    assert!(all_ids(&server, &[("status", "error")]).await.is_empty());
    assert!(
        all_ids(&server, &[("status", "processing")])
            .await
            .is_empty()
    );
}

/// The status and pipelines of the newest event.
async fn newest_status(server: &Server) -> (Value, Value) {
    let page = list(server, &[]).await;
    (
        page["events"][0]["status"].clone(),
        page["events"][0]["pipelines"].clone(),
    )
}

/// Without a worker, events stay `processing` until the test records their
/// outcomes behind the server's back, as the worker would.
#[tokio::test]
async fn the_status_follows_the_pipelines_as_they_finish() {
    use hookflow_core::domain::{CorrelationId, PipelineOutcome};
    let server = Server::start_with(&[
        ("HOOKFLOW_WORKER_CONCURRENCY", "0"),
        ("HOOKFLOW_RECEIVE_WAIT_MS", "0"),
    ])
    .await;
    let token = token_of(&server, "webhook.log.status").await;
    put(&server, "first", &keep("webhook.log.status")).await;
    put(&server, "second", &keep("webhook.log.status")).await;
    let (_, id, answer) = server.trigger(&token, "{}", "").await;
    assert_eq!(answer["status"], "processing");
    assert_eq!(
        newest_status(&server).await,
        (
            json!("processing"),
            json!({"first": "processing", "second": "processing"})
        )
    );
    assert_eq!(
        all_ids(&server, &[("status", "processing")]).await,
        vec![id.clone()]
    );

    let storage = server.storage().await;
    let events = &storage.ports.events;
    let correlation_id = CorrelationId::parse(&id).unwrap();
    let ok = PipelineOutcome::Ok {
        value: json!(1),
        run: None,
    };
    events
        .record_outcome(&correlation_id, "first", &ok)
        .await
        .unwrap();
    assert_eq!(
        newest_status(&server).await,
        (
            json!("processing"),
            json!({"first": "ok", "second": "processing"})
        ),
        "one of two finished: still processing"
    );
    assert_eq!(
        all_ids(&server, &[("status", "processing")]).await,
        vec![id.clone()]
    );
    assert!(all_ids(&server, &[("status", "ok")]).await.is_empty());
    let failed = PipelineOutcome::Error {
        code: "step_failed".into(),
        message: "boom".into(),
        step: None,
        run: None,
    };
    events
        .record_outcome(&correlation_id, "second", &failed)
        .await
        .unwrap();
    assert_eq!(
        newest_status(&server).await,
        (json!("error"), json!({"first": "ok", "second": "error"}))
    );
    assert_eq!(
        all_ids(&server, &[("status", "error")]).await,
        vec![id.clone()]
    );
    assert!(
        all_ids(&server, &[("status", "processing")])
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn event_get_shows_the_event_as_pipelines_saw_it_and_how_each_ended() {
    let server = Server::start().await;
    let token = token_of(&server, "webhook.log.get").await;
    put(&server, "keep", &keep("webhook.log.get")).await;
    put(&server, "parse", &parse("webhook.log.get")).await;
    let id = received(&server, &token, "not JSON").await;
    let (status, got) = get(&server, &id).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let event = got["event"].clone();
    assert_eq!(event["correlationId"], id);
    assert_eq!(event["payload"]["method"], "POST");
    let pipelines = got["pipelines"].as_array().unwrap();
    let run_of = |p: &Value| {
        assert!(p["durationMs"].is_u64(), "{p}");
        p["durationMs"].clone()
    };
    assert_eq!(
        got,
        json!({
            "correlationId": id,
            "eventKey": "webhook.log.get",
            "receivedAt": event["receivedAt"],
            "status": "error",
            "event": event,
            "pipelines": [
                {
                    "pipeline": "keep",
                    "status": "ok",
                    // The pipeline kept its body: the event exactly as it saw it.
                    "value": event,
                    "durationMs": run_of(&pipelines[0]),
                    "attempts": 1,
                },
                {
                    "pipeline": "parse",
                    "status": "error",
                    "error": {
                        "code": "expression_failed",
                        "message": pipelines[1]["error"]["message"],
                        "step": "body.set (step 2, line 4)",
                    },
                    "durationMs": run_of(&pipelines[1]),
                    "attempts": 1,
                },
            ],
        })
    );
}

#[tokio::test]
async fn the_log_keeps_events_after_their_result_has_gone() {
    let server = Server::start_with(&[("HOOKFLOW_RESULT_TTL_SECONDS", "1")]).await;
    let token = token_of(&server, "webhook.log.kept").await;
    put(&server, "keep", &keep("webhook.log.kept")).await;
    let id = received(&server, &token, "{}").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, gone) = json_of(
        client()
            .get(server.at(&format!("/api/v3/result?correlationId={id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &gone, 410, "result_gone");
    let (status, got) = get(&server, &id).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["status"], "ok");
    assert_eq!(got["pipelines"][0]["status"], "ok");
    assert_eq!(all_ids(&server, &[]).await, vec![id.clone()]);
    // A replay of it is a new event with a result of its own.
    let (status, answer) = server
        .command("event.replay", &[("correlationId", &id)])
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "ok");
}

#[tokio::test]
async fn bad_filters_cursors_and_ids_get_4xx_with_codes() {
    let server = Server::start().await;
    let token = token_of(&server, "webhook.log.bad").await;
    token_of(&server, "webhook.log.other").await;
    put(&server, "keep", &keep("webhook.log.bad")).await;
    put(&server, "elsewhere", &keep("webhook.log.other")).await;
    let id = received(&server, &token, "{}").await;
    for (params, code) in [
        (vec![("status", "done")], "invalid_status"),
        (vec![("since", "yesterday")], "invalid_since"),
        (vec![("until", "2026-13-01T00:00:00Z")], "invalid_until"),
        (vec![("limit", "0")], "invalid_limit"),
        (vec![("limit", "201")], "invalid_limit"),
        (vec![("limit", "ten")], "invalid_limit"),
        (vec![("eventKey", "not a key!")], "invalid_event_key"),
        (vec![("cursor", "not-a-cursor!")], "invalid_cursor"),
        // Well-formed base64url, but not a position.
        (vec![("cursor", "eyJ0IjoieCJ9")], "invalid_cursor"),
        (vec![("cursor", &"A".repeat(300))], "invalid_cursor"),
        (
            vec![("uuid", &token), ("eventKey", "webhook.log.other")],
            "conflicting_filters",
        ),
    ] {
        let (status, answer) = server.command("event.list", &params).await;
        assert_error(status, &answer, 400, code);
    }
    // At the bound: a page of 200 is served.
    let (status, page) = server.command("event.list", &[("limit", "200")]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids_of(&page), vec![id.clone()]);
    assert!(
        page.get("next").is_none(),
        "no next on the last page: {page}"
    );
    let (status, answer) = server
        .command(
            "event.list",
            &[("uuid", "2f9c1a7e-0000-4000-8000-000000000000")],
        )
        .await;
    assert_error(status, &answer, 404, "webhook_not_found");

    let unknown = "2f9c1a7e-0000-4000-8000-000000000001";
    for params in [
        vec![("correlationId", unknown)],
        vec![("correlationId", "nope")],
    ] {
        let (status, answer) = server.command("event.get", &params).await;
        assert_error(status, &answer, 404, "event_not_found");
        let (status, answer) = server.command("event.replay", &params).await;
        assert_error(status, &answer, 404, "event_not_found");
    }
    for command in ["event.get", "event.replay"] {
        let (status, answer) = server.command(command, &[]).await;
        assert_error(status, &answer, 400, "correlation_id_missing");
    }
    for (pipeline, status, code) in [
        ("missing", 404, "pipeline_not_found"),
        ("elsewhere", 400, "pipeline_not_listening"),
        ("no spaces", 400, "invalid_name"),
    ] {
        let (got, answer) = server
            .command(
                "event.replay",
                &[("correlationId", &id), ("pipeline", pipeline)],
            )
            .await;
        assert_error(got, &answer, status, code);
    }
    assert_eq!(
        all_ids(&server, &[]).await,
        vec![id],
        "no refused replay was stored"
    );
}

#[tokio::test]
async fn a_replay_is_a_new_event_that_the_listening_pipelines_run_now() {
    let server = Server::start().await;
    let token = token_of(&server, "webhook.log.replay").await;
    put(&server, "keep", &keep("webhook.log.replay")).await;
    let id = received(&server, &token, "{\"order\":7}").await;
    let (_, original) = get(&server, &id).await;
    // A second listener, added after the event arrived, runs on the replay.
    put(&server, "also", &keep("webhook.log.replay")).await;

    let res = client()
        .post(server.at("/api/v3/command/event.replay"))
        .bearer_auth(crate::harness::ADMIN)
        .form(&[("correlationId", &id)])
        .send()
        .await
        .unwrap();
    let replay = res.headers()["pipeforce-result-correlationid"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, answer) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_ne!(replay, id);
    let (_, got) = get(&server, &replay).await;
    let event = got["event"].clone();
    assert_eq!(
        answer,
        json!({
            "statusCode": 200,
            "status": "ok",
            "value": {"also": event, "keep": event},
            "pollingRedirectEnabled": false,
            "correlationId": replay,
        })
    );
    assert_eq!(got["replayOf"], id);
    assert_eq!(event["correlationId"], replay);
    for same in ["origin", "payload"] {
        let mut original = original["event"][same].clone();
        let mut replayed = event[same].clone();
        if same == "payload" {
            // The new event has its own id only: body, headers and params are the same.
            original["headers"]
                .as_object_mut()
                .map(|h| h.remove("x-request-id"));
            replayed["headers"]
                .as_object_mut()
                .map(|h| h.remove("x-request-id"));
        }
        assert_eq!(replayed, original, "{same}");
    }
    let newest = list(&server, &[("limit", "1")]).await;
    assert_eq!(newest["events"][0]["replayOf"], id);
    assert_eq!(
        newest["events"][0]["pipelines"],
        json!({"also": "ok", "keep": "ok"})
    );

    // One pipeline only.
    let (status, answer) = server
        .command(
            "event.replay",
            &[("correlationId", &id), ("pipeline", "keep")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let only = answer["correlationId"].as_str().unwrap().to_owned();
    let (_, got) = get(&server, &only).await;
    assert_eq!(got["replayOf"], id);
    assert_eq!(got["pipelines"].as_array().unwrap().len(), 1);
    assert_eq!(got["pipelines"][0]["pipeline"], "keep");
    assert_eq!(answer["value"], got["event"]);
    assert_eq!(all_ids(&server, &[]).await, vec![only, replay, id]);
}

#[tokio::test]
async fn a_replay_sends_again() {
    let OutgoingFixture {
        server, endpoint, ..
    } = OutgoingFixture::start(
        |endpoint| json!({"id": "notify", "url": endpoint.url("/orders"), "method": "POST"}),
    )
    .await;
    let token = token_of(&server, "webhook.log.send").await;
    put(
        &server,
        "notify",
        "pipeline:
  - event.listen:
      eventKey: webhook.log.send
  - iam.run.as: systemuser
  - webhook.send:
      webhookId: notify
      data: ${@convert.fromJson(@convert.fromBase64(body.origin))}
",
    )
    .await;
    let id = received(&server, &token, "{\"order\":1}").await;
    assert_eq!(endpoint.requests().len(), 1);
    let (status, answer) = server
        .command("event.replay", &[("correlationId", &id)])
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let replay = answer["correlationId"].as_str().unwrap().to_owned();
    if answer["status"] == "processing" {
        server.final_result(&replay).await;
    }
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 2, "the replay called the endpoint again");
    assert_eq!(requests[1].json(), json!({"order": 1}));
}
