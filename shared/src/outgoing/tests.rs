//! Service tests on memory ports with a scripted transport: what is recorded,
//! when a delivery is retried, and that a re-run pipeline step calls only once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::OutgoingError;
use super::registry;
use super::request::build_request;
use super::schedule::RetrySchedule;
use super::service::{Caller, Outgoing};
use super::settings::OutgoingSettings;
use super::trigger::{Trigger, prepare};
use crate::domain::outgoing::{InvocationState, OutgoingWebhook, ReferenceId};
use crate::domain::{Job, Timestamp};
use crate::error::StoreError;
use crate::pipeline::Pipeline;
use crate::pipeline::budget::RunLimits;
use crate::pipeline::commands::Services;
use crate::pipeline::users::Users;
use crate::ports::{CallError, OutgoingRequest, OutgoingResponse, Transport};
use crate::ports::{Disposition, OutgoingStore, Ports, StoreResult};

/// Answers from a script and records what it was asked to send.
#[derive(Default)]
struct ScriptedTransport {
    script: Mutex<VecDeque<Result<OutgoingResponse, CallError>>>,
    sent: Mutex<Vec<OutgoingRequest>>,
}

impl ScriptedTransport {
    fn answering(answers: Vec<Result<OutgoingResponse, CallError>>) -> Arc<Self> {
        Arc::new(ScriptedTransport {
            script: Mutex::new(answers.into()),
            sent: Mutex::default(),
        })
    }

    fn sent(&self) -> Vec<OutgoingRequest> {
        self.sent.lock().unwrap().clone()
    }
}

fn reply(status: u16, body: &str) -> Result<OutgoingResponse, CallError> {
    Ok(OutgoingResponse {
        status,
        headers: HeaderMap::new(),
        body: Bytes::from(body.to_owned()),
    })
}

#[async_trait]
impl Transport for ScriptedTransport {
    async fn call(&self, request: OutgoingRequest) -> Result<OutgoingResponse, CallError> {
        self.sent.lock().unwrap().push(request);
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| reply(200, "{}"))
    }
}

fn settings(schedule: &str) -> OutgoingSettings {
    OutgoingSettings {
        retry_schedule: RetrySchedule::parse(schedule).unwrap(),
        ..OutgoingSettings::default()
    }
}

async fn setup(
    answers: Vec<Result<OutgoingResponse, CallError>>,
    schedule: &str,
) -> (Ports, Arc<ScriptedTransport>, Outgoing) {
    setup_with(answers, &settings(schedule)).await
}

async fn setup_with(
    answers: Vec<Result<OutgoingResponse, CallError>>,
    settings: &OutgoingSettings,
) -> (Ports, Arc<ScriptedTransport>, Outgoing) {
    let ports = Ports::memory();
    let transport = ScriptedTransport::answering(answers);
    let outgoing = Outgoing::new(
        ports.outgoing.clone(),
        ports.invocations.clone(),
        ports.queue.clone(),
        transport.clone(),
        settings,
    );
    let registration: Map<String, Value> = serde_json::from_value(json!({
        "id": "crm",
        "url": "https://crm.example/hook?fixed=1",
        "method": "POST",
        "headers": {"Authorization": "Bearer prefilled", "X-Tenant": ""},
        "queryParams": ["page"],
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }))
    .unwrap();
    let webhook = registry::registration_from_json(
        &registration,
        None,
        Timestamp::now(),
        60,
        outgoing.guard(),
    )
    .unwrap();
    ports.outgoing.put_outgoing(&webhook).await.unwrap();
    (ports, transport, outgoing)
}

fn trigger(body: Value) -> Trigger {
    Trigger::from_json(body.as_object().unwrap()).unwrap()
}

