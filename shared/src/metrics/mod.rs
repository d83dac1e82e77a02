//! The gateway's metrics, named the Prometheus way (`_total` counters,
//! `_seconds` histograms). Recorded through the `metrics` facade: without a
//! recorder (the default) each call is a check of one global and nothing is
//! kept; `serve --metrics-addr` installs the Prometheus one.
//!
//! The Lambda functions record with [`emf::EmfRecorder`], written to their
//! log after each invocation.
//!
//! Labels have few values each (status codes, refusal codes, status classes),
//! never a token, an event key or anything a caller chooses freely.

#[cfg(feature = "lambda")]
pub mod emf;

use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// `webhook.receive` calls answered, by HTTP status.
pub const RECEIVES: &str = "hookflow_receives_total";
/// Time from a receive call's arrival to its answer.
pub const RECEIVE_SECONDS: &str = "hookflow_receive_duration_seconds";
/// Calls a webhook's rules refused (`allowedSources`, `verify`), by code.
pub const REFUSALS: &str = "hookflow_receive_refusals_total";
/// Pipeline runs, by status: `ok`, `error` (final), `retry` (transient, to be run again).
pub const PIPELINE_RUNS: &str = "hookflow_pipeline_runs_total";
/// Time one pipeline run took.
pub const PIPELINE_SECONDS: &str = "hookflow_pipeline_run_duration_seconds";
/// Calls to outgoing endpoints, by status class (`2xx` … `5xx`, or `failed`: no answer).
pub const OUTGOING_ATTEMPTS: &str = "hookflow_outgoing_attempts_total";
/// Time one outgoing call took.
pub const OUTGOING_SECONDS: &str = "hookflow_outgoing_attempt_duration_seconds";
/// Jobs given up on and dead-lettered.
pub const DEAD_LETTERS: &str = "hookflow_dead_letters_total";
/// Jobs in the queue, waiting or being run (`serve`, read when scraped).
pub const QUEUE_DEPTH: &str = "hookflow_queue_depth";
/// Jobs in the dead letters (`serve`, read when scraped).
pub const DEAD_LETTERS_WAITING: &str = "hookflow_dead_letters";

/// Bucket bounds of every `_seconds` histogram: from a fast receive (1 ms) to
/// a pipeline at its timeout (25 s).
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0,
];

/// Tells the installed recorder what each metric means.
pub fn describe() {
    describe_counter!(RECEIVES, "webhook.receive calls answered, by HTTP status");
    describe_histogram!(
        RECEIVE_SECONDS,
        Unit::Seconds,
        "time from a webhook.receive call's arrival to its answer"
    );
    describe_counter!(
        REFUSALS,
        "calls a webhook's source or signature rule refused, by code"
    );
    describe_counter!(PIPELINE_RUNS, "pipeline runs, by status (ok, error, retry)");
    describe_histogram!(
        PIPELINE_SECONDS,
        Unit::Seconds,
        "time one pipeline run took"
    );
    describe_counter!(
        OUTGOING_ATTEMPTS,
        "calls to outgoing endpoints, by status class (2xx..5xx, failed)"
    );
    describe_histogram!(
        OUTGOING_SECONDS,
        Unit::Seconds,
        "time one outgoing call took"
    );
    describe_counter!(DEAD_LETTERS, "jobs given up on and dead-lettered");
    describe_gauge!(QUEUE_DEPTH, "jobs in the queue, waiting or being run");
    describe_gauge!(DEAD_LETTERS_WAITING, "jobs in the dead letters");
}

/// A `webhook.receive` call was answered with `status` after `elapsed`.
pub fn receive_answered(status: u16, elapsed: Duration) {
    counter!(RECEIVES, "status" => status.to_string()).increment(1);
    histogram!(RECEIVE_SECONDS).record(elapsed.as_secs_f64());
}

/// A webhook's rule refused a call with `code`.
pub fn call_refused(code: &'static str) {
    counter!(REFUSALS, "code" => code).increment(1);
}

/// A pipeline run ended with `status` (`ok`, `error` or `retry`) after `elapsed`.
pub fn pipeline_ran(status: &'static str, elapsed: Duration) {
    counter!(PIPELINE_RUNS, "status" => status).increment(1);
    histogram!(PIPELINE_SECONDS).record(elapsed.as_secs_f64());
}

/// An outgoing call answered `status` (0: no answer) after `elapsed`.
pub fn outgoing_attempted(status: u16, elapsed: Duration) {
    let class = match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "failed",
    };
    counter!(OUTGOING_ATTEMPTS, "class" => class).increment(1);
    histogram!(OUTGOING_SECONDS).record(elapsed.as_secs_f64());
}

/// A job was dead-lettered.
pub fn job_dead_lettered() {
    counter!(DEAD_LETTERS).increment(1);
}

/// The queue held `depth` when it was last counted.
pub fn queue_measured(depth: crate::ports::QueueDepth) {
    gauge!(QUEUE_DEPTH).set(depth.jobs as f64);
    gauge!(DEAD_LETTERS_WAITING).set(depth.dead_letters as f64);
}
