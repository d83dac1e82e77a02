//! Outgoing webhooks over HTTP against the real binary: the registry
//! (`outgoing.*`), triggers (`webhook.send`, from the API and from pipelines),
//! invocation records, Standard Webhooks signatures checked by the independent
//! Python library, the SSRF guard, asynchronous deliveries with retries, 410
//! Gone, and that secrets never leak. The endpoint is a real HTTP server
//! started by each test (`endpoint.rs`).

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::endpoint::{Endpoint, Recorded, Reply};
use crate::harness::{ADMIN, Server, assert_error, client, json_of, venv_python};

/// Loopback is where the test endpoints listen.
pub(crate) const ALLOW: (&str, &str) = ("HOOKFLOW_OUTGOING_ALLOW", "127.0.0.0/8");
/// Short retries, so asynchronous deliveries finish within seconds.
const FAST_RETRIES: (&str, &str) = ("HOOKFLOW_OUTGOING_RETRY_SCHEDULE", "1s,1s,1s");
/// How long a test waits for an asynchronous delivery to finish.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(40);

/// A server that may call loopback, with short retries.
async fn server() -> Server {
    Server::start_with(&[ALLOW, FAST_RETRIES]).await
}

/// POSTs a command with a JSON body.
async fn post_json(server: &Server, command: &str, body: &Value) -> (StatusCode, Value) {
    let res = client()
        .post(server.at(&format!("/api/v3/command/{command}")))
        .bearer_auth(ADMIN)
        .json(body)
        .send()
        .await
        .expect("command");
    json_of(res).await
}

/// `outgoing.put`, expecting success (201 or 200).
pub(crate) async fn put(server: &Server, registration: &Value) -> Value {
    let (status, body) = post_json(server, "outgoing.put", registration).await;
    assert!(
        status == StatusCode::CREATED || status == StatusCode::OK,
        "{status}: {body}"
    );
    body
}

pub(crate) async fn send(server: &Server, trigger: &Value) -> (StatusCode, Value) {
    post_json(server, "webhook.send", trigger).await
}

/// `webhook.send`, expecting a 200 answer; returns it and its referenceId.
async fn send_ok(server: &Server, trigger: &Value) -> (Value, String) {
    let (status, answer) = send(server, trigger).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = reference_id(&answer);
    (answer, id)
}

/// The answer's referenceId, checked to be a UUID.
pub(crate) fn reference_id(answer: &Value) -> String {
    let id = answer["referenceId"]
        .as_str()
        .unwrap_or_else(|| panic!("no referenceId in {answer}"));
    uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("{id} is not a UUID"));
    id.to_owned()
}

