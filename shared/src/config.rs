//! Typed settings, read once from the environment and validated at start-up.

use std::time::Duration;

pub use crate::outgoing::settings::{
    DEFAULT_QUEUE_RETENTION, OutgoingSettings, QUEUE_RETENTION_MARGIN,
};
use crate::pipeline::users::Users;
use crate::pipeline::worker::WorkerSettings;
use crate::webhooks::registration::MAX_PAYLOAD_LENGTH_LIMIT;

/// Default of `HOOKFLOW_WAL_MAX_BYTES`: the WAL is reset once it passes this.
pub const DEFAULT_WAL_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Smallest WAL bound accepted: below it, resets would come every few commits.
pub const MIN_WAL_MAX_BYTES: u64 = 1024 * 1024;
/// Largest WAL bound accepted.
pub const MAX_WAL_MAX_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// Largest `HOOKFLOW_PIPELINE_BUDGET_BYTES`: what one run may hold in memory.
const MAX_PIPELINE_BUDGET_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// A bad setting: names the variable and says what is wrong.
#[derive(thiserror::Error, PartialEq, Eq)]
#[error("setting {name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

// Lambda runtimes print a failed start-up with `Debug`: make it the readable message.
impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The management bearer token. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// Wraps a token; at least 16 characters so it cannot be guessed cheaply.
    pub fn new(token: impl Into<String>) -> Result<Self, ConfigError> {
        let token = token.into();
        if token.trim().len() < 16 || token.trim() != token {
            return Err(ConfigError {
                name: "HOOKFLOW_ADMIN_TOKEN",
                problem: "must be at least 16 characters, without surrounding spaces".into(),
            });
        }
        Ok(AdminToken(token))
    }

    /// The token text, to compare against or to hand to the operator once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Events stay in the event log 3 days unless told otherwise, like invocation records.
pub const DEFAULT_EVENT_RETENTION_SECONDS: u64 = 3 * 24 * 3600;
/// The longest event retention: a year, the bound the result TTL has too.
pub const MAX_EVENT_RETENTION_SECONDS: u64 = 365 * 24 * 3600;

