//! `pipeline.test`: runs a pipeline (stored, or YAML given with the request)
//! on a stored event or a sample body and answers the final body with a step
//! trace. Without `sideEffects=true` nothing leaves and nothing is written:
//! `mail.send` goes to a [`DryRunMailer`], `webhook.send` to the outgoing
//! service's dry run, and no effect log is given (no claims, no outcome).

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Value, json};

use super::admin::PipelineInput;
use super::events::event_not_found;
use super::params::{Params, is_json, media_type, parse_json_body};
use super::{ApiError, Gateway};
use crate::domain::CorrelationId;
use crate::pipeline::budget::RunLimits;
use crate::pipeline::commands::Services;
use crate::pipeline::dry_run::DryRunMailer;
use crate::pipeline::trace::{MAX_TRACE_VALUE_BYTES, Trace, bounded};
use crate::pipeline::{Pipeline, RunFailure};

/// The name a pipeline given as YAML runs under (in logs and invocation records).
const GIVEN_PIPELINE_NAME: &str = "pipeline.test";

/// What the run starts from.
enum TestInput {
    Event(CorrelationId),
    Sample(Value),
}

impl Gateway {
    pub(super) async fn test_pipeline(
        &self,
        params: &Params,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Value, ApiError> {
        let pipeline = Arc::new(self.pipeline_to_test(params, headers, body).await?);
        let side_effects = params.flag("sideEffects");
        let (input_kind, event_body) = match test_input(params)? {
            TestInput::Event(id) => {
                let record = self
                    .ports
                    .events
                    .get_event(&id)
                    .await?
                    .ok_or_else(event_not_found)?;
                ("event", record.event.body())
            }
            TestInput::Sample(sample) => ("sample", sample),
        };
        let services = Arc::new(self.test_services(side_effects));
        let limits = RunLimits {
            budget_bytes: self.settings.worker.pipeline_budget_bytes,
            timeout: self.settings.worker.pipeline_timeout,
        };
        // Own task, as in the worker: a panicking command fails this run only.
        let run = tokio::spawn({
            let pipeline = pipeline.clone();
            async move {
                let mut trace = Trace::default();
                let ran = pipeline
                    .run_observed(event_body, &services, limits, Some(&mut trace))
                    .await;
                (ran, trace)
            }
        });
        let (ran, trace) = run.await.unwrap_or_else(|_panicked| {
            let failure = RunFailure {
                code: "internal_error".into(),
                message: "the pipeline stopped unexpectedly".into(),
                step: None,
                transient: false,
            };
            (Err(failure), Trace::default())
        });
        tracing::info!(
            pipeline = %pipeline.name, side_effects, input = input_kind,
            ok = ran.is_ok(), "pipeline tested"
        );
        let mut answer = json!({
            "pipeline": pipeline.name,
            "input": input_kind,
            "sideEffects": side_effects,
            "status": if ran.is_ok() { "ok" } else { "error" },
            "value": Value::Null,
            "steps": trace.into_steps(),
        });
        match ran {
            Ok(value) => answer["value"] = bounded(&value, MAX_TRACE_VALUE_BYTES).0,
            Err(failure) => {
                answer["error"] = json!({
                    "code": failure.code,
                    "message": failure.message,
                    "step": failure.step,
                })
            }
        }
        Ok(answer)
    }

    /// The stored pipeline `name=`, or the YAML given as the `pipeline`
    /// parameter or as a (non-JSON, non-form) request body; exactly one.
    async fn pipeline_to_test(
        &self,
        params: &Params,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Pipeline, ApiError> {
        let input = PipelineInput::from_params(params)?;
        let yaml_body = match media_type(headers) {
            Some(t) if is_json(&t) || t == "application/x-www-form-urlencoded" => None,
            _ if body.is_empty() => None,
            _ => Some(String::from_utf8(body.to_vec()).map_err(|_| {
                ApiError::bad_request("invalid_pipeline", "the pipeline is not UTF-8 text")
            })?),
        };
        let yaml = input.pipeline.clone().or(yaml_body);
        match (&input.name, yaml) {
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "pipeline_ambiguous",
                "give either name (a stored pipeline) or the pipeline's YAML, not both",
            )),
            (None, None) => Err(ApiError::bad_request(
                "pipeline_missing",
                "give name (a stored pipeline), or the pipeline's YAML as the body or the 'pipeline' parameter",
            )),
            (None, Some(source)) => self.compile_pipeline(GIVEN_PIPELINE_NAME, &source),
            (Some(name), None) => {
                let stored = self.existing_pipeline(name).await?;
                self.compile_pipeline(name, &stored.source)
            }
        }
    }

    /// The run's services: a dry run's mailer and outgoing service unless
    /// `side_effects`, and never an effect log. A test is a one-off request,
    /// not a job that is delivered again, and it must neither spend nor find
    /// the claims (mail) and derived invocation ids (`webhook.send`) of the
    /// event's real run: so every run with side effects sends.
    fn test_services(&self, side_effects: bool) -> Services {
        let (mailer, outgoing) = if side_effects {
            (self.mailer.clone(), self.outgoing.clone())
        } else {
            let mailer: Arc<dyn crate::ports::Mailer> = Arc::new(DryRunMailer);
            (Some(mailer), Arc::new(self.outgoing.dry_run()))
        };
        Services {
            users: self.settings.users.clone(),
            mailer,
            mail_from: self.settings.mail_from.clone(),
            outgoing: Some(outgoing),
            effects: None,
        }
    }
}

/// `correlationId=` (a stored event) or `sample` (a body); exactly one.
/// `sample` is any JSON value: a field of a JSON body, or JSON text as a
/// query or form parameter.
fn test_input(params: &Params) -> Result<TestInput, ApiError> {
    let sample = match params.json_body().and_then(|body| body.get("sample")) {
        Some(Value::Null) => None,
        Some(value) => Some(value.clone()),
        None => params
            .get("sample")
            .map(|text| {
                parse_json_body(text.as_bytes()).map_err(|e| {
                    ApiError::bad_request("invalid_sample", format!("sample: {}", e.message))
                })
            })
            .transpose()?,
    };
    let correlation_id = params.get("correlationId");
    match (correlation_id, sample) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "input_ambiguous",
            "give either correlationId (a stored event) or sample (a body), not both",
        )),
        (None, None) => Err(ApiError::bad_request(
            "input_missing",
            "give correlationId (a stored event) or sample (the body the pipeline starts with)",
        )),
        (None, Some(sample)) => Ok(TestInput::Sample(sample)),
        // An id that cannot be an event's names none.
        (Some(id), None) => CorrelationId::parse(id)
            .map(TestInput::Event)
            .ok_or_else(event_not_found),
    }
}
