//! A bounded, seeded, randomized HTTP fuzz test against the real server: random
//! methods, paths, query strings, headers, and bodies (JSON of random shapes and
//! depths, forms, multipart, bytes), some carrying a real webhook token or the
//! admin token, sent as raw HTTP/1.1. The server must never answer a 5xx other
//! than 503, must stay up, and must stay within a memory bound.
//!
//! Replay a run with the seed it prints:
//! `HOOKFLOW_FUZZ_SEED=<seed> cargo nextest run -p hookflow -E 'test(/fuzz::/)'`
//! (`HOOKFLOW_FUZZ_REQUESTS` sets the number of requests, default 3000; 800 on
//! the AWS backend).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{ADMIN, Server};

const DEFAULT_SEED: u64 = 0x5eed_2026_1125;
const DEFAULT_REQUESTS: usize = 3000;
/// On the AWS backend each request is a few calls to moto, ten times slower:
/// fewer requests keep the suite's time in bounds (the same code paths answer).
const DEFAULT_REQUESTS_ON_AWS: usize = 800;
/// Concurrent connections sending the requests.
const CLIENTS: usize = 8;
/// The server's peak resident memory may not exceed this.
const MAX_RSS_KIB: u64 = 256 * 1024;

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
    fn word(&mut self) -> String {
        const CHARS: &[u8] =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-~%+";
        let len = 1 + self.below(12);
        (0..len)
            .map(|_| CHARS[self.below(CHARS.len())] as char)
            .collect()
    }
}

/// What the generated requests may use: real tokens, so some calls get past
/// the front door and reach storage and pipelines.
struct Known {
    tokens: Vec<String>,
}

