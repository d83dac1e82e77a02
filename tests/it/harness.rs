//! Starts `hookflow serve` on a free port with a temporary data dir.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookflow_core::testkit::services::{service_env, skip_without};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The admin token every test server uses.
pub const ADMIN: &str = "it-admin-token-0123456789abcdef";

/// Which backend the servers of this test run use: `HOOKFLOW_TEST_BACKEND=aws`
/// runs every server on DynamoDB/SQS/S3 (moto, started by `make test`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Embedded,
    Aws,
}

pub fn backend() -> Backend {
    match std::env::var("HOOKFLOW_TEST_BACKEND").as_deref() {
        Ok("aws") => Backend::Aws,
        _ => Backend::Embedded,
    }
}

/// A running `hookflow serve` process; killed when dropped.
pub struct Server {
    pub url: String,
    pub child: Child,
    pub dir: PathBuf,
    /// Name prefix of this server's own AWS resources (aws backend).
    pub aws_prefix: String,
    _temp: Option<tempfile::TempDir>,
    env: Vec<(String, String)>,
    /// Where the server's log (stderr) goes, when captured.
    log: Option<PathBuf>,
    /// The open-file limit the server runs under (`prlimit --nofile`), if any.
    nofile: Option<u64>,
    /// Every line the server printed on stdout, this start and earlier ones.
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// A server on a fresh data dir.
    pub async fn start() -> Server {
        Self::start_with(&[]).await
    }

    /// A server on a fresh data dir with extra environment settings.
    pub async fn start_with(env: &[(&str, &str)]) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let prefix = format!("hf-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut server = Self::spawn(&dir, &env, &prefix).await;
        server._temp = Some(temp);
        server
    }

    /// Like [`Server::start_with`], with the server's log (stderr) written to a
    /// file beside its data dir (outside the work tree; see [`Server::log_text`]).
    pub async fn start_logged(env: &[(&str, &str)]) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("data");
        std::fs::create_dir(&dir).expect("data dir");
        let log = temp.path().join("server.log");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let prefix = format!("hf-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut server = Self::spawn_logging(&dir, &env, &prefix, Some(&log), None).await;
        server._temp = Some(temp);
        server
    }

