//! Pipelines written to hurt the gateway, against the real binary: operator
//! chains thousands of terms long, values nesting deeper on every step, values
//! multiplying on every step, `@convert.toJson` of itself forty times, and long
//! CPU runs. Each is refused at `pipeline.put` or ends in an error outcome with
//! its documented code, and the server keeps serving other requests.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{ADMIN, Server, client, json_of};

/// The largest pipeline `HOOKFLOW_MAX_PIPELINE_BYTES` allows.
const LARGEST_PIPELINE: &str = "4194304";

async fn server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("HOOKFLOW_MAX_PIPELINE_BYTES", LARGEST_PIPELINE),
        // A timeout is final at once instead of being retried with backoff.
        ("HOOKFLOW_MAX_ATTEMPTS", "1"),
    ];
    env.extend_from_slice(extra);
    Server::start_with(&env).await
}

async fn webhook(server: &Server, key: &str, extra: &[(&str, &str)]) -> String {
    server.create_webhook(key, extra).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn put(server: &Server, name: &str, yaml: &str) {
    let (status, body) = server.put_pipeline(name, yaml).await;
    assert_eq!(status, StatusCode::OK, "{name}: {body}");
}

/// A pipeline on `key` with `steps` after the trigger (each a YAML list item body).
fn pipeline(key: &str, steps: impl IntoIterator<Item = String>) -> String {
    let mut yaml = format!("pipeline:\n  - event.listen: {{eventKey: {key}}}\n");
    for step in steps {
        yaml.push_str("  - ");
        yaml.push_str(&step);
        yaml.push('\n');
    }
    yaml
}

/// A cheap request unrelated to any pipeline: the webhook list, read from storage.
async fn cheap_request(server: &Server) -> Duration {
    cheap_request_with(&client(), server).await
}

async fn cheap_request_with(http: &reqwest::Client, server: &Server) -> Duration {
    let started = Instant::now();
    let res = http
        .post(server.at("/api/v3/command/webhook.get"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("the server answers");
    assert_eq!(res.status(), StatusCode::OK);
    res.bytes().await.expect("the whole answer");
    started.elapsed()
}

/// Median and slowest of five cheap requests in a row, on one connection
/// (opened before), so that only the server's part is timed.
async fn cheap_requests(http: &reqwest::Client, server: &Server) -> (Duration, Duration) {
    let mut times = Vec::new();
    for _ in 0..5 {
        times.push(cheap_request_with(http, server).await);
    }
    times.sort();
    (times[2], times[4])
}

/// Triggers the webhook and waits for its final result (the server stays up).
async fn run(server: &Server, token: &str, body: &str) -> Value {
    let (status, id, answer) = server.trigger(token, body, "").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let result = server.final_result(&id).await;
    cheap_request(server).await;
    result
}

fn assert_failed(result: &Value, code: &str, step_prefix: &str) {
    assert_eq!(result["status"], "error", "{result}");
    assert_eq!(result["error"]["code"], code, "{result}");
    let step = result["error"]["step"].as_str().unwrap_or_default();
    assert!(step.starts_with(step_prefix), "{result}");
}

/// Peak resident memory of a process, in MiB (Linux).
fn peak_rss_mib(server: &Server) -> Option<u64> {
    let pid = server.child.id()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[tokio::test]
async fn operator_chains_thousands_of_terms_long_evaluate() {
    let server = server(&[]).await;
    let token = webhook(&server, "webhook.chains", &[]).await;
    let sum = vec!["1"; 5000].join(" + ");
    let all = vec!["true"; 5000].join(" and ");
    let any = format!("{} or true", vec!["false"; 4999].join(" || "));
    let mixed = (0..5000)
        .map(|i| match i % 4 {
            0 => "1 + 2 < 4",
            1 => "\"a\" + \"b\" == \"ab\"",
            2 => "3 >= 2 + 1",
            _ => "not (1 != 1)",
        })
        .collect::<Vec<_>>()
        .join(" and ");
    for (name, expression) in [("sum", sum), ("all", all), ("any", any), ("mixed", mixed)] {
        let yaml = pipeline("webhook.chains", [format!("body.set: '${{{expression}}}'")]);
        put(&server, name, &yaml).await;
    }
    let result = run(&server, &token, "{}").await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(
        result["value"],
        json!({"all": true, "any": true, "mixed": true, "sum": 5000})
    );
}

#[tokio::test]
async fn values_nesting_deeper_on_every_step_stop_at_the_depth_bound() {
    let server = server(&[]).await;
    let token = webhook(&server, "webhook.nesting", &[]).await;
    // 60 levels per step: with the trigger, the step and its parameters, the
    // deepest YAML a pipeline may have.
    let nest = |inner: &str| format!("{}{inner}{}", "{a: ".repeat(60), "}".repeat(60));
    let steps = (0..190).map(|_| format!("body.set: {{value: {}}}", nest("'${body}'")));
    put(&server, "nesting", &pipeline("webhook.nesting", steps)).await;
    let result = run(&server, &token, "{}").await;
    assert_failed(&result, "limit_exceeded", "body.set (step ");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("64 levels"), "{message}");
}

#[tokio::test]
async fn values_multiplying_on_every_step_stop_at_the_size_budget() {
    let server = server(&[]).await;
    let token = webhook(&server, "webhook.multiply", &[]).await;
    let eight = ["'${body}'"; 8].join(", ");
    let steps = (0..12).map(|_| format!("body.set: {{value: [{eight}]}}"));
    put(&server, "multiply", &pipeline("webhook.multiply", steps)).await;
    let started = Instant::now();
    let result = run(&server, &token, "{\"lead\": 42}").await;
    let elapsed = started.elapsed();
    assert_failed(&result, "limit_exceeded", "body.set (step ");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("67108864 bytes"), "{message}");
    let rss = peak_rss_mib(&server);
    eprintln!("12 × [body ×8]: limit_exceeded after {elapsed:?}, server peak RSS {rss:?} MiB");
    if let Some(rss) = rss {
        assert!(rss < 1024, "peak RSS {rss} MiB");
    }
}

#[tokio::test]
async fn to_json_of_itself_forty_times_stops_at_the_text_cap() {
    let server = server(&[]).await;
    let token = webhook(&server, "webhook.tojson", &[]).await;
    let expression = format!("{}body{}", "@convert.toJson(".repeat(40), ")".repeat(40));
    let yaml = pipeline("webhook.tojson", [format!("body.set: '${{{expression}}}'")]);
    put(&server, "tojson", &yaml).await;
    let started = Instant::now();
    let result = run(&server, &token, "{\"lead\": 42}").await;
    let elapsed = started.elapsed();
    assert_failed(&result, "limit_exceeded", "body.set (step 2, line 3)");
    let rss = peak_rss_mib(&server);
    eprintln!("toJson ×40: limit_exceeded after {elapsed:?}, server peak RSS {rss:?} MiB");
    if let Some(rss) = rss {
        assert!(rss < 1024, "peak RSS {rss} MiB");
    }
}

/// A pipeline that upper-cases the decoded body on each of 188 steps: a long
/// CPU run that produces a bounded amount at a time.
fn heavy_pipeline(key: &str) -> String {
    let mut steps =
        vec!["var.set: {key: text, value: '${@convert.fromBase64(body.origin)}'}".to_owned()];
    steps.extend(
        (0..188).map(|_| "var.set: {key: upper, value: '${@text.upperCase(vars.text)}'}".into()),
    );
    steps.push("body.set: '${@text.lowerCase(vars.upper) == vars.text}'".into());
    pipeline(key, steps)
}

/// Nearly 4 MiB (the largest payload a webhook takes) of lower-case JSON text.
fn heavy_body() -> String {
    format!("\"{}\"", "abcdefgh".repeat(512 * 1024 - 2))
}

#[tokio::test]
async fn a_long_cpu_run_ends_with_timeout() {
    let server = server(&[
        ("HOOKFLOW_PIPELINE_TIMEOUT_MS", "300"),
        ("HOOKFLOW_PIPELINE_BUDGET_BYTES", "4294967296"),
    ])
    .await;
    let token = webhook(&server, "webhook.long", &[("maxPayloadLength", "4194304")]).await;
    put(&server, "long", &heavy_pipeline("webhook.long")).await;
    let started = Instant::now();
    let result = run(&server, &token, &heavy_body()).await;
    eprintln!(
        "long CPU run under a 300 ms timeout: ended after {:?}",
        started.elapsed()
    );
    assert_failed(&result, "timeout", "var.set (step ");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("300 ms"), "{message}");
}

#[tokio::test]
async fn heavy_pipelines_leave_other_requests_answered() {
    let server = server(&[
        ("HOOKFLOW_RECEIVE_WAIT_MS", "0"),
        ("HOOKFLOW_PIPELINE_BUDGET_BYTES", "4294967296"),
    ])
    .await;
    let token = webhook(&server, "webhook.heavy", &[("maxPayloadLength", "4194304")]).await;
    for i in 0..4 {
        put(
            &server,
            &format!("heavy-{i}"),
            &heavy_pipeline("webhook.heavy"),
        )
        .await;
    }
    let http = client();
    cheap_request_with(&http, &server).await;
    let quiet = cheap_requests(&http, &server).await;
    let triggered = Instant::now();
    let (status, id, answer) = server.trigger(&token, &heavy_body(), "").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Let the worker take the four jobs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = cheap_requests(&http, &server).await;
    let correlation = hookflow_core::domain::CorrelationId::parse(&id).unwrap();
    let finished_meanwhile = server
        .storage()
        .await
        .ports
        .events
        .get_result(&correlation)
        .await
        .unwrap()
        .expect("stored")
        .outcomes
        .len();
    eprintln!(
        "cheap requests (median, max): {quiet:?} alone, {busy:?} under four heavy pipelines \
         ({finished_meanwhile} of them finished meanwhile)"
    );
    assert_eq!(
        finished_meanwhile, 0,
        "the cheap request waited for a heavy pipeline to finish"
    );
    let result = loop {
        let res = client()
            .get(server.at(&format!("/api/v3/result?correlationId={id}&maxWaitMs=5000")))
            .send()
            .await
            .unwrap();
        let (_, body) = json_of(res).await;
        if body["status"] != "processing" {
            break body;
        }
        assert!(
            triggered.elapsed() < Duration::from_secs(300),
            "still processing"
        );
    };
    eprintln!(
        "four heavy pipelines: all finished {:?} after the call",
        triggered.elapsed()
    );
    assert_eq!(result["status"], "ok", "{result}");
    for i in 0..4 {
        assert_eq!(result["value"][format!("heavy-{i}")], true, "{result}");
    }
}
