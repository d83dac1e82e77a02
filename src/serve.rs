//! `hookflow serve`: the embedded shape. The core's routing over SQLite, on hyper.
//!
//! The front door bounds what clients can hold: connections (a cap derived from
//! the open-file limit), time (head, body and write timeouts) and memory (budgets
//! for request bodies and large answers). A request's head is judged by the core
//! ([`Gateway::admit`]) before its body is read.

mod body;
mod budget;
mod io;
mod metrics;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hookflow_core::adapters::aws::DEFAULT_PREFIX;
use hookflow_core::api::ApiError;
use hookflow_core::api::observe::{AccessLog, RequestId};
use hookflow_core::api::{MAX_HEADER_BYTES, MAX_REQUEST_HEADERS, declared_length, error_response};
use hookflow_core::config::{AdminToken, FrontDoorSettings};
use hookflow_core::domain::Timestamp;
use hookflow_core::inbound::source::PeerAddr;
use hookflow_core::pipeline::worker::QUEUE_POLL_WAIT;
use hookflow_core::ports::Housekeeping;
use hookflow_core::wiring;
use hookflow_core::{Gateway, Settings};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use body::{AnswerBody, Unread, read_body};
use budget::{Budget, Reservation};
use io::WriteTimeout;

/// Name of the SQLite file inside the data dir.
pub const DATABASE_FILE: &str = "hookflow.db";
/// Name of the generated admin token file inside the data dir.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// Name of the lock file inside the data dir: held by the one `serve` on it, holding its PID.
pub const LOCK_FILE: &str = "hookflow.lock";

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:3000", env = "HOOKFLOW_ADDR")]
    addr: SocketAddr,
    /// Directory of the SQLite file and the generated admin token.
    #[arg(long, default_value = ".hookflow", env = "HOOKFLOW_DATA_DIR")]
    data_dir: PathBuf,
    /// Storage and queue backend.
    #[arg(long, value_enum, default_value_t = Backend::Embedded, env = "HOOKFLOW_BACKEND")]
    backend: Backend,
    /// With `--backend aws`: create the tables, queue and bucket where missing
    /// (named `<prefix>-…`), instead of reading their names from `HOOKFLOW_*_TABLE` etc.
    #[arg(long)]
    provision: bool,
    /// Name prefix of the resources `--provision` creates.
    #[arg(long, default_value = DEFAULT_PREFIX, env = "HOOKFLOW_AWS_PREFIX")]
    aws_prefix: String,
    /// Serve Prometheus metrics at `http://<addr>/metrics`, on a listener of
    /// their own (keep it off the public network). Off when unset.
    #[arg(long, env = "HOOKFLOW_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    /// SQLite file in the data dir (storage and queue).
    Embedded,
    /// DynamoDB, SQS and S3 through the standard AWS settings (`AWS_ENDPOINT_URL` for moto).
    Aws,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    return_large_buffers_to_the_system();
    // The worker stops when the signal comes, while open connections drain:
    // together they must fit the grace a supervisor gives (systemd, Docker: 10 s).
    let stopping = stop_on_signal()?;
    let mut settings = Settings::from_env()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data dir {}", args.data_dir.display()))?;
    // Held until the process ends; the OS releases it then, also after kill -9.
    let _data_dir_lock = match args.backend {
        Backend::Embedded => Some(lock_data_dir(&args.data_dir)?),
        Backend::Aws => None,
    };
    let (admin_token, token_source) = match settings.admin_token.clone() {
        Some(token) => (token, TokenSource::Setting),
        None => load_or_create_admin_token(&args.data_dir)?,
    };
    settings.admin_token = Some(admin_token.clone());
    let front_door = settings.front_door.clone();
    let max_connections = connection_cap(front_door.max_connections);

    let storage = match args.backend {
        Backend::Embedded => {
            wiring::embedded_storage(&args.data_dir.join(DATABASE_FILE), &settings)
        }
        Backend::Aws => {
            let prefix = args.provision.then_some(args.aws_prefix.as_str());
            wiring::aws_storage(&mut settings, prefix).await
        }
    }
    .map_err(|e| anyhow::anyhow!(e))?;
    let ports = storage.ports;
    let concurrency = settings.worker_concurrency;
    let visibility = settings.visibility_timeout;
    let queue = ports.queue.clone();
    let gateway = Arc::new(wiring::gateway(ports, settings));
    let worker = Arc::new(wiring::worker_beside(&gateway)?);

    let metrics_addr = match args.metrics_addr {
        Some(addr) => {
            Some(metrics::serve_metrics(addr, storage.queue_depth.clone(), stopping.clone()).await?)
        }
        None => None,
    };
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    print_banner(
        addr,
        &storage.described,
        &args.data_dir,
        &admin_token,
        token_source,
        max_connections,
        metrics_addr,
    );

    if let Some(store) = &storage.housekeeping {
        // No other process runs on this file (the lock above): a job still
        // marked as taken was taken by a process that is gone. Handing it out
        // now, not after its visibility timeout, also counts its next attempt.
        let reclaimed = store
            .reclaim_taken_jobs()
            .await
            .context("cannot requeue the jobs of the previous run")?;
        if reclaimed > 0 {
            tracing::info!(
                jobs = reclaimed,
                "jobs the previous run left unfinished are queued again"
            );
        }
        tokio::spawn(purge_expired_events(store.clone()));
    }
    let worker_runtime = (concurrency > 0).then(worker_runtime).transpose()?;
    let worker = worker_runtime
        .as_ref()
        .map(|rt| rt.spawn(worker.run_queue(queue, concurrency, visibility, stopping.clone())));
    let door = Arc::new(FrontDoor {
        gateway,
        bodies: Budget::new(front_door.body_budget_bytes),
        answers: Budget::new(front_door.answer_budget_bytes),
        limits: front_door,
    });
    serve_http(listener, door, max_connections, stopping).await;
    // Jobs still running are abandoned, not lost: they come back after their visibility timeout.
    if let Some(worker) = worker {
        // It may first finish a receive that would otherwise hide jobs from the next process.
        let _ = tokio::time::timeout(QUEUE_POLL_WAIT + Duration::from_secs(3), worker).await;
    }
    if let Some(rt) = worker_runtime {
        rt.shutdown_background();
    }
    if let Some(store) = storage.housekeeping {
        // Commits what is queued and empties the WAL, so no large log is left behind.
        store.close().await;
    }
    println!("hookflow stopped");
    Ok(ExitCode::SUCCESS)
}