fn json_value(rng: &mut Rng, depth: usize) -> String {
    if depth == 0 {
        return match rng.below(6) {
            0 => "null".into(),
            1 => rng.chance(50).to_string(),
            2 => (rng.next() as i64).to_string(),
            3 => format!("{:e}", rng.next() as f64 / 7.0),
            4 => format!("\"{}\"", rng.word()),
            _ => format!("\"\\u00{:02x}\\n{}\"", rng.below(128), rng.word()),
        };
    }
    match rng.below(3) {
        0 => {
            let n = rng.below(4);
            let items: Vec<String> = (0..n)
                .map(|_| {
                    let next = depth.saturating_sub(1 + rng.below(2));
                    json_value(rng, next)
                })
                .collect();
            format!("[{}]", items.join(","))
        }
        1 => {
            let n = rng.below(4);
            let items: Vec<String> = (0..n)
                .map(|_| {
                    let next = depth.saturating_sub(1 + rng.below(2));
                    let value = json_value(rng, next);
                    format!("\"{}\":{value}", rng.word())
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        _ => json_value(rng, 0),
    }
}

fn nested_json(rng: &mut Rng) -> String {
    let levels = rng.pick(&[&10usize, &63, &64, &65, &100, &127, &128, &129, &500]);
    let (open, close) = if rng.chance(50) {
        ("[", "]")
    } else {
        ("{\"a\":", "}")
    };
    format!("{}1{}", open.repeat(*levels), close.repeat(*levels))
}

fn token(rng: &mut Rng, known: &Known) -> String {
    match rng.below(4) {
        0 | 1 => known.tokens[rng.below(known.tokens.len())].clone(),
        2 => uuid::Uuid::new_v4().to_string(),
        _ => rng.word(),
    }
}

fn query(rng: &mut Rng, known: &Known) -> String {
    let mut pairs = Vec::new();
    for _ in 0..rng.below(5) {
        let name = rng.pick(&[
            "token",
            "uuid",
            "pollingRedirectEnabled",
            "maxWaitMs",
            "correlationId",
            "eventKey",
            "name",
            "id",
            "webhookId",
            "referenceId",
            "limit",
            "payloadType",
            "maxPayloadLength",
            "enabled",
            "x",
        ]);
        let value = match name {
            "token" | "uuid" => token(rng, known),
            "maxWaitMs" => rng
                .pick(&["0", "1", "50", "-1", "99999999999999999999", "x"])
                .into(),
            "pollingRedirectEnabled" | "enabled" => rng.pick(&["true", "false", "1", "yes"]).into(),
            "eventKey" => format!("webhook.fuzz.{}", rng.below(5)),
            _ => rng.word(),
        };
        pairs.push(format!("{name}={value}"));
    }
    if rng.chance(5) {
        pairs.push(format!("q={}", "%".repeat(1 + rng.below(5))));
    }
    if rng.chance(3) {
        pairs.push(format!("long={}", "a".repeat(rng.below(20_000))));
    }
    pairs.join("&")
}

fn path(rng: &mut Rng) -> String {
    let base = rng.pick(&[
        "/api/v3/command/webhook.receive",
        "/api/v3/webhook.receive",
        "/api/v3/result",
        "/api/v3/command/webhook.put",
        "/api/v3/command/webhook.get",
        "/api/v3/command/webhook.delete",
        "/api/v3/command/pipeline.put",
        "/api/v3/command/pipeline.get",
        "/api/v3/command/pipeline.delete",
        "/api/v3/command/outgoing.put",
        "/api/v3/command/outgoing.get",
        "/api/v3/command/webhook.send",
        "/api/v3/command/invocation.get",
        "/api/v3/command/nope",
        "/api/v3/command/",
        "/",
        "/api",
        "/api/v3/command/webhook.receive/",
        "//api/v3//result",
        "/api/v3/%2e%2e/result",
    ]);
    if rng.chance(5) {
        format!("{base}/{}", rng.word())
    } else {
        base.to_owned()
    }
}

fn multipart(rng: &mut Rng, known: &Known) -> (String, Vec<u8>) {
    let boundary = format!("b{}", rng.below(1_000_000));
    let mut body = Vec::new();
    for _ in 0..rng.below(4) {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let name = rng.pick(&["token", "uuid", "file", "note", ""]);
        let disposition = if rng.chance(50) {
            format!(
                "form-data; name=\"{name}\"; filename=\"{}.bin\"",
                rng.word()
            )
        } else {
            format!("form-data; name=\"{name}\"")
        };
        body.extend_from_slice(format!("content-disposition: {disposition}\r\n\r\n").as_bytes());
        if name == "token" || name == "uuid" {
            body.extend_from_slice(token(rng, known).as_bytes());
        } else {
            let len = rng.below(2000);
            body.extend(rng.bytes(len));
        }
        body.extend_from_slice(b"\r\n");
    }
    if rng.chance(80) {
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    }
    let content_type = match rng.below(4) {
        0 => "multipart/form-data".to_owned(),
        1 => format!("multipart/form-data; boundary=\"{boundary}\""),
        _ => format!("multipart/form-data; boundary={boundary}"),
    };
    (content_type, body)
}

/// A pipeline listening to one of the fuzz webhooks, sometimes a runaway one.
fn pipeline_yaml(rng: &mut Rng) -> Vec<u8> {
    let value = match rng.below(8) {
        // Runaway expressions: a chain thousands of terms long, toJson of toJson.
        0 => vec!["1"; 5000].join("+"),
        1 => format!("{}body{}", "@convert.toJson(".repeat(40), ")".repeat(40)),
        _ => rng
            .pick(&[
                "body",
                "body.payload",
                "@convert.toJson(body)",
                "1+",
                "'a' + body.origin",
            ])
            .to_owned(),
    };
    format!(
        "pipeline:\n  - event.listen:\n      eventKey: webhook.fuzz.{}\n  - body.set:\n      value: ${{{value}}}\n",
        rng.below(5)
    )
    .into_bytes()
}

fn body(rng: &mut Rng, known: &Known) -> (Option<String>, Vec<u8>) {
    match rng.below(9) {
        0 => (None, Vec::new()),
        1 => {
            let depth = 1 + rng.below(6);
            (
                Some("application/json".into()),
                json_value(rng, depth).into_bytes(),
            )
        }
        2 => (
            Some("application/json".into()),
            nested_json(rng).into_bytes(),
        ),
        3 => {
            let mut pairs = vec![format!("lead={}", rng.word())];
            if rng.chance(50) {
                pairs.push(format!("token={}", token(rng, known)));
            }
            if rng.chance(30) {
                pairs.push(format!("eventKey=webhook.fuzz.{}", rng.below(5)));
            }
            (
                Some("application/x-www-form-urlencoded".into()),
                pairs.join("&").into_bytes(),
            )
        }
        4 => {
            let (content_type, body) = multipart(rng, known);
            (Some(content_type), body)
        }
        5 => {
            let len = rng.below(4096);
            (Some("application/octet-stream".into()), rng.bytes(len))
        }
        6 => (Some("application/yaml".into()), pipeline_yaml(rng)),
        7 => (
            Some(
                rng.pick(&[
                    "text/plain",
                    "application/json; charset=utf-8",
                    "x/y",
                    ";;",
                    "multipart/mixed",
                ])
                .into(),
            ),
            json_value(rng, 2).into_bytes(),
        ),
        _ => (
            Some("application/json".into()),
            json_value(rng, 2)
                .into_bytes()
                .into_iter()
                .take(rng.below(50))
                .collect(),
        ),
    }
}

/// What a request aims at: most carry a real credential, so they get past the
/// front door and reach parsing, storage and pipelines.
#[derive(Clone, Copy)]
enum Aim {
    /// `webhook.receive` with a real token in the header, query, form or multipart.
    Receive,
    /// A management command with the admin token.
    Command,
    /// `/api/v3/result`.
    Result,
    /// Anything at all.
    Anything,
}

/// One random request as raw HTTP/1.1 bytes, closing the connection after it.
fn request(rng: &mut Rng, known: &Known, host: &str) -> Vec<u8> {
    let aim = match rng.below(10) {
        0..=3 => Aim::Receive,
        4 | 5 => Aim::Command,
        6 => Aim::Result,
        _ => Aim::Anything,
    };
    let method = if !matches!(aim, Aim::Anything) || rng.chance(70) {
        rng.pick(&["GET", "POST"]).to_owned()
    } else {
        rng.pick(&[
            "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "BREW", "G E T",
        ])
        .to_owned()
    };
    let mut query = query(rng, known);
    let path = match aim {
        Aim::Receive => rng
            .pick(&["/api/v3/command/webhook.receive", "/api/v3/webhook.receive"])
            .to_owned(),
        Aim::Command => format!(
            "/api/v3/command/{}",
            rng.pick(&[
                "webhook.put",
                "webhook.get",
                "webhook.delete",
                "pipeline.put",
                "pipeline.get",
                "pipeline.delete",
                "outgoing.put",
                "outgoing.get",
                "outgoing.delete",
                "webhook.send",
                "invocation.get",
            ])
        ),
        Aim::Result => "/api/v3/result".to_owned(),
        Aim::Anything => path(rng),
    };
    let pipeline_put = path.ends_with("/pipeline.put") && rng.chance(80);
    if pipeline_put {
        query = format!("name=fuzz-p{}&{query}", rng.below(20));
    }
    let real_token = known.tokens[rng.below(known.tokens.len())].clone();
    let token_place = rng.below(4);
    if matches!(aim, Aim::Receive) && token_place == 1 {
        query = format!("token={real_token}&{query}");
    }
    let target = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let (mut content_type, mut body) = body(rng, known);
    if pipeline_put {
        content_type = Some("application/yaml".into());
        body = pipeline_yaml(rng);
    }
    if matches!(aim, Aim::Receive) && token_place == 2 {
        content_type = Some("application/x-www-form-urlencoded".into());
        body = format!("lead={}&token={real_token}", rng.word()).into_bytes();
    }
    if matches!(aim, Aim::Receive) && token_place == 3 {
        let boundary = "fuzzboundary";
        content_type = Some(format!("multipart/form-data; boundary={boundary}"));
        let mut parts = format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"token\"\r\n\r\n{real_token}\r\n"
        )
        .into_bytes();
        parts.extend_from_slice(
            format!("--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\n")
                .as_bytes(),
        );
        parts.extend_from_slice(&body);
        parts.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        body = parts;
    }
    let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    if let Some(content_type) = content_type {
        head.push_str(&format!("content-type: {content_type}\r\n"));
    }
    if matches!(aim, Aim::Receive) && token_place == 0 {
        head.push_str(&format!("token: {real_token}\r\n"));
    } else if rng.chance(20) {
        head.push_str(&format!("token: {}\r\n", token(rng, known)));
    }
    if matches!(aim, Aim::Command) && rng.chance(90) {
        head.push_str(&format!("authorization: Bearer {ADMIN}\r\n"));
    } else if rng.chance(20) {
        let bearer = if rng.chance(50) {
            ADMIN.to_owned()
        } else {
            rng.word()
        };
        head.push_str(&format!("authorization: Bearer {bearer}\r\n"));
    }
    for _ in 0..rng.below(4) {
        head.push_str(&format!(
            "x-{}: {}\r\n",
            rng.word().replace(['%', '+', '~', '.'], ""),
            rng.word()
        ));
    }
    if rng.chance(2) {
        // Too many headers.
        for i in 0..150 {
            head.push_str(&format!("x-many-{i}: 1\r\n"));
        }
    }
    let mut out = Vec::new();
    if rng.chance(10) && !body.is_empty() {
        head.push_str("transfer-encoding: chunked\r\n\r\n");
        out.extend_from_slice(head.as_bytes());
        for chunk in body.chunks(1 + rng.below(700)) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&body);
    }
    out
}

/// Sends `bytes` on a new connection; the status code of the answer, if any.
async fn send(addr: &str, bytes: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before it read everything (a refused token).
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer within 30 s");
    let line = answer.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.split(' ').nth(1)?.parse().ok()
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test]
async fn random_requests_never_get_a_5xx_other_than_503_and_the_server_stays_up() {
    let seed = std::env::var("HOOKFLOW_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let requests: usize = std::env::var("HOOKFLOW_FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(match crate::harness::backend() {
            crate::harness::Backend::Embedded => DEFAULT_REQUESTS,
            crate::harness::Backend::Aws => DEFAULT_REQUESTS_ON_AWS,
        });
    println!(
        "fuzz: seed {seed}, {requests} requests; replay with \
         HOOKFLOW_FUZZ_SEED={seed} HOOKFLOW_FUZZ_REQUESTS={requests} cargo nextest run -p hookflow -E 'test(/fuzz::/)'"
    );

    let mut server = Server::start_with(&[
        ("HOOKFLOW_RECEIVE_WAIT_MS", "0"),
        ("HOOKFLOW_POLL_MAX_WAIT_MS", "100"),
    ])
    .await;
    let mut tokens = Vec::new();
    for (key, payload_type) in [
        ("webhook.fuzz.0", "base64"),
        ("webhook.fuzz.1", "raw"),
        ("webhook.fuzz.2", "ignore"),
    ] {
        let hook = server
            .create_webhook(key, &[("payloadType", payload_type)])
            .await;
        tokens.push(hook["uuid"].as_str().unwrap().to_owned());
    }
    for (i, value) in [
        "${body}",
        "${@convert.fromJson(@convert.fromBase64(body.origin))}",
    ]
    .iter()
    .enumerate()
    {
        let yaml = format!(
            "pipeline:\n  - event.listen:\n      eventKey: webhook.fuzz.{i}\n  - body.set:\n      value: {value}\n"
        );
        let (status, body) = server.put_pipeline(&format!("fuzz-{i}"), &yaml).await;
        assert_eq!(status.as_u16(), 200, "{body}");
    }
    let known = std::sync::Arc::new(Known { tokens });
    let addr = server.url.trim_start_matches("http://").to_owned();
    let pid = server.child.id().expect("running");

    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let known = known.clone();
        let addr = addr.clone();
        // Each client its own stream, derived from the seed: a run replays exactly.
        let mut rng = Rng(seed ^ (client as u64).wrapping_mul(0x9e37_79b9));
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for n in (client..requests).step_by(CLIENTS) {
                let bytes = request(&mut rng, &known, &addr);
                let status = send(&addr, &bytes).await;
                if let Some(status) = status {
                    assert!(
                        !(500..600).contains(&status) || status == 503,
                        "request {n} (client {client}) got {status}: {}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(600)])
                    );
                }
                statuses.push(status);
            }
            statuses
        }));
    }
    let mut answered = 0;
    let mut by_class = [0usize; 6];
    for task in tasks {
        for status in task.await.expect("a client failed").into_iter().flatten() {
            answered += 1;
            by_class[(status / 100) as usize % 6] += 1;
        }
    }
    println!(
        "fuzz: {answered} of {requests} answered; 2xx {} 3xx {} 4xx {} 5xx(503) {}",
        by_class[2], by_class[3], by_class[4], by_class[5]
    );
    // A connection closed without an answer is a handler that panicked.
    assert_eq!(answered, requests, "every request gets an answer");
    assert!(
        server.child.try_wait().expect("wait").is_none(),
        "the server is still running"
    );
    let rss = peak_rss_kib(pid);
    println!("fuzz: server peak RSS {} MiB", rss / 1024);
    assert!(
        rss <= MAX_RSS_KIB,
        "peak RSS {rss} KiB over {MAX_RSS_KIB} KiB"
    );
    // Still serving after all of it.
    let (status, _) = server.command("webhook.get", &[]).await;
    assert_eq!(status.as_u16(), 200);
    server.stop().await;
}