/// Everything the gateway can be told, with the spec's defaults.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `HOOKFLOW_ADMIN_TOKEN`; `serve` generates one when unset; `webhook-admin` then
    /// reads it from the secret `HOOKFLOW_ADMIN_TOKEN_SECRET` names.
    pub admin_token: Option<AdminToken>,
    /// `HOOKFLOW_PUBLIC_URL`: base of `webhookUrl`; unset, it is taken from the request's Host.
    pub public_url: Option<String>,
    /// `HOOKFLOW_RECEIVE_WAIT_MS`: how long `webhook.receive` waits for a result (default 1000).
    pub receive_wait: Duration,
    /// `HOOKFLOW_RESULT_TTL_SECONDS`: how long events and results stay pollable (default 3600).
    pub result_ttl_seconds: u64,
    /// `HOOKFLOW_EVENT_RETENTION_SECONDS`: how long events and their outcomes stay in
    /// the event log (`event.list`/`event.get`/`event.replay`), default 3 days.
    pub event_retention_seconds: u64,
    /// `HOOKFLOW_MAX_BODY_BYTES`: largest request body accepted at all (default 4 MiB).
    pub max_body_bytes: usize,
    /// `HOOKFLOW_POLL_DEFAULT_WAIT_MS`: `/result` long-poll wait without `maxWaitMs` (default 10000).
    pub poll_default_wait: Duration,
    /// `HOOKFLOW_POLL_MAX_WAIT_MS`: cap on `maxWaitMs`, below API Gateway's 30 s (default 25000).
    pub poll_max_wait: Duration,
    /// `HOOKFLOW_MAX_PIPELINE_BYTES`: largest pipeline YAML `pipeline.put` takes (default 64 KiB).
    pub max_pipeline_bytes: usize,
    /// `HOOKFLOW_USERS`: pipeline users and their permissions (`name=perm,perm;name=*`).
    pub users: Users,
    /// `HOOKFLOW_SMTP_URL`: where `mail.send` delivers, e.g. `smtp://127.0.0.1:2525`.
    pub smtp_url: Option<String>,
    /// `HOOKFLOW_MAIL_FROM`: sender when a `mail.send` step gives none (default `hookflow@localhost`).
    pub mail_from: String,
    /// `HOOKFLOW_WORKER_CONCURRENCY`: pipelines run at once by `serve`'s worker (default 64; 0: no worker).
    pub worker_concurrency: usize,
    /// `HOOKFLOW_VISIBILITY_TIMEOUT_SECONDS`: how long a taken job stays hidden before
    /// it is handed out again (default 180; more than the pipeline timeout).
    pub visibility_timeout: Duration,
    /// `HOOKFLOW_MAX_ATTEMPTS`, `HOOKFLOW_RETRY_BASE_MS`, `HOOKFLOW_PIPELINE_TIMEOUT_MS`,
    /// `HOOKFLOW_PIPELINE_BUDGET_BYTES`.
    pub worker: WorkerSettings,
    /// `HOOKFLOW_LOOKUP_CACHE_SECONDS`: how long the AWS shape caches a webhook and
    /// its listeners per process on the receive path (default 10; 0: off).
    pub lookup_cache: Duration,
    /// `HOOKFLOW_TRUSTED_PROXIES`: the proxies (CIDRs) whose `X-Forwarded-For`
    /// entries are believed when finding a caller's address (default none: the
    /// TCP peer, or API Gateway's `sourceIp`, is the caller).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `HOOKFLOW_WAL_MAX_BYTES`: the embedded shape's SQLite write-ahead log is
    /// checkpointed and truncated once it passes this size (default 64 MiB).
    pub wal_max_bytes: u64,
    /// `HOOKFLOW_OUTGOING_*` and `HOOKFLOW_INVOCATION_TTL_SECONDS`: outgoing webhooks.
    pub outgoing: OutgoingSettings,
    /// How `hookflow serve` bounds its connections (API Gateway does this for the Lambdas).
    pub front_door: FrontDoorSettings,
}

/// The bounds `hookflow serve` keeps on what clients may hold: connections,
/// time, and memory for bodies in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontDoorSettings {
    /// `HOOKFLOW_MAX_CONNECTIONS`: connections served at once; more wait in the
    /// listen backlog. Unset: derived from the open-file limit (see `serve`).
    pub max_connections: Option<usize>,
    /// `HOOKFLOW_IDLE_TIMEOUT_MS`: how long a connection may take to send a
    /// request's head, idle keep-alive time included (default 10000).
    pub idle_timeout: Duration,
    /// `HOOKFLOW_BODY_TIMEOUT_MS`: how long a request's body may take to arrive (default 30000).
    pub body_timeout: Duration,
    /// `HOOKFLOW_WRITE_TIMEOUT_MS`: how long writing an answer may make no
    /// progress before the connection is closed (default 30000).
    pub write_timeout: Duration,
    /// `HOOKFLOW_BODY_BUDGET_BYTES`: request body bytes held in memory at once,
    /// all connections together (default 32 MiB; at least `HOOKFLOW_MAX_BODY_BYTES`).
    pub body_budget_bytes: usize,
    /// `HOOKFLOW_ANSWER_BUDGET_BYTES`: bytes of large answers being written at once (default 32 MiB).
    pub answer_budget_bytes: usize,
    /// `HOOKFLOW_BUDGET_WAIT_MS`: how long a request waits for budget before
    /// it is answered 503 `server_busy` (default 5000, well below the time
    /// clients give a stalled upload).
    pub budget_wait: Duration,
}