/// The worker's own threads: pipeline steps are CPU work that never waits, and
/// on the threads answering HTTP they would hold up every request behind them.
/// Here the operating system shares the cores between both, preemptively.
fn worker_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("hookflow-worker")
        .enable_all()
        .build()
        .context("cannot start the worker's runtime")
}

/// Keeps large buffers (bodies, answers) in their own mappings, so their memory
/// goes back to the system when they are freed. glibc otherwise raises its
/// mmap threshold each time such a buffer is freed, serves the next ones from
/// the heap, and the process keeps their memory after a burst (measured: 60
/// unread 6 MB answers left RSS 206 MiB up; with a fixed threshold, 1 MiB).
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter of the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal; a log file gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// Takes the data dir for this process: SQLite in WAL mode works across processes,
/// but a second server on the same file would fight the first for the write lock
/// (callers wait out the busy timeout) and its finished results would wake no
/// waiter of the first. So a second `serve` is refused, naming the holder.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "a process whose PID is not written yet".to_owned(),
                pid => format!("PID {pid}"),
            };
            anyhow::bail!(
                "the data dir {} is in use by another hookflow serve ({holder}; lock file {}): \
                 stop it first, or give this one another --data-dir",
                data_dir.display(),
                path.display()
            );
        }
        Err(std::fs::TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

/// Where the admin token came from, which decides whether the banner shows it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TokenSource {
    /// `HOOKFLOW_ADMIN_TOKEN`: the operator has it.
    Setting,
    /// Generated by this start: shown once, now.
    Created,
    /// Generated by an earlier start: only where it is kept is shown.
    Kept,
}

