//! The pipeline engine: YAML pipelines compiled once, run step by step.
//!
//! ```yaml
//! vars:
//!   greeting: Hello
//! pipeline:
//!   - event.listen:
//!       eventKey: webhook.lead.created
//!   - body.set:
//!       value: "${@text.upperCase(@convert.fromBase64(body.origin))}"
//! ```
//!
//! The first step is the trigger; the body starts as the event and each step may
//! replace it; the final body is the pipeline's result value.

pub mod budget;
pub mod commands;
pub mod dry_run;
pub mod expr;
pub mod trace;
pub mod users;
pub mod worker;
mod yaml;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::domain::EventKey;
use crate::limits::{MAX_JSON_DEPTH, json_depth};
use budget::{Budget, Exhausted, ITEM_BYTES, RunLimits, too_deep};
use commands::{Args, Command, RunState, Services, StepError, registry};
use expr::{Scope, Template, TemplateError};
use trace::{StepObserver, StepReport};
use users::{ANONYMOUS_USER, Users};
use yaml::{Kind, Node};

/// Why a pipeline does not compile: the line at fault and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// A parameter value with its expressions parsed.
#[derive(Debug, Clone, PartialEq)]
enum ParamValue {
    Literal(Value),
    Template(Template),
    List(Vec<ParamValue>),
    Map(Vec<(String, ParamValue)>),
}

impl ParamValue {
    fn compile(node: &Node) -> Result<ParamValue, CompileError> {
        match &node.kind {
            Kind::Scalar { text, .. } => {
                let template = Template::parse(text).map_err(|e| CompileError {
                    line: node.line,
                    reason: format!("expression {}: {}", e.expression, e.reason),
                })?;
                Ok(if template.is_literal() {
                    ParamValue::Literal(node.to_json())
                } else {
                    ParamValue::Template(template)
                })
            }
            Kind::Seq(items) => items
                .iter()
                .map(ParamValue::compile)
                .collect::<Result<_, _>>()
                .map(ParamValue::List),
            Kind::Map(entries) => entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), ParamValue::compile(v)?)))
                .collect::<Result<_, _>>()
                .map(ParamValue::Map),
        }
    }

    fn literal(&self) -> Option<&Value> {
        match self {
            ParamValue::Literal(v) => Some(v),
            _ => None,
        }
    }

    /// The parameter's value, paid for from the run's budget as it is built,
    /// and refused when it nests deeper than [`MAX_JSON_DEPTH`] (a list or map
    /// around the body nests the body deeper on every step).
    fn evaluate(&self, scope: &Scope<'_>) -> Result<Value, TemplateError> {
        let value = self.build(scope)?;
        if matches!(value, Value::Array(_) | Value::Object(_))
            && json_depth(&value) > MAX_JSON_DEPTH
        {
            return Err(TemplateError::exhausted(too_deep()));
        }
        Ok(value)
    }

    /// Recurses as deep as the YAML nests, which the parser bounds.
    fn build(&self, scope: &Scope<'_>) -> Result<Value, TemplateError> {
        let pay = |bytes| scope.budget.charge(bytes).map_err(TemplateError::exhausted);
        match self {
            ParamValue::Literal(v) => {
                scope
                    .budget
                    .charge_value(v)
                    .map_err(TemplateError::exhausted)?;
                Ok(v.clone())
            }
            ParamValue::Template(t) => t.evaluate(scope),
            ParamValue::List(items) => {
                pay(ITEM_BYTES)?;
                let mut list = Vec::with_capacity(items.len());
                for item in items {
                    list.push(item.build(scope)?);
                }
                Ok(Value::Array(list))
            }
            ParamValue::Map(entries) => {
                pay(ITEM_BYTES)?;
                let mut map = Map::with_capacity(entries.len());
                for (key, value) in entries {
                    pay(ITEM_BYTES + key.len())?;
                    map.insert(key.clone(), value.build(scope)?);
                }
                Ok(Value::Object(map))
            }
        }
    }
}

struct Step {
    number: usize,
    line: usize,
    command: Arc<dyn Command>,
    args: Vec<(String, ParamValue)>,
}

impl Step {
    /// How results and errors name the step: `mail.send (step 3, line 8)`.
    fn label(&self) -> String {
        format!(
            "{} (step {}, line {})",
            self.command.name(),
            self.number,
            self.line
        )
    }
}