impl Default for FrontDoorSettings {
    fn default() -> Self {
        FrontDoorSettings {
            max_connections: None,
            idle_timeout: Duration::from_millis(10_000),
            body_timeout: Duration::from_millis(30_000),
            write_timeout: Duration::from_millis(30_000),
            body_budget_bytes: 32 * 1024 * 1024,
            answer_budget_bytes: 32 * 1024 * 1024,
            budget_wait: Duration::from_millis(5000),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            admin_token: None,
            public_url: None,
            receive_wait: Duration::from_millis(1000),
            result_ttl_seconds: 3600,
            event_retention_seconds: DEFAULT_EVENT_RETENTION_SECONDS,
            max_body_bytes: MAX_PAYLOAD_LENGTH_LIMIT as usize,
            poll_default_wait: Duration::from_millis(10_000),
            poll_max_wait: Duration::from_millis(25_000),
            max_pipeline_bytes: 64 * 1024,
            users: Users::default(),
            smtp_url: None,
            mail_from: "hookflow@localhost".into(),
            worker_concurrency: 64,
            visibility_timeout: Duration::from_secs(180),
            worker: WorkerSettings {
                max_attempts: 5,
                retry_base: Duration::from_millis(1000),
                pipeline_timeout: Duration::from_millis(30_000),
                pipeline_budget_bytes: crate::pipeline::budget::DEFAULT_BUDGET_BYTES,
            },
            lookup_cache: Duration::from_secs(10),
            trusted_proxies: Vec::new(),
            wal_max_bytes: DEFAULT_WAL_MAX_BYTES,
            outgoing: OutgoingSettings::default(),
            front_door: FrontDoorSettings::default(),
        }
    }
}

