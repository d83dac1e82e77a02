//! Outgoing webhooks over HTTP against the real binary, one file per topic:
//! the registry (`outgoing.*`), triggers (`webhook.send`, from the API and from
//! pipelines), invocation records, Standard Webhooks signatures checked by the
//! independent Python library, the SSRF guard, asynchronous deliveries with
//! retries and 410 Gone, size bounds, and that secrets never leak. The
//! endpoint is the core's test endpoint (`hookflow_core::testkit::endpoint`),
//! started by each test, most often through [`OutgoingFixture`].

mod deliveries;
mod invocations;
mod limits;
mod pipelines;
mod registry;
mod resend;
mod secrets;
mod signing;
mod ssrf;
mod triggers;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hookflow_core::testkit::endpoint::{Endpoint, Recorded, Reply, closed_port};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::harness::{ADMIN, Server, assert_error, client, json_of, venv_python};

/// Loopback is where the test endpoints listen.
pub(crate) const ALLOW: (&str, &str) = ("HOOKFLOW_OUTGOING_ALLOW", "127.0.0.0/8");
/// Short retries, so asynchronous deliveries finish within seconds.
const FAST_RETRIES: (&str, &str) = ("HOOKFLOW_OUTGOING_RETRY_SCHEDULE", "1s,1s,1s");
/// How long a test waits for an asynchronous delivery to finish.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(40);

/// The setup most outgoing tests share: a server, a recording endpoint, and
/// (usually) one registration pointing at the endpoint.
pub(crate) struct OutgoingFixture {
    pub server: Server,
    pub endpoint: Endpoint,
    /// The registration's `id` (empty from `start_unregistered`).
    pub id: String,
    /// `outgoing.put`'s answer (201) for it (`null` from `start_unregistered`).
    pub registered: Value,
}

/// What varies between outgoing tests. The defaults: a server with
/// `[ALLOW, FAST_RETRIES]`, an endpoint answering `200 {"ok":true}`.
pub(crate) struct FixtureOptions {
    server_env: Vec<(&'static str, &'static str)>,
    logged: bool,
    endpoint: EndpointMode,
}

enum EndpointMode {
    Answering(Reply),
    NeverAnswering,
}

impl OutgoingFixture {
    /// With the default options and the registration `registration(&endpoint)`.
    pub async fn start(registration: impl FnOnce(&Endpoint) -> Value) -> OutgoingFixture {
        Self::options().start(registration).await
    }

    pub fn options() -> FixtureOptions {
        FixtureOptions {
            server_env: vec![ALLOW, FAST_RETRIES],
            logged: false,
            endpoint: EndpointMode::Answering(Reply::json(200, &json!({"ok": true}))),
        }
    }
}

impl FixtureOptions {
    /// The server's settings, instead of `[ALLOW, FAST_RETRIES]`.
    pub fn server_env(mut self, env: &[(&'static str, &'static str)]) -> FixtureOptions {
        self.server_env = env.to_vec();
        self
    }

    /// Keeps the server's log, for `Server::log_text`.
    pub fn logged(mut self) -> FixtureOptions {
        self.logged = true;
        self
    }

    /// The endpoint's default reply, instead of `200 {"ok":true}`.
    pub fn answering(mut self, reply: Reply) -> FixtureOptions {
        self.endpoint = EndpointMode::Answering(reply);
        self
    }

    /// An endpoint that accepts connections and never answers.
    pub fn never_answering(mut self) -> FixtureOptions {
        self.endpoint = EndpointMode::NeverAnswering;
        self
    }

    /// Starts the server and the endpoint, and registers
    /// `registration(&endpoint)` (expecting 201).
    pub async fn start(self, registration: impl FnOnce(&Endpoint) -> Value) -> OutgoingFixture {
        let mut fixture = self.start_unregistered().await;
        let body = registration(&fixture.endpoint);
        let (status, registered) = post_json(&fixture.server, "outgoing.put", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{body} -> {registered}");
        fixture.id = body["id"].as_str().expect("a registration id").to_owned();
        fixture.registered = registered;
        fixture
    }

    /// Starts the server and the endpoint; the test registers what it needs.
    pub async fn start_unregistered(self) -> OutgoingFixture {
        let server = if self.logged {
            Server::start_logged(&self.server_env).await
        } else {
            Server::start_with(&self.server_env).await
        };
        let endpoint = match self.endpoint {
            EndpointMode::Answering(reply) => Endpoint::answering(reply).await,
            EndpointMode::NeverAnswering => Endpoint::never_answering().await,
        };
        OutgoingFixture {
            server,
            endpoint,
            id: String::new(),
            registered: Value::Null,
        }
    }
}

/// POSTs a command with a JSON body.
pub(crate) async fn post_json(server: &Server, command: &str, body: &Value) -> (StatusCode, Value) {
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

/// Triggers the webhook `token` and waits for the pipeline's final result;
/// returns the correlation id and the result.
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
