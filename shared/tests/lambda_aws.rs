//! The Lambda functions' start-up and secrets against moto's Secrets Manager,
//! DynamoDB and SQS (`make test` starts moto and the SMTP test server).
#![cfg(feature = "lambda")]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::sqs::SqsEvent;
use hookflow_core::Gateway;
use hookflow_core::adapters::aws::{AwsClients, AwsResources, TlsRoots, provision};
use hookflow_core::domain::{CorrelationId, EventKey, PipelineDefinition, Timestamp};
use hookflow_core::lambda::{handle_http, handle_sqs};
use hookflow_core::ports::Ports;
use hookflow_core::testkit::services::service_env;
use hookflow_core::wiring::{ADMIN_TOKEN_SECRET, FunctionContext, SMTP_LOGIN_SECRET};
use serde_json::{Value, json};

/// The admin token of the events in `events/`.
const FIXTURE_TOKEN: &str = "local-admin-token-0123456789";

/// Fresh resources on moto, or `None` (the test skips) outside `make test`.
async fn moto() -> Option<(AwsClients, AwsResources, String)> {
    service_env("moto", ["AWS_ENDPOINT_URL"])?;
    let clients = AwsClients::from_env().await;
    let prefix = format!("fn-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let resources = provision(&clients, &prefix)
        .await
        .expect("provision on moto");
    Some((clients, resources, prefix))
}

/// The settings a function gets from the template, plus `extra`.
fn function_env(resources: &AwsResources, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("HOOKFLOW_WEBHOOKS_TABLE", &resources.webhooks_table),
        ("HOOKFLOW_PIPELINES_TABLE", &resources.pipelines_table),
        ("HOOKFLOW_EVENTS_TABLE", &resources.events_table),
        ("HOOKFLOW_OUTGOING_TABLE", &resources.outgoing_table),
        ("HOOKFLOW_INVOCATIONS_TABLE", &resources.invocations_table),
        ("HOOKFLOW_QUEUE_URL", &resources.queue_url),
        ("HOOKFLOW_PAYLOAD_BUCKET", &resources.payload_bucket),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.clone()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

async fn call(gateway: &Gateway, event: &str) -> (u16, Value) {
    let request: ApiGatewayV2httpRequest = serde_json::from_str(event).unwrap();
    let response = handle_http(gateway, request).await;
    let body = match response.body {
        Some(Body::Text(text)) => serde_json::from_str(&text).unwrap(),
        other => panic!("JSON answers are text, got {other:?}"),
    };
    (response.status_code as u16, body)
}

/// `event` with the value of its query parameter `name` replaced by `value`
/// wherever it occurs (the query string and its parsed parameters).
fn with_query_value(event: &str, name: &str, value: &str) -> String {
    let parsed: Value = serde_json::from_str(event).unwrap();
    let fixture = parsed["queryStringParameters"][name].as_str().unwrap();
    event.replace(fixture, value)
}

/// Each HTTP function answers the routes API Gateway sends it, over the ports
/// it builds, and any other route as an unknown path: what API Gateway never
/// sends a function, it has no code for.
#[tokio::test]
async fn each_function_answers_its_own_routes_and_no_others() {
    let Some((_clients, resources, _prefix)) = moto().await else {
        return;
    };
    let env = function_env(&resources, &[("HOOKFLOW_ADMIN_TOKEN", FIXTURE_TOKEN)]);
    let context = || FunctionContext::from_lookup(|name| env.get(name).cloned());
    let admin = context().await.unwrap().admin_gateway().unwrap();
    let receive = context().await.unwrap().receive_gateway();
    // Trusting only Amazon's roots changes nothing for moto (plain HTTP).
    let amazon_env = function_env(
        &resources,
        &[
            (TlsRoots::SETTING, "amazon"),
            ("HOOKFLOW_ADMIN_TOKEN", FIXTURE_TOKEN),
        ],
    );
    let result = FunctionContext::from_lookup(|name| amazon_env.get(name).cloned())
        .await
        .unwrap()
        .result_gateway();

    let put = include_str!("../../events/admin-webhook-put.json");
    let (status, answer) = call(&admin, put).await;
    assert_eq!(status, 200, "{answer}");
    let token = answer["uuid"].as_str().unwrap().to_owned();
    let receive_event = with_query_value(
        include_str!("../../events/receive-get-token-query.json"),
        "token",
        &token,
    );
    let (status, answer) = call(&receive, &receive_event).await;
    assert_eq!(status, 200, "{answer}");
    let correlation_id = answer["correlationId"].as_str().unwrap().to_owned();
    let health = put
        .replace("/api/v3/command/webhook.put", "/api/v3/health")
        .replace("\"POST\"", "\"GET\"");
    assert_eq!(call(&receive, &health).await.0, 200);

    let poll = with_query_value(
        include_str!("../../events/result-poll.json"),
        "correlationId",
        &correlation_id,
    );
    let (status, answer) = call(&result, &poll).await;
    assert_eq!((status, &answer["status"]), (200, &json!("ok")), "{answer}");

    let openapi = include_str!("../../events/admin-openapi.json");
    let console = include_str!("../../events/admin-console.json");
    for (gateway, others) in [
        (
            &admin,
            [receive_event.as_str(), poll.as_str(), health.as_str()],
        ),
        (&receive, [put, poll.as_str(), openapi]),
        (&result, [console, receive_event.as_str(), health.as_str()]),
    ] {
        for event in others {
            let (status, answer) = call(gateway, event).await;
            assert_eq!(
                (status, &answer["error"]["code"]),
                (404, &json!("route_not_found")),
                "{answer}"
            );
        }
    }
}

/// A function refuses to start with `HOOKFLOW_AWS_TLS_ROOTS` set to what it
/// does not know, naming the setting.
#[tokio::test]
async fn an_unknown_trust_store_stops_a_function_at_start() {
    let resources = AwsResources::from_lookup(|name| Some(format!("{name}-x"))).unwrap();
    let env = function_env(&resources, &[(TlsRoots::SETTING, "mozilla")]);
    let err = FunctionContext::from_lookup(|name| env.get(name).cloned())
        .await
        .err()
        .expect("an unknown trust store");
    assert_eq!(err.name, TlsRoots::SETTING);
}

/// `webhook-admin` reads its token from Secrets Manager when the first
/// management request arrives (not at start: here the secret does not even
/// exist yet when the function starts), then keeps it for a while.
#[tokio::test]
async fn the_admin_token_comes_from_secrets_manager_on_first_use_and_is_kept() {
    let Some((clients, resources, prefix)) = moto().await else {
        return;
    };
    let secret = format!("{prefix}/admin-token");
    let env = function_env(&resources, &[(ADMIN_TOKEN_SECRET, &secret)]);
    let gateway = FunctionContext::from_lookup(|name| env.get(name).cloned())
        .await
        .unwrap()
        .admin_gateway()
        .unwrap();
    let list = include_str!("../../events/admin-webhook-get.json");

    let (status, answer) = call(&gateway, list).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (503, &json!("unavailable")),
        "{answer}"
    );

    let secrets = clients.secrets_manager();
    secrets
        .create_secret()
        .name(&secret)
        .secret_string(FIXTURE_TOKEN)
        .send()
        .await
        .unwrap();
    let (status, answer) = call(&gateway, list).await;
    assert_eq!(status, 200, "{answer}");
    let wrong = list.replace(FIXTURE_TOKEN, "not-the-admin-token-at-all");
    let (status, answer) = call(&gateway, &wrong).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (401, &json!("unauthorized"))
    );
    assert!(!answer.to_string().contains(FIXTURE_TOKEN));

    // Kept: a changed secret takes effect after SECRET_CACHE, not at once.
    secrets
        .put_secret_value()
        .secret_id(&secret)
        .secret_string("a-rotated-admin-token-0123456789")
        .send()
        .await
        .unwrap();
    let (status, answer) = call(&gateway, list).await;
    assert_eq!(status, 200, "the token read first is kept: {answer}");

    // Neither a token nor a secret: the function does not start, and says why.
    let env = function_env(&resources, &[]);
    let err = FunctionContext::from_lookup(|name| env.get(name).cloned())
        .await
        .unwrap()
        .admin_gateway()
        .err()
        .expect("no admin token");
    assert_eq!(err.name, ADMIN_TOKEN_SECRET);
}

