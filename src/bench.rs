//! `hookflow bench`: starts a fresh `hookflow serve` on a temp dir and measures,
//! at several concurrencies, requests per second and p50/p99 latency of
//! 1. webhook.receive with a small JSON body and no listener (accept + store), and
//! 2. webhook.receive with one one-step pipeline listening, answered with the
//!    pipeline's result (receive → queue → worker → result → answer),
//! 3. webhook.send of a registered, signed outgoing webhook to an endpoint on
//!    loopback, answered with the endpoint's reply (checked, guarded, signed,
//!    sent, recorded),
//!
//! with the largest size the SQLite WAL file reached during each, then the
//! server's peak resident memory, and that every accepted call is in the SQLite
//! file.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use hookflow_core::adapters::sqlite::wal_path;
use hookflow_core::domain::Timestamp;
use hookflow_core::outgoing::signing::{
    ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_header,
};

use crate::serve::DATABASE_FILE;

const BENCH_ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const BODY: &str = r#"{"lead":{"name":"Ada Lovelace","email":"ada@example.com","source":"crm"}}"#;
/// The pipeline of the second scenario: one step after the trigger.
const PIPELINE: &str = "pipeline:
  - event.listen:
      eventKey: webhook.bench.pipeline
  - body.set:
      value: ${@text.upperCase(@convert.fromBase64(body.origin))}
";

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Seconds measured per concurrency level (after a short warm-up).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients, one keep-alive connection each; comma-separated levels.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    clients: Vec<usize>,
    /// Run the server with its Prometheus metrics on (`--metrics-addr`), to
    /// measure what recording them costs.
    #[arg(long)]
    metrics: bool,
    /// Measure `event.list` on a large event log instead (no server: the log is
    /// filled straight through the SQLite store).
    #[arg(long)]
    event_log: bool,
    /// Events the `--event-log` scenario stores before it measures.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
}

struct Level {
    clients: usize,
    accepted: usize,
    failed: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    /// Largest size of the WAL file seen while the level ran.
    wal_peak_bytes: u64,
}

