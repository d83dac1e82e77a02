//! The pipeline commands. Adding one is one type implementing [`Command`] plus
//! one line in [`registry`].

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::expr::to_text;
use super::users::Users;
use crate::domain::{CorrelationId, EventKey, MESSAGE_KEY_PREFIX};
use crate::outgoing::ReferenceId;
use crate::outgoing::service::Caller;
use crate::outgoing::trigger::Trigger;
use crate::outgoing::{Outgoing, OutgoingError};
use crate::ports::{EffectLog, Mail, MailError, Mailer};

/// A command's parameters after their expressions were evaluated.
pub type Args = Map<String, Value>;

/// A parameter a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub required: bool,
}

const fn required(name: &'static str) -> Param {
    Param {
        name,
        required: true,
    }
}

const fn optional(name: &'static str) -> Param {
    Param {
        name,
        required: false,
    }
}

/// What a running pipeline carries from step to step.
#[derive(Debug, Clone)]
pub struct RunState {
    pub pipeline: String,
    /// The event the run is for, when it came from one.
    pub correlation_id: Option<String>,
    /// The number of the step running now (1 is the trigger).
    pub step: usize,
    pub body: Value,
    pub vars: Map<String, Value>,
    pub user: String,
}

/// What commands may use from outside the pipeline.
pub struct Services {
    pub users: Users,
    pub mailer: Option<Arc<dyn Mailer>>,
    /// Sender of `mail.send` when the step gives no `from`.
    pub mail_from: String,
    /// Outgoing webhooks (`webhook.send`), and the deliveries queued for them.
    pub outgoing: Option<Arc<Outgoing>>,
    /// Where `mail.send` claims its mail before sending it, so a redelivered
    /// job does not send it again; with it, `webhook.send` also names its
    /// invocation after the event and the step, so a redelivered job finds
    /// the first run's call. Without it (a one-off run such as
    /// `pipeline.test`, which must neither use nor spend the claims of the
    /// event's real run), every run sends.
    pub effects: Option<Arc<dyn EffectLog>>,
}

/// Why a step failed. `transient` failures are retried; the others are final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    pub code: &'static str,
    pub message: String,
    pub transient: bool,
}

impl StepError {
    /// A failure that retrying will not fix.
    pub fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        StepError {
            code,
            message: message.into(),
            transient: false,
        }
    }

    /// A failure of something outside that may work later.
    pub fn transient(code: &'static str, message: impl Into<String>) -> Self {
        StepError {
            code,
            message: message.into(),
            transient: true,
        }
    }
}

/// One pipeline command.
#[async_trait]
pub trait Command: Send + Sync {
    /// The name used in YAML, e.g. `body.set`.
    fn name(&self) -> &'static str;
    /// The parameters it accepts.
    fn params(&self) -> &'static [Param];
    /// The parameter a scalar stands for (`iam.run.as: systemuser`), if any.
    fn shorthand(&self) -> Option<&'static str> {
        None
    }
    /// The permission the current user needs to run it.
    fn permission(&self) -> Option<&'static str> {
        None
    }
    /// For a trigger: the webhook event key it listens to, from its literal parameters.
    fn listens_to(&self, _args: &Args) -> Option<Result<EventKey, String>> {
        None
    }
    /// Checks literal parameters when the pipeline is put.
    fn check(&self, _args: &Args, _users: &Users) -> Result<(), String> {
        Ok(())
    }
    /// Runs the step.
    async fn run(
        &self,
        args: Args,
        state: &mut RunState,
        services: &Services,
    ) -> Result<(), StepError>;
}

/// Every command by name (aliases included), built once.
pub fn registry() -> &'static BTreeMap<&'static str, Arc<dyn Command>> {
    static REGISTRY: OnceLock<BTreeMap<&'static str, Arc<dyn Command>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let commands: Vec<Arc<dyn Command>> = vec![
            Arc::new(EventListen),
            Arc::new(MessageReceive),
            Arc::new(BodySet),
            Arc::new(VarSet),
            Arc::new(Log),
            Arc::new(IamRunAs),
            Arc::new(MailSend),
            Arc::new(WebhookSend),
        ];
        let mut map: BTreeMap<&'static str, Arc<dyn Command>> =
            commands.into_iter().map(|c| (c.name(), c)).collect();
        // The seeds also write `mail:` for `mail.send`.
        let mail = map["mail.send"].clone();
        map.insert("mail", mail);
        map
    })
}