pub(crate) async fn invocation(server: &Server, reference_id: &str) -> Value {
    let (status, body) = server
        .command("invocation.get", &[("referenceId", reference_id)])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn invocations(server: &Server, webhook_id: &str) -> Vec<Value> {
    let (status, body) = server
        .command("invocation.get", &[("webhookId", webhook_id)])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().expect("a list").clone()
}

async fn registration(server: &Server, id: &str) -> Value {
    let (status, body) = server.command("outgoing.get", &[("id", id)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Polls `invocation.get` until the record is no longer `processing`.
async fn finished_invocation(server: &Server, reference_id: &str) -> Value {
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    loop {
        let record = invocation(server, reference_id).await;
        if record["state"] != "processing" {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "invocation still processing after {DELIVERY_DEADLINE:?}: {record}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A fresh Standard Webhooks secret (32 random key bytes).
fn new_secret() -> String {
    let mut key = uuid::Uuid::new_v4().as_bytes().to_vec();
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!("whsec_{}", B64.encode(key))
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_rfc3339_millis(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
}

/// Milliseconds since the epoch of a `YYYY-MM-DDTHH:MM:SS.mmmZ` value.
pub(crate) fn epoch_millis(v: &Value) -> i64 {
    assert!(is_rfc3339_millis(v), "{v}");
    let s = v.as_str().unwrap();
    let n = |range: std::ops::Range<usize>| s[range].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from 1970-01-01 to y-m-d (proleptic Gregorian).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + n(11..13)) * 60 + n(14..16)) * 60_000 + n(17..19) * 1000 + n(20..23)
}

/// Takes `keys` out of `value` (they must be RFC 3339 timestamps) and returns them.
fn take_times(value: &mut Value, keys: &[&str]) -> Vec<Value> {
    let map = value.as_object_mut().expect("an object");
    keys.iter()
        .map(|k| {
            let v = map
                .remove(*k)
                .unwrap_or_else(|| panic!("no {k} in the answer"));
            assert!(is_rfc3339_millis(&v), "{k}: {v}");
            v
        })
        .collect()
}

/// Whether the independent `standardwebhooks` library accepts `request` as
/// signed with `secret` (runs tests/verify_signature.py in the test venv).
async fn verifies(python: &std::path::Path, secret: &str, request: &Recorded) -> bool {
    let headers: serde_json::Map<String, Value> = request
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), Value::from(v.as_str())))
        .collect();
    let input = json!({"secret": secret, "headers": headers, "body": B64.encode(&request.body)});
    let mut child = tokio::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/verify_signature.py"
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the venv's python (run `make test`)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    match output.status.code() {
        Some(0) => true,
        Some(1) => false,
        _ => panic!(
            "verify_signature.py failed: {:?} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// The entries of a `webhook-signature` header.
fn signature_entries(request: &Recorded) -> Vec<String> {
    let values = request.header_values("webhook-signature");
    assert_eq!(values.len(), 1, "one webhook-signature header");
    values[0].split(' ').map(str::to_owned).collect()
}

// ----- the registry -----

#[tokio::test]
async fn registry_put_get_list_delete_with_values_masked() {
    let server = server().await;
    let endpoint = Endpoint::start().await;
    let url = endpoint.url("/hooks/create?source=hookflow");
    let secret = new_secret();
    let body = json!({
        "id": "crm-create",
        "url": url,
        "method": "post",
        "headers": {"Authorization": "Bearer sk-prefilled-123", "X-Tenant": ""},
        "queryParams": ["page", "lang"],
        "payloadEncoding": "json",
        "secret": secret,
        "description": "Creates a contact in the CRM",
    });
    let (status, mut created) = post_json(&server, "outgoing.put", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let text = created.to_string();
    assert!(
        !text.contains("sk-prefilled-123") && !text.contains(&secret[6..]),
        "{text}"
    );
    let created_times = take_times(&mut created, &["createdAt", "updatedAt"]);
    assert_eq!(created_times[0], created_times[1]);
    let masked = json!({
        "id": "crm-create",
        "url": url,
        "method": "POST",
        "headers": {"Authorization": "********", "X-Tenant": ""},
        "queryParams": ["page", "lang"],
        "payloadEncoding": "json",
        "enabled": true,
        "signed": true,
        "secret": "********",
        "description": "Creates a contact in the CRM",
    });
    assert_eq!(created, masked);

    // Read back: the same, with the same times.
    let mut one = registration(&server, "crm-create").await;
    assert_eq!(
        take_times(&mut one, &["createdAt", "updatedAt"]),
        created_times
    );
    assert_eq!(one, masked);

    // Replaced: 200, creation time kept; without `secret` the secret stays.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut second = body.clone();
    second.as_object_mut().unwrap().remove("secret");
    second["description"] = json!("v2");
    second["queryParams"] = json!(["page"]);
    let (status, mut replaced) = post_json(&server, "outgoing.put", &second).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    let times = take_times(&mut replaced, &["createdAt", "updatedAt"]);
    assert_eq!(times[0], created_times[0], "createdAt is kept");
    assert!(epoch_millis(&times[1]) > epoch_millis(&created_times[1]));
    let mut want = masked.clone();
    want["description"] = json!("v2");
    want["queryParams"] = json!(["page"]);
    assert_eq!(replaced, want);

    // A second, unsigned registration; the list is sorted by id.
    let (status, mut other) = post_json(
        &server,
        "outgoing.put",
        &json!({"id": "a-first", "url": endpoint.url("/a"), "method": "GET"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    take_times(&mut other, &["createdAt", "updatedAt"]);
    assert_eq!(
        other,
        json!({
            "id": "a-first", "url": endpoint.url("/a"), "method": "GET", "headers": {},
            "queryParams": [], "payloadEncoding": "json", "enabled": true, "signed": false,
        })
    );
    let (status, list) = server.command("outgoing.get", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a-first", "crm-create"]);
    assert!(!list.to_string().contains("sk-prefilled-123"));

    // Delete answers with the (masked) registration; then it is gone.
    let (status, mut deleted) = server
        .command("outgoing.delete", &[("id", "crm-create")])
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    take_times(&mut deleted, &["createdAt", "updatedAt"]);
    assert_eq!(deleted, want);
    for command in ["outgoing.get", "outgoing.delete"] {
        let (status, body) = server.command(command, &[("id", "crm-create")]).await;
        assert_error(status, &body, 404, "outgoing_webhook_not_found");
    }
    let (status, body) = server
        .command("outgoing.get", &[("id", "no such id!")])
        .await;
    assert_error(status, &body, 404, "outgoing_webhook_not_found");
    let (status, body) = server.command("outgoing.delete", &[]).await;
    assert_error(status, &body, 400, "id_missing");
    let (_, list) = server.command("outgoing.get", &[]).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_registrations_are_refused_with_a_stable_code() {
    let server = server().await;
    let good = json!({"id": "ok-id", "url": "http://127.0.0.1:9/x", "method": "POST"});
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases = [
        (without("id"), "id_missing"),
        (without("url"), "url_missing"),
        (without("method"), "method_missing"),
        (with("id", json!("has spaces!")), "invalid_id"),
        (with("url", json!("not a url")), "invalid_url"),
        (with("url", json!("ftp://127.0.0.1/file")), "invalid_url"),
        (with("url", json!("/relative/path")), "invalid_url"),
        (
            with("url", json!("http://user:pass@127.0.0.1:9/x")),
            "invalid_url",
        ),
        (
            with("url", json!("http://127.0.0.1:9/x#part")),
            "invalid_url",
        ),
        (with("method", json!("FETCH")), "invalid_method"),
        (with("method", json!(5)), "invalid_method"),
        (with("secret", json!("plain-text-secret")), "invalid_secret"),
        (with("secret", json!("whsec_!!!")), "invalid_secret"),
        (with("secret", json!("whsec_c2hvcnQ=")), "invalid_secret"),
        (with("secret", json!(42)), "invalid_secret"),
        (with("schema", json!({"type": 12})), "invalid_schema"),
        (with("schema", json!("an object please")), "invalid_schema"),
        (
            with("payloadEncoding", json!("hex")),
            "invalid_payload_encoding",
        ),
        (with("headers", json!(["Authorization"])), "invalid_headers"),
        (with("headers", json!({"Host": "evil"})), "invalid_headers"),
        (
            with("headers", json!({"webhook-signature": "x"})),
            "invalid_headers",
        ),
        (
            with("headers", json!({"X-Bad": "line\nbreak"})),
            "invalid_headers",
        ),
        (with("headers", json!({"X-Num": 5})), "invalid_headers"),
        (with("queryParams", json!("page")), "invalid_query_params"),
        (with("queryParams", json!([""])), "invalid_query_params"),
        (with("enabled", json!("yes")), "invalid_enabled"),
        (with("callbackUrl", json!("http://x/")), "unknown_field"),
    ];
    for (body, code) in cases {
        let (status, answer) = post_json(&server, "outgoing.put", &body).await;
        assert_eq!(answer["error"]["code"], code, "{body} -> {answer}");
        assert_error(status, &answer, 400, code);
    }
    // Not JSON at all.
    let res = client()
        .post(server.at("/api/v3/command/outgoing.put"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, answer) = json_of(res).await;
    assert_error(status, &answer, 400, "invalid_json");
    let (_, list) = server.command("outgoing.get", &[]).await;
    assert_eq!(list, json!([]), "nothing was stored");
    // Without the admin token: nothing.
    let res = client()
        .post(server.at("/api/v3/command/outgoing.put"))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

// ----- triggers -----

#[tokio::test]
async fn a_trigger_sends_what_was_registered_and_answers_with_the_reply() {
    let server = server().await;
    let endpoint = Endpoint::start().await;
    put(
        &server,
        &json!({
            "id": "crm-create",
            "url": endpoint.url("/hooks/create?source=hookflow"),
            "method": "POST",
            "headers": {"Authorization": "Bearer sk-prefilled-123", "X-Request-Tag": ""},
            "queryParams": ["page", "lang"],
        }),
    )
    .await;
    endpoint.script([Reply::json(201, &json!({"created": true, "id": 42}))]);
    let (answer, id) = send_ok(
        &server,
        &json!({
            "webhookId": "crm-create",
            "data": {"name": "Ada", "tags": ["a", "b"], "n": 1},
            "headers": {"X-Request-Tag": "tag-7"},
            "queryParams": {"page": 2, "lang": "de en"},
        }),
    )
    .await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 201, "data": {"created": true, "id": 42}, "error": false})
    );
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        "/hooks/create?source=hookflow&page=2&lang=de+en"
    );
    assert_eq!(
        request.header("authorization"),
        Some("Bearer sk-prefilled-123")
    );
    assert_eq!(request.header("x-request-tag"), Some("tag-7"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(
        request
            .header("user-agent")
            .is_some_and(|a| a.starts_with("hookflow/")),
        "{request:?}"
    );
    assert_eq!(request.header("webhook-signature"), None, "not signed");
    assert_eq!(
        request.json(),
        json!({"name": "Ada", "tags": ["a", "b"], "n": 1})
    );

    // A text reply is the data as text; text data goes as text/plain.
    endpoint.script([Reply::text(200, "accepted, thanks")]);
    let (answer, id) = send_ok(
        &server,
        &json!({"webhookId": "crm-create", "data": "plain words"}),
    )
    .await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 200, "data": "accepted, thanks", "error": false})
    );
    let request = &endpoint.requests()[1];
    assert_eq!(request.path, "/hooks/create?source=hookflow");
    assert_eq!(request.body, b"plain words");
    assert_eq!(
        request.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(request.header("x-request-tag"), None, "not set this time");

    // Nothing to send: no body, and an empty reply is null data.
    endpoint.script([Reply::status(204)]);
    let (answer, id) = send_ok(&server, &json!({"webhookId": "crm-create"})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 204, "data": null, "error": false})
    );
    assert!(endpoint.requests()[2].body.is_empty());
}

#[tokio::test]
async fn the_seed_examples_get_with_query_and_binary_post() {
    let server = server().await;
    let endpoint = Endpoint::start().await;
    // seeds/004's examples, pointed at the test endpoint.
    put(
        &server,
        &json!({
            "id": "get-randomapi",
            "url": endpoint.url("/api/v1/randomApi"),
            "method": "GET",
            "headers": {},
            "queryParams": ["pageNum"],
        }),
    )
    .await;
    let (status, stored) = post_json(
        &server,
        "outgoing.put",
        &json!({
            "id": "send-jpeg",
            "url": endpoint.url("/post"),
            "method": "POST",
            "headers": {"Content-Type": "image/jpeg"},
            "payload_encoding": "base64",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    assert_eq!(stored["payloadEncoding"], "base64");
    assert_eq!(stored["headers"], json!({"Content-Type": "********"}));

    endpoint.script([Reply::json(200, &json!({"page": 3, "items": []}))]);
    let (answer, id) = send_ok(
        &server,
        &json!({"webhookId": "get-randomapi", "data": null, "headers": {}, "queryParams": {"pageNum": 3}}),
    )
    .await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 200, "data": {"page": 3, "items": []}, "error": false})
    );
    let request = &endpoint.requests()[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.path, "/api/v1/randomApi?pageNum=3");
    assert!(request.body.is_empty());

    // Binary: a few bytes that are not UTF-8 arrive as they are.
    let bytes: &[u8] = &[0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x80, 0xfe, 0x4a, 0x46];
    let (answer, _) = send_ok(
        &server,
        &json!({"webhookId": "send-jpeg", "data": B64.encode(bytes)}),
    )
    .await;
    assert_eq!(answer["status"], 200, "{answer}");
    let request = &endpoint.requests()[1];
    assert_eq!(request.method, "POST");
    assert_eq!(request.body, bytes);
    assert_eq!(request.header_values("content-type"), ["image/jpeg"]);
    assert_eq!(request.header("content-length"), Some("10"));
}

#[tokio::test]
async fn endpoint_failures_are_answers_with_error_true() {
    let server = server().await;
    let endpoint = Endpoint::start().await;
    put(
        &server,
        &json!({"id": "flaky", "url": endpoint.url("/f"), "method": "POST"}),
    )
    .await;
    endpoint.script([Reply::json(500, &json!({"error": "boom"}))]);
    let (answer, id) = send_ok(&server, &json!({"webhookId": "flaky", "data": {"a": 1}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 500, "data": {"error": "boom"}, "error": true})
    );
    let record = invocation(&server, &id).await;
    assert_eq!(record["state"], "failed");
    assert_eq!(record["errorMessage"], "the endpoint answered 500");

    // Nobody listens: status 0.
    let port = closed_port();
    put(
        &server,
        &json!({"id": "down", "url": format!("http://127.0.0.1:{port}/x?token=hidden"), "method": "POST"}),
    )
    .await;
    let (answer, id) = send_ok(&server, &json!({"webhookId": "down", "data": {"a": 1}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 0, "data": null, "error": true})
    );
    let record = invocation(&server, &id).await;
    assert_eq!(record["state"], "failed");
    assert_eq!(record["status"], 0);
    let message = record["errorMessage"].as_str().unwrap();
    assert!(message.starts_with("endpoint unreachable"), "{message}");
    assert!(!message.contains("hidden"), "{message}");
}

#[tokio::test]
async fn a_slow_endpoint_times_out_with_status_0() {
    let server = Server::start_with(&[ALLOW, ("HOOKFLOW_OUTGOING_TIMEOUT_MS", "500")]).await;
    let endpoint = Endpoint::answering(
        Reply::json(200, &json!({"late": true})).delay(Duration::from_secs(10)),
    )
    .await;
    put(
        &server,
        &json!({"id": "slow", "url": endpoint.url("/slow"), "method": "POST"}),
    )
    .await;
    let started = Instant::now();
    let (answer, id) = send_ok(&server, &json!({"webhookId": "slow", "data": {}})).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered before the endpoint did"
    );
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 0, "data": null, "error": true})
    );
    endpoint.wait_for_requests(1, Duration::from_secs(5)).await;
    let record = invocation(&server, &id).await;
    let message = record["errorMessage"].as_str().unwrap();
    assert!(message.contains("did not answer within"), "{message}");
}

#[tokio::test]
async fn triggers_that_do_not_fit_are_refused_before_any_call() {
    let server = server().await;
    let endpoint = Endpoint::start().await;
    put(
        &server,
        &json!({
            "id": "strict",
            "url": endpoint.url("/strict"),
            "method": "POST",
            "headers": {"Authorization": "Bearer sk-prefilled-123", "X-Tag": ""},
            "queryParams": ["page"],
            "schema": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "items": {"type": "array", "items": {"type": "integer"}}
                }
            }
        }),
    )
    .await;
    put(
        &server,
        &json!({"id": "binary", "url": endpoint.url("/bin"), "method": "PUT", "payloadEncoding": "base64"}),
    )
    .await;
    put(
        &server,
        &json!({"id": "switched-off", "url": endpoint.url("/off"), "method": "POST", "enabled": false}),
    )
    .await;
    let valid = json!({"name": "x", "items": [1, 2]});
    let cases = [
        (
            json!({"webhookId": "no-such-hook", "data": valid}),
            404,
            "outgoing_webhook_not_found",
            "no-such-hook",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "queryParams": {"limit": 5}}),
            400,
            "query_param_not_allowed",
            "limit",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "headers": {"X-Other": "v"}}),
            400,
            "header_not_allowed",
            "X-Other",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "headers": {"authorization": "Bearer mine"}}),
            400,
            "header_not_allowed",
            "pre-filled",
        ),
        (
            json!({"webhookId": "strict", "data": {"name": "x", "items": [1, "two"]}}),
            400,
            "schema_violation",
            "/items/1",
        ),
        (
            json!({"webhookId": "strict", "data": {"items": []}}),
            400,
            "schema_violation",
            "name",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "headers": ["X-Tag"]}),
            400,
            "invalid_headers",
            "headers",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "headers": {"X-Tag": "bad\r\nvalue"}}),
            400,
            "invalid_headers",
            "X-Tag",
        ),
        (
            json!({"webhookId": "binary", "data": "!!! not base64 !!!"}),
            400,
            "invalid_base64",
            "base64",
        ),
        (
            json!({"webhookId": "binary", "data": {"an": "object"}}),
            400,
            "invalid_base64",
            "base64",
        ),
        (
            json!({"data": valid}),
            400,
            "webhook_id_missing",
            "webhookId",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "callback": "x"}),
            400,
            "unknown_field",
            "callback",
        ),
        (
            json!({"webhookId": "strict", "data": valid, "async": "maybe"}),
            400,
            "invalid_async",
            "async",
        ),
        (
            json!({"webhookId": "switched-off", "data": {}}),
            409,
            "outgoing_webhook_disabled",
            "switched-off",
        ),
    ];
    for (trigger, status, code, mentions) in cases {
        let (got, answer) = send(&server, &trigger).await;
        assert_eq!(answer["error"]["code"], code, "{trigger} -> {answer}");
        assert_error(got, &answer, status, code);
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{trigger}: {message}");
    }
    assert!(endpoint.requests().is_empty());
    assert_eq!(endpoint.accepted(), 0, "no call was made");
    for id in ["strict", "binary", "switched-off"] {
        assert_eq!(invocations(&server, id).await, Vec::<Value>::new(), "{id}");
    }
    // The same triggers fit once corrected.
    let (answer, _) = send_ok(
        &server,
        &json!({"webhookId": "strict", "data": valid, "headers": {"X-Tag": "t"}, "queryParams": {"page": 1}}),
    )
    .await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(endpoint.requests().len(), 1);
}