/// The admin token kept in the data dir, created (owner-only) on first start.
fn load_or_create_admin_token(data_dir: &Path) -> anyhow::Result<(AdminToken, TokenSource)> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let token = AdminToken::new(text.trim())
            .with_context(|| format!("invalid token in {}", path.display()))?;
        return Ok((token, TokenSource::Kept));
    }
    // 32 bytes from the OS RNG: the same 64 hex digits two UUIDs gave, all of them random.
    let token = format!("hf_{}", hookflow_core::random::secret_hex::<32>());
    write_private(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    Ok((AdminToken::new(token)?, TokenSource::Created))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

fn print_banner(
    addr: SocketAddr,
    storage: &str,
    data_dir: &Path,
    token: &AdminToken,
    source: TokenSource,
    max_connections: usize,
    metrics_addr: Option<SocketAddr>,
) {
    let url = format!("http://{addr}");
    let kept_in = data_dir.join(ADMIN_TOKEN_FILE);
    println!("hookflow listening on {url}");
    println!("  data:        {storage}");
    println!("  connections: at most {max_connections} at once");
    println!("  console:     {url}/console (sign in with the admin token)");
    if let Some(metrics) = metrics_addr {
        println!("  metrics:     http://{metrics}/metrics");
    }
    // A token is printed once, when it is made; logs of later starts do not hold it.
    let shown = match source {
        TokenSource::Setting => {
            println!("  admin token: from HOOKFLOW_ADMIN_TOKEN");
            "$HOOKFLOW_ADMIN_TOKEN".to_owned()
        }
        TokenSource::Created => {
            println!(
                "  admin token: {} (new; kept in {}, shown only now)",
                token.expose(),
                kept_in.display()
            );
            token.expose().to_owned()
        }
        TokenSource::Kept => {
            println!("  admin token: kept in {}", kept_in.display());
            format!("$(cat {})", kept_in.display())
        }
    };
    println!("Create a webhook:");
    println!(
        "  curl -s -X POST {url}/api/v3/command/webhook.put -H \"Authorization: Bearer {shown}\" -d eventKey=webhook.lead.created"
    );
    println!("Stop with Ctrl-C.");
}

/// Descriptors kept free of client connections: the SQLite files, stdio, the
/// listener, the worker's and the AWS clients' connections.
const RESERVED_DESCRIPTORS: u64 = 64;
/// Ceiling of the derived connection cap (a raised open-file limit is often huge).
const MAX_DERIVED_CONNECTIONS: u64 = 4096;
/// hyper's own header count limit, above hookflow's so that hookflow answers
/// the requests between them with its JSON 431.
const HYPER_MAX_HEADERS: usize = 4 * MAX_REQUEST_HEADERS;
/// hyper's read buffer, which bounds a request head: above hookflow's header bytes.
const HYPER_MAX_BUFFER: usize = 4 * MAX_HEADER_BYTES;

/// `HOOKFLOW_MAX_CONNECTIONS`, else half of what the open-file limit (soft)
/// leaves after [`RESERVED_DESCRIPTORS`]: a request may hold a second
/// descriptor for an outgoing call (`webhook.send`).
fn connection_cap(setting: Option<usize>) -> usize {
    let limit = open_file_limit();
    let room = limit.map(|n| n.saturating_sub(RESERVED_DESCRIPTORS));
    match setting {
        Some(cap) => {
            if let Some(limit) = limit
                && cap as u64 > room.unwrap_or(0)
            {
                tracing::warn!(
                    cap,
                    open_file_limit = limit,
                    "HOOKFLOW_MAX_CONNECTIONS exceeds what the open-file limit leaves; accepting will back off when descriptors run out"
                );
            }
            cap
        }
        None => room.map_or(MAX_DERIVED_CONNECTIONS, |room| {
            (room / 2).clamp(1, MAX_DERIVED_CONNECTIONS)
        }) as usize,
    }
}

/// The soft `RLIMIT_NOFILE` of this process.
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
    ok.then_some(limit.rlim_cur as u64)
}

