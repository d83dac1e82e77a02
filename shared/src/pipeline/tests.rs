//! Engine tests: compile-time checks with lines, and runs with a recording mailer.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::commands::Services;
use super::users::Users;
use super::{CompileError, Pipeline};
use crate::ports::{Mail, MailError, Mailer};

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
        .run(event("hello world"), &services(Default::default()))
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
        .run(event("Ada"), &services(Default::default()))
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
        .run(event("x"), &services(mailer.clone()))
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
            .run(event("the lead"), &services(mailer.clone()))
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
        let failure = p.run(event("x"), &services(mailer)).await.unwrap_err();
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
    };
    assert_eq!(
        p.run(event("x"), &no_mailer).await.unwrap_err().code,
        "mail_not_configured"
    );
}

#[tokio::test]
async fn evaluation_errors_name_step_and_expression() {
    let p = compile("pipeline:\n  - event.listen: {eventKey: a.b}\n  - log: starting\n  - body.set:\n      value: ${@convert.fromJson(body.origin)}\n").unwrap();
    let failure = p
        .run(event("not json"), &services(Default::default()))
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
