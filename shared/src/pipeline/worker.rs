//! The worker: runs one pipeline for one event per queued job and records the
//! outcome, idempotently. The same [`Worker::process`] serves the in-process
//! queue loop of `hookflow serve` and (later) the SQS-triggered Lambda.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use super::budget::RunLimits;
use super::commands::Services;
use super::{Pipeline, RunFailure};
use crate::compile_cache::CompileCache;
use crate::domain::{Job, PipelineJob, PipelineOutcome, RunFacts};
use crate::error::StoreError;
use crate::limits::MAX_OUTCOME_BYTES;
use crate::metrics;
use crate::ports::{
    Delivery, Disposition, EventStore, JobQueue, PipelineStore, Ports, ResultSignal,
};

/// How the worker retries and bounds runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Deliveries of one job before a transient failure becomes its final outcome.
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt, with ±20 % jitter, at most 5 minutes.
    pub retry_base: Duration,
    /// Longest one run may take; past it the run counts as a transient failure.
    pub pipeline_timeout: Duration,
    /// Bytes the values of one run may take, all steps together.
    pub pipeline_budget_bytes: usize,
}

/// The most deliveries of any message; the worker dead-letters it past them
/// (the SQS queue's redrive policy does the same). Pipeline jobs end long
/// before (`HOOKFLOW_MAX_ATTEMPTS`), asynchronous outgoing deliveries after
/// their retry schedule (at most 21 attempts); this bounds a delivery whose
/// attempts keep ending the process, which its schedule never sees.
pub const MAX_RECEIVES: u32 = 25;

/// The outcome of a job that was handed out more than `HOOKFLOW_MAX_ATTEMPTS`
/// times without finishing: each run ended the process (an abort, the OOM
/// killer, a Lambda timeout) before it could record anything.
const ENDED_THE_PROCESS: &str = "the run ended the process";

/// The ports a worker uses: the events it runs on and records outcomes of, the
/// pipelines it runs, and the signal that wakes callers waiting on a result.
/// (Mail and outgoing webhooks come with its [`Services`]; the queue it takes
/// jobs from is the caller's.)
#[derive(Clone)]
pub struct WorkerPorts {
    pub events: Arc<dyn EventStore>,
    pub pipelines: Arc<dyn PipelineStore>,
    pub signal: Arc<dyn ResultSignal>,
}

impl From<&Ports> for WorkerPorts {
    fn from(ports: &Ports) -> Self {
        WorkerPorts {
            events: ports.events.clone(),
            pipelines: ports.pipelines.clone(),
            signal: ports.signal.clone(),
        }
    }
}

/// Runs pipelines for queued jobs.
pub struct Worker {
    ports: WorkerPorts,
    services: Arc<Services>,
    settings: WorkerSettings,
    compiled: CompileCache<Pipeline>,
}

/// Delay before retrying after the storage itself failed.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// How long one receive of [`Worker::run_queue`] waits for a job. A stopping
/// worker lets a receive that outlives its caller finish (see
/// [`JobQueue::receive_outlives_its_caller`]), so this also bounds how long
/// stopping takes.
pub const QUEUE_POLL_WAIT: Duration = Duration::from_secs(5);

impl Worker {
    /// A worker over `ports`.
    pub fn new(ports: WorkerPorts, services: Arc<Services>, settings: WorkerSettings) -> Self {
        Worker {
            ports,
            services,
            settings,
            compiled: CompileCache::default(),
        }
    }

    /// The one policy for a delivered message, whatever the queue (SQLite, SQS
    /// under `serve`, SQS under Lambda): read it, run it, say what becomes of it.
    pub async fn handle(&self, delivery: &Delivery) -> Disposition {
        match delivery.job() {
            Ok(job) => self.process(&job, delivery.receive_count).await,
            // No run can read it later either; kept for an operator, not retried.
            Err(reason) => Disposition::DeadLetter(format!("unreadable message: {reason}")),
        }
    }

