//! How outgoing webhook calls are made, guarded, retried and recorded: the
//! settings the service and its transport take. `config` reads them from the
//! environment; they live here so the outgoing module needs nothing of it.

use std::time::Duration;

use super::schedule::RetrySchedule;

/// How outgoing webhook calls are made, guarded, retried and recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingSettings {
    /// `HOOKFLOW_OUTGOING_ALLOW`: address ranges (CIDR, comma-separated) calls may
    /// reach although the SSRF guard would refuse them, e.g. `127.0.0.0/8`.
    pub allow: Vec<ipnet::IpNet>,
    /// `HOOKFLOW_OUTGOING_CONNECT_TIMEOUT_MS` (default 15000).
    pub connect_timeout: Duration,
    /// `HOOKFLOW_OUTGOING_TIMEOUT_MS`: the whole call, answer included (default 15000).
    pub total_timeout: Duration,
    /// `HOOKFLOW_OUTGOING_MAX_RESPONSE_BYTES`: largest answer read (default 1 MiB).
    pub max_response_bytes: usize,
    /// `HOOKFLOW_OUTGOING_RETRY_SCHEDULE`: delays before each retry of an
    /// asynchronous delivery (default `5s,5m,30m,2h,5h,10h,10h`, as Svix).
    pub retry_schedule: RetrySchedule,
    /// `HOOKFLOW_OUTGOING_SECRET_GRACE_SECONDS`: how long a replaced signing secret
    /// keeps signing alongside the new one (default 86400).
    pub secret_grace_seconds: u64,
    /// `HOOKFLOW_INVOCATION_TTL_SECONDS`: how long invocation records are kept
    /// (default 259200 = 3 days, longer than the whole retry schedule).
    pub invocation_ttl_seconds: u64,
    /// `HOOKFLOW_QUEUE_RETENTION_SECONDS`: how long the job queue keeps a message
    /// (SQS's `MessageRetentionPeriod`), so every attempt of a delivery is made
    /// before its message is dropped. `None` for a queue that keeps messages
    /// until they are done (SQLite); [`crate::config::Settings::check_for_sqs`] sets it.
    pub queue_retention: Option<Duration>,
}

/// The job queue's retention when `HOOKFLOW_QUEUE_RETENTION_SECONDS` is unset:
/// 4 days, what `hookflow provision` and the SAM template create.
pub const DEFAULT_QUEUE_RETENTION: Duration = Duration::from_secs(4 * 86_400);

/// Time a delivery's last attempt must leave before its queue message expires.
pub const QUEUE_RETENTION_MARGIN: Duration = Duration::from_secs(3600);

impl Default for OutgoingSettings {
    fn default() -> Self {
        OutgoingSettings {
            allow: Vec::new(),
            connect_timeout: Duration::from_secs(15),
            total_timeout: Duration::from_secs(15),
            max_response_bytes: 1024 * 1024,
            retry_schedule: RetrySchedule::default(),
            secret_grace_seconds: 86_400,
            invocation_ttl_seconds: 259_200,
            queue_retention: None,
        }
    }
}
