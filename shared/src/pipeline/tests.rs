//! Engine tests: compile-time checks with lines, and runs with a recording mailer.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::budget::RunLimits;
use super::commands::Services;
use super::users::Users;
use super::{CompileError, Pipeline};
use crate::domain::{CorrelationId, EventKey};
use crate::error::StoreError;
use crate::ports::{EffectLog, EventStore, Mail, MailError, Mailer, Ports, StoreResult};

#[derive(Default)]
struct RecordingMailer {
    sent: Mutex<Vec<Mail>>,
    fail_with: Option<MailError>,
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        if let Some(err) = &self.fail_with {
            return Err(err.clone());
        }
        self.sent.lock().unwrap().push(mail.clone());
        Ok(())
    }
}

fn services(mailer: Arc<RecordingMailer>) -> Services {
    Services {
        users: Users::parse("mailer=mail.send").unwrap(),
        mailer: Some(mailer),
        mail_from: "hookflow@localhost".into(),
        outgoing: None,
        effects: None,
    }
}

fn compile(source: &str) -> Result<Pipeline, CompileError> {
    Pipeline::compile("p", source, &Users::parse("mailer=mail.send").unwrap())
}

fn event(origin_text: &str) -> Value {
    let origin = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, origin_text);
    json!({"eventKey": "webhook.lead.created", "origin": origin, "payload": {"origin": origin, "params": {"a": "1"}}})
}

#[tokio::test]
async fn hello_world() {
    let p = compile(
        "pipeline:\n  - event.listen:\n      eventKey: webhook.lead.created\n  - body.set:\n      value: \"${@text.upperCase(@convert.fromBase64(body.origin))}\"\n",
    )
    .unwrap();
    assert_eq!(p.listens_to.as_str(), "webhook.lead.created");
    let out = p
        .run(
            event("hello world"),
            &services(Default::default()),
            RunLimits::default(),
        )
        .await
        .unwrap();
    assert_eq!(out, json!("HELLO WORLD"));
}

#[tokio::test]
async fn vars_and_var_set_thread_through_steps() {
    let p = compile(
        "vars:\n  greeting: Hello\n  count: 2\npipeline:\n  - message.receive:\n      key: pipeforce.event.webhook.x\n  - var.set:\n      key: name\n      value: ${@convert.fromBase64(body.origin)}\n  - body.set:\n      value:\n        text: \"${vars.greeting}, ${var.name}!\"\n        next: ${vars.count + 1}\n        params: ${body.payload.params}\n",
    )
    .unwrap();
    assert_eq!(p.listens_to.as_str(), "webhook.x");
    let out = p
        .run(
            event("Ada"),
            &services(Default::default()),
            RunLimits::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"text": "Hello, Ada!", "next": 3, "params": {"a": "1"}})
    );
}

#[tokio::test]
async fn permissions_guard_mail_send() {
    let mailer = Arc::new(RecordingMailer::default());
    let refused = compile(
        "pipeline:\n  - event.listen: {eventKey: a.b}\n  - mail.send:\n      to: x@example.com\n",
    )
    .unwrap();
    let failure = refused
        .run(event("x"), &services(mailer.clone()), RunLimits::default())
        .await
        .unwrap_err();
    assert_eq!(failure.code, "permission_denied");
    assert_eq!(failure.step.as_deref(), Some("mail.send (step 2, line 3)"));
    assert!(!failure.transient);
    assert!(mailer.sent.lock().unwrap().is_empty(), "nothing sent");

    for user in ["systemuser", "mailer"] {
        let allowed = compile(&format!(
            "pipeline:\n  - event.listen: {{eventKey: a.b}}\n  - iam.run.as: {user}\n  - mail:\n      to: [x@example.com, y@example.com]\n      cc: z@example.com\n      subject: \"New lead: ${{body.payload.params.a}}\"\n      body: \"#{{@convert.fromBase64(body.origin)}}\"\n"
        ))
        .unwrap();
        let out = allowed
            .run(
                event("the lead"),
                &services(mailer.clone()),
                RunLimits::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            out["eventKey"], "webhook.lead.created",
            "mail.send leaves the body as it was"
        );
    }
    let sent = mailer.sent.lock().unwrap();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].to, ["x@example.com", "y@example.com"]);
    assert_eq!(sent[0].cc, ["z@example.com"]);
    assert_eq!(sent[0].subject, "New lead: 1");
    assert_eq!(sent[0].body, "the lead");
    assert_eq!(sent[0].from, "hookflow@localhost");
}