#[tokio::test]
async fn a_call_is_sent_as_registered_and_recorded() {
    let (ports, transport, outgoing) = setup(vec![reply(201, r#"{"id": 7}"#)], "").await;
    let answer = outgoing
        .send(
            &trigger(json!({"webhookId": "crm", "data": {"a": 1}, "headers": {"x-tenant": "t1"}, "queryParams": {"page": 2}})),
            &Caller::Admin,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        answer.to_json(),
        json!({"referenceId": answer.reference_id.to_string(), "status": 201, "data": {"id": 7}, "error": false})
    );
    let sent = transport.sent();
    assert_eq!(sent.len(), 1);
    let request = &sent[0];
    assert_eq!(request.url, "https://crm.example/hook?fixed=1&page=2");
    assert_eq!(request.headers["authorization"], "Bearer prefilled");
    assert_eq!(request.headers["x-tenant"], "t1");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(
        request.headers["webhook-id"],
        answer.reference_id.to_string().as_str()
    );
    assert_eq!(request.body, Bytes::from_static(br#"{"a":1}"#));

    let record = ports
        .invocations
        .get_invocation(&answer.reference_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, InvocationState::Succeeded);
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(
        record.pending, None,
        "a synchronous call keeps nothing to resend"
    );
    let shown = record.to_api_json().to_string();
    assert!(
        !shown.contains("prefilled") && !shown.contains("t1"),
        "{shown}"
    );
}

#[tokio::test]
async fn refusals_send_and_record_nothing() {
    let (ports, transport, outgoing) = setup(vec![], "").await;
    for (body, code) in [
        (json!({"webhookId": "nope"}), "outgoing_webhook_not_found"),
        (
            json!({"webhookId": "crm", "queryParams": {"other": 1}}),
            "query_param_not_allowed",
        ),
        (
            json!({"webhookId": "crm", "headers": {"X-Other": "x"}}),
            "header_not_allowed",
        ),
        (
            json!({"webhookId": "crm", "headers": {"Authorization": "x"}}),
            "header_not_allowed",
        ),
    ] {
        let err = outgoing
            .send(&trigger(body), &Caller::Admin, None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
    }
    assert!(transport.sent().is_empty());
    assert!(
        ports
            .invocations
            .list_invocations("crm", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Takes the one queued delivery job.
async fn queued_delivery(ports: &Ports) -> ReferenceId {
    let deliveries = ports
        .queue
        .receive_jobs(10, Duration::from_millis(10), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 1);
    ports
        .queue
        .delete_job(&deliveries[0].receipt)
        .await
        .unwrap();
    match &deliveries[0].job().unwrap() {
        Job::Delivery(d) => d.reference_id,
        other => panic!("expected a delivery, got {other:?}"),
    }
}

/// What the queue does once a delivery's delay has passed: it hands the job
/// back when its `nextAttemptAt` has come.
async fn when_due(ports: &Ports, id: &ReferenceId) {
    let mut record = ports.invocations.get_invocation(id).await.unwrap().unwrap();
    record.next_attempt_at = record.next_attempt_at.map(|_| Timestamp::now());
    ports.invocations.put_invocation(&record).await.unwrap();
}

#[tokio::test]
async fn async_deliveries_retry_on_schedule_and_honour_retry_after() {
    let mut busy = HeaderMap::new();
    busy.insert(http::header::RETRY_AFTER, "120".parse().unwrap());
    let answers = vec![
        reply(500, "down"),
        Ok(OutgoingResponse {
            status: 429,
            headers: busy,
            body: Bytes::new(),
        }),
        reply(200, "ok"),
    ];
    let (ports, transport, outgoing) = setup(answers, "1s,1s,1s").await;
    let answer = outgoing
        .send(
            &trigger(json!({"webhookId": "crm", "data": "hi", "async": true})),
            &Caller::Admin,
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.to_json()["status"], "processing");
    assert!(
        transport.sent().is_empty(),
        "nothing is sent before the worker runs"
    );
    let id = queued_delivery(&ports).await;
    assert_eq!(id, answer.reference_id);

    let Disposition::RetryAfter(first) = outgoing.deliver(&id).await else {
        panic!("a 500 is retried")
    };
    assert!(first >= Duration::from_millis(900) && first <= Duration::from_millis(1100));
    when_due(&ports, &id).await;
    let Disposition::RetryAfter(second) = outgoing.deliver(&id).await else {
        panic!("a 429 is retried")
    };
    assert!(
        second >= Duration::from_secs(120),
        "Retry-After wins: {second:?}"
    );
    when_due(&ports, &id).await;
    assert_eq!(outgoing.deliver(&id).await, Disposition::Done);
    assert_eq!(
        outgoing.deliver(&id).await,
        Disposition::Done,
        "finished: a redelivery does nothing"
    );
    assert_eq!(transport.sent().len(), 3);

    let record = ports
        .invocations
        .get_invocation(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, InvocationState::Succeeded);
    let statuses: Vec<u16> = record.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [500, 429, 200]);
    assert_eq!(record.data, json!("ok"));
    assert_eq!(
        record.pending, None,
        "the request is dropped once delivered"
    );
    let ids: Vec<_> = transport
        .sent()
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert!(
        ids.iter().all(|i| i == ids[0].as_bytes()),
        "one webhook-id for every attempt"
    );
}

/// SQS hides a message for at most 12 hours from its receive, so a longer wait
/// brings the delivery back early: it is released for the rest, unattempted.
#[tokio::test]
async fn a_delivery_back_before_its_time_is_released_again_without_an_attempt() {
    let mut busy = HeaderMap::new();
    busy.insert(http::header::RETRY_AFTER, "43200".parse().unwrap());
    let answers = vec![Ok(OutgoingResponse {
        status: 503,
        headers: busy,
        body: Bytes::new(),
    })];
    let (ports, transport, outgoing) = setup(answers, "5s").await;
    let id = outgoing
        .send(
            &trigger(json!({"webhookId": "crm", "async": true})),
            &Caller::Admin,
            None,
        )
        .await
        .unwrap()
        .reference_id;
    queued_delivery(&ports).await;
    let Disposition::RetryAfter(asked) = outgoing.deliver(&id).await else {
        panic!("a 503 is retried")
    };
    assert_eq!(asked, Duration::from_secs(43_200), "Retry-After: 12 h");

    // Back after the 11 h 40 min SQS allowed: the rest is waited out, no call made.
    let mut record = ports
        .invocations
        .get_invocation(&id)
        .await
        .unwrap()
        .unwrap();
    record.next_attempt_at = Some(Timestamp(Timestamp::now().0 + 20 * 60 * 1000));
    ports.invocations.put_invocation(&record).await.unwrap();
    let Disposition::RetryAfter(rest) = outgoing.deliver(&id).await else {
        panic!("an early delivery is released again")
    };
    assert!(
        rest > Duration::from_secs(19 * 60) && rest <= Duration::from_secs(20 * 60),
        "{rest:?}"
    );
    assert_eq!(transport.sent().len(), 1, "no attempt before its time");

    // Due now (queues count whole seconds, so a second early counts as due).
    let mut record = ports
        .invocations
        .get_invocation(&id)
        .await
        .unwrap()
        .unwrap();
    record.next_attempt_at = Some(Timestamp(Timestamp::now().0 + 900));
    ports.invocations.put_invocation(&record).await.unwrap();
    assert_eq!(outgoing.deliver(&id).await, Disposition::Done);
    assert_eq!(transport.sent().len(), 2);
}

/// A queue that drops messages after its retention: a `Retry-After` may not
/// push the next attempt past it.
#[tokio::test]
async fn retry_after_stops_short_of_the_queue_retention() {
    let mut busy = HeaderMap::new();
    busy.insert(http::header::RETRY_AFTER, "43200".parse().unwrap());
    let answers = vec![Ok(OutgoingResponse {
        status: 503,
        headers: busy,
        body: Bytes::new(),
    })];
    let settings = OutgoingSettings {
        queue_retention: Some(Duration::from_secs(3 * 3600)),
        ..settings("5s")
    };
    let (ports, _, outgoing) = setup_with(answers, &settings).await;
    let id = outgoing
        .send(
            &trigger(json!({"webhookId": "crm", "async": true})),
            &Caller::Admin,
            None,
        )
        .await
        .unwrap()
        .reference_id;
    queued_delivery(&ports).await;
    let Disposition::RetryAfter(delay) = outgoing.deliver(&id).await else {
        panic!("a 503 is retried")
    };
    // Kept 3 h, less the hour the last attempt must leave.
    assert!(
        delay <= Duration::from_secs(2 * 3600) && delay > Duration::from_secs(2 * 3600 - 60),
        "{delay:?}"
    );
}

#[tokio::test]
async fn exhausted_deliveries_fail_and_gone_endpoints_are_disabled() {
    let (ports, _, outgoing) = setup(vec![reply(500, ""), reply(502, "")], "1s").await;
    let id = outgoing
        .send(
            &trigger(json!({"webhookId": "crm", "async": true})),
            &Caller::Admin,
            None,
        )
        .await
        .unwrap()
        .reference_id;
    queued_delivery(&ports).await;
    assert!(matches!(
        outgoing.deliver(&id).await,
        Disposition::RetryAfter(_)
    ));
    when_due(&ports, &id).await;
    assert_eq!(outgoing.deliver(&id).await, Disposition::Done);
    let record = ports
        .invocations
        .get_invocation(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, InvocationState::Failed);
    assert!(
        record
            .error_message
            .as_deref()
            .unwrap()
            .starts_with("gave up after 2 attempts"),
        "{:?}",
        record.error_message
    );

    let (ports, _, outgoing) = setup(vec![reply(410, "")], "1s,1s").await;
    let answer = outgoing
        .send(&trigger(json!({"webhookId": "crm"})), &Caller::Admin, None)
        .await
        .unwrap();
    assert_eq!((answer.status, answer.error), (Some(410), true));
    let webhook = ports.outgoing.get_outgoing("crm").await.unwrap().unwrap();
    assert!(!webhook.enabled);
    let err = outgoing
        .send(&trigger(json!({"webhookId": "crm"})), &Caller::Admin, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "outgoing_webhook_disabled");
}

#[tokio::test]
async fn a_rerun_pipeline_step_calls_once() {
    let (ports, transport, outgoing) = setup(vec![reply(200, r#"{"ok":true}"#)], "").await;
    let services = Services {
        users: Users::default(),
        mailer: None,
        mail_from: "a@b".into(),
        outgoing: Some(Arc::new(outgoing)),
        effects: Some(ports.events.clone()),
    };
    let pipeline = Pipeline::compile(
        "notify",
        "pipeline:\n  - event.listen: webhook.lead.created\n  - iam.run.as: systemuser\n  - webhook.send:\n      webhookId: crm\n      data: \"${body.payload}\"\n",
        &Users::default(),
    )
    .unwrap();
    let event = json!({"correlationId": "c-1", "payload": {"name": "Ada"}});
    let first = pipeline
        .run(event.clone(), &services, RunLimits::default())
        .await
        .unwrap();
    let second = pipeline
        .run(event, &services, RunLimits::default())
        .await
        .unwrap();
    assert_eq!(first, second, "the second run reads the first run's answer");
    assert_eq!(first["status"], 200);
    assert_eq!(first["data"], json!({"ok": true}));
    assert_eq!(transport.sent().len(), 1, "the endpoint was called once");
    let id = ReferenceId::parse(first["referenceId"].as_str().unwrap()).unwrap();
    let record = ports
        .invocations
        .get_invocation(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.caller, "pipeline:notify");
    assert_eq!(record.correlation_id.as_deref(), Some("c-1"));

    let anonymous = Pipeline::compile(
        "notify",
        "pipeline:\n  - event.listen: webhook.lead.created\n  - webhook.send: crm\n",
        &Users::default(),
    )
    .unwrap();
    let denied = anonymous
        .run(json!({}), &services, RunLimits::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code, "permission_denied");
}

/// Registrations whose every read fails with the error `failure` makes.
struct FailingRegistrations(fn() -> StoreError);

#[async_trait]
impl OutgoingStore for FailingRegistrations {
    async fn put_outgoing(&self, _webhook: &OutgoingWebhook) -> StoreResult<()> {
        Err((self.0)())
    }
    async fn get_outgoing(&self, _id: &str) -> StoreResult<Option<OutgoingWebhook>> {
        Err((self.0)())
    }
    async fn list_outgoing(&self) -> StoreResult<Vec<OutgoingWebhook>> {
        Err((self.0)())
    }
    async fn delete_outgoing(&self, _id: &str) -> StoreResult<bool> {
        Err((self.0)())
    }
}

#[tokio::test]
async fn a_pipeline_step_retries_a_store_outage_but_not_an_unreadable_registration() {
    let pipeline = Pipeline::compile(
        "notify",
        "pipeline:\n  - event.listen: webhook.lead.created\n  - iam.run.as: systemuser\n  - webhook.send: crm\n",
        &Users::default(),
    )
    .unwrap();
    let run_with = |failure: fn() -> StoreError| {
        let ports = Ports::memory();
        let outgoing = Outgoing::new(
            Arc::new(FailingRegistrations(failure)),
            ports.invocations.clone(),
            ports.queue.clone(),
            ScriptedTransport::answering(vec![]),
            &settings(""),
        );
        let services = Services {
            users: Users::default(),
            mailer: None,
            mail_from: "a@b".into(),
            outgoing: Some(Arc::new(outgoing)),
            effects: None,
        };
        let pipeline = &pipeline;
        async move {
            pipeline
                .run(json!({}), &services, RunLimits::default())
                .await
                .unwrap_err()
        }
    };
    let outage = run_with(|| StoreError::unavailable("connection reset")).await;
    assert_eq!(
        (outage.code.as_str(), outage.transient),
        ("outgoing_unavailable", true)
    );
    let unreadable = run_with(|| StoreError::Corrupt("bad JSON".into())).await;
    assert_eq!(
        (unreadable.code.as_str(), unreadable.transient),
        ("internal_error", false),
        "no retry reads an unreadable record"
    );
}

#[tokio::test]
async fn records_stay_within_a_dynamodb_item() {
    let big = "x".repeat(100 * 1024);
    let (ports, _, outgoing) = setup(vec![reply(200, &big)], "").await;
    let answer = outgoing
        .send(&trigger(json!({"webhookId": "crm"})), &Caller::Admin, None)
        .await
        .unwrap();
    assert_eq!(answer.data, json!(big), "the caller gets the whole answer");
    let record = ports
        .invocations
        .get_invocation(&answer.reference_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        record.data["omitted"]
            .as_str()
            .unwrap()
            .contains("larger than")
    );

    let too_big = json!({"webhookId": "crm", "data": "y".repeat(200 * 1024), "async": true});
    let err = outgoing
        .send(&trigger(too_big), &Caller::Admin, None)
        .await
        .unwrap_err();
    // The API answers it 413 (tests/it/outgoing/limits.rs).
    assert!(matches!(err, OutgoingError::TooLarge { .. }), "{err}");
    assert_eq!(err.code(), "payload_too_large");
}

#[tokio::test]
async fn a_trigger_value_replaces_a_fixed_default_of_the_same_name() {
    let registration: Map<String, Value> = serde_json::from_value(json!({
        "id": "paged",
        "url": "https://api.example/items?page=1&size=20",
        "method": "GET",
        "queryParams": ["page"],
    }))
    .unwrap();
    let webhook = registry::registration_from_json(
        &registration,
        None,
        Timestamp::now(),
        0,
        &super::guard::Guard::default(),
    )
    .unwrap();
    let url = |body: Value| {
        let pending = prepare(&webhook, None, &trigger(body)).unwrap();
        build_request(
            &webhook,
            &pending,
            ReferenceId::generate(),
            Timestamp::now(),
        )
        .unwrap()
        .url
    };
    assert_eq!(
        url(json!({"webhookId": "paged", "queryParams": {"page": 3}})),
        "https://api.example/items?size=20&page=3"
    );
    assert_eq!(
        url(json!({"webhookId": "paged"})),
        "https://api.example/items?page=1&size=20"
    );
}

#[tokio::test]
async fn a_schema_put_again_applies_from_the_next_trigger() {
    let (ports, transport, outgoing) = setup(vec![], "").await;
    let mut webhook = ports.outgoing.get_outgoing("crm").await.unwrap().unwrap();
    let requiring = |field: &str| json!({"type": "object", "required": [field]});
    let send = |data: Value| {
        let outgoing = &outgoing;
        async move {
            outgoing
                .send(
                    &trigger(json!({"webhookId": "crm", "data": data})),
                    &Caller::Admin,
                    None,
                )
                .await
        }
    };
    webhook.schema = Some(requiring("a"));
    ports.outgoing.put_outgoing(&webhook).await.unwrap();
    send(json!({"a": 1})).await.unwrap();

    webhook.schema = Some(requiring("b"));
    webhook.updated_at = webhook.updated_at.plus_seconds(1);
    ports.outgoing.put_outgoing(&webhook).await.unwrap();
    let refused = send(json!({"a": 1})).await.unwrap_err();
    assert_eq!(refused.code(), "schema_violation");
    send(json!({"b": 1})).await.unwrap();
    assert_eq!(transport.sent().len(), 2);
}

#[tokio::test]
async fn a_dry_run_step_answers_what_it_would_send_and_sends_and_records_nothing() {
    let (ports, transport, outgoing) = setup(vec![], "").await;
    let dry = outgoing.dry_run();
    let caller = Caller::Pipeline {
        name: "notify".into(),
        correlation_id: String::new(),
    };
    for asynchronous in [false, true] {
        let answer = dry
            .step_answer(
                &trigger(json!({"webhookId": "crm", "data": {"a": 1}, "headers": {"x-tenant": "t1"}, "queryParams": {"page": 2}, "async": asynchronous})),
                &caller,
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            answer,
            json!({
                "dryRun": true,
                "command": "webhook.send",
                "webhookId": "crm",
                "async": asynchronous,
                "method": "POST",
                "url": "https://crm.example/hook?fixed=********&page=********",
                "headers": ["authorization", "content-type", "webhook-id", "webhook-signature", "webhook-timestamp", "x-tenant"],
                "body": {"a": 1},
            })
        );
    }
    assert!(transport.sent().is_empty(), "the endpoint was not called");
    assert!(
        ports
            .invocations
            .list_invocations("crm", 10)
            .await
            .unwrap()
            .is_empty(),
        "no invocation was recorded"
    );
    let queued = ports
        .queue
        .receive_jobs(10, Duration::ZERO, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(queued.is_empty(), "no delivery was queued");
    // Refused as a live send would be.
    let unknown = dry
        .step_answer(&trigger(json!({"webhookId": "nope"})), &caller, None)
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), "outgoing_webhook_not_found");
    let bad_header = dry
        .step_answer(
            &trigger(json!({"webhookId": "crm", "headers": {"x-other": "1"}})),
            &caller,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(bad_header.code(), "header_not_allowed");
}

#[tokio::test]
async fn a_live_step_answers_the_send() {
    let (_ports, transport, outgoing) = setup(vec![reply(200, r#"{"ok":true}"#)], "").await;
    let answer = outgoing
        .step_answer(&trigger(json!({"webhookId": "crm"})), &Caller::Admin, None)
        .await
        .unwrap();
    assert_eq!(
        (answer["status"].clone(), answer["data"].clone()),
        (json!(200), json!({"ok": true}))
    );
    assert_eq!(transport.sent().len(), 1);
}

// ----- invocation.resend -----

#[tokio::test]
async fn a_resend_sends_the_recorded_request_again_as_a_new_linked_invocation() {
    let (ports, transport, outgoing) =
        setup(vec![reply(500, "down"), reply(200, r#"{"ok":true}"#)], "").await;
    let first = outgoing
        .send(
            &trigger(json!({"webhookId": "crm", "data": {"a": 1}, "headers": {"x-tenant": "t1"}, "queryParams": {"page": 2}})),
            &Caller::Pipeline { name: "orders".into(), correlation_id: "c-1".into() },
            None,
        )
        .await
        .unwrap();
    assert_eq!(first.status, Some(500));

    let again = outgoing.resend(&first.reference_id).await.unwrap();
    assert_ne!(again.reference_id, first.reference_id, "a new invocation");
    assert_eq!(
        again.to_json(),
        json!({"referenceId": again.reference_id.to_string(), "status": 200, "data": {"ok": true}, "error": false})
    );
    let sent = transport.sent();
    assert_eq!(sent.len(), 2, "the endpoint was called a second time");
    let (before, after) = (&sent[0], &sent[1]);
    assert_eq!(after.method, before.method);
    assert_eq!(after.url, "https://crm.example/hook?fixed=1&page=2");
    assert_eq!(after.body, before.body);
    for header in ["authorization", "x-tenant", "content-type"] {
        assert_eq!(after.headers[header], before.headers[header], "{header}");
    }
    // Signed anew, as its own message.
    assert_eq!(
        after.headers["webhook-id"],
        again.reference_id.to_string().as_str()
    );

    let original = ports
        .invocations
        .get_invocation(&first.reference_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        original.state,
        InvocationState::Failed,
        "the first stays as it was"
    );
    assert_eq!(original.resend_of, None);
    let resent = ports
        .invocations
        .get_invocation(&again.reference_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resent.resend_of, Some(first.reference_id));
    assert_eq!(resent.caller, "admin");
    assert_eq!(resent.correlation_id, None);
    assert_eq!(resent.request, original.request, "the same request");
    let shown = resent.to_api_json();
    assert_eq!(shown["resendOf"], first.reference_id.to_string());
    for record in [&original, &resent] {
        let shown = record.to_api_json().to_string();
        assert!(
            !shown.contains("t1") && !shown.contains("prefilled") && !shown.contains("\"a\":1"),
            "no header value or body is shown: {shown}"
        );
    }
    // A resend can be resent in turn.
    let third = outgoing.resend(&again.reference_id).await.unwrap();
    assert_eq!(transport.sent().len(), 3);
    assert_eq!(transport.sent()[2].body, before.body);
    assert_ne!(third.reference_id, again.reference_id);
}

#[tokio::test]
async fn an_asynchronous_invocation_is_resent_asynchronously() {
    let (ports, transport, outgoing) = setup(vec![], "").await;
    let first = outgoing
        .send(
            &trigger(json!({"webhookId": "crm", "data": {"n": 1}, "async": true})),
            &Caller::Admin,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        outgoing.deliver(&first.reference_id).await,
        Disposition::Done
    );
    let delivered = ports
        .invocations
        .get_invocation(&first.reference_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivered.pending, None, "nothing left to deliver");
    assert!(delivered.sent.is_some(), "its request is kept for a resend");

    let again = outgoing.resend(&first.reference_id).await.unwrap();
    assert_eq!(again.status, None, "queued, answered at once");
    let queued = ports
        .queue
        .receive_jobs(10, Duration::from_millis(50), Duration::from_secs(30))
        .await
        .unwrap();
    let jobs: Vec<Job> = queued.iter().map(|d| d.job().unwrap()).collect();
    assert!(
        jobs.contains(&Job::Delivery(crate::domain::DeliveryJob {
            reference_id: again.reference_id
        })),
        "{jobs:?}"
    );
    assert_eq!(
        outgoing.deliver(&again.reference_id).await,
        Disposition::Done
    );
    let sent = transport.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].body, sent[0].body);
    let resent = ports
        .invocations
        .get_invocation(&again.reference_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resent.state, InvocationState::Succeeded);
    assert_eq!(resent.resend_of, Some(first.reference_id));
    assert!(resent.asynchronous);
}

#[tokio::test]
async fn a_resend_is_refused_for_an_unknown_invocation_or_a_disabled_webhook() {
    let (ports, transport, outgoing) = setup(vec![], "").await;
    let err = outgoing.resend(&ReferenceId::generate()).await.unwrap_err();
    assert_eq!(err.code(), "invocation_not_found");
    let first = outgoing
        .send(&trigger(json!({"webhookId": "crm"})), &Caller::Admin, None)
        .await
        .unwrap();
    let mut disabled = ports.outgoing.get_outgoing("crm").await.unwrap().unwrap();
    disabled.enabled = false;
    ports.outgoing.put_outgoing(&disabled).await.unwrap();
    let err = outgoing.resend(&first.reference_id).await.unwrap_err();
    assert_eq!(err.code(), "outgoing_webhook_disabled");
    ports.outgoing.delete_outgoing("crm").await.unwrap();
    let err = outgoing.resend(&first.reference_id).await.unwrap_err();
    assert_eq!(err.code(), "outgoing_webhook_not_found");
    assert_eq!(transport.sent().len(), 1, "nothing sent again");
}

#[tokio::test]
async fn a_synchronous_request_is_kept_for_a_resend_up_to_its_bound() {
    let (ports, transport, outgoing) = setup(vec![], "").await;
    // Text data is sent as it is: the body is the text.
    let body_of = |bytes: usize| json!({"webhookId": "crm", "data": "y".repeat(bytes)});
    let at_bound = outgoing
        .send(
            &trigger(body_of(super::service::MAX_ASYNC_BODY)),
            &Caller::Admin,
            None,
        )
        .await
        .unwrap();
    let over = outgoing
        .send(
            &trigger(body_of(super::service::MAX_ASYNC_BODY + 1)),
            &Caller::Admin,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        transport.sent()[0].body.len(),
        super::service::MAX_ASYNC_BODY
    );
    outgoing.resend(&at_bound.reference_id).await.unwrap();
    let err = outgoing.resend(&over.reference_id).await.unwrap_err();
    assert_eq!(err.code(), "invocation_not_resendable");
    let record = ports
        .invocations
        .get_invocation(&over.reference_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.sent, None, "too large to keep in a record");
    assert_eq!(transport.sent().len(), 3);
}