#[tokio::test]
async fn content_type_comes_from_the_registration_the_trigger_or_the_data() {
    let server = server().await;
    let endpoint = Endpoint::start().await;
    // Content-Type listed as one a trigger may set.
    put(
        &server,
        &json!({"id": "typed", "url": endpoint.url("/t"), "method": "POST", "headers": {"Content-Type": ""}}),
    )
    .await;
    send_ok(
        &server,
        &json!({"webhookId": "typed", "data": "<a/>", "headers": {"content-type": "application/xml"}}),
    )
    .await;
    send_ok(
        &server,
        &json!({"webhookId": "typed", "data": {"json": true}}),
    )
    .await;
    let requests = endpoint.requests();
    assert_eq!(
        requests[0].header_values("content-type"),
        ["application/xml"]
    );
    assert_eq!(requests[0].body, b"<a/>");
    assert_eq!(
        requests[1].header_values("content-type"),
        ["application/json"],
        "not set by the trigger: the data's own type"
    );
    let listed = invocations(&server, "typed").await;
    assert_eq!(listed[0]["request"]["contentType"], "application/json");
    assert_eq!(listed[1]["request"]["contentType"], "application/xml");
}

// ----- invocation records -----

#[tokio::test]
async fn invocation_records_tell_who_what_when_and_the_outcome() {
    let server = server().await;
    let endpoint = Endpoint::start().await;
    let url = endpoint.url("/audit?fixed=1");
    put(
        &server,
        &json!({
            "id": "audited",
            "url": url,
            "method": "POST",
            "headers": {"Authorization": "Bearer sk-prefilled-123", "X-Request-Tag": ""},
            "queryParams": ["page"],
        }),
    )
    .await;
    endpoint.script([Reply::json(200, &json!({"seen": 1}))]);
    let before = Instant::now();
    let (_, first) = send_ok(
        &server,
        &json!({
            "webhookId": "audited",
            "data": {"hello": "world"},
            "headers": {"X-Request-Tag": "tag-secret-value"},
            "queryParams": {"page": "7"},
        }),
    )
    .await;
    let mut record = invocation(&server, &first).await;
    let text = record.to_string();
    assert!(
        !text.contains("tag-secret-value") && !text.contains("sk-prefilled-123"),
        "{text}"
    );
    let times = take_times(&mut record, &["createdAt", "updatedAt", "expiresAt"]);
    assert_eq!(
        epoch_millis(&times[2]) - epoch_millis(&times[0]),
        259_200_000,
        "kept for the default 3 days"
    );
    assert!(epoch_millis(&times[1]) >= epoch_millis(&times[0]));
    let duration = record["durationMs"].as_u64().expect("durationMs");
    assert!(duration <= before.elapsed().as_millis() as u64 + 1000);
    let attempts = record["attempts"].as_array().expect("attempts").clone();
    assert_eq!(attempts.len(), 1);
    assert!(is_rfc3339_millis(&attempts[0]["at"]));
    assert_eq!(
        record,
        json!({
            "referenceId": first,
            "webhookId": "audited",
            "caller": "admin",
            "async": false,
            "request": {
                "method": "POST",
                "url": url,
                "queryParams": ["page"],
                "headers": ["Authorization", "X-Request-Tag", "Content-Type"],
                "bodyBytes": 17,
                "contentType": "application/json",
                "signed": false,
            },
            "state": "succeeded",
            "status": 200,
            "error": false,
            "data": {"seen": 1},
            "durationMs": duration,
            "attempts": [{"at": attempts[0]["at"], "status": 200, "durationMs": attempts[0]["durationMs"]}],
        })
    );

    // Two more; listing by webhook gives the newest first.
    let mut ids = vec![first];
    for n in 0..2 {
        // Distinct creation times (millisecond resolution) for a stable order.
        tokio::time::sleep(Duration::from_millis(20)).await;
        ids.push(
            send_ok(&server, &json!({"webhookId": "audited", "data": {"n": n}}))
                .await
                .1,
        );
    }
    let listed: Vec<String> = invocations(&server, "audited")
        .await
        .iter()
        .map(|r| r["referenceId"].as_str().unwrap().to_owned())
        .collect();
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);
    let (status, limited) = server
        .command(
            "invocation.get",
            &[("webhookId", "audited"), ("limit", "2")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let limited: Vec<&str> = limited
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["referenceId"].as_str().unwrap())
        .collect();
    assert_eq!(limited, newest_first[..2]);
    assert_eq!(
        invocations(&server, "other-hook").await,
        Vec::<Value>::new()
    );

    // Errors.
    let (status, body) = server
        .command(
            "invocation.get",
            &[("referenceId", &uuid::Uuid::new_v4().to_string())],
        )
        .await;
    assert_error(status, &body, 404, "invocation_not_found");
    let (status, body) = server
        .command("invocation.get", &[("referenceId", "not-a-uuid")])
        .await;
    assert_error(status, &body, 404, "invocation_not_found");
    let (status, body) = server
        .command(
            "invocation.get",
            &[("webhookId", "audited"), ("limit", "0")],
        )
        .await;
    assert_error(status, &body, 400, "invalid_limit");
    let (status, body) = server.command("invocation.get", &[]).await;
    assert_error(status, &body, 400, "reference_id_missing");
}