    /// Like [`Server::start_with`], under `prlimit --nofile=<nofile>:<nofile>`.
    pub async fn start_limited(env: &[(&str, &str)], nofile: u64) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let prefix = format!("hf-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut server = Self::spawn_logging(&dir, &env, &prefix, None, Some(nofile)).await;
        server._temp = Some(temp);
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmRSS`: resident now, `VmHWM`: the peak).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// File descriptors the server holds open now (its connections among them).
    pub fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("/proc fd")
            .count()
    }

    /// CPU time (user + system) the server has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("/proc stat");
        // Fields after the command name, which is in parentheses: utime and stime are 12th and 13th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("stat")
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf only reads a system constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / per_second)
    }

    /// Everything the server printed on stdout, over all its starts.
    pub fn stdout_text(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    /// Everything the server logged so far (started with [`Server::start_logged`]).
    pub fn log_text(&self) -> String {
        let path = self
            .log
            .as_ref()
            .expect("started with Server::start_logged");
        std::fs::read_to_string(path).expect("server log")
    }

    /// Starts the binary on `dir` and waits for its "listening" line.
    pub async fn spawn(dir: &Path, env: &[(String, String)], aws_prefix: &str) -> Server {
        Self::spawn_logging(dir, env, aws_prefix, None, None).await
    }

    /// [`Server::spawn`], appending the server's stderr to `log` when given.
    async fn spawn_logging(
        dir: &Path,
        env: &[(String, String)],
        aws_prefix: &str,
        log: Option<&Path>,
        nofile: Option<u64>,
    ) -> Server {
        let mut cmd = match nofile {
            // prlimit execs the server, so the child's pid is the server's.
            Some(n) => {
                let mut cmd = Command::new("prlimit");
                cmd.arg(format!("--nofile={n}:{n}"))
                    .arg(env!("CARGO_BIN_EXE_hookflow"));
                cmd
            }
            None => Command::new(env!("CARGO_BIN_EXE_hookflow")),
        };
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir);
        if backend() == Backend::Aws {
            assert!(
                std::env::var("AWS_ENDPOINT_URL").is_ok(),
                "the aws test backend needs moto: run `make test`"
            );
            // Each server gets its own tables, queue and bucket; tests also write
            // behind the server's back, so no lookup caching.
            cmd.args([
                "--backend",
                "aws",
                "--provision",
                "--aws-prefix",
                aws_prefix,
            ])
            .env("HOOKFLOW_LOOKUP_CACHE_SECONDS", "0");
        }
        cmd.env("HOOKFLOW_ADMIN_TOKEN", ADMIN)
            .env("HOOKFLOW_LOG", "warn")
            .env_remove("HOOKFLOW_PUBLIC_URL")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(match log {
                Some(path) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .expect("server log file"),
                ),
                None => Stdio::inherit(),
            })
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn hookflow");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let printed: Arc<Mutex<Vec<String>>> = Arc::default();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                printed.lock().unwrap().push(line.clone());
                if let Some(url) = line.strip_prefix("hookflow listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("hookflow exited before listening");
        })
        .await
        .expect("hookflow did not start within 30 s");
        // Keep draining stdout so the server never blocks on a full pipe.
        let keep = printed.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep.lock().unwrap().push(line);
            }
        });
        Server {
            url,
            child,
            dir: dir.to_path_buf(),
            aws_prefix: aws_prefix.to_owned(),
            _temp: None,
            env: env.to_vec(),
            log: log.map(Path::to_path_buf),
            nofile,
            stdout: printed,
        }
    }

    /// Stops with SIGTERM (like Ctrl-C) and waits for a clean exit.
    pub async fn stop(&mut self) {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("stops within 10 s")
            .expect("wait");
        assert!(status.success(), "clean exit on SIGTERM, got {status:?}");
    }

    /// Kills with SIGKILL: no chance to flush anything.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill -9");
        let _ = self.child.wait().await;
    }

    /// Starts a new process on the same data dir and settings (after stop/kill).
    pub async fn restart(&mut self) {
        let temp = self._temp.take();
        let next = Self::spawn_logging(
            &self.dir,
            &self.env,
            &self.aws_prefix,
            self.log.as_deref(),
            self.nofile,
        )
        .await;
        let earlier = std::mem::take(&mut *self.stdout.lock().unwrap());
        next.stdout.lock().unwrap().splice(0..0, earlier);
        *self = Server {
            _temp: temp,
            ..next
        };
    }

    pub fn database(&self) -> PathBuf {
        self.dir.join("hookflow.db")
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// POSTs a management command with a form body.
    pub async fn command(&self, name: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let res = client()
            .post(self.at(&format!("/api/v3/command/{name}")))
            .bearer_auth(ADMIN)
            .form(form)
            .send()
            .await
            .expect("command");
        json_of(res).await
    }

    /// Creates a webhook for `event_key` and returns its JSON.
    pub async fn create_webhook(&self, event_key: &str, extra: &[(&str, &str)]) -> Value {
        let mut form = vec![("eventKey", event_key)];
        form.extend_from_slice(extra);
        let (status, body) = self.command("webhook.put", &form).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

/// A client that never follows redirects, so tests see 303s.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Status and JSON body of a response (Null when the body is not JSON).
pub async fn json_of(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Asserts the spec's error shape with `status` and `code`.
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["statusCode"], want_status, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// The storage of a server, opened by the test itself (SQLite file or the
/// server's AWS resources), to check what was stored and to write behind its back.
pub struct Storage {
    pub ports: hookflow_core::ports::Ports,
    sqlite: Option<PathBuf>,
    sqs: Option<(aws_sdk_sqs::Client, String)>,
    dead_letter_queue: Option<String>,
}

impl Server {
    /// Opens this server's storage.
    pub async fn storage(&self) -> Storage {
        use hookflow_core::adapters::aws::{AwsClients, provision};
        match backend() {
            Backend::Embedded => {
                let store =
                    hookflow_core::adapters::SqliteStore::open(&self.database()).expect("open db");
                let ports = hookflow_core::ports::Ports::sqlite(std::sync::Arc::new(store));
                Storage {
                    ports,
                    sqlite: Some(self.database()),
                    sqs: None,
                    dead_letter_queue: None,
                }
            }
            Backend::Aws => {
                let clients = AwsClients::from_env().await;
                // Provisioning is idempotent: it names the server's existing resources.
                let resources = provision(&clients, &self.aws_prefix)
                    .await
                    .expect("resources");
                let ports =
                    hookflow_core::ports::Ports::aws(&clients, &resources, None, Duration::ZERO);
                Storage {
                    ports,
                    sqlite: None,
                    sqs: Some((clients.sqs.clone(), resources.queue_url)),
                    dead_letter_queue: resources.dead_letter_queue_url,
                }
            }
        }
    }
}

impl Storage {
    /// The SQS client and queue URL of the server's job queue (aws backend).
    pub fn sqs_queue(&self) -> Option<(&aws_sdk_sqs::Client, &str)> {
        self.sqs
            .as_ref()
            .map(|(client, url)| (client, url.as_str()))
    }

    /// Jobs waiting or in flight.
    pub async fn pending_jobs(&self) -> i64 {
        if let Some(db) = &self.sqlite {
            return rusqlite::Connection::open(db)
                .unwrap()
                .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
                .unwrap();
        }
        let (sqs, url) = self.sqs.as_ref().expect("sqs");
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| {
            attributes
                .get(a)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        })
        .sum()
    }

    /// The dead-lettered messages (body, reason), oldest first. On SQS they are
    /// read without being hidden (visibility 0), so a second call sees them too.
    pub async fn dead_letters(&self) -> Vec<(String, String)> {
        if let Some(db) = &self.sqlite {
            let conn = rusqlite::Connection::open(db).unwrap();
            let mut rows = conn
                .prepare("SELECT data, reason FROM dead_letters ORDER BY id")
                .unwrap();
            return rows
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        }
        let (sqs, _) = self.sqs.as_ref().expect("sqs");
        let url = self
            .dead_letter_queue
            .as_deref()
            .expect("dead-letter queue");
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        received
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let reason = m
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get(hookflow_core::adapters::aws::DEAD_LETTER_REASON_ATTRIBUTE))
                    .and_then(|v| v.string_value.clone())
                    .unwrap_or_default();
                (m.body.unwrap_or_default(), reason)
            })
            .collect()
    }

    /// Queues a message no worker can read.
    pub async fn send_unreadable_job(&self) {
        if let Some(db) = &self.sqlite {
            rusqlite::Connection::open(db)
                .unwrap()
                .execute(
                    "INSERT INTO jobs (visible_at, data) VALUES (0, 'not a job')",
                    [],
                )
                .unwrap();
            return;
        }
        let (sqs, url) = self.sqs.as_ref().expect("sqs");
        sqs.send_message()
            .queue_url(url)
            .message_body("not a job")
            .send()
            .await
            .unwrap();
    }
}

impl Storage {
    /// Puts `body` among the dead letters as the worker leaves them: with its
    /// `reason` and 3 attempts; on SQS without a reason as the queue's redrive
    /// policy leaves them (no reason, no count).
    pub async fn put_dead_letter(&self, body: &str, reason: Option<&str>) {
        use hookflow_core::adapters::aws::{
            DEAD_LETTER_REASON_ATTRIBUTE, DEAD_LETTER_RECEIVE_COUNT_ATTRIBUTE,
        };
        if let Some(db) = &self.sqlite {
            rusqlite::Connection::open(db)
                .unwrap()
                .execute(
                    "INSERT INTO dead_letters (job_id, receive_count, reason, dead_at, data)
                     VALUES (0, 3, ?1, ?2, ?3)",
                    rusqlite::params![
                        reason.expect("the embedded worker always gives a reason"),
                        hookflow_core::domain::Timestamp::now().0,
                        body
                    ],
                )
                .unwrap();
            return;
        }
        let (sqs, _) = self.sqs.as_ref().expect("sqs");
        let url = self
            .dead_letter_queue
            .as_deref()
            .expect("dead-letter queue");
        let attribute = |kind: &str, value: &str| {
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type(kind)
                .string_value(value)
                .build()
                .unwrap()
        };
        let mut send = sqs.send_message().queue_url(url).message_body(body);
        if let Some(reason) = reason {
            send = send
                .message_attributes(DEAD_LETTER_REASON_ATTRIBUTE, attribute("String", reason))
                .message_attributes(
                    DEAD_LETTER_RECEIVE_COUNT_ATTRIBUTE,
                    attribute("Number", "3"),
                );
        }
        send.send().await.unwrap();
    }
}

/// The stored event of `correlation_id`, as pipelines see it.
pub async fn stored_event_body(server: &Server, correlation_id: &str) -> Option<Value> {
    let id = hookflow_core::domain::CorrelationId::parse(correlation_id).expect("id");
    let storage = server.storage().await;
    storage
        .ports
        .events
        .get_event(&id)
        .await
        .expect("read")
        .map(|r| r.event.body())
}

/// Registers a pipeline named `name` listening to `event_key` straight in the
/// store, so receives have a listener (on a server started without a worker,
/// their results stay `processing`).
pub async fn add_listener(server: &Server, name: &str, event_key: &str) {
    use hookflow_core::domain::{EventKey, PipelineDefinition, Timestamp};
    let definition = PipelineDefinition {
        name: name.to_owned(),
        listens_to: EventKey::parse(event_key).expect("key"),
        source: format!("pipeline:\n  - event.listen:\n      eventKey: {event_key}\n"),
        updated_at: Timestamp::now(),
    };
    server
        .storage()
        .await
        .ports
        .pipelines
        .put_pipeline(&definition)
        .await
        .expect("put pipeline");
}

/// The SMTP test server `make test` starts: its URL and the folder it writes
/// mails to; `None` (the test skips) outside `make test`.
pub fn mail_sink() -> Option<(String, PathBuf)> {
    let [url, dir] = service_env(
        "the SMTP test server",
        ["HOOKFLOW_TEST_SMTP_URL", "HOOKFLOW_TEST_MAIL_DIR"],
    )?;
    Some((url, PathBuf::from(dir)))
}

/// Mails received by the test SMTP server that satisfy `wanted`, waiting up to
/// `timeout` for at least one.
pub async fn mails_matching(
    dir: &Path,
    timeout: Duration,
    wanted: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).expect("mail dir").flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Ok(text) = std::fs::read_to_string(&path)
                && let Ok(mail) = serde_json::from_str::<Value>(&text)
                && wanted(&mail)
            {
                found.push(mail);
            }
        }
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Server {
    /// Stores a pipeline from its YAML (sent as the request body).
    pub async fn put_pipeline(&self, name: &str, yaml: &str) -> (StatusCode, Value) {
        let res = client()
            .post(self.at(&format!("/api/v3/command/pipeline.put?name={name}")))
            .bearer_auth(ADMIN)
            .header("content-type", "application/yaml")
            .body(yaml.to_owned())
            .send()
            .await
            .expect("pipeline.put");
        json_of(res).await
    }

    /// Receives `body` on the webhook with `token`; returns status, header id and JSON.
    pub async fn trigger(
        &self,
        token: &str,
        body: &str,
        query: &str,
    ) -> (StatusCode, String, Value) {
        let res = client()
            .post(self.at(&format!(
                "/api/v3/command/webhook.receive?token={token}{query}"
            )))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("receive");
        let id = res
            .headers()
            .get("pipeforce-result-correlationid")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let (status, json) = json_of(res).await;
        (status, id, json)
    }

    /// Long-polls the result of `id` until it is no longer processing (or 20 s).
    pub async fn final_result(&self, id: &str) -> Value {
        for _ in 0..20 {
            let res = client()
                .get(self.at(&format!("/api/v3/result?correlationId={id}&maxWaitMs=1000")))
                .send()
                .await
                .expect("result");
            let (_, body) = json_of(res).await;
            if body["status"] != "processing" {
                return body;
            }
        }
        panic!("result {id} still processing after 20 s");
    }
}

/// The Python of the test venv (`HOOKFLOW_TEST_PYTHON`, set by `tests/run.sh`;
/// else `.venv/bin/python` of the work tree, as `make test` creates it);
/// `None` (the test skips) when there is neither.
pub fn venv_python() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("HOOKFLOW_TEST_PYTHON") {
        return Some(PathBuf::from(path));
    }
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if fallback.exists() {
        return Some(fallback);
    }
    skip_without(
        "the test venv's Python",
        "HOOKFLOW_TEST_PYTHON unset and no .venv",
    );
    None
}

/// Receive calls sent by concurrent keep-alive clients until [`Load::finish`],
/// counted as they are answered; what each 200 answered is kept.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    counts: std::sync::Arc<LoadCounts>,
    clients: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

/// Answers so far, by kind.
#[derive(Default)]
pub struct LoadCounts {
    pub ok: std::sync::atomic::AtomicUsize,
    pub unavailable: std::sync::atomic::AtomicUsize,
    /// Any other status: a test under load expects none.
    pub other: std::sync::atomic::AtomicUsize,
}

impl Load {
    /// Starts `clients` connections, each POSTing a small JSON body to the
    /// webhook `token` of `server` one call after the other.
    pub fn start(server: &Server, token: &str, clients: usize) -> Load {
        use std::sync::atomic::Ordering::Relaxed;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let counts = std::sync::Arc::new(LoadCounts::default());
        let url = server.at("/api/v3/webhook.receive");
        let clients = (0..clients)
            .map(|_| {
                let (stop, counts, url) = (stop.clone(), counts.clone(), url.clone());
                let token = token.to_owned();
                tokio::spawn(async move {
                    let http = client();
                    let mut accepted = Vec::new();
                    while !stop.load(Relaxed) {
                        let sent = http
                            .post(&url)
                            .header("token", &token)
                            .header("content-type", "application/json")
                            .body(r#"{"lead":{"name":"Ada Lovelace","source":"load"}}"#)
                            .send()
                            .await;
                        // A call the server never answered (it is stopping) is no answer.
                        let Ok(res) = sent else {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        match res.status() {
                            StatusCode::OK => {
                                if let Some(id) =
                                    res.headers().get("pipeforce-result-correlationid")
                                {
                                    accepted.push(id.to_str().unwrap().to_owned());
                                }
                                counts.ok.fetch_add(1, Relaxed);
                            }
                            StatusCode::SERVICE_UNAVAILABLE => {
                                counts.unavailable.fetch_add(1, Relaxed);
                            }
                            _ => {
                                counts.other.fetch_add(1, Relaxed);
                            }
                        }
                        let _ = res.bytes().await;
                    }
                    accepted
                })
            })
            .collect();
        Load {
            stop,
            counts,
            clients,
        }
    }

    pub fn counts(&self) -> &LoadCounts {
        &self.counts
    }

    /// Calls answered 200 so far.
    pub fn ok(&self) -> usize {
        self.counts.ok.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Calls answered 503 so far.
    pub fn unavailable(&self) -> usize {
        self.counts
            .unavailable
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the clients; the correlation ids of every call answered 200.
    pub async fn finish(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut accepted = Vec::new();
        for client in self.clients {
            accepted.extend(client.await.expect("load client"));
        }
        accepted
    }
}

/// The correlation ids of every event in the SQLite file at `database`.
pub fn stored_event_ids(database: &Path) -> std::collections::HashSet<String> {
    let conn =
        rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database");
    let mut stmt = conn
        .prepare("SELECT correlation_id FROM events")
        .expect("query");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Whether this run's servers use SQLite; prints why a test is skipped when not.
pub fn embedded_only(test: &str) -> bool {
    if backend() == Backend::Embedded {
        return true;
    }
    eprintln!("SKIP {test}: only the embedded (SQLite) backend has this behaviour");
    false
}

/// Sends raw bytes on a new connection; returns the status code and the whole
/// answer text (until the server closes, or 10 s).
pub async fn raw(server: &Server, request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    (status_of(&text), text)
}

/// The status code of a raw answer (0 if there is none).
pub fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The JSON body of a raw answer (Null if it has none).
pub fn json_body(answer: &str) -> Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or(Value::Null)
}

impl Server {
    /// `host:port` of the server.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }
}
