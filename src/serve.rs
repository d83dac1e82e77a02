//! `hookflow serve`: the embedded shape. The core's routing over SQLite, on hyper.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hookflow_core::adapters::aws::{
    AwsClients, AwsResources, DEFAULT_PREFIX, missing_aws_settings, provision,
};
use hookflow_core::adapters::{LocalSignal, SqliteStore};
use hookflow_core::api::{Ports, error_response, payload_too_large};
use hookflow_core::config::AdminToken;
use hookflow_core::domain::Timestamp;
use hookflow_core::error::ApiError;
use hookflow_core::pipeline::commands::Services;
use hookflow_core::pipeline::worker::{QUEUE_POLL_WAIT, Worker};
use hookflow_core::{Gateway, Settings};
use http::{Request, Response};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Name of the SQLite file inside the data dir.
pub const DATABASE_FILE: &str = "hookflow.db";
/// Name of the generated admin token file inside the data dir.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

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
    let mut settings = Settings::from_env()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data dir {}", args.data_dir.display()))?;
    let generated = settings.admin_token.is_none();
    let admin_token = match settings.admin_token.clone() {
        Some(token) => token,
        None => load_or_create_admin_token(&args.data_dir)?,
    };
    settings.admin_token = Some(admin_token.clone());

    let (ports, sqlite, storage) = match args.backend {
        Backend::Embedded => {
            let database = args.data_dir.join(DATABASE_FILE);
            let store = Arc::new(
                SqliteStore::open(&database)
                    .with_context(|| format!("cannot open {}", database.display()))?,
            );
            (
                Ports::sqlite(store.clone()),
                Some(store),
                database.display().to_string(),
            )
        }
        Backend::Aws => {
            // Checked first: without them the SDK would look for credentials at the
            // cloud metadata address before failing in words that name nothing.
            let missing = missing_aws_settings(args.provision).await;
            if !missing.is_empty() {
                anyhow::bail!("the AWS backend needs settings: {}", missing.join("; "));
            }
            settings.check_for_sqs()?;
            let clients = AwsClients::from_env().await;
            let resources = if args.provision {
                provision(&clients, &args.aws_prefix)
                    .await
                    .map_err(|e| anyhow::anyhow!("provisioning the AWS resources failed: {e}"))?
            } else {
                AwsResources::from_env()?
            };
            let described = format!(
                "DynamoDB {}, {}, {}; SQS {}; S3 {}",
                resources.webhooks_table,
                resources.pipelines_table,
                resources.events_table,
                resources.queue_url,
                resources.payload_bucket
            );
            // The worker runs in this process, so waiting callers are woken directly.
            let signal = Arc::new(LocalSignal::new());
            (
                Ports::aws(&clients, &resources, Some(signal), settings.lookup_cache),
                None,
                described,
            )
        }
    };
    let concurrency = settings.worker_concurrency;
    let visibility = settings.visibility_timeout;
    let queue = ports.queue.clone();
    let gateway = Arc::new(Gateway::new(ports, settings));
    let worker = build_worker(&gateway)?;

    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    print_banner(addr, &storage, &args.data_dir, &admin_token, generated);

    if let Some(store) = sqlite {
        tokio::spawn(purge_expired_events(store));
    }
    let (stop_worker, stopping) = watch::channel(false);
    let worker_runtime = (concurrency > 0).then(worker_runtime).transpose()?;
    let worker = worker_runtime
        .as_ref()
        .map(|rt| rt.spawn(worker.run_queue(queue, concurrency, visibility, stopping)));
    serve_http(listener, gateway).await;
    // Jobs still running are abandoned, not lost: they come back after their visibility timeout.
    let _ = stop_worker.send(true);
    if let Some(worker) = worker {
        // It may first finish a receive that would otherwise hide jobs from the next process.
        let _ = tokio::time::timeout(QUEUE_POLL_WAIT + Duration::from_secs(5), worker).await;
    }
    if let Some(rt) = worker_runtime {
        rt.shutdown_background();
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

/// The pipeline worker over the gateway's ports, with the mail server of the
/// settings; it sends outgoing webhooks through the gateway's client (one
/// connection pool per process).
fn build_worker(gateway: &Gateway) -> anyhow::Result<Arc<Worker>> {
    let mut services = Services::from_settings(gateway.settings(), gateway.ports())?;
    services.outgoing = Some(gateway.outgoing().clone());
    Ok(Arc::new(Worker::new(
        gateway.ports().clone(),
        Arc::new(services),
        gateway.settings().worker.clone(),
    )))
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

/// The admin token kept in the data dir, created (owner-only) on first start.
fn load_or_create_admin_token(data_dir: &Path) -> anyhow::Result<AdminToken> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return AdminToken::new(text.trim())
            .with_context(|| format!("invalid token in {}", path.display()));
    }
    let token = format!(
        "hf_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(AdminToken::new(token)?)
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
    generated: bool,
) {
    let url = format!("http://{addr}");
    println!("hookflow listening on {url}");
    println!("  data:        {storage}");
    if generated {
        println!(
            "  admin token: {} (kept in {})",
            token.expose(),
            data_dir.join(ADMIN_TOKEN_FILE).display()
        );
    } else {
        println!("  admin token: from HOOKFLOW_ADMIN_TOKEN");
    }
    let shown = if generated {
        token.expose()
    } else {
        "$HOOKFLOW_ADMIN_TOKEN"
    };
    println!("Create a webhook:");
    println!(
        "  curl -s -X POST {url}/api/v3/command/webhook.put -H \"Authorization: Bearer {shown}\" -d eventKey=webhook.lead.created"
    );
    println!("Stop with Ctrl-C.");
}

/// Serves HTTP/1.1 until Ctrl-C or SIGTERM, then lets open requests finish (5 s at most).
async fn serve_http(listener: TcpListener, gateway: Arc<Gateway>) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let gateway = gateway.clone();
                let service = service_fn(move |req| {
                    let gateway = gateway.clone();
                    async move { Ok::<_, Infallible>(handle(&gateway, req).await) }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .max_headers(100)
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
}

/// Reads the body (bounded), hands the request to the core, returns its answer.
async fn handle(gateway: &Gateway, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let limit = gateway.settings().max_body_bytes;
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return error_response(&payload_too_large(limit)).map(Full::new);
    }
    let (head, body) = req.into_parts();
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            return error_response(&payload_too_large(limit)).map(Full::new);
        }
        Err(_) => {
            let err =
                ApiError::bad_request("body_unreadable", "the request body could not be read");
            return error_response(&err).map(Full::new);
        }
    };
    gateway
        .handle(Request::from_parts(head, body))
        .await
        .map(Full::new)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Reads already ignore expired events; this reclaims their space once a minute.
async fn purge_expired_events(store: Arc<SqliteStore>) {
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
