//! What an operator sees of each request: `x-request-id` on every answer, one
//! access log line per request carrying it, and the health check.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{ADMIN, Server, add_listener, client, json_of};

#[tokio::test]
async fn health_answers_without_auth() {
    let server = Server::start().await;
    let res = client()
        .get(server.at("/api/v3/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"].to_str().unwrap(), "no-store");
    let (status, body) = json_of(res).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
}

#[tokio::test]
async fn every_answer_carries_a_request_id_that_its_access_line_carries_too() {
    // Access lines are written at `info` (the tests' servers log `warn` and above).
    let server = Server::start_logged(&[("HOOKFLOW_LOG", "info")]).await;
    let created = server.create_webhook("webhook.observed", &[]).await;
    let token = created["uuid"].as_str().unwrap().to_owned();
    let http = client();
    let receive = server.at(&format!("/api/v3/webhook.receive?token={token}"));
    let requests = [
        (http.post(&receive).body("{}"), 200),
        (http.get(server.at("/api/v3/result")), 400),
        (http.get(server.at("/api/v3/command/webhook.get")), 401),
        (
            http.get(server.at("/api/v3/command/webhook.get"))
                .bearer_auth(ADMIN),
            200,
        ),
        (http.get(server.at("/nowhere")), 404),
        (http.put(server.at("/api/v3/result")), 405),
        // Refused on its declared length, before the body is read.
        (
            http.post(&receive)
                .header("content-length", "999999999")
                .body(""),
            413,
        ),
    ];
    let mut ids = Vec::new();
    for (request, expected) in requests {
        let res = request.send().await.unwrap();
        assert_eq!(res.status().as_u16(), expected, "{}", res.url().path());
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        ids.push((id, expected));
    }
    // A sane caller id is echoed; one that is not is replaced. (A new client:
    // the 413 above closed its connection, which the pool might hand out again.)
    let http = client();
    let res = http
        .get(server.at("/api/v3/health"))
        .header("x-request-id", "partner-req.42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "partner-req.42");
    let res = http
        .get(server.at("/api/v3/health"))
        .header("x-request-id", "no spaces\"allowed")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "no spaces\"allowed");

    let log = server.log_text();
    for (id, status) in &ids {
        let line = log
            .lines()
            .find(|l| l.contains("answered") && l.contains(id.as_str()))
            .unwrap_or_else(|| panic!("no access line for {id}: {log}"));
        assert!(line.contains(&format!("status={status}")), "{line}");
        assert!(line.contains("route="), "{line}");
        assert!(line.contains("duration_ms="), "{line}");
    }
    assert!(
        log.lines().any(|l| l.contains("partner-req.42")
            && l.contains("route=/api/v3/health")
            && l.contains("status=200")),
        "{log}"
    );
    assert!(!log.contains(&token), "a token in the log");
}

/// A free loopback port for a second listener (bound, then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of the sample `name{labels}` in Prometheus text, if present.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_receives_refusals_and_pipeline_runs() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let server = Server::start_with(&[("HOOKFLOW_METRICS_ADDR", &metrics)]).await;
    let plain = server.create_webhook("webhook.metered", &[]).await;
    add_listener(&server, "metered", "webhook.metered").await;
    let verify = json!({"scheme": "github", "secret": "s"}).to_string();
    let signed = server
        .create_webhook("webhook.metered.signed", &[("verify", &verify)])
        .await;
    let http = client();
    let call = |token: &str| {
        http.post(server.at("/api/v3/webhook.receive"))
            .header("token", token.to_owned())
            .body("{}")
    };
    for _ in 0..3 {
        assert_eq!(
            call(plain["uuid"].as_str().unwrap())
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let refused = call(signed["uuid"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(refused.status(), 401);

    // A run is counted just after its outcome is recorded, and under load a
    // receive may answer `processing` before its run ends: scrape until the
    // three runs are in, or 30 s have passed (then the asserts below say what is not).
    let scrape = || async {
        http.get(format!("http://{metrics}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut text = scrape().await;
    while sample(&text, r#"hookflow_pipeline_runs_total{status="ok"}"#) != Some(3.0)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        text = scrape().await;
    }
    assert_eq!(
        sample(&text, r#"hookflow_receives_total{status="200"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"hookflow_receives_total{status="401"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"hookflow_receive_refusals_total{code="signature_missing"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"hookflow_pipeline_runs_total{status="ok"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "hookflow_pipeline_run_duration_seconds_count"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "hookflow_receive_duration_seconds_count"),
        Some(4.0),
        "{text}"
    );
    assert!(
        text.contains(r#"hookflow_receive_duration_seconds_bucket{le="0.001"}"#),
        "{text}"
    );
    assert!(text.contains("# HELP hookflow_receives_total"), "{text}");
    // Nothing of a token in it.
    assert!(!text.contains(plain["uuid"].as_str().unwrap()));
}