    /// Processes one queue message; `attempt` counts its deliveries, from 1.
    pub async fn process(&self, job: &Job, attempt: u32) -> Disposition {
        match job {
            Job::Pipeline(job) => self.run_pipeline(job, attempt).await,
            Job::Delivery(delivery) => match &self.services.outgoing {
                Some(outgoing) if attempt > MAX_RECEIVES => {
                    let reason = format!(
                        "handed out {attempt} times without finishing ({ENDED_THE_PROCESS})"
                    );
                    outgoing
                        .abandon(&delivery.reference_id, ENDED_THE_PROCESS)
                        .await
                        .then_dead_letter(reason)
                }
                Some(outgoing) => outgoing.deliver(&delivery.reference_id).await,
                None => {
                    // Only a misconfigured deployment gets here; keep the message.
                    tracing::error!("a delivery job arrived but outgoing webhooks are not set up");
                    Disposition::RetryAfter(STORE_RETRY)
                }
            },
        }
    }

    /// Runs one pipeline for one event; `attempt` counts deliveries, from 1.
    async fn run_pipeline(&self, job: &PipelineJob, attempt: u32) -> Disposition {
        let id = job.correlation_id;
        match self.ports.events.get_result(&id).await {
            Err(err) => return store_failed(&err),
            // Expired or never stored: nothing to run for, nobody to answer.
            Ok(None) => return Disposition::Done,
            // A redelivery of a job that already finished: never run twice.
            Ok(Some(result)) if result.outcomes.contains_key(&job.pipeline) => {
                return Disposition::Done;
            }
            Ok(Some(_)) => {}
        }
        // The attempt was counted when the job was handed out, before any run:
        // a job past its attempts here is one whose runs never came back.
        if attempt > self.settings.max_attempts {
            tracing::error!(
                pipeline = %job.pipeline, correlation_id = %id, attempt,
                "a job kept ending the process; dead-lettered"
            );
            let outcome = PipelineOutcome::Error {
                code: "internal_error".into(),
                message: ENDED_THE_PROCESS.into(),
                step: None,
                run: None,
            };
            return self
                .record(job, outcome, None)
                .await
                .then_dead_letter(format!(
                    "handed out {attempt} times without finishing ({ENDED_THE_PROCESS})"
                ));
        }
        let event = match self.ports.events.get_event(&id).await {
            Ok(Some(record)) => record.event,
            Ok(None) => return Disposition::Done,
            Err(StoreError::Corrupt(detail)) => {
                tracing::error!(correlation_id = %id, %detail, "stored event unreadable; dead-lettered");
                let outcome = PipelineOutcome::Error {
                    code: "internal_error".into(),
                    message: "the stored event could not be read".into(),
                    step: None,
                    run: None,
                };
                return self
                    .record(job, outcome, None)
                    .await
                    .then_dead_letter(format!("stored event unreadable: {detail}"));
            }
            Err(err) => return store_failed(&err),
        };
        let pipeline = match self.pipeline(&job.pipeline).await {
            Ok(Some(pipeline)) => pipeline,
            Ok(None) => {
                let outcome = PipelineOutcome::Error {
                    code: "pipeline_not_found".into(),
                    message: format!(
                        "pipeline '{}' was deleted or does not compile",
                        job.pipeline
                    ),
                    step: None,
                    run: None,
                };
                return self.record(job, outcome, None).await;
            }
            Err(err) => return store_failed(&err),
        };

        // Own task: a panic in a command fails this job only, never the worker.
        // The run keeps its own deadline (steps and long evaluations check it,
        // waits on the outside end at it), so a timeout names its step.
        let services = self.services.clone();
        let limits = RunLimits {
            budget_bytes: self.settings.pipeline_budget_bytes,
            timeout: self.settings.pipeline_timeout,
        };
        let body = event.body();
        let started = std::time::Instant::now();
        let run = tokio::spawn(async move { pipeline.run(body, &services, limits).await });
        let ran = run.await;
        let elapsed = started.elapsed();
        let facts = RunFacts {
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            attempts: attempt,
        };
        let failure = match ran {
            Ok(Ok(value)) => {
                metrics::pipeline_ran("ok", elapsed);
                let outcome = PipelineOutcome::Ok { value, run: None };
                return self.record(job, outcome, Some(facts)).await;
            }
            Ok(Err(failure)) => failure,
            Err(_panicked) => RunFailure {
                code: "internal_error".into(),
                message: "the pipeline stopped unexpectedly".into(),
                step: None,
                transient: false,
            },
        };
        tracing::info!(
            pipeline = %job.pipeline, correlation_id = %id, code = %failure.code, attempt,
            transient = failure.transient, "pipeline failed"
        );
        if failure.transient && attempt < self.settings.max_attempts {
            metrics::pipeline_ran("retry", elapsed);
            return Disposition::RetryAfter(self.backoff(attempt));
        }
        metrics::pipeline_ran("error", elapsed);
        let message = if failure.transient {
            format!("{} (gave up after {attempt} attempts)", failure.message)
        } else {
            failure.message
        };
        let outcome = PipelineOutcome::Error {
            code: failure.code,
            message,
            step: failure.step,
            run: None,
        };
        self.record(job, outcome, Some(facts)).await
    }