impl Settings {
    /// Reads the `HOOKFLOW_*` variables of the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let defaults = Settings::default();
        let millis =
            |name: &'static str, default: Duration, max: u64| -> Result<Duration, ConfigError> {
                match get(name) {
                    None => Ok(default),
                    Some(v) => parse_number(name, &v, 0, max).map(Duration::from_millis),
                }
            };
        // Empty means unset; only spaces is a mistake, not a request for a generated token.
        if lookup("HOOKFLOW_ADMIN_TOKEN").is_some_and(|v| !v.is_empty() && v.trim().is_empty()) {
            return Err(ConfigError {
                name: "HOOKFLOW_ADMIN_TOKEN",
                problem: "is only spaces; set a token of at least 16 characters, or leave it empty or unset to have serve generate one".into(),
            });
        }
        let at_least_100ms = |name: &'static str, default: Duration| match get(name) {
            None => Ok(default),
            Some(v) => parse_number(name, &v, 100, 3_600_000).map(Duration::from_millis),
        };
        let admin_token = get("HOOKFLOW_ADMIN_TOKEN")
            .map(AdminToken::new)
            .transpose()?;
        let public_url = match get("HOOKFLOW_PUBLIC_URL") {
            None => None,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.trim_end_matches('/').to_owned())
            }
            Some(_) => {
                return Err(ConfigError {
                    name: "HOOKFLOW_PUBLIC_URL",
                    problem: "must start with http:// or https://".into(),
                });
            }
        };
        let settings = Settings {
            admin_token,
            public_url,
            receive_wait: millis("HOOKFLOW_RECEIVE_WAIT_MS", defaults.receive_wait, 25_000)?,
            result_ttl_seconds: match get("HOOKFLOW_RESULT_TTL_SECONDS") {
                None => defaults.result_ttl_seconds,
                Some(v) => parse_number("HOOKFLOW_RESULT_TTL_SECONDS", &v, 1, 365 * 24 * 3600)?,
            },
            event_retention_seconds: match get("HOOKFLOW_EVENT_RETENTION_SECONDS") {
                None => defaults.event_retention_seconds,
                Some(v) => parse_number(
                    "HOOKFLOW_EVENT_RETENTION_SECONDS",
                    &v,
                    1,
                    MAX_EVENT_RETENTION_SECONDS,
                )?,
            },
            max_body_bytes: match get("HOOKFLOW_MAX_BODY_BYTES") {
                None => defaults.max_body_bytes,
                Some(v) => {
                    parse_number("HOOKFLOW_MAX_BODY_BYTES", &v, 1024, 64 * 1024 * 1024)? as usize
                }
            },
            poll_default_wait: millis(
                "HOOKFLOW_POLL_DEFAULT_WAIT_MS",
                defaults.poll_default_wait,
                29_000,
            )?,
            poll_max_wait: millis("HOOKFLOW_POLL_MAX_WAIT_MS", defaults.poll_max_wait, 29_000)?,
            max_pipeline_bytes: match get("HOOKFLOW_MAX_PIPELINE_BYTES") {
                None => defaults.max_pipeline_bytes,
                Some(v) => {
                    parse_number("HOOKFLOW_MAX_PIPELINE_BYTES", &v, 256, 4 * 1024 * 1024)? as usize
                }
            },
            users: match get("HOOKFLOW_USERS") {
                None => defaults.users,
                Some(v) => Users::parse(&v).map_err(|problem| ConfigError {
                    name: "HOOKFLOW_USERS",
                    problem,
                })?,
            },
            smtp_url: match get("HOOKFLOW_SMTP_URL") {
                None => None,
                Some(url) => Some(check_smtp_url(url)?),
            },
            mail_from: get("HOOKFLOW_MAIL_FROM").unwrap_or(defaults.mail_from),
            worker_concurrency: match get("HOOKFLOW_WORKER_CONCURRENCY") {
                None => defaults.worker_concurrency,
                Some(v) => parse_number("HOOKFLOW_WORKER_CONCURRENCY", &v, 0, 1024)? as usize,
            },
            visibility_timeout: match get("HOOKFLOW_VISIBILITY_TIMEOUT_SECONDS") {
                None => defaults.visibility_timeout,
                Some(v) => Duration::from_secs(parse_number(
                    "HOOKFLOW_VISIBILITY_TIMEOUT_SECONDS",
                    &v,
                    1,
                    43_200,
                )?),
            },
            worker: WorkerSettings {
                max_attempts: match get("HOOKFLOW_MAX_ATTEMPTS") {
                    None => defaults.worker.max_attempts,
                    Some(v) => parse_number("HOOKFLOW_MAX_ATTEMPTS", &v, 1, 100)? as u32,
                },
                retry_base: millis(
                    "HOOKFLOW_RETRY_BASE_MS",
                    defaults.worker.retry_base,
                    3_600_000,
                )?,
                pipeline_timeout: millis(
                    "HOOKFLOW_PIPELINE_TIMEOUT_MS",
                    defaults.worker.pipeline_timeout,
                    900_000,
                )?,
                pipeline_budget_bytes: match get("HOOKFLOW_PIPELINE_BUDGET_BYTES") {
                    None => defaults.worker.pipeline_budget_bytes,
                    Some(v) => parse_number(
                        "HOOKFLOW_PIPELINE_BUDGET_BYTES",
                        &v,
                        1024 * 1024,
                        MAX_PIPELINE_BUDGET_BYTES,
                    )? as usize,
                },
            },
            lookup_cache: match get("HOOKFLOW_LOOKUP_CACHE_SECONDS") {
                None => defaults.lookup_cache,
                Some(v) => {
                    Duration::from_secs(parse_number("HOOKFLOW_LOOKUP_CACHE_SECONDS", &v, 0, 3600)?)
                }
            },
            trusted_proxies: match get("HOOKFLOW_TRUSTED_PROXIES") {
                None => Vec::new(),
                Some(list) => parse_cidrs("HOOKFLOW_TRUSTED_PROXIES", &list)?,
            },
            wal_max_bytes: match get("HOOKFLOW_WAL_MAX_BYTES") {
                None => defaults.wal_max_bytes,
                Some(v) => parse_number(
                    "HOOKFLOW_WAL_MAX_BYTES",
                    &v,
                    MIN_WAL_MAX_BYTES,
                    MAX_WAL_MAX_BYTES,
                )?,
            },
            outgoing: OutgoingSettings {
                allow: match get("HOOKFLOW_OUTGOING_ALLOW") {
                    None => Vec::new(),
                    Some(list) => parse_cidrs("HOOKFLOW_OUTGOING_ALLOW", &list)?,
                },
                connect_timeout: millis(
                    "HOOKFLOW_OUTGOING_CONNECT_TIMEOUT_MS",
                    defaults.outgoing.connect_timeout,
                    300_000,
                )?,
                total_timeout: millis(
                    "HOOKFLOW_OUTGOING_TIMEOUT_MS",
                    defaults.outgoing.total_timeout,
                    300_000,
                )?,
                max_response_bytes: match get("HOOKFLOW_OUTGOING_MAX_RESPONSE_BYTES") {
                    None => defaults.outgoing.max_response_bytes,
                    Some(v) => parse_number(
                        "HOOKFLOW_OUTGOING_MAX_RESPONSE_BYTES",
                        &v,
                        1024,
                        64 * 1024 * 1024,
                    )? as usize,
                },
                retry_schedule: match get("HOOKFLOW_OUTGOING_RETRY_SCHEDULE") {
                    None => defaults.outgoing.retry_schedule,
                    Some(v) => {
                        crate::outgoing::schedule::RetrySchedule::parse(&v).map_err(|problem| {
                            ConfigError {
                                name: "HOOKFLOW_OUTGOING_RETRY_SCHEDULE",
                                problem,
                            }
                        })?
                    }
                },
                secret_grace_seconds: match get("HOOKFLOW_OUTGOING_SECRET_GRACE_SECONDS") {
                    None => defaults.outgoing.secret_grace_seconds,
                    Some(v) => {
                        parse_number("HOOKFLOW_OUTGOING_SECRET_GRACE_SECONDS", &v, 0, 30 * 86_400)?
                    }
                },
                invocation_ttl_seconds: match get("HOOKFLOW_INVOCATION_TTL_SECONDS") {
                    None => defaults.outgoing.invocation_ttl_seconds,
                    Some(v) => {
                        parse_number("HOOKFLOW_INVOCATION_TTL_SECONDS", &v, 60, 365 * 86_400)?
                    }
                },
                // SQS keeps a message from 60 s to 14 days.
                queue_retention: match get("HOOKFLOW_QUEUE_RETENTION_SECONDS") {
                    None => None,
                    Some(v) => Some(Duration::from_secs(parse_number(
                        "HOOKFLOW_QUEUE_RETENTION_SECONDS",
                        &v,
                        60,
                        14 * 86_400,
                    )?)),
                },
            },
            front_door: {
                let front = &defaults.front_door;
                let bytes = |name: &'static str, default: usize| -> Result<usize, ConfigError> {
                    match get(name) {
                        None => Ok(default),
                        Some(v) => parse_number(name, &v, 64 * 1024, 1 << 40).map(|n| n as usize),
                    }
                };
                FrontDoorSettings {
                    max_connections: match get("HOOKFLOW_MAX_CONNECTIONS") {
                        None => None,
                        Some(v) => {
                            Some(parse_number("HOOKFLOW_MAX_CONNECTIONS", &v, 1, 1_000_000)?
                                as usize)
                        }
                    },
                    idle_timeout: at_least_100ms("HOOKFLOW_IDLE_TIMEOUT_MS", front.idle_timeout)?,
                    body_timeout: at_least_100ms("HOOKFLOW_BODY_TIMEOUT_MS", front.body_timeout)?,
                    write_timeout: at_least_100ms(
                        "HOOKFLOW_WRITE_TIMEOUT_MS",
                        front.write_timeout,
                    )?,
                    body_budget_bytes: bytes(
                        "HOOKFLOW_BODY_BUDGET_BYTES",
                        front.body_budget_bytes,
                    )?,
                    answer_budget_bytes: bytes(
                        "HOOKFLOW_ANSWER_BUDGET_BYTES",
                        front.answer_budget_bytes,
                    )?,
                    budget_wait: millis("HOOKFLOW_BUDGET_WAIT_MS", front.budget_wait, 60_000)?,
                }
            },
        };
        // A body that may be accepted must be able to get the budget to be read.
        if settings.front_door.body_budget_bytes < settings.max_body_bytes {
            return Err(ConfigError {
                name: "HOOKFLOW_BODY_BUDGET_BYTES",
                problem: format!(
                    "must be at least HOOKFLOW_MAX_BODY_BYTES ({}), or the largest bodies could never be read",
                    settings.max_body_bytes
                ),
            });
        }
        // A record must outlive its delivery, or late attempts find nothing to update.
        let schedule = settings.outgoing.retry_schedule.total().as_secs();
        if settings.outgoing.invocation_ttl_seconds <= schedule + 3600 {
            return Err(ConfigError {
                name: "HOOKFLOW_INVOCATION_TTL_SECONDS",
                problem: format!(
                    "must be longer than the retry schedule ({schedule} s) plus an hour"
                ),
            });
        }
        if settings.visibility_timeout <= settings.worker.pipeline_timeout {
            return Err(ConfigError {
                name: "HOOKFLOW_VISIBILITY_TIMEOUT_SECONDS",
                problem: "must be longer than HOOKFLOW_PIPELINE_TIMEOUT_MS, or running jobs are handed out twice".into(),
            });
        }
        Ok(settings)
    }

    /// For a job queue on SQS, which drops a message after its retention: takes
    /// [`DEFAULT_QUEUE_RETENTION`] when `HOOKFLOW_QUEUE_RETENTION_SECONDS` is
    /// unset, and refuses a retry schedule whose last attempt would come after
    /// the message is gone.
    pub fn check_for_sqs(&mut self) -> Result<(), ConfigError> {
        let retention = *self
            .outgoing
            .queue_retention
            .get_or_insert(DEFAULT_QUEUE_RETENTION);
        let schedule = self.outgoing.retry_schedule.total();
        if schedule + QUEUE_RETENTION_MARGIN > retention {
            return Err(ConfigError {
                name: "HOOKFLOW_OUTGOING_RETRY_SCHEDULE",
                problem: format!(
                    "takes {} s, more than the job queue keeps a message ({} s, HOOKFLOW_QUEUE_RETENTION_SECONDS) less an hour",
                    schedule.as_secs(),
                    retention.as_secs()
                ),
            });
        }
        Ok(())
    }
}