#[tokio::test]
async fn mail_failures_are_transient_or_permanent() {
    let source = "pipeline:\n  - event.listen: {eventKey: a.b}\n  - iam.run.as: systemuser\n  - mail.send:\n      to: x@example.com\n      body: ${body.payload}\n";
    let p = compile(source).unwrap();
    for (error, code, transient) in [
        (
            MailError::Unavailable("connection refused".into()),
            "mail_unavailable",
            true,
        ),
        (
            MailError::Rejected("550 no such user".into()),
            "mail_rejected",
            false,
        ),
    ] {
        let mailer = Arc::new(RecordingMailer {
            fail_with: Some(error),
            ..Default::default()
        });
        let failure = p
            .run(event("x"), &services(mailer), RunLimits::default())
            .await
            .unwrap_err();
        assert_eq!(
            (failure.code.as_str(), failure.transient),
            (code, transient)
        );
    }
    let no_mailer = Services {
        users: Users::default(),
        mailer: None,
        mail_from: "a@b".into(),
        outgoing: None,
        effects: None,
    };
    assert_eq!(
        p.run(event("x"), &no_mailer, RunLimits::default())
            .await
            .unwrap_err()
            .code,
        "mail_not_configured"
    );
}

/// Services whose `mail.send` claims its mails in `effects`.
fn claiming(mailer: Arc<RecordingMailer>, effects: Arc<dyn EffectLog>) -> Services {
    Services {
        effects: Some(effects),
        ..services(mailer)
    }
}

/// A stored event, and the body a run for it starts with.
async fn stored_event(store: &dyn EventStore) -> (CorrelationId, Value) {
    let key = EventKey::parse("webhook.lead.created").unwrap();
    let record = crate::testkit::sample_event(&key, &["p"], 60_000);
    store.put_event(&record).await.unwrap();
    (record.event.correlation_id, record.event.body())
}

const TWO_MAILS: &str = "pipeline:\n  - event.listen: {eventKey: a.b}\n  - iam.run.as: systemuser\n  - mail.send: {to: x@example.com}\n  - mail.send: {to: y@example.com}\n";

#[tokio::test]
async fn each_mail_step_sends_once_per_event_however_often_the_run_repeats() {
    let p = compile(TWO_MAILS).unwrap();
    let store = Ports::memory().events;
    let mailer = Arc::new(RecordingMailer::default());
    let services = claiming(mailer.clone(), store.clone());
    let (id, body) = stored_event(store.as_ref()).await;
    for _ in 0..3 {
        p.run(body.clone(), &services, RunLimits::default())
            .await
            .expect("a repeated run goes on past the mails it already sent");
    }
    let sent_to = |mailer: &RecordingMailer| -> Vec<String> {
        mailer
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.to[0].clone())
            .collect()
    };
    assert_eq!(sent_to(&mailer), ["x@example.com", "y@example.com"]);
    assert!(
        !store.claim_effect(&id, "p/3/mail.send").await.unwrap(),
        "claimed under pipeline and step"
    );

    let (_, other_event) = stored_event(store.as_ref()).await;
    p.run(other_event, &services, RunLimits::default())
        .await
        .unwrap();
    assert_eq!(sent_to(&mailer).len(), 4, "another event sends its own");

    // A run for no stored event (none of the worker's) has nothing to claim by.
    for _ in 0..2 {
        p.run(event("x"), &services, RunLimits::default())
            .await
            .unwrap();
    }
    assert_eq!(sent_to(&mailer).len(), 8);
}