    /// Records the outcome (first write wins) and wakes whoever waits for it. An
    /// outcome larger than [`MAX_OUTCOME_BYTES`] is recorded as a small
    /// `result_too_large` error instead, so the result still ends. `facts`, of
    /// the run that ended it, go with it (not counted in the result's size).
    async fn record(
        &self,
        job: &PipelineJob,
        outcome: PipelineOutcome,
        facts: Option<RunFacts>,
    ) -> Disposition {
        let size = serde_json::to_vec(&outcome).map_or(usize::MAX, |json| json.len());
        let outcome = if size > MAX_OUTCOME_BYTES {
            tracing::warn!(
                pipeline = %job.pipeline, correlation_id = %job.correlation_id, size,
                "pipeline result too large to keep"
            );
            PipelineOutcome::Error {
                code: "result_too_large".into(),
                message: format!(
                    "the pipeline's result ({size} bytes as JSON) is larger than the {MAX_OUTCOME_BYTES} bytes a result may hold"
                ),
                step: None,
                run: None,
            }
        } else {
            outcome
        };
        let outcome = match facts {
            Some(facts) => outcome.with_run(facts),
            None => outcome,
        };
        match self
            .ports
            .events
            .record_outcome(&job.correlation_id, &job.pipeline, &outcome)
            .await
        {
            Ok(_) => {
                self.ports.signal.notify(&job.correlation_id);
                Disposition::Done
            }
            Err(StoreError::NotFound) => Disposition::Done,
            Err(err) => store_failed(&err),
        }
    }

    /// The compiled pipeline, recompiled only when it changed.
    async fn pipeline(&self, name: &str) -> Result<Option<Arc<Pipeline>>, StoreError> {
        let Some(definition) = self.ports.pipelines.get_pipeline(name).await? else {
            return Ok(None);
        };
        let compiled = self
            .compiled
            .get_or_compile(name, definition.updated_at, || {
                Pipeline::compile(name, &definition.source, &self.services.users)
            });
        match compiled {
            Ok(pipeline) => Ok(Some(pipeline)),
            // Stored pipelines were checked when put; this happens only when the
            // configuration (users) changed since.
            Err(err) => {
                tracing::warn!(pipeline = name, error = %err, "stored pipeline no longer compiles");
                Ok(None)
            }
        }
    }