/// A compiled pipeline, ready to run any number of times.
pub struct Pipeline {
    pub name: String,
    pub listens_to: EventKey,
    vars: Vec<(String, ParamValue)>,
    steps: Vec<Step>,
}

/// How a run failed: stable code, message, the step at fault, and whether a retry may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailure {
    pub code: String,
    pub message: String,
    pub step: Option<String>,
    pub transient: bool,
}

impl RunFailure {
    /// The run went past `HOOKFLOW_PIPELINE_TIMEOUT_MS` (in `step`, when known).
    pub fn timed_out(timeout: Duration, step: Option<String>) -> Self {
        RunFailure {
            code: "timeout".into(),
            message: format!(
                "the pipeline did not finish within {} ms",
                timeout.as_millis()
            ),
            step,
            transient: true,
        }
    }

    /// How a parameter (`what`) failed to evaluate in `step`.
    fn of_expression(error: TemplateError, what: &str, step: String, limits: RunLimits) -> Self {
        let expression = excerpt(&error.expression);
        match error.exhausted {
            Some(Exhausted::Timeout) => RunFailure::timed_out(limits.timeout, Some(step)),
            Some(Exhausted::Limit(limit)) => RunFailure {
                code: "limit_exceeded".into(),
                message: if expression.is_empty() {
                    format!("{what}: {limit}")
                } else {
                    format!("{what}: {limit}, in {expression}")
                },
                step: Some(step),
                transient: false,
            },
            None => RunFailure {
                code: "expression_failed".into(),
                message: format!("{what}: expression {expression} failed: {}", error.reason),
                step: Some(step),
                transient: false,
            },
        }
    }
}

/// Longest piece of an expression quoted in a failure: enough to find it in
/// the pipeline, not a copy of a pipeline-sized chain.
const MAX_QUOTED_CHARS: usize = 200;

fn excerpt(expression: &str) -> String {
    match expression.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{}…", &expression[..end]),
        None => expression.to_owned(),
    }
}

/// Most steps a pipeline may have.
pub const MAX_STEPS: usize = 200;

/// Pipeline names: letters, digits, `.`, `_`, `-`; at most 100 characters.
pub fn valid_pipeline_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn fail(line: usize, reason: impl Into<String>) -> CompileError {
    CompileError {
        line,
        reason: reason.into(),
    }
}