#[tokio::test]
async fn an_unsent_mail_is_sent_by_the_retry_and_a_rejected_one_is_not() {
    let p = compile(TWO_MAILS).unwrap();
    let store = Ports::memory().events;
    let failing = |error: MailError| {
        Arc::new(RecordingMailer {
            fail_with: Some(error),
            ..Default::default()
        })
    };
    let working = Arc::new(RecordingMailer::default());

    let (_, body) = stored_event(store.as_ref()).await;
    let unavailable = failing(MailError::Unavailable("451 try later".into()));
    let failure = p
        .run(
            body.clone(),
            &claiming(unavailable, store.clone()),
            RunLimits::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (failure.code.as_str(), failure.transient),
        ("mail_unavailable", true)
    );
    p.run(
        body,
        &claiming(working.clone(), store.clone()),
        RunLimits::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        working.sent.lock().unwrap().len(),
        2,
        "the retry sends both"
    );

    let (_, body) = stored_event(store.as_ref()).await;
    let rejected = failing(MailError::Rejected("550 no such user".into()));
    let failure = p
        .run(
            body.clone(),
            &claiming(rejected, store.clone()),
            RunLimits::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (failure.code.as_str(), failure.transient),
        ("mail_rejected", false)
    );
    p.run(
        body,
        &claiming(working.clone(), store.clone()),
        RunLimits::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        working.sent.lock().unwrap().len(),
        3,
        "a run again sends only the second step's mail"
    );
}

/// An effect log that cannot be written.
struct BrokenEffectLog;

#[async_trait]
impl EffectLog for BrokenEffectLog {
    async fn claim_effect(&self, _: &CorrelationId, _: &str) -> StoreResult<bool> {
        Err(StoreError::unavailable("disk I/O error"))
    }
    async fn release_effect(&self, _: &CorrelationId, _: &str) -> StoreResult<()> {
        Err(StoreError::unavailable("disk I/O error"))
    }
}