fn text_arg(args: &Args, name: &str) -> Option<String> {
    args.get(name).filter(|v| !v.is_null()).map(to_text)
}

/// `event.listen: {eventKey: K}`: the trigger for webhook `K`.
struct EventListen;

#[async_trait]
impl Command for EventListen {
    fn name(&self) -> &'static str {
        "event.listen"
    }
    fn params(&self) -> &'static [Param] {
        const PARAMS: &[Param] = &[required("eventKey")];
        PARAMS
    }
    fn shorthand(&self) -> Option<&'static str> {
        Some("eventKey")
    }
    fn listens_to(&self, args: &Args) -> Option<Result<EventKey, String>> {
        let key = args
            .get("eventKey")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Some(EventKey::parse(key).map_err(|e| e.to_string()))
    }
    async fn run(&self, _: Args, _: &mut RunState, _: &Services) -> Result<(), StepError> {
        Ok(())
    }
}

/// `message.receive: {key: pipeforce.event.K}`: the same trigger, by message key.
struct MessageReceive;

#[async_trait]
impl Command for MessageReceive {
    fn name(&self) -> &'static str {
        "message.receive"
    }
    fn params(&self) -> &'static [Param] {
        const PARAMS: &[Param] = &[required("key")];
        PARAMS
    }
    fn shorthand(&self) -> Option<&'static str> {
        Some("key")
    }
    fn listens_to(&self, args: &Args) -> Option<Result<EventKey, String>> {
        let key = args.get("key").and_then(Value::as_str).unwrap_or_default();
        Some(match key.strip_prefix(MESSAGE_KEY_PREFIX) {
            Some(event_key) => EventKey::parse(event_key).map_err(|e| e.to_string()),
            None => Err(format!(
                "key must be {MESSAGE_KEY_PREFIX}<eventKey>, e.g. {MESSAGE_KEY_PREFIX}webhook.lead.created"
            )),
        })
    }
    async fn run(&self, _: Args, _: &mut RunState, _: &Services) -> Result<(), StepError> {
        Ok(())
    }
}

/// `body.set: {value: V}`: replaces the body.
struct BodySet;

#[async_trait]
impl Command for BodySet {
    fn name(&self) -> &'static str {
        "body.set"
    }
    fn params(&self) -> &'static [Param] {
        const PARAMS: &[Param] = &[required("value")];
        PARAMS
    }
    fn shorthand(&self) -> Option<&'static str> {
        Some("value")
    }
    async fn run(
        &self,
        mut args: Args,
        state: &mut RunState,
        _: &Services,
    ) -> Result<(), StepError> {
        state.body = args.remove("value").unwrap_or(Value::Null);
        Ok(())
    }
}

/// `var.set: {key: K, value: V}`: sets `vars.K`.
struct VarSet;

#[async_trait]
impl Command for VarSet {
    fn name(&self) -> &'static str {
        "var.set"
    }
    fn params(&self) -> &'static [Param] {
        const PARAMS: &[Param] = &[required("key"), required("value")];
        PARAMS
    }
    async fn run(
        &self,
        mut args: Args,
        state: &mut RunState,
        _: &Services,
    ) -> Result<(), StepError> {
        let key = text_arg(&args, "key")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                StepError::permanent("invalid_parameter", "var.set needs a non-empty key")
            })?;
        state
            .vars
            .insert(key, args.remove("value").unwrap_or(Value::Null));
        Ok(())
    }
}

/// `log: {message: M, level: info}`: writes a line to the server log.
struct Log;

/// Longest message `log` writes, so a pipeline cannot flood the log with a payload.
const MAX_LOG_CHARS: usize = 1000;

#[async_trait]
impl Command for Log {
    fn name(&self) -> &'static str {
        "log"
    }
    fn params(&self) -> &'static [Param] {
        const PARAMS: &[Param] = &[required("message"), optional("level")];
        PARAMS
    }
    fn shorthand(&self) -> Option<&'static str> {
        Some("message")
    }
    fn check(&self, args: &Args, _: &Users) -> Result<(), String> {
        match args.get("level").and_then(Value::as_str) {
            None | Some("debug" | "info" | "warn" | "error") => Ok(()),
            Some(other) => Err(format!(
                "level must be debug, info, warn or error, not '{other}'"
            )),
        }
    }
    async fn run(&self, args: Args, state: &mut RunState, _: &Services) -> Result<(), StepError> {
        let text = printable(&text_arg(&args, "message").unwrap_or_default());
        let pipeline = state.pipeline.as_str();
        // A field of its own, never the log line's message: what a pipeline
        // writes is data, and with control characters escaped it cannot start
        // a line that looks like the gateway's own.
        match text_arg(&args, "level").as_deref() {
            Some("debug") => tracing::debug!(pipeline, text = %text, "pipeline log"),
            Some("warn") => tracing::warn!(pipeline, text = %text, "pipeline log"),
            Some("error") => tracing::error!(pipeline, text = %text, "pipeline log"),
            _ => tracing::info!(pipeline, text = %text, "pipeline log"),
        }
        Ok(())
    }
}

