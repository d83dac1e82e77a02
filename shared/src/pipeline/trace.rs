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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::*;
    use crate::pipeline::Pipeline;
    use crate::pipeline::budget::RunLimits;
    use crate::pipeline::commands::Services;
    use crate::pipeline::dry_run::DryRunMailer;
    use crate::pipeline::users::Users;

    fn services() -> Services {
        Services {
            users: Users::default(),
            mailer: Some(Arc::new(DryRunMailer)),
            mail_from: "hookflow@localhost".into(),
            outgoing: None,
            effects: None,
        }
    }

    /// Runs `source` on `body` with a trace; the steps without their durations.
    async fn traced(
        source: &str,
        body: Value,
        limits: RunLimits,
    ) -> (Result<Value, RunFailure>, Vec<Value>) {
        let pipeline = Pipeline::compile("p", source, &Users::default()).unwrap();
        let mut trace = Trace::default();
        let ran = pipeline
            .run_observed(body, &services(), limits, Some(&mut trace))
            .await;
        let steps = trace
            .into_steps()
            .into_iter()
            .map(|mut step| {
                assert!(step["durationMs"].as_f64().unwrap() >= 0.0);
                step.as_object_mut().unwrap().remove("durationMs");
                step
            })
            .collect();
        (ran, steps)
    }

    #[tokio::test]
    async fn each_step_shows_its_command_line_body_and_vars() {
        let source = "vars:\n  greeting: Hi\npipeline:\n  - event.listen: a.b\n  - var.set: {key: who, value: \"${body.name}\"}\n  - body.set: \"${vars.greeting} ${vars.who}\"\n  - iam.run.as: systemuser\n  - mail.send: {to: x@example.com, subject: \"${body}\"}\n";
        let (ran, steps) = traced(source, json!({"name": "Ada"}), RunLimits::default()).await;
        let mail = json!({"dryRun": true, "command": "mail.send", "from": "hookflow@localhost", "to": ["x@example.com"], "cc": [], "bcc": [], "subject": "Hi Ada", "body": ""});
        assert_eq!(ran.unwrap(), mail, "the dry run's record is the final body");
        let vars = json!({"greeting": "Hi", "who": "Ada"});
        assert_eq!(
            steps,
            [
                json!({"index": 1, "command": "event.listen", "line": 4, "body": {"name": "Ada"}, "vars": {"greeting": "Hi"}}),
                json!({"index": 2, "command": "var.set", "line": 5, "body": {"name": "Ada"}, "vars": vars}),
                json!({"index": 3, "command": "body.set", "line": 6, "body": "Hi Ada", "vars": vars}),
                json!({"index": 4, "command": "iam.run.as", "line": 7, "body": "Hi Ada", "vars": vars}),
                json!({"index": 5, "command": "mail.send", "line": 8, "body": mail, "vars": vars}),
            ]
        );
    }

    #[tokio::test]
    async fn the_failing_step_is_the_last_and_carries_the_error() {
        let source = "pipeline:\n  - event.listen: a.b\n  - body.set: 1\n  - mail.send: {to: x@example.com}\n  - body.set: 2\n";
        let (ran, steps) = traced(source, json!(0), RunLimits::default()).await;
        let failure = ran.unwrap_err();
        assert_eq!(failure.step.as_deref(), Some("mail.send (step 3, line 4)"));
        assert_eq!(steps.len(), 3, "no step after the failing one: {steps:?}");
        assert_eq!(
            steps[2],
            json!({"index": 3, "command": "mail.send", "line": 4, "body": 1, "vars": {}, "error": {"code": "permission_denied", "message": failure.message}})
        );
    }

    #[tokio::test]
    async fn a_failing_vars_block_fails_the_trigger_step() {
        let source = "vars:\n  x: \"${body.a.b.c + 1}\"\npipeline:\n  - event.listen: a.b\n  - body.set: 1\n";
        let (ran, steps) = traced(source, json!({}), RunLimits::default()).await;
        assert_eq!(ran.unwrap_err().step.as_deref(), Some("vars"));
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0]["command"], "event.listen");
        assert_eq!(steps[0]["error"]["code"], "expression_failed");
    }

    #[tokio::test]
    async fn a_runaway_run_stops_at_its_limits_and_the_trace_says_where() {
        // Each step doubles the body: the budget runs out a few steps in.
        let steps = (0..40)
            .map(|_| "  - body.set: \"${body}${body}\"\n")
            .collect::<String>();
        let source = format!("pipeline:\n  - event.listen: a.b\n{steps}");
        let limits = RunLimits {
            budget_bytes: 1 << 20,
            timeout: Duration::from_secs(30),
        };
        let (ran, trace) = traced(&source, json!("0123456789abcdef"), limits).await;
        let failure = ran.unwrap_err();
        assert_eq!(failure.code, "limit_exceeded");
        let last = trace.last().unwrap();
        assert_eq!(last["error"]["code"], "limit_exceeded");
        assert_eq!(
            failure.step.unwrap(),
            format!("body.set (step {}, line {})", last["index"], last["line"])
        );
        assert!(trace.len() < 41);
    }

    #[test]
    fn a_value_at_the_cap_is_shown_whole_and_one_byte_more_is_a_marker() {
        // A JSON text is its length plus two quotes.
        let at_cap = Value::from("x".repeat(MAX_TRACE_VALUE_BYTES - 2));
        assert_eq!(
            bounded(&at_cap, MAX_TRACE_VALUE_BYTES),
            (at_cap.clone(), MAX_TRACE_VALUE_BYTES)
        );
        let over = Value::from("x".repeat(MAX_TRACE_VALUE_BYTES - 1));
        let (shown, counted) = bounded(&over, MAX_TRACE_VALUE_BYTES);
        assert_eq!(counted, 0);
        assert_eq!(
            shown,
            json!({"truncated": true, "bytes": MAX_TRACE_VALUE_BYTES + 1, "preview": format!("\"{}", "x".repeat(PREVIEW_BYTES - 1))})
        );
    }

    #[test]
    fn a_preview_ends_on_a_whole_character() {
        // 'é' takes two bytes: after the opening quote, byte 200 falls inside one.
        let text = Value::from("é".repeat(MAX_TRACE_VALUE_BYTES));
        let (shown, _) = bounded(&text, MAX_TRACE_VALUE_BYTES);
        let preview = shown["preview"].as_str().unwrap();
        assert_eq!(
            preview,
            format!("\"{}", "é".repeat((PREVIEW_BYTES - 1) / 2))
        );
    }

    #[test]
    fn the_whole_trace_is_bounded() {
        let body = Value::from("x".repeat(MAX_TRACE_VALUE_BYTES - 2));
        let vars = serde_json::Map::new();
        let mut trace = Trace::default();
        let steps = MAX_TRACE_BYTES / MAX_TRACE_VALUE_BYTES + 2;
        for number in 1..=steps {
            trace.step_ended(&StepReport {
                number,
                command: "body.set",
                line: number + 1,
                elapsed: Duration::ZERO,
                body: &body,
                vars: &vars,
                failure: None,
            });
        }
        let steps = trace.into_steps();
        let whole: usize = steps
            .iter()
            .flat_map(|s| [&s["body"], &s["vars"]])
            .filter(|v| v.get("truncated").is_none())
            .map(|v| v.to_string().len())
            .sum();
        assert!(whole <= MAX_TRACE_BYTES, "{whole}");
        // The empty vars ({}, 2 bytes each) fill what the bodies leave.
        let bodies_whole = steps.iter().filter(|s| s["body"] == body).count();
        assert_eq!(bodies_whole, MAX_TRACE_BYTES / MAX_TRACE_VALUE_BYTES - 1);
        let last = steps.last().unwrap();
        assert_eq!(last["body"]["truncated"], true);
        assert_eq!(last["body"]["bytes"], MAX_TRACE_VALUE_BYTES);
    }
}