/// The SMTP test server of `make test` and its mail folder, or `None` (the
/// test skips) outside `make test`.
fn mail_sink() -> Option<(String, PathBuf)> {
    let [url, dir] = service_env(
        "the SMTP test server",
        ["HOOKFLOW_TEST_SMTP_URL", "HOOKFLOW_TEST_MAIL_DIR"],
    )?;
    Some((url, PathBuf::from(dir)))
}

/// `pipeline-worker` logs in to the mail server with the login kept in
/// Secrets Manager, read when the first mail is sent.
#[tokio::test]
async fn the_smtp_login_comes_from_secrets_manager() {
    let Some((smtp_url, mail_dir)) = mail_sink() else {
        return;
    };
    let Some((clients, resources, prefix)) = moto().await else {
        return;
    };
    let secret = format!("{prefix}/smtp-login");
    let env = function_env(
        &resources,
        &[
            ("HOOKFLOW_SMTP_URL", &smtp_url),
            (SMTP_LOGIN_SECRET, &secret),
        ],
    );
    let context = FunctionContext::from_lookup(|name| env.get(name).cloned())
        .await
        .unwrap();
    let ports = Ports::aws(&clients, &resources, None, Duration::ZERO);
    let (worker, queue) = context.worker().unwrap();
    // Created after the start: nothing was read then.
    clients
        .secrets_manager()
        .create_secret()
        .name(&secret)
        .secret_string(r#"{"username": "hookflow", "password": "sink-password"}"#)
        .send()
        .await
        .unwrap();

    let subject = format!("login {prefix}");
    let key = EventKey::parse("webhook.lead.created").unwrap();
    ports
        .pipelines
        .put_pipeline(&PipelineDefinition {
            name: "hello".into(),
            listens_to: key.clone(),
            source: format!(
                "pipeline:\n  - event.listen: {{eventKey: webhook.lead.created}}\n  - iam.run.as: systemuser\n  - mail.send: {{to: ops@example.com, subject: '{subject}'}}\n"
            ),
            updated_at: Timestamp::now(),
        })
        .await
        .unwrap();
    let mut record = hookflow_core::testkit::sample_event(&key, &["hello"], 60_000);
    record.event.correlation_id = CorrelationId::generate();
    ports.intake.accept(&record, &[], None).await.unwrap();
    let mut event: SqsEvent =
        serde_json::from_str(include_str!("../../events/sqs-pipeline-jobs.json")).unwrap();
    event.records.truncate(1);
    event.records[0].body = Some(format!(
        r#"{{"correlationId":"{}","pipeline":"hello"}}"#,
        record.event.correlation_id
    ));
    let response = handle_sqs(&worker, queue.as_ref(), event).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let result = ports
        .events
        .get_result(&record.event.correlation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.error(), None);

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mail = loop {
        let found = std::fs::read_dir(&mail_dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|text| serde_json::from_str::<Value>(&text).ok())
            .find(|mail| mail["subject"] == subject.as_str());
        if let Some(mail) = found {
            break mail;
        }
        assert!(std::time::Instant::now() < deadline, "no mail arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(mail["login"], "hookflow", "{mail}");
}