// ----- signatures -----

#[tokio::test]
async fn signed_calls_verify_with_the_standard_webhooks_library() {
    let Some(python) = venv_python() else {
        return;
    };
    let server = server().await;
    let endpoint = Endpoint::start().await;
    let secret = new_secret();
    let stored = put(
        &server,
        &json!({"id": "signed", "url": endpoint.url("/signed"), "method": "POST", "secret": secret}),
    )
    .await;
    assert_eq!(stored["signed"], true);
    assert_eq!(stored["secret"], "********");
    let (_, id) = send_ok(
        &server,
        &json!({"webhookId": "signed", "data": {"amount": 12.5, "currency": "EUR"}}),
    )
    .await;
    let request = &endpoint.requests()[0];
    assert_eq!(request.header("webhook-id"), Some(id.as_str()));
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - timestamp).abs() < 60, "{timestamp} vs {now}");
    let entries = signature_entries(request);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].starts_with("v1,"));
    assert!(
        verifies(&python, &secret, request).await,
        "the library accepts the call"
    );
    // The verifier really checks: a wrong secret or a changed body fail.
    assert!(!verifies(&python, &new_secret(), request).await);
    let mut tampered = request.clone();
    tampered.body = br#"{"amount":1200,"currency":"EUR"}"#.to_vec();
    assert!(!verifies(&python, &secret, &tampered).await);
    let record = invocation(&server, &id).await;
    assert_eq!(record["request"]["signed"], true);
    assert_eq!(
        record["request"]["headers"],
        json!([
            "Content-Type",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature"
        ])
    );

    // Rotation: the previous secret keeps signing alongside the new one.
    let rotated = new_secret();
    let answer = put(
        &server,
        &json!({"id": "signed", "url": endpoint.url("/signed"), "method": "POST", "secret": rotated}),
    )
    .await;
    assert_eq!(answer["secret"], "********");
    let retire = answer["previousSecretsRetireAt"]
        .as_array()
        .expect("the retiring secret is announced");
    assert_eq!(retire.len(), 1);
    let grace = epoch_millis(&retire[0]) - epoch_millis(&answer["updatedAt"]);
    assert_eq!(grace, 86_400_000, "the default grace period is a day");
    send_ok(&server, &json!({"webhookId": "signed", "data": {"n": 2}})).await;
    let request = &endpoint.requests()[1];
    assert_eq!(signature_entries(request).len(), 2);
    assert!(
        verifies(&python, &secret, request).await,
        "the old secret verifies"
    );
    assert!(
        verifies(&python, &rotated, request).await,
        "the new secret verifies"
    );
    assert!(!verifies(&python, &new_secret(), request).await);

    // A generated secret is shown once, then masked.
    let answer = put(
        &server,
        &json!({"id": "signed", "url": endpoint.url("/signed"), "method": "POST", "secret": "generate"}),
    )
    .await;
    let generated = answer["secret"].as_str().unwrap().to_owned();
    assert!(generated.starts_with("whsec_"), "{answer}");
    assert_eq!(registration(&server, "signed").await["secret"], "********");
    send_ok(&server, &json!({"webhookId": "signed", "data": {"n": 3}})).await;
    let request = &endpoint.requests()[2];
    assert_eq!(signature_entries(request).len(), 3);
    for key in [&generated, &rotated, &secret] {
        assert!(verifies(&python, key, request).await);
    }

    // `secret: null` turns signing off.
    let answer = put(
        &server,
        &json!({"id": "signed", "url": endpoint.url("/signed"), "method": "POST", "secret": null}),
    )
    .await;
    assert_eq!(answer["signed"], false);
    assert!(answer.get("secret").is_none(), "{answer}");
    send_ok(&server, &json!({"webhookId": "signed", "data": {"n": 4}})).await;
    let request = &endpoint.requests()[3];
    for header in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert_eq!(request.header(header), None, "{header}");
    }
}