/// At most one log line per interval, counting what it held back.
struct Every {
    interval: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl Every {
    fn new(interval: Duration) -> Self {
        Every {
            interval,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(lines held back since the last one)` when a line may be logged now.
    fn due(&mut self) -> Option<u64> {
        if self.last.is_some_and(|at| at.elapsed() < self.interval) {
            self.held_back += 1;
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.held_back))
    }
}

/// Failing accepts (mostly EMFILE, out of descriptors) pause, doubling from
/// 5 ms to 1 s, instead of spinning; a success ends the pause.
struct AcceptBackoff {
    pause: Duration,
    log: Every,
}

impl AcceptBackoff {
    fn failed(&mut self, err: &std::io::Error) -> Duration {
        self.pause = (self.pause * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
        if let Some(held_back) = self.log.due() {
            tracing::warn!(error = %err, more_failures = held_back, pause = ?self.pause, "accepting a connection failed");
        }
        self.pause
    }

    fn succeeded(&mut self) {
        self.pause = Duration::ZERO;
    }
}

/// Serves HTTP/1.1 until `stopping` turns true (Ctrl-C or SIGTERM), then lets
/// open requests finish (5 s at most).
async fn serve_http(
    listener: TcpListener,
    door: Arc<FrontDoor>,
    max_connections: usize,
    mut stopping: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(stopping.wait_for(|stop| *stop));
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut backoff = AcceptBackoff {
        pause: Duration::ZERO,
        log: Every::new(Duration::from_secs(10)),
    };
    let mut full = Every::new(Duration::from_secs(10));
    loop {
        // At the cap nothing is accepted: new connections wait in the listen
        // backlog, costing this process no descriptor and no CPU.
        if slots.available_permits() == 0
            && let Some(held_back) = full.due()
        {
            tracing::warn!(
                max_connections,
                times_before = held_back,
                "connection limit reached; new connections wait"
            );
        }
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the slots are never closed"),
            _ = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok((stream, peer)) => {
                backoff.succeeded();
                (stream, PeerAddr(peer.ip()))
            }
            Err(err) => {
                drop(slot);
                let pause = backoff.failed(&err);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(WriteTimeout::new(stream, door.limits.write_timeout));
        let service = {
            let door = door.clone();
            service_fn(move |mut req: Request<Incoming>| {
                let door = door.clone();
                req.extensions_mut().insert(peer);
                async move { Ok::<_, Infallible>(door.handle(req).await) }
            })
        };
        // hyper's header read timeout runs from the moment a connection waits
        // for a request head, so it is the idle keep-alive timeout as well.
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(door.limits.idle_timeout)
            .max_headers(HYPER_MAX_HEADERS)
            .max_buf_size(HYPER_MAX_BUFFER)
            .serve_connection(io, service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
}

/// What every connection shares.
struct FrontDoor {
    gateway: Arc<Gateway>,
    limits: FrontDoorSettings,
    /// Request bodies being read or handled.
    bodies: Arc<Budget>,
    /// Large answers being written.
    answers: Arc<Budget>,
}

impl FrontDoor {
    /// Answers one request, with its id on the answer and one access log line.
    async fn handle(&self, req: Request<Incoming>) -> Response<AnswerBody> {
        let (mut parts, body) = req.into_parts();
        let id = RequestId::of_request(&mut parts);
        let access = AccessLog::begin(&parts.method, parts.uri.path(), &id);
        let mut answer = self.answer(parts, body).await;
        let bytes = hyper::body::Body::size_hint(answer.body()).exact();
        access.end(&mut answer, bytes);
        answer
    }

    /// Judges the head, reads the body (bounded in size, time and budget), hands
    /// the request to the core, and sends its answer.
    async fn answer(
        &self,
        mut parts: http::request::Parts,
        body: Incoming,
    ) -> Response<AnswerBody> {
        let admission = match self.gateway.admit(&mut parts).await {
            Ok(admission) => admission,
            // Refused on its head alone: the body is never read (hyper closes
            // the connection rather than read it).
            Err(answer) => return answer.map(AnswerBody::whole),
        };
        let mut reservation = self.bodies.reservation();
        let body = match read_body(
            body,
            declared_length(&parts.headers),
            admission.body_limit(),
            &mut reservation,
            self.limits.budget_wait,
            Instant::now() + self.limits.body_timeout,
        )
        .await
        {
            Ok(body) => body,
            Err(Unread::TooLarge) => return admission.body_too_large().map(AnswerBody::whole),
            Err(Unread::NoBudget) => {
                return busy("too many request bodies are being received at once");
            }
            Err(Unread::TimedOut) => {
                let err = ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the request body did not arrive within {} ms",
                        self.limits.body_timeout.as_millis()
                    ),
                );
                let mut answer = error_response(&err).map(AnswerBody::whole);
                answer
                    .headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                return answer;
            }
            Err(Unread::Broken) => {
                let err =
                    ApiError::bad_request("body_unreadable", "the request body could not be read");
                return error_response(&err).map(AnswerBody::whole);
            }
        };
        let answer = self.gateway.handle(Request::from_parts(parts, body)).await;
        drop(reservation);
        self.send(answer, admission.is_read_only()).await
    }

    /// Small answers go out whole. A large one holds the answer budget while it
    /// is written. A read-only request (a result poll) is refused with 503 at
    /// once when the budget is taken: its answer is already in memory, and
    /// waiting would only hold it longer. The answer of a request that did
    /// something (an event accepted) is sent anyway, counted over the budget.
    async fn send(&self, answer: Response<Bytes>, read_only: bool) -> Response<AnswerBody> {
        let (head, bytes) = answer.into_parts();
        if bytes.len() <= body::ANSWER_PIECE {
            return Response::from_parts(head, AnswerBody::whole(bytes));
        }
        let mut reservation: Reservation = self.answers.reservation();
        if read_only {
            if !reservation.grow_to(bytes.len(), Duration::ZERO).await {
                return busy("too many large answers are being sent at once");
            }
        } else {
            reservation.force_to(bytes.len());
        }
        Response::from_parts(head, AnswerBody::in_pieces(bytes, reservation))
    }
}

/// 503 `server_busy` with `Retry-After`: nothing was done; the same request may be sent again.
fn busy(what: &str) -> Response<AnswerBody> {
    let err = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_busy",
        format!("{what}; nothing was done, retry in a second"),
    );
    let mut answer = error_response(&err).map(AnswerBody::whole);
    answer
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    answer
}

/// Turns true on the first SIGTERM or Ctrl-C.
fn stop_on_signal() -> anyhow::Result<watch::Receiver<bool>> {
    let (stop, stopping) = watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Installed now, not when first awaited: a SIGTERM that comes right
        // after start-up must stop the server cleanly, not kill it.
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            let _ = stop.send(true);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    });
    Ok(stopping)
}

/// Reads already ignore expired events (and rotated-away tokens); this
/// reclaims their space once a minute.
async fn purge_expired_events(store: Arc<dyn Housekeeping>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        match store.purge_expired(Timestamp::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "expired events removed"),
            Err(err) => tracing::warn!(error = %err, "purging expired events failed"),
        }
    }
}