/// At most [`MAX_LOG_CHARS`] characters of `text`, control characters (line
/// breaks, escape sequences) written as escapes like `\n` and `\u{1b}`.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_LOG_CHARS));
    for c in text.chars().take(MAX_LOG_CHARS) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `iam.run.as: USER`: the following steps run with USER's permissions.
struct IamRunAs;

#[async_trait]
impl Command for IamRunAs {
    fn name(&self) -> &'static str {
        "iam.run.as"
    }
    fn params(&self) -> &'static [Param] {
        const PARAMS: &[Param] = &[required("username")];
        PARAMS
    }
    fn shorthand(&self) -> Option<&'static str> {
        Some("username")
    }
    fn check(&self, args: &Args, users: &Users) -> Result<(), String> {
        match args.get("username").and_then(Value::as_str) {
            Some(user) if !users.exists(user) => {
                Err(format!("unknown user '{user}' (see HOOKFLOW_USERS)"))
            }
            _ => Ok(()),
        }
    }
    async fn run(
        &self,
        args: Args,
        state: &mut RunState,
        services: &Services,
    ) -> Result<(), StepError> {
        let user = text_arg(&args, "username").unwrap_or_default();
        if !services.users.exists(&user) {
            return Err(StepError::permanent(
                "unknown_user",
                format!("unknown user '{user}'"),
            ));
        }
        state.user = user;
        Ok(())
    }
}

/// `mail.send: {to, cc, bcc, subject, body, from}`: sends a plain-text mail.
struct MailSend;

/// Addresses from a text (`a@x, b@y`) or a list.
fn addresses(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().map(to_text).collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => to_text(other)
            .split([',', ';'])
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

#[async_trait]
impl Command for MailSend {
    fn name(&self) -> &'static str {
        "mail.send"
    }
    fn params(&self) -> &'static [Param] {
        const PARAMS: &[Param] = &[
            required("to"),
            optional("cc"),
            optional("bcc"),
            optional("subject"),
            optional("body"),
            optional("from"),
        ];
        PARAMS
    }
    fn permission(&self) -> Option<&'static str> {
        Some("mail.send")
    }
    async fn run(
        &self,
        args: Args,
        state: &mut RunState,
        services: &Services,
    ) -> Result<(), StepError> {
        let mailer = services.mailer.as_ref().ok_or_else(|| {
            StepError::permanent(
                "mail_not_configured",
                "no mail server is configured (HOOKFLOW_SMTP_URL)",
            )
        })?;
        let to = addresses(args.get("to"));
        if to.is_empty() {
            return Err(StepError::permanent(
                "invalid_parameter",
                "mail.send needs at least one address in 'to'",
            ));
        }
        let body = match args.get("body") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        let mail = Mail {
            from: text_arg(&args, "from").unwrap_or_else(|| services.mail_from.clone()),
            to,
            cc: addresses(args.get("cc")),
            bcc: addresses(args.get("bcc")),
            subject: text_arg(&args, "subject").unwrap_or_default(),
            body,
        };
        let claim = MailClaim::of(state, services);
        if let Some(claim) = &claim
            && !claim.take().await?
        {
            tracing::info!(
                pipeline = %state.pipeline, step = state.step, correlation_id = %claim.id,
                "mail.send skipped: an earlier delivery of this job sent or attempted this step's mail"
            );
            return Ok(());
        }
        match mailer.send(&mail).await {
            Ok(()) => {
                if let Some(answer) = mailer.step_answer(&mail) {
                    state.body = answer;
                }
                Ok(())
            }
            Err(MailError::Unavailable(m)) => {
                // Refused or unreachable: the mail did not go out, so the
                // retry this error asks for may send it.
                if let Some(claim) = &claim {
                    claim.give_back().await;
                }
                Err(StepError::transient("mail_unavailable", m))
            }
            // Kept claimed: a rejected mail is not retried.
            Err(MailError::Rejected(m)) => Err(StepError::permanent("mail_rejected", m)),
        }
    }
}