#[tokio::test]
async fn without_a_grace_period_only_the_new_secret_signs() {
    let Some(python) = venv_python() else {
        return;
    };
    let server =
        Server::start_with(&[ALLOW, ("HOOKFLOW_OUTGOING_SECRET_GRACE_SECONDS", "0")]).await;
    let endpoint = Endpoint::start().await;
    let (old, new) = (new_secret(), new_secret());
    for secret in [&old, &new] {
        put(
            &server,
            &json!({"id": "rotated", "url": endpoint.url("/r"), "method": "POST", "secret": secret}),
        )
        .await;
    }
    assert!(
        registration(&server, "rotated")
            .await
            .get("previousSecretsRetireAt")
            .is_none()
    );
    send_ok(&server, &json!({"webhookId": "rotated", "data": {"x": 1}})).await;
    let request = &endpoint.requests()[0];
    assert_eq!(signature_entries(request).len(), 1);
    assert!(verifies(&python, &new, request).await);
    assert!(!verifies(&python, &old, request).await);
}

// ----- the SSRF guard -----

#[tokio::test]
async fn without_the_allow_list_internal_destinations_are_refused() {
    let server = Server::start_with(&[FAST_RETRIES]).await;
    let endpoint = Endpoint::start().await;
    let port = endpoint.port;
    // A name is checked when the call resolves it.
    let (status, body) = post_json(
        &server,
        "outgoing.put",
        &json!({"id": "by-name", "url": format!("http://localhost:{port}/hook"), "method": "POST"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (answer, id) = send_ok(&server, &json!({"webhookId": "by-name", "data": {"a": 1}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 0, "data": null, "error": true})
    );
    let record = invocation(&server, &id).await;
    assert_eq!(record["state"], "failed");
    let message = record["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("destination not allowed") && message.contains("localhost"),
        "{message}"
    );
    // Also asynchronously: refused on every attempt, never connected.
    let (status, answer) = send(
        &server,
        &json!({"webhookId": "by-name", "data": {"a": 2}, "async": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let record = finished_invocation(&server, &reference_id(&answer)).await;
    assert_eq!(record["state"], "failed", "{record}");
    assert!(
        record["errorMessage"]
            .as_str()
            .unwrap()
            .contains("destination not allowed"),
        "{record}"
    );
    assert_eq!(endpoint.accepted(), 0, "no connection was made");

    // Addresses written into the URL are refused when registering.
    for url in [
        format!("http://127.0.0.1:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        format!("http://[::1]:{port}/"),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "http://224.0.0.1/".to_owned(),
        // Other spellings of loopback, normalised by the URL parser.
        "http://2130706433/".to_owned(),
        "http://0x7f.1/".to_owned(),
        "http://[::ffff:7f00:1]/".to_owned(),
    ] {
        let (status, body) = post_json(
            &server,
            "outgoing.put",
            &json!({"id": "internal", "url": url, "method": "GET"}),
        )
        .await;
        assert_error(status, &body, 400, "destination_not_allowed");
        let (_, list) = server.command("outgoing.get", &[]).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{url} was not stored");
    }
    assert_eq!(endpoint.accepted(), 0);
}

#[tokio::test]
async fn with_the_allow_list_loopback_works_and_redirects_are_not_followed() {
    let server = server().await;
    let endpoint = Endpoint::start().await;
    let elsewhere = Endpoint::start().await;
    put(
        &server,
        &json!({"id": "by-name", "url": format!("http://localhost:{}/hook", endpoint.port), "method": "POST"}),
    )
    .await;
    let (answer, id) = send_ok(&server, &json!({"webhookId": "by-name", "data": {"a": 1}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 200, "data": {"ok": true}, "error": false})
    );
    assert_eq!(endpoint.requests()[0].path, "/hook");

    // A redirect is the answer: the Location is not called.
    put(
        &server,
        &json!({"id": "moved", "url": endpoint.url("/old"), "method": "POST"}),
    )
    .await;
    endpoint.script([Reply::status(302).header("location", &elsewhere.url("/new"))]);
    let (answer, id) = send_ok(&server, &json!({"webhookId": "moved", "data": {"a": 1}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 302, "data": null, "error": true})
    );
    assert_eq!(endpoint.requests().len(), 2);
    assert_eq!(elsewhere.requests().len(), 0);
    assert_eq!(elsewhere.accepted(), 0);
}

// ----- asynchronous deliveries -----

#[tokio::test]
async fn async_deliveries_are_retried_until_they_succeed() {
    let Some(python) = venv_python() else {
        return;
    };
    let server = server().await;
    let endpoint = Endpoint::start().await;
    let secret = new_secret();
    put(
        &server,
        &json!({"id": "retried", "url": endpoint.url("/r"), "method": "POST", "secret": secret}),
    )
    .await;
    endpoint.script([
        Reply::json(500, &json!({"error": "first"})),
        Reply::text(503, "busy"),
    ]);
    let (status, answer) = send(
        &server,
        &json!({"webhookId": "retried", "data": {"order": 7}, "async": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = reference_id(&answer);
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": "processing", "data": null, "error": false})
    );
    let record = finished_invocation(&server, &id).await;
    assert_eq!(record["state"], "succeeded", "{record}");
    assert_eq!(record["status"], 200);
    assert_eq!(record["error"], false);
    assert_eq!(record["async"], true);
    assert_eq!(record["data"], json!({"ok": true}));
    assert!(record.get("errorMessage").is_none(), "{record}");
    assert!(record.get("nextAttemptAt").is_none(), "{record}");
    let statuses: Vec<&Value> = record["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, [&json!(500), &json!(503), &json!(200)]);
    assert_eq!(
        record["attempts"][0]["errorMessage"],
        "the endpoint answered 500"
    );
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.header("webhook-id"), Some(id.as_str()));
        assert_eq!(request.json(), json!({"order": 7}));
        assert!(verifies(&python, &secret, request).await);
    }
}

#[tokio::test]
async fn async_deliveries_give_up_after_the_schedule() {
    let server = Server::start_with(&[ALLOW, ("HOOKFLOW_OUTGOING_RETRY_SCHEDULE", "1s,1s")]).await;
    let endpoint = Endpoint::answering(Reply::json(500, &json!({"error": "down"}))).await;
    put(
        &server,
        &json!({"id": "broken", "url": endpoint.url("/b"), "method": "POST"}),
    )
    .await;
    let (status, answer) = send(
        &server,
        &json!({"webhookId": "broken", "data": {"x": 1}, "async": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = reference_id(&answer);
    let record = finished_invocation(&server, &id).await;
    assert_eq!(record["state"], "failed", "{record}");
    assert_eq!(record["status"], 500);
    assert_eq!(record["error"], true);
    assert_eq!(record["attempts"].as_array().unwrap().len(), 3, "{record}");
    let message = record["errorMessage"].as_str().unwrap();
    assert!(message.starts_with("gave up after 3 attempts"), "{message}");
    // No fourth try.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(endpoint.requests().len(), 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = server().await;
    let endpoint = Endpoint::start().await;
    put(
        &server,
        &json!({"id": "limited", "url": endpoint.url("/l"), "method": "POST"}),
    )
    .await;
    endpoint.script([Reply::text(429, "slow down").header("retry-after", "2")]);
    let (status, answer) = send(
        &server,
        &json!({"webhookId": "limited", "data": {"x": 1}, "async": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = reference_id(&answer);
    // Between the two attempts the record says when the next one is due.
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    let waiting = loop {
        let record = invocation(&server, &id).await;
        let attempts = record["attempts"].as_array().unwrap().len();
        if record["state"] == "processing" && attempts == 1 {
            break record;
        }
        assert!(attempts == 0, "the 2 s wait was not seen: {record}");
        assert!(Instant::now() < deadline, "no first attempt: {record}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(waiting["status"], 429, "{waiting}");
    assert_eq!(waiting["error"], true);
    let due = epoch_millis(&waiting["nextAttemptAt"]) - epoch_millis(&waiting["attempts"][0]["at"]);
    assert!(
        due >= 2000,
        "next attempt due {due} ms after the first: {waiting}"
    );
    let record = finished_invocation(&server, &id).await;
    assert_eq!(record["state"], "succeeded", "{record}");
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_secs(2),
        "the retry came {gap:?} after the 429 with Retry-After: 2"
    );
}

#[tokio::test]
async fn a_delivery_stops_when_its_registration_is_deleted_or_disabled() {
    // Retries far enough apart that the registration is changed before a second attempt.
    let server = Server::start_with(&[ALLOW, ("HOOKFLOW_OUTGOING_RETRY_SCHEDULE", "3s,3s")]).await;
    let endpoint = Endpoint::answering(Reply::status(500)).await;
    for id in ["deleted-later", "disabled-later"] {
        put(
            &server,
            &json!({"id": id, "url": endpoint.url(&format!("/{id}")), "method": "POST"}),
        )
        .await;
    }
    let mut ids = Vec::new();
    for id in ["deleted-later", "disabled-later"] {
        let (status, answer) = send(
            &server,
            &json!({"webhookId": id, "data": {}, "async": true}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        ids.push(reference_id(&answer));
    }
    // Whether or not the first attempt was made by now, no further one is.
    let (status, _) = server
        .command("outgoing.delete", &[("id", "deleted-later")])
        .await;
    assert_eq!(status, StatusCode::OK);
    put(
        &server,
        &json!({"id": "disabled-later", "url": endpoint.url("/disabled-later"), "method": "POST", "enabled": false}),
    )
    .await;
    for (id, why) in ids.iter().zip([
        "the outgoing webhook was deleted",
        "the outgoing webhook is disabled",
    ]) {
        let record = finished_invocation(&server, id).await;
        assert_eq!(record["state"], "failed", "{record}");
        assert_eq!(record["error"], true);
        assert_eq!(record["errorMessage"], why, "{record}");
        assert!(
            record["attempts"].as_array().unwrap().len() <= 1,
            "{record}"
        );
    }
    assert!(endpoint.requests().len() <= 2);
}

#[tokio::test]
async fn an_answer_larger_than_the_cap_is_not_read() {
    let server =
        Server::start_with(&[ALLOW, ("HOOKFLOW_OUTGOING_MAX_RESPONSE_BYTES", "1024")]).await;
    let endpoint = Endpoint::start().await;
    put(
        &server,
        &json!({"id": "chatty", "url": endpoint.url("/c"), "method": "POST"}),
    )
    .await;
    endpoint.script([
        Reply::text(200, &"a".repeat(1024)),
        Reply::text(200, &"b".repeat(1025)),
        Reply::text(500, &"c".repeat(5000)),
    ]);
    let (answer, _) = send_ok(&server, &json!({"webhookId": "chatty", "data": {}})).await;
    assert_eq!(answer["data"], "a".repeat(1024), "exactly the cap is read");
    let (answer, id) = send_ok(&server, &json!({"webhookId": "chatty", "data": {}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 200, "data": null, "error": false}),
        "the status counts, the body is dropped"
    );
    let record = invocation(&server, &id).await;
    assert!(
        record["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("larger than 1024 bytes")),
        "{record}"
    );
    let (answer, id) = send_ok(&server, &json!({"webhookId": "chatty", "data": {}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 500, "data": null, "error": true})
    );
}

#[tokio::test]
async fn records_keep_large_answers_and_async_bodies_bounded() {
    let server = server().await;
    let endpoint = Endpoint::start().await;
    put(
        &server,
        &json!({"id": "bulky", "url": endpoint.url("/b"), "method": "POST"}),
    )
    .await;
    // An answer of 100 KiB: the caller gets all of it, the record a note.
    let big = json!({"items": "x".repeat(100 * 1024)});
    endpoint.script([Reply::json(200, &big)]);
    let (answer, id) = send_ok(&server, &json!({"webhookId": "bulky", "data": {}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 200, "data": big, "error": false})
    );
    let record = invocation(&server, &id).await;
    assert_eq!(record["state"], "succeeded");
    let omitted = record["data"]["omitted"].as_str().expect("a note");
    assert!(omitted.contains("larger than"), "{omitted}");

    // An asynchronous body waits in the record: at most 192 KiB.
    let (status, body) = send(
        &server,
        &json!({"webhookId": "bulky", "data": "y".repeat(192 * 1024 + 1), "async": true}),
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");
    assert_eq!(endpoint.requests().len(), 1);
    let (status, answer) = send(
        &server,
        &json!({"webhookId": "bulky", "data": "z".repeat(192 * 1024), "async": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let record = finished_invocation(&server, &reference_id(&answer)).await;
    assert_eq!(record["state"], "succeeded", "{record}");
    assert_eq!(record["request"]["bodyBytes"], 192 * 1024);
    let requests = endpoint.wait_for_requests(2, Duration::from_secs(5)).await;
    assert_eq!(requests[1].body.len(), 192 * 1024);
}

// ----- 410 Gone -----

#[tokio::test]
async fn a_410_disables_the_registration() {
    let server = server().await;
    let endpoint = Endpoint::answering(Reply::text(410, "gone for good")).await;
    for id in ["gone-sync", "gone-async"] {
        put(
            &server,
            &json!({"id": id, "url": endpoint.url(&format!("/{id}")), "method": "POST"}),
        )
        .await;
    }
    let (answer, id) = send_ok(&server, &json!({"webhookId": "gone-sync", "data": {}})).await;
    assert_eq!(
        answer,
        json!({"referenceId": id, "status": 410, "data": "gone for good", "error": true})
    );
    let stored = registration(&server, "gone-sync").await;
    assert_eq!(stored["enabled"], false, "{stored}");
    assert_eq!(stored["disabledReason"], "the endpoint answered 410 Gone");
    let (status, body) = send(&server, &json!({"webhookId": "gone-sync", "data": {}})).await;
    assert_error(status, &body, 409, "outgoing_webhook_disabled");
    assert_eq!(endpoint.requests().len(), 1);

    // Asynchronous: no retries after a 410.
    let (status, answer) = send(
        &server,
        &json!({"webhookId": "gone-async", "data": {}, "async": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let record = finished_invocation(&server, &reference_id(&answer)).await;
    assert_eq!(record["state"], "failed", "{record}");
    assert_eq!(record["status"], 410);
    assert_eq!(record["attempts"].as_array().unwrap().len(), 1);
    let stored = registration(&server, "gone-async").await;
    assert_eq!(stored["enabled"], false, "{stored}");
    assert_eq!(stored["disabledReason"], "the endpoint answered 410 Gone");
    let (status, body) = send(
        &server,
        &json!({"webhookId": "gone-async", "data": {}, "async": true}),
    )
    .await;
    assert_error(status, &body, 409, "outgoing_webhook_disabled");
    assert_eq!(endpoint.requests().len(), 2);

    // Putting it again enables it.
    endpoint.set_default(Reply::json(200, &json!({"back": true})));
    let stored = put(
        &server,
        &json!({"id": "gone-sync", "url": endpoint.url("/gone-sync"), "method": "POST"}),
    )
    .await;
    assert_eq!(stored["enabled"], true);
    assert!(stored.get("disabledReason").is_none(), "{stored}");
    let (answer, _) = send_ok(&server, &json!({"webhookId": "gone-sync", "data": {}})).await;
    assert_eq!(answer["status"], 200);
}

// ----- pipelines -----

const PIPELINE: &str = "pipeline:
  - event.listen:
      eventKey: webhook.order.created
  - iam.run.as: systemuser
  - webhook.send:
      webhookId: notify-crm
      data: ${@convert.fromJson(@convert.fromBase64(body.origin))}
";

async fn pipeline_result(server: &Server, token: &str, body: &str) -> (String, Value) {
    let (status, id, answer) = server.trigger(token, body, "").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let result = if answer["status"] == "processing" {
        server.final_result(&id).await
    } else {
        answer
    };
    (id, result)
}

#[tokio::test]
async fn a_pipeline_step_sends_and_its_answer_becomes_the_body() {
    let server = server().await;
    let endpoint = Endpoint::start().await;
    put(
        &server,
        &json!({"id": "notify-crm", "url": endpoint.url("/orders"), "method": "POST"}),
    )
    .await;
    endpoint.script([Reply::json(202, &json!({"queued": true}))]);
    let token = server.create_webhook("webhook.order.created", &[]).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, stored) = server.put_pipeline("order-to-crm", PIPELINE).await;
    assert_eq!(status, StatusCode::OK, "{stored}");

    let (correlation_id, result) = pipeline_result(&server, &token, r#"{"order": 17}"#).await;
    assert_eq!(result["status"], "ok", "{result}");
    let value = &result["value"];
    let id = reference_id(value);
    assert_eq!(
        value,
        &json!({"referenceId": id, "status": 202, "data": {"queued": true}, "error": false})
    );
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].json(), json!({"order": 17}));
    let record = invocation(&server, &id).await;
    assert_eq!(record["caller"], "pipeline:order-to-crm");
    assert_eq!(record["correlationId"], correlation_id);
    assert_eq!(record["async"], false);
    assert_eq!(record["state"], "succeeded");

    // A refused trigger fails the step with the registry's code.
    let missing = PIPELINE.replace("notify-crm", "not-registered");
    server.put_pipeline("order-to-crm", &missing).await;
    let (_, result) = pipeline_result(&server, &token, r#"{"order": 18}"#).await;
    assert_eq!(result["status"], "error", "{result}");
    assert_eq!(result["error"]["code"], "outgoing_webhook_not_found");
    assert_eq!(endpoint.requests().len(), 1);
}

#[tokio::test]
async fn a_pipeline_needs_the_webhook_send_permission() {
    let server = server().await;
    let endpoint = Endpoint::start().await;
    put(
        &server,
        &json!({"id": "notify-crm", "url": endpoint.url("/orders"), "method": "POST"}),
    )
    .await;
    let token = server.create_webhook("webhook.order.created", &[]).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let anonymous = PIPELINE.replace("  - iam.run.as: systemuser\n", "");
    let (status, stored) = server.put_pipeline("no-permission", &anonymous).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let (_, result) = pipeline_result(&server, &token, r#"{"order": 1}"#).await;
    assert_eq!(result["status"], "error", "{result}");
    assert_eq!(result["error"]["code"], "permission_denied");
    assert!(
        result["error"]["step"]
            .as_str()
            .unwrap()
            .starts_with("webhook.send"),
        "{result}"
    );
    assert!(endpoint.requests().is_empty());
    assert_eq!(
        invocations(&server, "notify-crm").await,
        Vec::<Value>::new()
    );
}

// ----- secrets -----

#[tokio::test]
async fn secrets_never_leak_into_answers_records_or_logs() {
    let server = Server::start_logged(&[ALLOW, FAST_RETRIES, ("HOOKFLOW_LOG", "debug")]).await;
    // Answers that never echo what they got.
    let endpoint = Endpoint::start().await;
    let secret = new_secret();
    let prefilled = format!("Bearer canary-prefilled-{}", uuid::Uuid::new_v4().simple());
    let trigger_value = format!("canary-trigger-{}", uuid::Uuid::new_v4().simple());
    let registration_body = json!({
        "id": "guarded",
        "url": endpoint.url("/g"),
        "method": "POST",
        "headers": {"Authorization": prefilled, "X-Trigger-Token": ""},
        "queryParams": ["page"],
        "secret": secret,
    });
    let mut answers = Vec::new();
    answers.push(put(&server, &registration_body).await);
    answers.push(put(&server, &registration_body).await);
    answers.push(registration(&server, "guarded").await);
    answers.push(server.command("outgoing.get", &[]).await.1);

    let trigger = json!({
        "webhookId": "guarded",
        "data": {"x": 1},
        "headers": {"X-Trigger-Token": trigger_value},
        "queryParams": {"page": 1},
    });
    let mut ids = Vec::new();
    // Succeeds, fails, cannot connect (via a second registration), and async with a retry.
    ids.push(send_ok(&server, &trigger).await.1);
    endpoint.script([Reply::json(500, &json!({"error": "x"}))]);
    ids.push(send_ok(&server, &trigger).await.1);
    let mut down = registration_body.clone();
    down["id"] = json!("guarded-down");
    down["url"] = json!(format!("http://127.0.0.1:{}/d", closed_port()));
    answers.push(put(&server, &down).await);
    let mut down_trigger = trigger.clone();
    down_trigger["webhookId"] = json!("guarded-down");
    ids.push(send_ok(&server, &down_trigger).await.1);
    endpoint.script([Reply::status(503)]);
    let mut async_trigger = trigger.clone();
    async_trigger["async"] = json!(true);
    let (status, answer) = send(&server, &async_trigger).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    answers.push(answer.clone());
    let async_id = reference_id(&answer);
    ids.push(async_id.clone());
    // Refused: the pre-filled header given a value, and a header not registered.
    for headers in [
        json!({"Authorization": trigger_value}),
        json!({"X-Unlisted": trigger_value}),
    ] {
        let mut refused = trigger.clone();
        refused["headers"] = headers;
        let (status, answer) = send(&server, &refused).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        answers.push(answer);
    }
    // From a pipeline too.
    let token = server.create_webhook("webhook.guarded", &[]).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let pipeline = format!(
        "pipeline:\n  - event.listen: {{eventKey: webhook.guarded}}\n  - iam.run.as: systemuser\n  - webhook.send:\n      webhookId: guarded\n      data: {{y: 2}}\n      headers:\n        X-Trigger-Token: {trigger_value}\n"
    );
    assert_eq!(
        server.put_pipeline("guarded-pipe", &pipeline).await.0,
        StatusCode::OK
    );
    let (_, result) = pipeline_result(&server, &token, "{}").await;
    assert_eq!(result["status"], "ok", "{result}");
    answers.push(result["value"].clone());
    ids.push(reference_id(&result["value"]));

    assert_eq!(
        finished_invocation(&server, &async_id).await["state"],
        "succeeded"
    );
    // The endpoint did get the values.
    let requests = endpoint.requests();
    // Two synchronous calls, the asynchronous one (once or twice) and the pipeline's.
    assert!(requests.len() >= 4, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some(prefilled.as_str()))
    );
    assert!(
        requests
            .iter()
            .all(|r| r.header("x-trigger-token") == Some(trigger_value.as_str()))
    );

    for id in &ids {
        answers.push(invocation(&server, id).await);
    }
    for webhook_id in ["guarded", "guarded-down"] {
        answers.push(Value::Array(invocations(&server, webhook_id).await));
    }
    answers.push(registration(&server, "guarded").await);
    answers.push(server.command("outgoing.get", &[]).await.1);
    let key = &secret["whsec_".len()..];
    let canaries = [
        secret.as_str(),
        key,
        prefilled.as_str(),
        "canary-prefilled",
        trigger_value.as_str(),
    ];
    for answer in &answers {
        let text = answer.to_string();
        for canary in canaries {
            assert!(!text.contains(canary), "{canary} leaked into {text}");
        }
    }
    let log = server.log_text();
    assert!(
        log.contains("outgoing webhook triggered"),
        "the log was captured"
    );
    for canary in canaries {
        assert!(
            !log.contains(canary),
            "{canary} leaked into the log:\n{log}"
        );
    }
}
