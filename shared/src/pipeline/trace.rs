//! A run's step trace (`pipeline.test`): each step's command, line, duration,
//! the body and vars after it, and the error of the step that failed.
//!
//! The runner tells an optional [`StepObserver`] how each step ended; the
//! worker runs without one. [`Trace`] is the observer `pipeline.test` uses. It
//! is bounded: a value larger than [`MAX_TRACE_VALUE_BYTES`] as JSON, or one
//! that would take the trace's values past [`MAX_TRACE_BYTES`], is replaced by
//! a marker `{"truncated": true, "bytes": N, "preview": "…"}` ([`bounded`]).

use std::io;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::RunFailure;

/// Largest value (a step's body, its vars, the final body) a trace shows
/// whole, in bytes of JSON.
pub const MAX_TRACE_VALUE_BYTES: usize = 16 * 1024;
/// Bytes of JSON all values shown whole in one trace may take together;
/// later values are replaced by markers.
pub const MAX_TRACE_BYTES: usize = 256 * 1024;
/// Bytes of a value's JSON a truncation marker shows as its `preview`.
pub const PREVIEW_BYTES: usize = 200;

/// How one step ended, as the runner tells it.
pub struct StepReport<'a> {
    /// The step's number, from 1 (the trigger).
    pub number: usize,
    pub command: &'static str,
    /// The step's line in the YAML.
    pub line: usize,
    pub elapsed: Duration,
    /// The body after the step (for a failed step: as the step found it).
    pub body: &'a Value,
    pub vars: &'a Map<String, Value>,
    pub failure: Option<&'a RunFailure>,
}

/// Watches a run step by step.
pub trait StepObserver: Send {
    /// Called once per step that ran or failed, in order.
    fn step_ended(&mut self, report: &StepReport<'_>);
}

/// The trace of one run, bounded in size.
#[derive(Debug, Default)]
pub struct Trace {
    steps: Vec<Value>,
    /// Bytes of the values shown whole so far.
    shown_bytes: usize,
}

impl Trace {
    /// The steps, in order: `{index, command, line, durationMs, body, vars,
    /// error?}`.
    pub fn into_steps(self) -> Vec<Value> {
        self.steps
    }

    /// `value` as the trace shows it (see [`bounded`]), counted against the
    /// trace's total.
    fn shown(&mut self, value: &Value) -> Value {
        let room = MAX_TRACE_VALUE_BYTES.min(MAX_TRACE_BYTES - self.shown_bytes);
        let (shown, bytes) = bounded(value, room);
        self.shown_bytes += bytes;
        shown
    }
}

impl StepObserver for Trace {
    fn step_ended(&mut self, report: &StepReport<'_>) {
        let body = self.shown(report.body);
        let vars = self.shown(&Value::Object(report.vars.clone()));
        let mut step = json!({
            "index": report.number,
            "command": report.command,
            "line": report.line,
            "durationMs": duration_ms(report.elapsed),
            "body": body,
            "vars": vars,
        });
        if let Some(failure) = report.failure {
            step["error"] = json!({"code": failure.code, "message": failure.message});
        }
        self.steps.push(step);
    }
}

/// Milliseconds, to the microsecond.
fn duration_ms(elapsed: Duration) -> f64 {
    (elapsed.as_micros() as f64) / 1000.0
}

/// `value` itself when its JSON takes at most `limit` bytes, else the marker
/// `{"truncated": true, "bytes": N, "preview": P}`: N the size of its JSON,
/// P the first [`PREVIEW_BYTES`] of it (cut at a character boundary). Also
/// answers the bytes the shown value counts: N, or 0 for a marker.
pub fn bounded(value: &Value, limit: usize) -> (Value, usize) {
    let mut sink = Measure::default();
    // Writing JSON into a measure cannot fail.
    let _ = serde_json::to_writer(&mut sink, value);
    if sink.bytes <= limit {
        return (value.clone(), sink.bytes);
    }
    let whole_chars = match std::str::from_utf8(&sink.head) {
        Ok(text) => text,
        Err(cut) => std::str::from_utf8(&sink.head[..cut.valid_up_to()]).unwrap_or_default(),
    };
    let preview = whole_chars.to_owned();
    (
        json!({"truncated": true, "bytes": sink.bytes, "preview": preview}),
        0,
    )
}

/// Counts the bytes written and keeps the first [`PREVIEW_BYTES`], so a
/// large value is measured without a copy of its JSON.
#[derive(Default)]
struct Measure {
    bytes: usize,
    head: Vec<u8>,
}

impl io::Write for Measure {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = PREVIEW_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&buf[..room.min(buf.len())]);
        self.bytes += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