    /// `retry_base × 2^(attempt-1)`, ±20 % jitter, at most 5 minutes.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .settings
            .retry_base
            .mul_f64(2f64.powi(attempt.saturating_sub(1).min(20) as i32))
            .min(Duration::from_secs(3600));
        crate::random::jittered(exponential, 0.2).min(Duration::from_secs(300))
    }

    /// Pulls jobs from `queue` and runs up to `concurrency` at once, until `stop`
    /// turns true. A job not finished (crash, retry) stays in the queue.
    pub async fn run_queue(
        self: Arc<Self>,
        queue: Arc<dyn JobQueue>,
        concurrency: usize,
        visibility: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        loop {
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("semaphore open"),
                _ = stop.wait_for(|s| *s) => return,
            };
            let free = 1 + slots.available_permits();
            let receiving = queue.receive_jobs(free.min(10), QUEUE_POLL_WAIT, visibility);
            tokio::pin!(receiving);
            let received = tokio::select! {
                received = &mut receiving => Some(received),
                _ = stop.wait_for(|s| *s) => None,
            };
            let Some(received) = received else {
                if queue.receive_outlives_its_caller() {
                    hand_back(queue.as_ref(), receiving.await).await;
                }
                return;
            };
            let deliveries = match received {
                Ok(deliveries) => deliveries,
                Err(err) => {
                    tracing::error!(error = %err, "receiving jobs failed");
                    tokio::time::sleep(STORE_RETRY).await;
                    continue;
                }
            };
            let mut first = Some(first);
            for delivery in deliveries {
                let permit = match first.take() {
                    Some(permit) => permit,
                    None => slots.clone().acquire_owned().await.expect("semaphore open"),
                };
                let worker = self.clone();
                let queue = queue.clone();
                tokio::spawn(async move {
                    let disposition = worker.handle(&delivery).await;
                    settle(queue.as_ref(), &delivery, disposition, Acknowledge::Delete).await;
                    drop(permit);
                });
            }
        }
    }
}

impl Disposition {
    /// After recording a pipeline job's error outcome: dead-letter the job once
    /// the outcome is stored (else retry, so no result stays `processing`).
    pub(crate) fn then_dead_letter(self, reason: String) -> Disposition {
        match self {
            Disposition::Done => Disposition::DeadLetter(reason),
            retry_or_other => retry_or_other,
        }
    }
}

/// Who deletes a finished message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledge {
    /// The worker's own queue loop: [`settle`] deletes it.
    Delete,
    /// An SQS event source mapping deletes the messages a Lambda reports done.
    ByTheCaller,
}

/// Carries out `disposition` on the queue. True when the message is done with
/// (finished or dead-lettered); false when it comes back (a retry, or settling
/// failed and it reappears after its visibility timeout).
pub async fn settle(
    queue: &dyn JobQueue,
    delivery: &Delivery,
    disposition: Disposition,
    acknowledge: Acknowledge,
) -> bool {
    let (settled, finished) = match disposition {
        Disposition::Done if acknowledge == Acknowledge::ByTheCaller => (Ok(()), true),
        Disposition::Done => (queue.delete_job(&delivery.receipt).await, true),
        Disposition::RetryAfter(delay) => {
            (queue.release_job(&delivery.receipt, delay).await, false)
        }
        Disposition::DeadLetter(reason) => {
            tracing::warn!(receive_count = delivery.receive_count, %reason, "job dead-lettered");
            metrics::job_dead_lettered();
            (queue.dead_letter_job(delivery, &reason).await, true)
        }
    };
    match settled {
        Ok(()) => finished,
        Err(err) => {
            // The message comes back after its visibility timeout, and the same
            // policy decides again.
            tracing::warn!(error = %err, "settling a job on the queue failed");
            false
        }
    }
}

/// Makes what a receive brought after the worker stopped visible again at once,
/// for the next process, instead of hidden for the visibility timeout.
async fn hand_back(queue: &dyn JobQueue, received: Result<Vec<Delivery>, StoreError>) {
    for delivery in received.unwrap_or_default() {
        if let Err(err) = queue.release_job(&delivery.receipt, Duration::ZERO).await {
            tracing::warn!(error = %err, "handing back a job on stop failed");
        }
    }
}

fn store_failed(err: &StoreError) -> Disposition {
    tracing::error!(error = %err, "storage failed while processing a job");
    Disposition::RetryAfter(STORE_RETRY)
}