/// How often the WAL file's size is sampled while a level runs.
const WAL_SAMPLE_EVERY: Duration = Duration::from_millis(5);

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.event_log {
        return crate::bench_event_log::run(args.events).await;
    }
    let data_dir = tempfile_dir()?;
    let wal = wal_path(&data_dir.join(DATABASE_FILE));
    let (mut server, addr) = start_server(&data_dir, args.metrics).await?;
    let pid = server.id().context("server pid")?;
    let plain = create_webhook(&addr, "webhook.bench.lead", None).await?;
    let piped = create_webhook(&addr, "webhook.bench.pipeline", None).await?;
    let verify = format!(r#"{{"scheme":"standard-webhooks","secret":"{VERIFY_SECRET}"}}"#);
    let verified = create_webhook(&addr, "webhook.bench.verified", Some(&verify)).await?;
    let kilobyte = Bytes::from(kilobyte_body());
    put_pipeline(&addr).await?;
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; run `cargo run --release -- bench` for real figures"
        );
    }
    println!(
        "hookflow bench: {}-byte JSON body, SQLite WAL synchronous=FULL, metrics {}, server pid {pid}",
        BODY.len(),
        if args.metrics { "on" } else { "off" }
    );
    let endpoint = start_endpoint().await?;
    register_outgoing(&addr, &endpoint).await?;
    let receive = |token: &str, body: Bytes, expected: Option<String>, sign: bool| Call::Receive {
        token: token.to_owned(),
        body,
        expected,
        sign,
    };
    let small = Bytes::from_static(BODY.as_bytes());
    let scenarios = [
        (
            "webhook.receive, no listener (accepted and stored)".to_owned(),
            receive(&plain, small.clone(), None, false),
        ),
        (
            "webhook.receive with a one-step pipeline (answered with its result)".to_owned(),
            receive(&piped, small, Some(BODY.to_uppercase()), false),
        ),
        (
            format!(
                "webhook.receive, {} B JSON body, no signature check",
                kilobyte.len()
            ),
            receive(&plain, kilobyte.clone(), None, false),
        ),
        (
            format!(
                "verified receive: the same {} B body signed (standard-webhooks), checked",
                kilobyte.len()
            ),
            receive(&verified, kilobyte, None, true),
        ),
        (
            "webhook.send, signed, to an endpoint on loopback (answered with its reply)".to_owned(),
            Call::Send,
        ),
    ];
    let mut total_accepted = 0;
    let mut total_sent = 0;
    for (title, call) in scenarios {
        println!();
        println!("{title}");
        println!(
            "{:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>12}",
            "clients", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "WAL peak MiB"
        );
        for &clients in &args.clients {
            // Warm-up: connections, caches, the WAL.
            let warm_up = load(&addr, &call, clients, Duration::from_millis(500), &wal).await?;
            let mut level = load(
                &addr,
                &call,
                clients,
                Duration::from_secs(args.seconds),
                &wal,
            )
            .await?;
            level.wal_peak_bytes = level.wal_peak_bytes.max(warm_up.wal_peak_bytes);
            let answered = warm_up.accepted + warm_up.failed + level.accepted + level.failed;
            match call {
                Call::Receive { .. } => total_accepted += answered,
                Call::Send => total_sent += answered,
            }
            print_level(&level);
        }
    }
    let peak_rss_kib = peak_rss_kib(pid);

    stop(&mut server).await;
    let stored = count_rows(&data_dir.join(DATABASE_FILE), "events")?;
    let recorded = count_rows(&data_dir.join(DATABASE_FILE), "invocations")?;
    println!();
    match peak_rss_kib {
        Some(kib) => println!(
            "server peak resident memory: {:.1} MiB",
            kib as f64 / 1024.0
        ),
        None => println!("server peak resident memory: unknown (no /proc)"),
    }
    println!(
        "accepted calls (warm-ups included): {total_accepted}, events in the SQLite file: {stored}"
    );
    println!(
        "webhook.send calls (warm-ups included): {total_sent}, invocation records: {recorded}"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
    if stored != total_accepted {
        eprintln!(
            "error: {} accepted calls are missing from the store",
            total_accepted.abs_diff(stored)
        );
        return Ok(ExitCode::FAILURE);
    }
    if recorded != total_sent {
        eprintln!(
            "error: {} sends have no invocation record",
            total_sent.abs_diff(recorded)
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_level(level: &Level) {
    let mut sorted = level.latencies_us.clone();
    sorted.sort_unstable();
    let pct = |p: f64| -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i] as f64 / 1000.0
    };
    let rps = level.accepted as f64 / level.elapsed.as_secs_f64();
    println!(
        "{:>8} {:>10} {:>10.0} {:>10.2} {:>10.2} {:>10.2} {:>8} {:>12.1}",
        level.clients,
        level.accepted,
        rps,
        pct(0.50),
        pct(0.99),
        sorted.last().map_or(0.0, |m| *m as f64 / 1000.0),
        level.failed,
        level.wal_peak_bytes as f64 / (1024.0 * 1024.0)
    );
}

pub(crate) fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("hookflow-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn start_server(
    data_dir: &std::path::Path,
    metrics: bool,
) -> anyhow::Result<(Child, String)> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir);
    if metrics {
        command.args(["--metrics-addr", "127.0.0.1:0"]);
    }
    let mut child = command
        .env("HOOKFLOW_ADMIN_TOKEN", BENCH_ADMIN_TOKEN)
        .env("HOOKFLOW_LOG", "warn")
        // The third scenario's endpoint listens on loopback.
        .env("HOOKFLOW_OUTGOING_ALLOW", "127.0.0.0/8")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start hookflow serve")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("hookflow listening on http://") {
                return Ok(url.trim().to_owned());
            }
        }
        bail!("hookflow serve exited before listening")
    })
    .await
    .context("hookflow serve did not start within 30 s")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr))
}

async fn put_pipeline(addr: &str) -> anyhow::Result<()> {
    let status = reqwest::Client::new()
        .post(format!(
            "http://{addr}/api/v3/command/pipeline.put?name=bench-upper"
        ))
        .bearer_auth(BENCH_ADMIN_TOKEN)
        .body(PIPELINE)
        .send()
        .await?
        .status();
    if !status.is_success() {
        bail!("pipeline.put answered {status}");
    }
    Ok(())
}