/// `smtp://host[:port]` or `smtps://…`, with a host: lettre would otherwise
/// refuse it only when the worker builds its mailer, in words that name neither
/// the setting nor the fix.
fn check_smtp_url(url: String) -> Result<String, ConfigError> {
    let problem = |problem: &str| ConfigError {
        name: "HOOKFLOW_SMTP_URL",
        problem: problem.into(),
    };
    let Some(rest) = url
        .strip_prefix("smtp://")
        .or_else(|| url.strip_prefix("smtps://"))
    else {
        return Err(problem(
            "must start with smtp:// or smtps://, e.g. smtps://smtp.example.com:465; leave it empty to turn mail off",
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_and_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_and_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_and_port.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(problem(
            "names no mail server: write smtp://host:port or smtps://host:465; leave it empty to turn mail off",
        ));
    }
    Ok(url)
}

/// `127.0.0.0/8, ::1/128` → ranges; a bare address is a range of one.
fn parse_cidrs(name: &'static str, list: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    crate::inbound::source::parse_ranges(list.split(','))
        .map_err(|problem| ConfigError { name, problem })
}

fn parse_number(name: &'static str, text: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    match text.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError {
            name,
            problem: format!("must be a whole number from {min} to {max}, got {text:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let s = from(&[]).unwrap();
        assert_eq!(s.receive_wait, Duration::from_secs(1));
        assert_eq!(s.result_ttl_seconds, 3600);
        let s = from(&[
            ("HOOKFLOW_RECEIVE_WAIT_MS", "0"),
            ("HOOKFLOW_PUBLIC_URL", "https://x.example/"),
        ])
        .unwrap();
        assert_eq!(s.receive_wait, Duration::ZERO);
        assert_eq!(s.public_url.as_deref(), Some("https://x.example"));
        let s = from(&[
            ("HOOKFLOW_OUTGOING_ALLOW", "127.0.0.0/8, ::1, 10.1.0.0/16"),
            ("HOOKFLOW_OUTGOING_RETRY_SCHEDULE", "1s,200ms"),
            ("HOOKFLOW_INVOCATION_TTL_SECONDS", "7200"),
            ("HOOKFLOW_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::1"),
        ])
        .unwrap();
        assert_eq!(s.trusted_proxies.len(), 2);
        assert_eq!(s.trusted_proxies[1].to_string(), "2001:db8::1/128");
        assert_eq!(s.outgoing.allow.len(), 3);
        assert_eq!(s.outgoing.allow[1].to_string(), "::1/128");
        assert_eq!(s.outgoing.retry_schedule.max_attempts(), 3);
        assert_eq!(s.outgoing.total_timeout, Duration::from_secs(15));
        assert_eq!(s.wal_max_bytes, 64 * 1024 * 1024);
        let s = from(&[("HOOKFLOW_WAL_MAX_BYTES", "1048576")]).unwrap();
        assert_eq!(s.wal_max_bytes, 1024 * 1024);
    }

    #[test]
    fn the_event_retention_has_bounds() {
        assert_eq!(from(&[]).unwrap().event_retention_seconds, 259_200);
        let retention = |seconds: u64| {
            from(&[(
                "HOOKFLOW_EVENT_RETENTION_SECONDS",
                seconds.to_string().as_str(),
            )])
            .map(|s| s.event_retention_seconds)
        };
        for seconds in [1, MAX_EVENT_RETENTION_SECONDS] {
            assert_eq!(retention(seconds), Ok(seconds));
        }
        for seconds in [0, MAX_EVENT_RETENTION_SECONDS + 1] {
            assert_eq!(
                retention(seconds).unwrap_err().name,
                "HOOKFLOW_EVENT_RETENTION_SECONDS"
            );
        }
    }

    #[test]
    fn the_pipeline_budget_has_bounds() {
        assert_eq!(from(&[]).unwrap().worker.pipeline_budget_bytes, 64 << 20);
        let budget = |bytes: usize| {
            from(&[("HOOKFLOW_PIPELINE_BUDGET_BYTES", bytes.to_string().as_str())])
                .map(|s| s.worker.pipeline_budget_bytes)
        };
        for bytes in [1 << 20, 16 << 30] {
            assert_eq!(budget(bytes), Ok(bytes));
        }
        for bytes in [(1 << 20) - 1, (16 << 30) + 1] {
            assert_eq!(
                budget(bytes).unwrap_err().name,
                "HOOKFLOW_PIPELINE_BUDGET_BYTES"
            );
        }
    }

    #[test]
    fn front_door_settings() {
        let s = from(&[]).unwrap();
        assert_eq!(s.front_door, FrontDoorSettings::default());
        let s = from(&[
            ("HOOKFLOW_MAX_CONNECTIONS", "50"),
            ("HOOKFLOW_IDLE_TIMEOUT_MS", "100"),
            ("HOOKFLOW_BODY_BUDGET_BYTES", "4194304"),
        ])
        .unwrap();
        assert_eq!(s.front_door.max_connections, Some(50));
        assert_eq!(s.front_door.idle_timeout, Duration::from_millis(100));
        // The budget must hold the largest body, or that body could never be read.
        let err = from(&[
            ("HOOKFLOW_MAX_BODY_BYTES", "4194304"),
            ("HOOKFLOW_BODY_BUDGET_BYTES", "4194303"),
        ])
        .unwrap_err();
        assert_eq!(err.name, "HOOKFLOW_BODY_BUDGET_BYTES");
        assert_eq!(
            from(&[("HOOKFLOW_WRITE_TIMEOUT_MS", "99")])
                .unwrap_err()
                .name,
            "HOOKFLOW_WRITE_TIMEOUT_MS"
        );
    }

    #[test]
    fn an_admin_token_of_only_spaces_is_refused_and_an_empty_one_is_unset() {
        let err = from(&[("HOOKFLOW_ADMIN_TOKEN", "   ")]).unwrap_err();
        assert_eq!(err.name, "HOOKFLOW_ADMIN_TOKEN");
        assert!(err.problem.contains("only spaces"), "{err}");
        assert_eq!(
            from(&[("HOOKFLOW_ADMIN_TOKEN", "")]).unwrap().admin_token,
            None
        );
    }

    #[test]
    fn bad_settings_name_themselves() {
        assert_eq!(
            from(&[("HOOKFLOW_RESULT_TTL_SECONDS", "soon")])
                .unwrap_err()
                .name,
            "HOOKFLOW_RESULT_TTL_SECONDS"
        );
        assert_eq!(
            from(&[("HOOKFLOW_ADMIN_TOKEN", "short")]).unwrap_err().name,
            "HOOKFLOW_ADMIN_TOKEN"
        );
        for (name, value) in [
            ("HOOKFLOW_OUTGOING_ALLOW", "127.0.0.1/33"),
            ("HOOKFLOW_OUTGOING_ALLOW", "localhost"),
            ("HOOKFLOW_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
            ("HOOKFLOW_OUTGOING_RETRY_SCHEDULE", "5s,1d"),
            ("HOOKFLOW_OUTGOING_TIMEOUT_MS", "fast"),
            ("HOOKFLOW_INVOCATION_TTL_SECONDS", "3600"),
            ("HOOKFLOW_WAL_MAX_BYTES", "1048575"),
            ("HOOKFLOW_WAL_MAX_BYTES", "big"),
        ] {
            assert_eq!(from(&[(name, value)]).unwrap_err().name, name, "{value}");
        }
        assert_eq!(
            from(&[("HOOKFLOW_PUBLIC_URL", "ftp://x")])
                .unwrap_err()
                .name,
            "HOOKFLOW_PUBLIC_URL"
        );
    }

    #[test]
    fn an_smtp_url_names_a_host_and_empty_turns_mail_off() {
        assert_eq!(from(&[("HOOKFLOW_SMTP_URL", "")]).unwrap().smtp_url, None);
        for url in [
            "smtp://",
            "smtps://",
            "smtp://:587",
            "smtp://user:pw@",
            "smtps://@:465?tls=required",
        ] {
            let err = from(&[("HOOKFLOW_SMTP_URL", url)]).unwrap_err();
            assert_eq!(err.name, "HOOKFLOW_SMTP_URL", "{url}");
            assert!(err.problem.contains("names no mail server"), "{url}: {err}");
        }
        for url in [
            "smtp://127.0.0.1:2525",
            "smtps://user:pw@smtp.example.com:465",
            "smtp://smtp.example.com:587?tls=required",
            "smtp://[::1]:25",
        ] {
            assert_eq!(
                from(&[("HOOKFLOW_SMTP_URL", url)])
                    .unwrap()
                    .smtp_url
                    .as_deref(),
                Some(url)
            );
        }
    }

    #[test]
    fn a_retry_schedule_must_fit_the_queue_retention() {
        let mut s = from(&[]).unwrap();
        assert_eq!(s.outgoing.queue_retention, None, "no retention without SQS");
        s.check_for_sqs().unwrap();
        assert_eq!(s.outgoing.queue_retention, Some(DEFAULT_QUEUE_RETENTION));
        // At the bound: the schedule plus the hour's margin is exactly the retention.
        let mut s = from(&[
            ("HOOKFLOW_OUTGOING_RETRY_SCHEDULE", "10h,10h"),
            ("HOOKFLOW_QUEUE_RETENTION_SECONDS", "75600"),
        ])
        .unwrap();
        s.check_for_sqs().unwrap();
        let mut s = from(&[
            ("HOOKFLOW_OUTGOING_RETRY_SCHEDULE", "10h,10h"),
            ("HOOKFLOW_QUEUE_RETENTION_SECONDS", "75599"),
        ])
        .unwrap();
        let err = s.check_for_sqs().unwrap_err();
        assert_eq!(err.name, "HOOKFLOW_OUTGOING_RETRY_SCHEDULE", "{err}");
        assert!(
            err.problem.contains("HOOKFLOW_QUEUE_RETENTION_SECONDS"),
            "{err}"
        );
        assert_eq!(
            from(&[("HOOKFLOW_QUEUE_RETENTION_SECONDS", "59")])
                .unwrap_err()
                .name,
            "HOOKFLOW_QUEUE_RETENTION_SECONDS"
        );
    }
}