#[tokio::test]
async fn a_mail_that_cannot_be_claimed_is_not_sent() {
    let p = compile(TWO_MAILS).unwrap();
    let mailer = Arc::new(RecordingMailer::default());
    let store = Ports::memory().events;
    let (_, body) = stored_event(store.as_ref()).await;
    let failure = p
        .run(
            body,
            &claiming(mailer.clone(), Arc::new(BrokenEffectLog)),
            RunLimits::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (failure.code.as_str(), failure.transient),
        ("store_unavailable", true)
    );
    assert!(
        !failure.message.contains("disk I/O"),
        "the store's detail is logged, not answered: {}",
        failure.message
    );
    assert!(mailer.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn evaluation_errors_name_step_and_expression() {
    let p = compile("pipeline:\n  - event.listen: {eventKey: a.b}\n  - log: starting\n  - body.set:\n      value: ${@convert.fromJson(body.origin)}\n").unwrap();
    let failure = p
        .run(
            event("not json"),
            &services(Default::default()),
            RunLimits::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.code, "expression_failed");
    assert_eq!(failure.step.as_deref(), Some("body.set (step 3, line 4)"));
    assert!(
        failure
            .message
            .contains("${@convert.fromJson(body.origin)}"),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains("not valid JSON"),
        "{}",
        failure.message
    );
}

#[test]
fn the_seed_pipelines_compile() {
    let seeds = [
        // seeds/002: event.listen, iam.run.as, mail.send with the decoded origin.
        "pipeline:\n\n - event.listen:\n     eventKey: webhook.lead.created\n    \n\n - iam.run.as: systemuser\n\n - mail.send:\n     to: name@company.tld\n     subject: \"New lead was created!\"\n     body: ${@convert.fromBase64(body.payload.origin)}\n",
        // seeds/002: the whole payload as the mail body.
        "pipeline:\n\n - event.listen:\n     eventKey: webhook.lead.created\n\n - iam.run.as: systemuser\n\n - mail.send:\n     to: name@company.tld\n     subject: \"New lead was created!\"\n     body: ${body.payload}\n",
        // seeds/002: message.receive.
        "pipeline:\n\n - message.receive:\n     key: pipeforce.event.webhook.lead.created\n\n - mail.send:\n     to: name@company.tld\n     subject: \"New lead was created!\"\n     body: ${body.payload}\n     \n",
        // seeds/003: `mail` and #{…}.
        "pipeline:\n - event.listen:\n     eventKey: webhook.lead.created\n - mail:\n     to: name@company.tld\n     subject: \"New lead was created!\"\n     body: \"#{@convert.fromBase64(body.origin)}\"\n",
    ];
    for seed in seeds {
        let p = compile(seed).unwrap_or_else(|e| panic!("{e}\n{seed}"));
        assert_eq!(p.listens_to.as_str(), "webhook.lead.created");
    }
}

#[test]
fn compile_errors_carry_line_and_reason() {
    for (source, line, fragment) in [
        (
            "pipeline:\n  - event.listen: {eventKey: a.b}\n  - mail.sned: {to: x}\n",
            3,
            "unknown command 'mail.sned'",
        ),
        (
            "pipeline:\n  - body.set: {value: 1}\n",
            2,
            "first step must be a trigger",
        ),
        (
            "pipeline:\n  - event.listen: {eventKey: A.B}\n",
            2,
            "lower case",
        ),
        (
            "pipeline:\n  - message.receive: {key: webhook.x}\n",
            2,
            "pipeforce.event.",
        ),
        (
            "pipeline:\n  - event.listen: {eventKey: a.b}\n  - body.set:\n      valeu: 1\n",
            4,
            "no parameter 'valeu'",
        ),
        (
            "pipeline:\n  - event.listen: {eventKey: a.b}\n  - body.set: {}\n",
            3,
            "needs the parameter 'value'",
        ),
        (
            "pipeline:\n  - event.listen: {eventKey: a.b}\n  - body.set:\n      value: ${body.}\n",
            4,
            "property name",
        ),
        (
            "pipeline:\n  - event.listen: {eventKey: a.b}\n  - iam.run.as: nobody\n",
            3,
            "unknown user 'nobody'",
        ),
        (
            "pipeline:\n  - event.listen: {eventKey: a.b}\n  - event.listen: {eventKey: a.c}\n",
            3,
            "only the first step",
        ),
        (
            "pipeline:\n  - event.listen: {eventKey: '${body.x}'}\n",
            2,
            "cannot contain expressions",
        ),
        (
            "pipeline:\n  - event.listen: {eventKey: a.b}\n  - log: {message: x, level: loud}\n",
            3,
            "level must be",
        ),
        (
            "pipeline:\n  - event.listen: {eventKey: a.b}\n  - var.set: x\n",
            3,
            "named parameters",
        ),
        (
            "pipeline:\n  - event.listen: {eventKey: a.b}\n  - [1, 2]\n",
            3,
            "a step is one command",
        ),
        (
            "pipelin:\n  - event.listen: {eventKey: a.b}\n",
            2,
            "unknown top-level key",
        ),
        ("vars: 3\npipeline: []\n", 1, "'vars' must be a mapping"),
        ("pipeline: []\n", 1, "no steps"),
        ("pipeline:\n  - event.listen: {eventKey: a.b\n", 3, ""),
        ("- a\n- b\n", 1, "mapping"),
    ] {
        let err = match compile(source) {
            Ok(_) => panic!("compiled: {source}"),
            Err(err) => err,
        };
        assert_eq!(err.line, line, "{source}: {err}");
        assert!(err.reason.contains(fragment), "{source}: {err}");
    }
}

// ---- Runaway pipelines: every limit of a run, at its bound ----

use std::time::Duration;

use proptest::prelude::*;

use super::budget::{Budget, MAX_TEXT_BYTES};
use super::expr::Scope;
use super::{RunFailure, Step};
use crate::limits::MAX_JSON_DEPTH;

/// Pipeline `p` listening to `a.b`, with `steps` (YAML list items) after the trigger.
fn with_steps(steps: impl IntoIterator<Item = String>) -> String {
    let mut yaml = "pipeline:\n  - event.listen: {eventKey: a.b}\n".to_owned();
    for step in steps {
        yaml.push_str("  - ");
        yaml.push_str(&step);
        yaml.push('\n');
    }
    yaml
}

fn limits(budget_bytes: usize, timeout: Duration) -> RunLimits {
    RunLimits {
        budget_bytes,
        timeout,
    }
}

async fn run_with(source: &str, body: Value, limits: RunLimits) -> Result<Value, RunFailure> {
    compile(source)
        .unwrap_or_else(|e| panic!("{e}"))
        .run(body, &services(Default::default()), limits)
        .await
}

fn assert_limit(failure: &RunFailure, step: &str, fragment: &str) {
    assert_eq!(failure.code, "limit_exceeded", "{failure:?}");
    assert!(!failure.transient, "{failure:?}");
    assert_eq!(failure.step.as_deref(), Some(step), "{failure:?}");
    assert!(failure.message.contains(fragment), "{failure:?}");
}

/// What evaluating the parameters of `step` spends from a budget.
fn spend_of(step: &Step, body: &Value) -> usize {
    let budget = Budget::start(RunLimits::default());
    let vars = serde_json::Map::new();
    let scope = Scope {
        body,
        vars: &vars,
        budget: &budget,
    };
    for (_, value) in &step.args {
        value.evaluate(&scope).unwrap();
    }
    RunLimits::default().budget_bytes - budget.remaining()
}

#[tokio::test]
async fn the_size_budget_holds_to_its_last_byte() {
    let source = with_steps(["body.set: {value: ['${body}', '${body.payload}', {n: 1}]}".into()]);
    let body = event("a lead");
    let spend = spend_of(&compile(&source).unwrap().steps[1], &body);
    let long = Duration::from_secs(60);
    assert!(
        run_with(&source, body.clone(), limits(spend, long))
            .await
            .is_ok()
    );
    let failure = run_with(&source, body, limits(spend - 1, long))
        .await
        .unwrap_err();
    assert_limit(
        &failure,
        "body.set (step 2, line 3)",
        &format!("exceed {} bytes", spend - 1),
    );
}

#[tokio::test]
async fn values_multiplying_on_every_step_stop_at_the_size_budget() {
    let eight = ["'${body}'"; 8].join(", ");
    let source = with_steps((0..12).map(|_| format!("body.set: {{value: [{eight}]}}")));
    let failure = run_with(&source, event("a lead"), RunLimits::default())
        .await
        .unwrap_err();
    assert_eq!(failure.code, "limit_exceeded", "{failure:?}");
    assert!(
        failure.message.contains("exceed 67108864 bytes"),
        "{failure:?}"
    );
    // Each step holds eight copies of the last: the sixth would take 8^6 copies of the event.
    let step = failure.step.unwrap();
    assert!(step.starts_with("body.set (step "), "{step}");
}

#[tokio::test]
async fn values_nest_no_deeper_than_the_json_bound() {
    // `{a: …}` around the body: one level more than the body.
    let source = with_steps(["body.set: {value: {a: '${body}'}}".into()]);
    let nested = |levels: usize| (1..levels).fold(json!([]), |inner, _| json!([inner]));
    let at_bound = run_with(&source, nested(MAX_JSON_DEPTH - 1), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(crate::limits::json_depth(&at_bound), MAX_JSON_DEPTH);
    let failure = run_with(&source, nested(MAX_JSON_DEPTH), RunLimits::default())
        .await
        .unwrap_err();
    assert_limit(&failure, "body.set (step 2, line 3)", "64 levels");

    // Text parsed as JSON is held to the same bound while it is read.
    let source = with_steps(["body.set: '${@convert.fromJson(body)}'".into()]);
    let text = |levels: usize| json!(format!("{}{}", "[".repeat(levels), "]".repeat(levels)));
    let parsed = run_with(&source, text(MAX_JSON_DEPTH), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(crate::limits::json_depth(&parsed), MAX_JSON_DEPTH);
    let failure = run_with(&source, text(MAX_JSON_DEPTH + 1), RunLimits::default())
        .await
        .unwrap_err();
    assert_limit(&failure, "body.set (step 2, line 3)", "64 levels");
}

#[tokio::test]
async fn steps_nesting_the_body_deeper_each_time_stop_at_the_json_bound() {
    let nest = |inner: &str| format!("{}{inner}{}", "{a: ".repeat(30), "}".repeat(30));
    let source =
        with_steps((0..190).map(|_| format!("body.set: {{value: {}}}", nest("'${body}'"))));
    let failure = run_with(&source, json!({}), RunLimits::default())
        .await
        .unwrap_err();
    // 31 levels after step 2, 61 after step 3, 91 after step 4.
    assert_limit(&failure, "body.set (step 4, line 5)", "64 levels");
}

#[tokio::test]
async fn parsed_json_is_paid_for_as_it_is_read() {
    // A short text that reads as a long list: refused while being read.
    let source = with_steps(["body.set: '${@convert.fromJson(body)}'".into()]);
    let zeros = json!(format!("[{}0]", "0,".repeat(1024 * 1024)));
    let failure = run_with(
        &source,
        zeros,
        limits(8 * 1024 * 1024, Duration::from_secs(60)),
    )
    .await
    .unwrap_err();
    assert_limit(
        &failure,
        "body.set (step 2, line 3)",
        "exceed 8388608 bytes",
    );
}

#[tokio::test]
async fn to_json_text_stops_at_the_text_cap() {
    let source = with_steps(["body.set: '${@convert.toJson(body)}'".into()]);
    let text = |len: usize| json!("x".repeat(len));
    // The quotes make the text two bytes longer.
    let at_cap = run_with(&source, text(MAX_TEXT_BYTES - 2), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(at_cap.as_str().unwrap().len(), MAX_TEXT_BYTES);
    let failure = run_with(&source, text(MAX_TEXT_BYTES - 1), RunLimits::default())
        .await
        .unwrap_err();
    assert_limit(
        &failure,
        "body.set (step 2, line 3)",
        "text would exceed 8388608 bytes",
    );

    // Each toJson escapes the last one's quotes: the text doubles, and stops at the cap.
    let expression = format!("{}body{}", "@convert.toJson(".repeat(40), ")".repeat(40));
    let source = with_steps([format!("body.set: '${{{expression}}}'")]);
    let failure = run_with(&source, event("a lead"), RunLimits::default())
        .await
        .unwrap_err();
    assert_limit(&failure, "body.set (step 2, line 3)", "8388608 bytes");
    assert!(
        failure.message.len() < 400,
        "the 40 calls are quoted in part: {}",
        failure.message
    );
}

/// Upper-cases one MiB of text on every step: a long run that produces little at a time.
fn busy_pipeline() -> String {
    let mut steps = vec!["var.set: {key: text, value: '${body.text}'}".to_owned()];
    steps.extend(
        (0..190).map(|_| "var.set: {key: upper, value: '${@text.upperCase(vars.text)}'}".into()),
    );
    with_steps(steps)
}

#[tokio::test]
async fn a_long_run_stops_at_its_deadline() {
    let body = json!({"text": "abcdefgh".repeat(128 * 1024)});
    let unbounded = limits(usize::MAX / 2, Duration::from_secs(3600));
    assert!(
        run_with(&busy_pipeline(), body.clone(), unbounded)
            .await
            .is_ok()
    );
    let failure = run_with(
        &busy_pipeline(),
        body,
        limits(usize::MAX / 2, Duration::from_millis(20)),
    )
    .await
    .unwrap_err();
    assert_eq!(failure.code, "timeout", "{failure:?}");
    assert!(failure.transient);
    assert!(failure.message.contains("within 20 ms"), "{failure:?}");
    assert!(
        failure
            .step
            .as_deref()
            .unwrap()
            .starts_with("var.set (step "),
        "{failure:?}"
    );
}

#[tokio::test]
async fn one_long_evaluation_stops_at_its_deadline() {
    // One step: 5,000 comparisons of a 64 KiB text with itself.
    let chain = vec!["body.t == body.t"; 5000].join(" and ");
    let source = with_steps([format!("body.set: '${{{chain}}}'")]);
    let body = json!({"t": "x".repeat(64 * 1024)});
    let unbounded = limits(usize::MAX / 2, Duration::from_secs(3600));
    assert_eq!(
        run_with(&source, body.clone(), unbounded).await.unwrap(),
        json!(true)
    );
    let failure = run_with(
        &source,
        body,
        limits(usize::MAX / 2, Duration::from_millis(5)),
    )
    .await
    .unwrap_err();
    assert_eq!(failure.code, "timeout", "{failure:?}");
    assert_eq!(failure.step.as_deref(), Some("body.set (step 2, line 3)"));
}

/// A mail server that never answers.
struct SilentMailer;

#[async_trait]
impl Mailer for SilentMailer {
    async fn send(&self, _: &Mail) -> Result<(), MailError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_step_waiting_on_the_outside_stops_at_the_deadline() {
    let source = with_steps([
        "iam.run.as: systemuser".into(),
        "mail.send: {to: x@example.com}".into(),
    ]);
    let services = Services {
        mailer: Some(Arc::new(SilentMailer)),
        ..services(Default::default())
    };
    let pipeline = compile(&source).unwrap();
    let run = pipeline.run(
        json!({}),
        &services,
        limits(1 << 20, Duration::from_millis(50)),
    );
    // Without its deadline the run would wait for ever; the test gives up instead.
    let failure = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run stops at its deadline")
        .unwrap_err();
    assert_eq!(failure.code, "timeout", "{failure:?}");
    assert_eq!(failure.step.as_deref(), Some("mail.send (step 3, line 4)"));
}

// ---- No accepted pipeline overflows the stack ----

/// Half the 2 MiB of a tokio worker thread. The deepest expression accepted
/// (48 levels of parentheses, calls or indexes) needs about 740 KiB of it in
/// an unoptimised build; operator chains of any length need no more.
const SMALL_STACK: usize = 1024 * 1024;

/// Compiles `source` and runs it on `body`, both on a thread with [`SMALL_STACK`].
fn compile_and_run_on_small_stack(
    source: String,
    body: Value,
    limits: RunLimits,
) -> Result<Result<Value, RunFailure>, CompileError> {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || {
            let pipeline = compile(&source)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            Ok(runtime.block_on(pipeline.run(body, &services(Default::default()), limits)))
        })
        .unwrap()
        .join()
        .expect("no panic")
}

/// Terms that are booleans, with the value each has.
fn boolean_term() -> impl Strategy<Value = (&'static str, bool)> {
    prop_oneof![
        Just(("true", true)),
        Just(("false", false)),
        Just(("1 + 2 < 4", true)),
        Just(("'a' + 'b' == 'ab'", true)),
        Just(("3 >= 2 + 2", false)),
        Just(("not (1 != 1)", true)),
        Just(("!true", false)),
        Just(("body.n > 0", true)),
        Just(("(body.n + 1 <= 1 or body.n == 1)", true)),
    ]
}

fn logical_operator() -> impl Strategy<Value = (&'static str, bool)> {
    // (text, whether it is an `and`)
    prop_oneof![
        Just((" and ", true)),
        Just((" && ", true)),
        Just((" or ", false)),
        Just((" || ", false)),
    ]
}

/// Evaluates `terms` joined by `operators` with `and` binding tighter than `or`.
fn expected_logic(terms: &[(&str, bool)], operators: &[(&str, bool)]) -> bool {
    let mut any = false;
    let mut all = terms[0].1;
    for ((_, is_and), (_, value)) in operators.iter().zip(&terms[1..]) {
        if *is_and {
            all = all && *value;
        } else {
            any = any || all;
            all = *value;
        }
    }
    any || all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn chains_of_five_thousand_logical_terms_run_on_a_small_stack(
        terms in proptest::collection::vec(boolean_term(), 5000),
        operators in proptest::collection::vec(logical_operator(), 4999),
    ) {
        let mut expression = terms[0].0.to_owned();
        for ((op, _), (term, _)) in operators.iter().zip(&terms[1..]) {
            expression.push_str(op);
            expression.push_str(term);
        }
        let source = with_steps([format!("body.set: \"${{{expression}}}\"")]);
        let result = compile_and_run_on_small_stack(source, json!({"n": 1}), RunLimits::default());
        prop_assert_eq!(result.unwrap().unwrap(), json!(expected_logic(&terms, &operators)));
    }

    #[test]
    fn sums_and_comparisons_of_five_thousand_terms_run_on_a_small_stack(
        numbers in proptest::collection::vec(0i64..1000, 5000),
        texts in proptest::collection::vec("[a-z]{0,3}", 5000),
        comparisons in proptest::collection::vec(0usize..6, 5000),
    ) {
        let sum = numbers.iter().map(i64::to_string).collect::<Vec<_>>().join(" + ");
        let concatenation = texts.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(" + ");
        let ops = ["==", "!=", "<", "<=", ">", ">="];
        let mixed = comparisons
            .iter()
            .zip(&numbers)
            .map(|(op, n)| format!("{n} + 1 {} {n}", ops[*op]))
            .collect::<Vec<_>>()
            .join(" and ");
        let source = with_steps([
            format!("var.set: {{key: sum, value: \"${{{sum}}}\"}}"),
            format!("var.set: {{key: text, value: \"${{{concatenation}}}\"}}"),
            format!("var.set: {{key: mixed, value: \"${{{mixed}}}\"}}"),
            "body.set: '${vars}'".into(),
        ]);
        let result = compile_and_run_on_small_stack(source, json!({}), RunLimits::default());
        let expected_mixed = comparisons.iter().all(|op| matches!(op, 1 | 4 | 5));
        prop_assert_eq!(result.unwrap().unwrap(), json!({
            "sum": numbers.iter().sum::<i64>(),
            "text": texts.concat(),
            "mixed": expected_mixed,
        }));
    }

    #[test]
    fn deep_parentheses_run_or_are_refused_on_a_small_stack(
        wrappers in proptest::collection::vec(0usize..6, 1..60),
        chain in 1usize..2000,
    ) {
        // Each wrapper nests a chain of `+` one or two levels deeper.
        let mut expression = vec!["1"; chain].join(" + ");
        let mut levels = 1; // the expression itself
        for wrapper in &wrappers {
            let (wrapped, deeper) = match wrapper {
                0 => (format!("({expression})"), 1),
                1 => (format!("(({expression}) + 0)"), 2),
                2 => (format!("@convert.fromJson(@convert.toJson({expression}))"), 2),
                3 => (format!("body.map[@convert.toJson({expression})]"), 2),
                4 => (format!("!({expression} > 0)"), 2),
                _ => (format!("(1 + ({expression}))"), 2),
            };
            expression = wrapped;
            levels += deeper;
        }
        let source = with_steps([format!("body.set: \"${{{expression}}}\"")]);
        let body = json!({"map": {"1": 2}});
        match compile_and_run_on_small_stack(source, body, RunLimits::default()) {
            Ok(run) => {
                prop_assert!(levels <= super::expr::MAX_NESTING, "{}", levels);
                // `!` of a number, or adding null, fails; nothing else may.
                if let Err(failure) = run {
                    prop_assert_eq!(failure.code.as_str(), "expression_failed");
                }
            }
            Err(refused) => {
                prop_assert!(levels > super::expr::MAX_NESTING, "{}: {}", levels, refused);
                prop_assert_eq!(refused.line, 3);
                prop_assert!(refused.reason.contains("nested too deeply"), "{}", refused);
            }
        }
    }

    #[test]
    fn steps_nesting_the_body_deeper_stop_on_a_small_stack(
        levels in proptest::collection::vec(1usize..=60, 190),
    ) {
        let steps = levels.iter().map(|n| {
            format!("body.set: {{value: {}'${{body}}'{}}}", "{a: ".repeat(*n), "}".repeat(*n))
        });
        let source = with_steps(steps);
        let result = compile_and_run_on_small_stack(source, json!({}), RunLimits::default());
        let failure = result.unwrap().unwrap_err();
        prop_assert_eq!(failure.code.as_str(), "limit_exceeded");
        // The first step that takes the body past the bound fails.
        let mut depth = 1;
        let failing = levels.iter().position(|n| { depth += n; depth > MAX_JSON_DEPTH }).unwrap();
        let step = failing + 2;
        prop_assert_eq!(failure.step.unwrap(), format!("body.set (step {step}, line {})", step + 1));
    }
}

#[test]
fn chains_as_long_as_the_largest_pipeline_run_on_a_small_stack() {
    // HOOKFLOW_MAX_PIPELINE_BYTES allows 4 MiB: one expression of a million terms.
    let largest = 4 * 1024 * 1024;
    let terms = (largest - 100) / 4;
    let sum = vec!["1"; terms].join(" + ");
    let source = with_steps([format!("body.set: '${{{sum}}}'")]);
    assert!(source.len() <= largest);
    // Each term is a value paid for: enough allowance to run them all.
    let ample = limits(1 << 30, Duration::from_secs(3600));
    let result = compile_and_run_on_small_stack(source, json!({}), ample);
    assert_eq!(result.unwrap().unwrap(), json!(terms));

    let all = vec!["!false"; (largest - 100) / 11].join(" and ");
    let source = with_steps([format!("body.set: '${{{all}}}'")]);
    assert!(source.len() <= largest);
    let result = compile_and_run_on_small_stack(source, json!({}), ample);
    assert_eq!(result.unwrap().unwrap(), json!(true));
}