impl Pipeline {
    /// Checks and compiles a pipeline: YAML syntax, a trigger first, known commands
    /// and parameters, expressions that parse, users that exist.
    pub fn compile(name: &str, source: &str, users: &Users) -> Result<Pipeline, CompileError> {
        let root = yaml::parse(source).map_err(|e| fail(e.line, e.reason))?;
        let entries = root
            .as_map()
            .ok_or_else(|| fail(root.line, "a pipeline is a mapping with a 'pipeline:' list"))?;
        let mut steps_node = None;
        let mut vars = Vec::new();
        for (key, node) in entries {
            match key.as_str() {
                "pipeline" => steps_node = Some(node),
                "vars" => {
                    let map = node.as_map().ok_or_else(|| {
                        fail(node.line, "'vars' must be a mapping of names to values")
                    })?;
                    for (var, value) in map {
                        vars.push((var.clone(), ParamValue::compile(value)?));
                    }
                }
                other => {
                    return Err(fail(
                        node.line,
                        format!(
                            "unknown top-level key '{other}' (expected 'pipeline' and optionally 'vars')"
                        ),
                    ));
                }
            }
        }
        let steps_node = steps_node
            .ok_or_else(|| fail(root.line, "the 'pipeline:' list of steps is missing"))?;
        let Kind::Seq(items) = &steps_node.kind else {
            return Err(fail(steps_node.line, "'pipeline' must be a list of steps"));
        };
        if items.is_empty() {
            return Err(fail(steps_node.line, "the pipeline has no steps"));
        }
        if items.len() > MAX_STEPS {
            return Err(fail(
                steps_node.line,
                format!("a pipeline has at most {MAX_STEPS} steps"),
            ));
        }
        let mut steps = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            steps.push(compile_step(i + 1, item, users)?);
        }
        let first = &steps[0];
        let trigger_error = || {
            fail(
                first.line,
                "the first step must be a trigger: event.listen or message.receive",
            )
        };
        if first.command.listens_to(&Args::new()).is_none() {
            return Err(trigger_error());
        }
        if first.args.iter().any(|(_, v)| v.literal().is_none()) {
            return Err(fail(
                first.line,
                "a trigger's parameters cannot contain expressions",
            ));
        }
        let listens_to = first
            .command
            .listens_to(&literal_args(first))
            .ok_or_else(trigger_error)?
            .map_err(|reason| fail(first.line, reason))?;
        if let Some(extra) = steps
            .iter()
            .skip(1)
            .find(|s| s.command.listens_to(&Args::new()).is_some())
        {
            return Err(fail(extra.line, "only the first step may be a trigger"));
        }
        Ok(Pipeline {
            name: name.to_owned(),
            listens_to,
            vars,
            steps,
        })
    }

    /// Runs the pipeline on an event body within `limits`; the final body is the result.
    ///
    /// Every value the run produces is paid for from one [`Budget`]; a step
    /// that would overspend it fails with `limit_exceeded`, and one that
    /// starts, evaluates or waits (mail, HTTP) past the deadline with `timeout`.
    pub async fn run(
        &self,
        event_body: Value,
        services: &Services,
        limits: RunLimits,
    ) -> Result<Value, RunFailure> {
        self.run_observed(event_body, services, limits, None).await
    }

    /// [`Pipeline::run`], telling `observer` how each step ended (the trigger,
    /// with the vars evaluated, first). Without an observer nothing is timed
    /// or copied for it.
    pub async fn run_observed(
        &self,
        event_body: Value,
        services: &Services,
        limits: RunLimits,
        mut observer: Option<&mut dyn StepObserver>,
    ) -> Result<Value, RunFailure> {
        let budget = Budget::start(limits);
        let mut state = RunState {
            pipeline: self.name.clone(),
            correlation_id: event_body
                .get("correlationId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            step: 0,
            body: event_body,
            vars: Map::new(),
            user: ANONYMOUS_USER.to_owned(),
        };
        let started = observer.is_some().then(Instant::now);
        let ran = self.evaluate_vars(&mut state, &budget, limits);
        if let Some(observer) = observer.as_deref_mut() {
            observer.step_ended(&report(&self.steps[0], started, &state, ran.as_ref().err()));
        }
        ran?;
        for step in self.steps.iter().skip(1) {
            let started = observer.is_some().then(Instant::now);
            let ran = match step_args(step, &state, services, &budget, limits) {
                Ok(args) => {
                    run_step(step, args, &mut state, services, budget.deadline(), limits).await
                }
                Err(failure) => Err(failure),
            };
            if let Some(observer) = observer.as_deref_mut() {
                observer.step_ended(&report(step, started, &state, ran.as_ref().err()));
            }
            ran?;
            // Steps never wait on their own: let the runtime's other tasks
            // have their turn between them.
            tokio::task::yield_now().await;
        }
        Ok(state.body)
    }

    fn evaluate_vars(
        &self,
        state: &mut RunState,
        budget: &Budget,
        limits: RunLimits,
    ) -> Result<(), RunFailure> {
        for (name, value) in &self.vars {
            let value = evaluate(value, state, budget).map_err(|e| {
                RunFailure::of_expression(e, &format!("vars.{name}"), "vars".into(), limits)
            })?;
            state.vars.insert(name.clone(), value);
        }
        Ok(())
    }
}

/// What an observer is told of `step`, begun at `started`.
fn report<'a>(
    step: &'a Step,
    started: Option<Instant>,
    state: &'a RunState,
    failure: Option<&'a RunFailure>,
) -> StepReport<'a> {
    StepReport {
        number: step.number,
        command: step.command.name(),
        line: step.line,
        elapsed: started.map_or(Duration::ZERO, |t| t.elapsed()),
        body: &state.body,
        vars: &state.vars,
        failure,
    }
}

