//! The Lambda handlers fed with the event files of `events/` (the same files
//! `cargo lambda invoke --data-file` sends), on the in-memory ports.
#![cfg(feature = "lambda")]

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::sqs::SqsEvent;
use hookflow_core::adapters::MemoryQueue;
use hookflow_core::config::AdminToken;
use hookflow_core::domain::{CorrelationId, EventKey, PipelineDefinition, Timestamp};
use hookflow_core::lambda::{handle_http, handle_sqs};
use hookflow_core::pipeline::worker::{Worker, WorkerSettings};
use hookflow_core::ports::Ports;
use hookflow_core::wiring;
use hookflow_core::{Gateway, Settings};
use serde_json::{Value, json};

const TOKEN: &str = "a29a4f16-989d-48c8-ab54-7b6150733ba1";
const CORRELATION_ID: &str = "617609e2-cd3a-40ef-921a-3b107b523b30";

fn gateway(ports: Ports) -> Gateway {
    let settings = Settings {
        admin_token: Some(AdminToken::new("local-admin-token-0123456789").unwrap()),
        ..Settings::default()
    };
    wiring::gateway(ports, settings)
}

async fn call(gateway: &Gateway, event: &str) -> (u16, http::HeaderMap, Value) {
    let request: ApiGatewayV2httpRequest =
        serde_json::from_str(event).expect("an API Gateway v2 event");
    let response = handle_http(gateway, request).await;
    let status = response.status_code as u16;
    let body = match response.body {
        Some(Body::Text(text)) => serde_json::from_str(&text).unwrap(),
        other => panic!("JSON answers are text, got {other:?}"),
    };
    (status, response.headers, body)
}

async fn stored_body(ports: &Ports, id: &str) -> Value {
    let id = CorrelationId::parse(id).unwrap();
    ports
        .events
        .get_event(&id)
        .await
        .unwrap()
        .expect("stored")
        .event
        .body()
}