/// The secret the verified-receive scenario signs with (a bench's own, public).
const VERIFY_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A JSON object of about 1 KB, the body of the verified-receive scenario.
fn kilobyte_body() -> String {
    let note = "x".repeat(1024 - BODY.len() - 12);
    format!(r#"{{"a":{BODY},"note":"{note}"}}"#)
}

async fn create_webhook(
    addr: &str,
    event_key: &str,
    verify: Option<&str>,
) -> anyhow::Result<String> {
    let mut form = vec![("eventKey", event_key)];
    form.extend(verify.map(|v| ("verify", v)));
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{addr}/api/v3/command/webhook.put"))
        .bearer_auth(BENCH_ADMIN_TOKEN)
        .form(&form)
        .send()
        .await?
        .json()
        .await?;
    answer["uuid"]
        .as_str()
        .map(str::to_owned)
        .context("webhook.put gave no uuid")
}

/// What one benchmark call is.
#[derive(Clone)]
enum Call {
    /// `webhook.receive` of `body` with this token; with `expected`, a call counts
    /// only when answered `ok` with that value; with `sign`, each call is signed
    /// as a Standard Webhooks sender does (a new message id each).
    Receive {
        token: String,
        body: Bytes,
        expected: Option<String>,
        sign: bool,
    },
    /// `webhook.send` of the registered bench webhook; counts when the endpoint's
    /// 200 comes back.
    Send,
}

/// The id of the outgoing webhook the third scenario sends to.
const OUTGOING_ID: &str = "bench-crm";

/// `clients` connections, each sending one request after the other for `duration`,
/// while the size of the `wal` file is sampled.
async fn load(
    addr: &str,
    call: &Call,
    clients: usize,
    duration: Duration,
    wal: &Path,
) -> anyhow::Result<Level> {
    let started = Instant::now();
    let deadline = started + duration;
    let wal_peak = tokio::spawn(wal_peak(wal.to_owned(), deadline));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (addr, call) = (addr.to_owned(), call.clone());
        tasks.push(tokio::spawn(async move {
            client_loop(&addr, &call, deadline).await
        }));
    }
    let mut level = Level {
        clients,
        accepted: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        wal_peak_bytes: 0,
    };
    for task in tasks {
        let (ok, failed, latencies) = task.await??;
        level.accepted += ok;
        level.failed += failed;
        level.latencies_us.extend(latencies);
    }
    level.elapsed = started.elapsed();
    level.wal_peak_bytes = wal_peak.await?;
    Ok(level)
}

/// The largest size of `wal` seen until `deadline` (0 while it does not exist).
async fn wal_peak(wal: PathBuf, deadline: Instant) -> u64 {
    let mut peak = 0;
    let mut every = tokio::time::interval(WAL_SAMPLE_EVERY);
    while Instant::now() < deadline {
        every.tick().await;
        peak = peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    peak
}

async fn client_loop(
    addr: &str,
    call: &Call,
    deadline: Instant,
) -> anyhow::Result<(usize, usize, Vec<u32>)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let (mut ok, mut failed, mut latencies) = (0, 0, Vec::with_capacity(16_384));
    let body = match call {
        Call::Receive { body, .. } => body.clone(),
        Call::Send => Bytes::from(format!(r#"{{"webhookId":"{OUTGOING_ID}","data":{BODY}}}"#)),
    };
    let authorization = format!("Bearer {BENCH_ADMIN_TOKEN}");
    while Instant::now() < deadline {
        let req = match call {
            Call::Receive { token, sign, .. } => {
                let req = Request::post("/api/v3/command/webhook.receive")
                    .header("token", token.as_str());
                if *sign {
                    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
                    let at = Timestamp::now().epoch_seconds();
                    let signature = signature_header([VERIFY_SECRET], &id, at, &body);
                    req.header(ID_HEADER, id)
                        .header(TIMESTAMP_HEADER, at)
                        .header(SIGNATURE_HEADER, signature)
                } else {
                    req
                }
            }
            Call::Send => Request::post("/api/v3/command/webhook.send")
                .header("authorization", authorization.as_str()),
        }
        .header("host", addr)
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))?;
        let sent = Instant::now();
        let res = sender.send_request(req).await?;
        let status = res.status();
        let answer = res.into_body().collect().await?.to_bytes();
        latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
        let answer = || serde_json::from_slice::<serde_json::Value>(&answer);
        let finished = match call {
            Call::Receive { expected: None, .. } => true,
            Call::Receive {
                expected: Some(value),
                ..
            } => answer().is_ok_and(|a| a["status"] == "ok" && a["value"] == value.as_str()),
            Call::Send => answer().is_ok_and(|a| a["status"] == 200 && a["error"] == false),
        };
        if status == http::StatusCode::OK && finished {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    Ok((ok, failed, latencies))
}

/// VmHWM of a process: its peak resident set, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn stop(server: &mut Child) {
    if let Some(pid) = server.id() {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), server.wait()).await;
}

fn count_rows(database: &std::path::Path, table: &str) -> anyhow::Result<usize> {
    let conn = rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    Ok(n as usize)
}

/// An HTTP endpoint on loopback, in this process, answering every call with a
/// small JSON reply: the receiver of the `webhook.send` scenario.
async fn start_endpoint() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let service =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(br#"{"received":true}"#),
                    )))
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    Ok(addr)
}

async fn register_outgoing(addr: &str, endpoint: &str) -> anyhow::Result<()> {
    let registration = serde_json::json!({
        "id": OUTGOING_ID,
        "url": format!("http://{endpoint}/leads"),
        "method": "POST",
        "headers": {"Authorization": "Bearer bench-crm-key"},
        "secret": "generate",
    });
    let status = reqwest::Client::new()
        .post(format!("http://{addr}/api/v3/command/outgoing.put"))
        .bearer_auth(BENCH_ADMIN_TOKEN)
        .json(&registration)
        .send()
        .await?
        .status();
    if !status.is_success() {
        bail!("outgoing.put answered {status}");
    }
    Ok(())
}