/// A step's parameters, evaluated once its deadline and permission are
/// checked. Not async, so that no borrow of the (single-threaded) budget is
/// held across an await.
fn step_args(
    step: &Step,
    state: &RunState,
    services: &Services,
    budget: &Budget,
    limits: RunLimits,
) -> Result<Args, RunFailure> {
    budget
        .check_deadline()
        .map_err(|_| RunFailure::timed_out(limits.timeout, Some(step.label())))?;
    if let Some(permission) = step.command.permission()
        && !services.users.allows(&state.user, permission)
    {
        return Err(step_failure(
            step,
            StepError::permanent(
                "permission_denied",
                format!(
                    "user '{}' may not run {}; switch to a user holding '{permission}' with iam.run.as",
                    state.user,
                    step.command.name()
                ),
            ),
        ));
    }
    let mut args = Args::new();
    for (name, value) in &step.args {
        let value = evaluate(value, state, budget).map_err(|e| {
            RunFailure::of_expression(e, &format!("parameter '{name}'"), step.label(), limits)
        })?;
        args.insert(name.clone(), value);
    }
    Ok(args)
}

/// Runs a step's command on `args` until `deadline`.
async fn run_step(
    step: &Step,
    args: Args,
    state: &mut RunState,
    services: &Services,
    deadline: std::time::Instant,
    limits: RunLimits,
) -> Result<(), RunFailure> {
    state.step = step.number;
    tokio::time::timeout_at(
        tokio::time::Instant::from_std(deadline),
        step.command.run(args, state, services),
    )
    .await
    .map_err(|_| RunFailure::timed_out(limits.timeout, Some(step.label())))?
    .map_err(|e| step_failure(step, e))
}

fn step_failure(step: &Step, e: StepError) -> RunFailure {
    RunFailure {
        code: e.code.to_owned(),
        message: e.message,
        step: Some(step.label()),
        transient: e.transient,
    }
}

/// A parameter's value against the run's body and vars. A plain function, so
/// that no borrow of the (single-threaded) budget is held across an await.
fn evaluate(value: &ParamValue, state: &RunState, budget: &Budget) -> Result<Value, TemplateError> {
    value.evaluate(&Scope {
        body: &state.body,
        vars: &state.vars,
        budget,
    })
}

fn literal_args(step: &Step) -> Args {
    step.args
        .iter()
        .filter_map(|(k, v)| v.literal().map(|v| (k.clone(), v.clone())))
        .collect()
}

fn compile_step(number: usize, item: &Node, users: &Users) -> Result<Step, CompileError> {
    let entries = item.as_map().filter(|e| e.len() == 1).ok_or_else(|| {
        fail(
            item.line,
            "a step is one command, e.g. '- body.set: {value: …}'",
        )
    })?;
    let (name, params) = &entries[0];
    let command = registry()
        .get(name.as_str())
        .cloned()
        .ok_or_else(|| fail(item.line, format!("unknown command '{name}'")))?;
    let mut args = Vec::new();
    match &params.kind {
        Kind::Map(fields) => {
            for (field, value) in fields {
                if !command.params().iter().any(|p| p.name == field) {
                    let known: Vec<&str> = command.params().iter().map(|p| p.name).collect();
                    return Err(fail(
                        value.line,
                        format!(
                            "{name} has no parameter '{field}' (it takes: {})",
                            known.join(", ")
                        ),
                    ));
                }
                args.push((field.clone(), ParamValue::compile(value)?));
            }
        }
        Kind::Scalar { .. } if params.to_json().is_null() => {}
        Kind::Scalar { .. } => {
            let shorthand = command.shorthand().ok_or_else(|| {
                fail(
                    params.line,
                    format!("{name} takes named parameters, not a single value"),
                )
            })?;
            args.push((shorthand.to_owned(), ParamValue::compile(params)?));
        }
        Kind::Seq(_) => {
            return Err(fail(
                params.line,
                format!("the parameters of {name} must be a mapping"),
            ));
        }
    }
    for param in command.params().iter().filter(|p| p.required) {
        if !args.iter().any(|(k, _)| k == param.name) {
            return Err(fail(
                item.line,
                format!("{name} needs the parameter '{}'", param.name),
            ));
        }
    }
    let step = Step {
        number,
        line: item.line,
        command,
        args,
    };
    step.command
        .check(&literal_args(&step), users)
        .map_err(|reason| fail(item.line, reason))?;
    Ok(step)
}

#[cfg(test)]
mod tests;