#[tokio::test]
async fn http_events_run_through_the_core_router() {
    let ports = Ports::memory();
    let gw = gateway(ports.clone());

    let (status, _, created) = call(&gw, include_str!("../../events/admin-webhook-put.json")).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["uuid"], TOKEN);
    assert_eq!(created["eventKey"], "webhook.sample.created");
    // The public URL comes from the API Gateway host and https.
    assert_eq!(
        created["webhookUrl"],
        format!(
            "https://a1b2c3d4e5.execute-api.eu-central-1.amazonaws.com/api/v3/command/webhook.receive?token={TOKEN}"
        )
    );
    let (status, _, listed) = call(&gw, include_str!("../../events/admin-webhook-get.json")).await;
    assert_eq!((status, listed), (200, json!([created])));
    let (status, headers, document) =
        call(&gw, include_str!("../../events/admin-openapi.json")).await;
    assert_eq!(status, 200, "{document}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(document["openapi"], "3.1.0");

    let (status, headers, answer) = call(
        &gw,
        include_str!("../../events/receive-get-token-query.json"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "ok");
    let id = headers["pipeforce-result-correlationid"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = stored_body(&ports, &id).await;
    assert_eq!(body["payload"]["method"], "GET");
    assert_eq!(body["payload"]["params"], json!({"source": "crm"}));
    assert_eq!(body["origin"], Value::Null);

    let (status, _, answer) = call(
        &gw,
        include_str!("../../events/receive-post-json-header-token.json"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let body = stored_body(&ports, answer["correlationId"].as_str().unwrap()).await;
    let origin = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        r#"{"name":"Ada Lovelace","email":"ada@example.com"}"#,
    );
    assert_eq!(body["origin"], origin);
    assert!(
        body["payload"]["headers"].get("token").is_none(),
        "the token header is not stored"
    );

    let (status, _, answer) = call(&gw, include_str!("../../events/receive-post-form.json")).await;
    assert_eq!(status, 200, "{answer}");
    let body = stored_body(&ports, answer["correlationId"].as_str().unwrap()).await;
    assert_eq!(
        body["payload"]["params"],
        json!({"lead": "42", "source": "form"})
    );

    let (status, _, answer) = call(
        &gw,
        include_str!("../../events/receive-post-multipart.json"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let body = stored_body(&ports, answer["correlationId"].as_str().unwrap()).await;
    let files = body["payload"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(
        (&files[0]["filename"], &files[1]["filename"]),
        (&json!("fileA.pdf"), &json!("fileB.pdf"))
    );
    assert_eq!(body["payload"]["params"], json!({"comment": "two files"}));

    let (status, _, answer) = call(&gw, include_str!("../../events/result-poll.json")).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (410, &json!("result_gone"))
    );
}

fn worker(ports: Ports, smtp: Option<&str>) -> Worker {
    let settings = Settings {
        smtp_url: smtp.map(str::to_owned),
        ..Settings::default()
    };
    let services = wiring::services(&settings, &ports).unwrap();
    let retry = WorkerSettings {
        max_attempts: 3,
        retry_base: Duration::from_millis(10),
        pipeline_timeout: Duration::from_secs(5),
        ..Settings::default().worker
    };
    Worker::new((&ports).into(), Arc::new(services), retry)
}

async fn put_pipeline(ports: &Ports, name: &str, source: &str) {
    let definition = PipelineDefinition {
        name: name.into(),
        listens_to: EventKey::parse("webhook.sample.created").unwrap(),
        source: source.into(),
        updated_at: Timestamp::now(),
    };
    ports.pipelines.put_pipeline(&definition).await.unwrap();
}

/// `ports` with a memory queue the test keeps, to read what was dead-lettered
/// (the SQS messages of these tests come from `events/`, not from that queue).
fn with_inspectable_queue(mut ports: Ports) -> (Ports, Arc<MemoryQueue>) {
    let queue = Arc::new(MemoryQueue::new());
    ports.queue = queue.clone();
    (ports, queue)
}

async fn stored_event_for_fixture(ports: &Ports) {
    let key = EventKey::parse("webhook.sample.created").unwrap();
    let mut record = hookflow_core::testkit::sample_event(&key, &["hello", "lower"], 60_000);
    record.event.correlation_id = CorrelationId::parse(CORRELATION_ID).unwrap();
    record.event.origin = json!("SGVsbG8gV29ybGQ=");
    ports.intake.accept(&record, &[], None).await.unwrap();
}

#[tokio::test]
async fn sqs_batches_run_pipelines_and_redeliveries_record_nothing_new() {
    let ports = Ports::memory();
    stored_event_for_fixture(&ports).await;
    let step = |f: &str| {
        format!(
            "pipeline:\n  - event.listen: {{eventKey: webhook.sample.created}}\n  - body.set:\n      value: ${{@text.{f}(@convert.fromBase64(body.origin))}}\n"
        )
    };
    put_pipeline(&ports, "hello", &step("upperCase")).await;
    put_pipeline(&ports, "lower", &step("lowerCase")).await;
    let worker = worker(ports.clone(), None);
    let event: SqsEvent =
        serde_json::from_str(include_str!("../../events/sqs-pipeline-jobs.json")).unwrap();

    let response = handle_sqs(&worker, ports.queue.as_ref(), event.clone()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let id = CorrelationId::parse(CORRELATION_ID).unwrap();
    let result = ports.events.get_result(&id).await.unwrap().unwrap();
    assert_eq!(
        result.value(),
        json!({"hello": "HELLO WORLD", "lower": "hello world"})
    );

    // Put different pipelines under the same names: a redelivery must not run them.
    put_pipeline(&ports, "hello", &step("lowerCase")).await;
    let response = handle_sqs(&worker, ports.queue.as_ref(), event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        ports.events.get_result(&id).await.unwrap().unwrap(),
        result,
        "nothing recorded twice"
    );
}

#[tokio::test]
async fn sqs_messages_that_must_be_retried_are_reported_as_failures() {
    let (ports, queue) = with_inspectable_queue(Ports::memory());
    stored_event_for_fixture(&ports).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mail = "pipeline:\n  - event.listen: {eventKey: webhook.sample.created}\n  - iam.run.as: systemuser\n  - mail.send: {to: x@example.com}\n";
    put_pipeline(&ports, "hello", mail).await;
    put_pipeline(
        &ports,
        "lower",
        "pipeline:\n  - event.listen: {eventKey: webhook.sample.created}\n",
    )
    .await;
    let worker = worker(ports.clone(), Some(&format!("smtp://127.0.0.1:{closed}")));
    let mut event: SqsEvent =
        serde_json::from_str(include_str!("../../events/sqs-pipeline-jobs.json")).unwrap();
    let mut unreadable = event.records[1].clone();
    unreadable.message_id = Some("unreadable".into());
    unreadable.body = Some("not a job".into());
    event.records.push(unreadable);

    let response = handle_sqs(&worker, ports.queue.as_ref(), event.clone()).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    // The unreadable message is not retried: it is dead-lettered, as `serve` does.
    assert_eq!(failed, [event.records[0].message_id.as_deref().unwrap()]);
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "not a job");
    assert!(dead[0].1.starts_with("unreadable message: "), "{dead:?}");
    event.records.pop();
    let id = CorrelationId::parse(CORRELATION_ID).unwrap();
    let result = ports.events.get_result(&id).await.unwrap().unwrap();
    assert!(result.outcomes.contains_key("lower") && !result.outcomes.contains_key("hello"));

    // The last allowed delivery records the failure instead of retrying.
    event.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), "3".into());
    let response = handle_sqs(&worker, ports.queue.as_ref(), event).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let result = ports.events.get_result(&id).await.unwrap().unwrap();
    assert_eq!(result.error().unwrap()["code"], "mail_unavailable");
}

#[tokio::test]
async fn an_sqs_job_past_its_attempts_is_dead_lettered_with_an_error_outcome() {
    let (ports, queue) = with_inspectable_queue(Ports::memory());
    stored_event_for_fixture(&ports).await;
    put_pipeline(
        &ports,
        "hello",
        "pipeline:\n  - event.listen: {eventKey: webhook.sample.created}\n",
    )
    .await;
    let worker = worker(ports.clone(), None);
    let mut event: SqsEvent =
        serde_json::from_str(include_str!("../../events/sqs-pipeline-jobs.json")).unwrap();
    event.records.truncate(1);
    // Handed out a fourth time with three attempts allowed: the earlier runs
    // never came back (each ended its Lambda), so this one does not run.
    event.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), "4".into());
    let response = handle_sqs(&worker, ports.queue.as_ref(), event.clone()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let id = CorrelationId::parse(CORRELATION_ID).unwrap();
    let result = ports.events.get_result(&id).await.unwrap().unwrap();
    let error = result.error().unwrap();
    assert_eq!(error["code"], "internal_error");
    assert_eq!(error["message"], "the run ended the process");
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(Some(dead[0].0.as_str()), event.records[0].body.as_deref());
    assert!(dead[0].1.contains("handed out 4 times"), "{dead:?}");
}

#[tokio::test]
async fn outgoing_webhooks_through_the_admin_and_worker_functions() {
    let ports = Ports::memory();
    let gw = gateway(ports.clone());
    let (status, _, registered) =
        call(&gw, include_str!("../../events/admin-outgoing-put.json")).await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["headers"]["Authorization"], "********");
    assert_eq!(registered["secret"], "********");

    let (status, _, queued) = call(
        &gw,
        include_str!("../../events/admin-webhook-send-async.json"),
    )
    .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["status"], "processing");
    let reference_id = queued["referenceId"].as_str().unwrap().to_owned();
    let taken = ports
        .queue
        .receive_jobs(10, Duration::from_millis(10), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "one delivery queued");
    let message = taken[0].body.clone();
    assert_eq!(message, format!(r#"{{"referenceId":"{reference_id}"}}"#));

    // The fixture's delivery names a record that does not exist: finished, not retried.
    let mut settings = Settings::default();
    settings.outgoing.connect_timeout = Duration::from_secs(2);
    settings.outgoing.total_timeout = Duration::from_secs(2);
    let services = wiring::services(&settings, &ports).unwrap();
    let worker = Worker::new((&ports).into(), Arc::new(services), settings.worker.clone());
    let mut event: SqsEvent =
        serde_json::from_str(include_str!("../../events/sqs-delivery-jobs.json")).unwrap();
    let response = handle_sqs(&worker, ports.queue.as_ref(), event.clone()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    // The real delivery: crm.example.com is out of reach here (no network, or the
    // guard), so the attempt is recorded and the message is kept for a retry.
    event.records[0].body = Some(message);
    let response = handle_sqs(&worker, ports.queue.as_ref(), event).await;
    assert_eq!(response.batch_item_failures.len(), 1, "kept for a retry");
    let (_, _, record) = call(
        &gw,
        &include_str!("../../events/admin-webhook-get.json")
            .replace("webhook.get", "invocation.get")
            .replace(
                r#""rawQueryString": """#,
                &format!(r#""rawQueryString": "referenceId={reference_id}""#),
            ),
    )
    .await;
    assert_eq!(record["state"], "processing", "{record}");
    assert_eq!(record["attempts"].as_array().unwrap().len(), 1, "{record}");
    assert!(record["nextAttemptAt"].is_string(), "{record}");
    assert!(
        !record.to_string().contains("crm-api-key"),
        "no secret in the record"
    );
}

/// A raw `"` in the query string: API Gateway passes it on as it came, and
/// `http::Uri` refuses it. The function answers 400 instead of going down.
#[tokio::test]
async fn a_raw_quote_in_the_query_string_is_a_400_not_a_crash() {
    let ports = Ports::memory();
    let gw = gateway(ports.clone());
    call(&gw, include_str!("../../events/admin-webhook-put.json")).await;
    let (status, _, answer) =
        call(&gw, include_str!("../../events/receive-get-raw-quote.json")).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["statusCode"], 400);
    assert_eq!(answer["status"], "error");
    assert_eq!(answer["error"]["code"], "invalid_uri", "{answer}");
    // The same instance goes on answering.
    let (status, _, answer) = call(
        &gw,
        include_str!("../../events/receive-get-token-query.json"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

/// A result larger than a result may hold ends as a small `result_too_large`
/// error, so polling ends; one at the bound is kept whole.
#[tokio::test]
async fn a_result_over_the_size_bound_ends_as_result_too_large() {
    use hookflow_core::domain::PipelineOutcome;
    use hookflow_core::limits::MAX_OUTCOME_BYTES;
    let ports = Ports::memory();
    put_pipeline(
        &ports,
        "hello",
        "pipeline:\n  - event.listen: {eventKey: webhook.sample.created}\n  - body.set: {value: '${body.origin}'}\n",
    )
    .await;
    let worker = worker(ports.clone(), None);
    let overhead = serde_json::to_vec(&PipelineOutcome::Ok {
        value: json!(""),
        run: None,
    })
    .unwrap()
    .len();
    let key = EventKey::parse("webhook.sample.created").unwrap();
    let template: SqsEvent =
        serde_json::from_str(include_str!("../../events/sqs-pipeline-jobs.json")).unwrap();
    for (size, kept) in [(MAX_OUTCOME_BYTES, true), (MAX_OUTCOME_BYTES + 1, false)] {
        let mut record = hookflow_core::testkit::sample_event(&key, &["hello"], 60_000);
        record.event.origin = json!("x".repeat(size - overhead));
        ports.intake.accept(&record, &[], None).await.unwrap();
        let id = record.event.correlation_id;
        let mut event = template.clone();
        event.records.truncate(1);
        event.records[0].body = Some(format!(r#"{{"correlationId":"{id}","pipeline":"hello"}}"#));
        let response = handle_sqs(&worker, ports.queue.as_ref(), event).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        let result = ports.events.get_result(&id).await.unwrap().unwrap();
        match result.outcomes["hello"].clone() {
            PipelineOutcome::Ok { value, .. } if kept => {
                assert_eq!(value.as_str().map(str::len), Some(size - overhead));
            }
            PipelineOutcome::Error { code, message, .. } if !kept => {
                assert_eq!(code, "result_too_large");
                assert!(message.len() < 200, "a small outcome: {message}");
            }
            other => panic!("{size} bytes: {other:?}"),
        }
    }
}

/// Panics in a job fail that job only: a pipeline step that panics ends its
/// run with `internal_error`; a delivery that panics is reported as a failed
/// item (it comes back for a retry); the batch's other jobs finish either way.
#[tokio::test]
async fn a_panicking_job_fails_alone_and_the_batch_goes_on() {
    use hookflow_core::ports::{CallError, OutgoingRequest, OutgoingResponse, Transport};
    use hookflow_core::ports::{Mail, MailError, Mailer};

    struct PanickingMailer;
    #[async_trait::async_trait]
    impl Mailer for PanickingMailer {
        async fn send(&self, _: &Mail) -> Result<(), MailError> {
            panic!("the mailer fell over");
        }
    }
    struct PanickingTransport;
    #[async_trait::async_trait]
    impl Transport for PanickingTransport {
        async fn call(&self, _: OutgoingRequest) -> Result<OutgoingResponse, CallError> {
            panic!("the transport fell over");
        }
    }

    let ports = Ports::memory();
    stored_event_for_fixture(&ports).await;
    let mail = "pipeline:\n  - event.listen: {eventKey: webhook.sample.created}\n  - iam.run.as: systemuser\n  - mail.send: {to: x@example.com}\n";
    put_pipeline(&ports, "hello", mail).await;
    put_pipeline(
        &ports,
        "lower",
        "pipeline:\n  - event.listen: {eventKey: webhook.sample.created}\n  - body.set: {value: done}\n",
    )
    .await;
    let gw = gateway(ports.clone());
    call(&gw, include_str!("../../events/admin-outgoing-put.json")).await;
    let (status, _, queued) = call(
        &gw,
        include_str!("../../events/admin-webhook-send-async.json"),
    )
    .await;
    assert_eq!(status, 202, "{queued}");

    let settings = Settings::default();
    let mut services = wiring::services(&settings, &ports).unwrap();
    services.mailer = Some(Arc::new(PanickingMailer));
    services.outgoing = Some(wiring::outgoing_with(
        &ports,
        &settings.outgoing,
        Arc::new(PanickingTransport),
    ));
    let worker = Worker::new((&ports).into(), Arc::new(services), settings.worker.clone());

    let mut event: SqsEvent =
        serde_json::from_str(include_str!("../../events/sqs-pipeline-jobs.json")).unwrap();
    let mut delivery: SqsEvent =
        serde_json::from_str(include_str!("../../events/sqs-delivery-jobs.json")).unwrap();
    delivery.records[0].body = Some(format!(
        r#"{{"referenceId":"{}"}}"#,
        queued["referenceId"].as_str().unwrap()
    ));
    event.records.insert(1, delivery.records.remove(0));
    let response = handle_sqs(&worker, ports.queue.as_ref(), event.clone()).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, [event.records[1].message_id.as_deref().unwrap()]);
    let id = CorrelationId::parse(CORRELATION_ID).unwrap();
    let result = ports.events.get_result(&id).await.unwrap().unwrap();
    assert_eq!(result.outcomes.len(), 2, "both pipeline jobs finished");
    assert_eq!(result.error().unwrap()["code"], "internal_error");
}

/// `cargo lambda build --release` adds `panic = "abort"` unless the release
/// profile names a strategy; an aborting worker would take its whole batch (and
/// the panic isolation above) down with it.
#[test]
fn the_release_profile_unwinds() {
    let manifest = include_str!("../../Cargo.toml");
    let profile = |name: &str| {
        manifest
            .split(&format!("\n[profile.{name}]\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("a {name} profile"))
            .split("\n[")
            .next()
            .unwrap()
            .to_owned()
    };
    let release = profile("release");
    assert!(
        release
            .lines()
            .any(|line| line.trim() == r#"panic = "unwind""#),
        "{release}"
    );
    // The functions' own profile keeps it: it inherits release and names no other.
    let functions = profile("lambda-release");
    assert!(
        functions
            .lines()
            .any(|line| line.trim() == r#"inherits = "release""#)
            && !functions.contains("panic"),
        "{functions}"
    );
}

#[tokio::test]
async fn a_job_whose_stored_event_cannot_be_decoded_is_dead_lettered_with_an_error_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookflow.db");
    let store = Arc::new(hookflow_core::adapters::SqliteStore::open(&path).unwrap());
    let (ports, queue) = with_inspectable_queue(Ports::sqlite(store));
    stored_event_for_fixture(&ports).await;
    put_pipeline(
        &ports,
        "hello",
        "pipeline:\n  - event.listen: {eventKey: webhook.sample.created}\n",
    )
    .await;
    // Damaged behind the store's back (a bad disk, a hand edit).
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE events SET data = '{\"not\": \"an event' WHERE correlation_id = ?1",
            [CORRELATION_ID],
        )
        .unwrap();
    let worker = worker(ports.clone(), None);
    let mut event: SqsEvent =
        serde_json::from_str(include_str!("../../events/sqs-pipeline-jobs.json")).unwrap();
    event.records.truncate(1);
    let response = handle_sqs(&worker, ports.queue.as_ref(), event).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "not retried: no retry can read it either: {response:?}"
    );
    let id = CorrelationId::parse(CORRELATION_ID).unwrap();
    let result = ports.events.get_result(&id).await.unwrap().unwrap();
    let error = result.error().unwrap();
    assert_eq!(error["code"], "internal_error");
    assert_eq!(error["message"], "the stored event could not be read");
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].1.starts_with("stored event unreadable"), "{dead:?}");
}

/// `allowedSources` judges API Gateway's `sourceIp` (203.0.113.17 in the event
/// file), never an `X-Forwarded-For` the caller wrote.
#[tokio::test]
async fn allowed_sources_judge_the_api_gateway_source_ip() {
    let ports = Ports::memory();
    let gw = gateway(ports.clone());
    let (status, _, created) = call(&gw, include_str!("../../events/admin-webhook-put.json")).await;
    assert_eq!(status, 200, "{created}");
    let mut webhook = ports
        .webhooks
        .get_by_token(&hookflow_core::domain::Token::parse(TOKEN).unwrap())
        .await
        .unwrap()
        .unwrap();
    let receive = include_str!("../../events/receive-get-token-query.json");
    let mut spoofed: Value = serde_json::from_str(receive).unwrap();
    spoofed["headers"]["x-forwarded-for"] = json!("198.51.100.5");
    let spoofed = spoofed.to_string();

    for (allowed, event, expected) in [
        ("203.0.113.0/24", receive, 200),
        ("198.51.100.0/24", receive, 403),
        ("198.51.100.0/24", spoofed.as_str(), 403),
    ] {
        webhook.allowed_sources = vec![allowed.parse().unwrap()];
        ports.webhooks.update_webhook(&webhook).await.unwrap();
        let (status, _, answer) = call(&gw, event).await;
        assert_eq!(status, expected, "{allowed}: {answer}");
        if expected == 403 {
            assert_eq!(answer["error"]["code"], "source_not_allowed");
        }
    }
}