/// The at-most-once record of one `mail.send` step for one event: taken
/// before the mail goes out, so a crash, a timeout or a later step's failure
/// that runs the job again cannot send the mail twice.
struct MailClaim<'a> {
    effects: &'a dyn EffectLog,
    id: CorrelationId,
    effect: String,
}

impl<'a> MailClaim<'a> {
    /// The claim for the step running now; none for a run without an event.
    fn of(state: &RunState, services: &'a Services) -> Option<Self> {
        let effects = services.effects.as_deref()?;
        let id = CorrelationId::parse(state.correlation_id.as_deref()?)?;
        Some(MailClaim {
            effects,
            id,
            effect: format!("{}/{}/mail.send", state.pipeline, state.step),
        })
    }

    /// Whether this run is the first to send the mail. A claim that cannot be
    /// written fails the step transiently, the mail unsent.
    async fn take(&self) -> Result<bool, StepError> {
        self.effects
            .claim_effect(&self.id, &self.effect)
            .await
            .map_err(|err| {
                tracing::error!(correlation_id = %self.id, effect = %self.effect, error = %err,
                    "claiming a mail before sending it failed");
                StepError::transient(
                    "store_unavailable",
                    "the mail was not sent: the record that it is being sent could not be stored",
                )
            })
    }

    /// Gives the claim back after a mail that certainly did not go out.
    async fn give_back(&self) {
        if let Err(err) = self.effects.release_effect(&self.id, &self.effect).await {
            tracing::error!(correlation_id = %self.id, effect = %self.effect, error = %err,
                "giving back the claim of an unsent mail failed: a retry will not send it");
        }
    }
}

/// `webhook.send: {webhookId, data, headers, queryParams, async}`: calls a
/// registered outgoing webhook; the answer `{referenceId, status, data, error}`
/// becomes the body.
struct WebhookSend;

#[async_trait]
impl Command for WebhookSend {
    fn name(&self) -> &'static str {
        "webhook.send"
    }
    fn params(&self) -> &'static [Param] {
        const PARAMS: &[Param] = &[
            required("webhookId"),
            optional("data"),
            optional("headers"),
            optional("queryParams"),
            optional("async"),
        ];
        PARAMS
    }
    fn shorthand(&self) -> Option<&'static str> {
        Some("webhookId")
    }
    fn permission(&self) -> Option<&'static str> {
        Some("webhook.send")
    }
    fn check(&self, args: &Args, _: &Users) -> Result<(), String> {
        match args.get("webhookId").and_then(Value::as_str) {
            Some(id) if !crate::outgoing::registry::valid_id(id) => Err(format!(
                "webhookId '{id}' is not a valid outgoing webhook id"
            )),
            _ => Ok(()),
        }
    }
    async fn run(
        &self,
        args: Args,
        state: &mut RunState,
        services: &Services,
    ) -> Result<(), StepError> {
        let outgoing = services.outgoing.as_ref().ok_or_else(|| {
            StepError::permanent(
                "outgoing_not_configured",
                "outgoing webhooks are not available here",
            )
        })?;
        let trigger =
            Trigger::from_json(&args).map_err(|e| StepError::permanent(e.code(), e.message()))?;
        // Derived from the event and the step, so a redelivered job finds the
        // invocation its first run made instead of calling the endpoint again.
        let reference_id = state
            .correlation_id
            .as_ref()
            .filter(|_| services.effects.is_some())
            .map(|id| {
                ReferenceId::derived_from(&format!("{id}/{}/{}", state.pipeline, state.step))
            });
        let caller = Caller::Pipeline {
            name: state.pipeline.clone(),
            correlation_id: state.correlation_id.clone().unwrap_or_default(),
        };
        state.body = outgoing
            .step_answer(&trigger, &caller, reference_id)
            .await
            .map_err(|e| {
                if let OutgoingError::Store(err) = &e {
                    tracing::error!(error = %err, "outgoing webhook store failed");
                }
                if e.is_transient() {
                    StepError::transient("outgoing_unavailable", e.message())
                } else {
                    StepError::permanent(e.code(), e.message())
                }
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod log_tests {
    use super::printable;

    #[test]
    fn log_text_cannot_break_lines() {
        assert_eq!(
            printable("a\nINFO forged\r\x1b[31m\ttab"),
            "a\\nINFO forged\\r\\u{1b}[31m\\ttab"
        );
        assert_eq!(printable(&"é".repeat(1500)).chars().count(), 1000);
    }
}
