//! Stand-ins for adapters a build or a function leaves out, so that a Lambda
//! function links only what its routes use and the rest of the core need not
//! know: [`NoHttpClient`] and [`NO_QUEUE`] for a feature the build lacks,
//! [`UNMOUNTED`] for a port none of the function's routes uses. Each refuses
//! every call, saying why; none is reachable through the routes the SAM
//! template gives that function.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::dedup::{Admission, DedupClaim};
use crate::domain::eventlog::{EventPage, EventQuery};
use crate::domain::outgoing::{Invocation, OutgoingWebhook, ReferenceId};
use crate::domain::rotation::Rotation;
use crate::domain::verify::Refusals;
use crate::domain::{
    CorrelationId, EventKey, EventRecord, Job, PipelineDefinition, PipelineJob, Timestamp, Token,
    Webhook,
};
use crate::error::StoreError;
use crate::ports::{
    CallError, DeadLetterPage, DeadLetters, Delivery, EventIntake, EventLog, InvocationStore,
    JobQueue, LoggedEvent, OutgoingRequest, OutgoingResponse, OutgoingStore, PipelineStore,
    QueueDepth, QueueDepthGauge, Redriven, StoreResult, Transport, WebhookStore,
};

/// The transport of a build without an HTTP client (feature `http-client`):
/// every call fails as unreachable.
pub struct NoHttpClient;

#[async_trait]
impl Transport for NoHttpClient {
    async fn call(&self, _request: OutgoingRequest) -> Result<OutgoingResponse, CallError> {
        Err(CallError::Unreachable(
            "this build has no HTTP client (feature http-client)".into(),
        ))
    }
}

/// A store or queue that is not there, refusing every call as unavailable
/// with the reason it is not.
pub struct Refuses {
    why: &'static str,
}

/// The job queue of an AWS build without SQS (feature `aws-sqs`, which
/// `result-poll` does without).
pub const NO_QUEUE: Refuses = Refuses {
    why: "this build has no job queue (feature aws-sqs)",
};

/// A port that none of a Lambda function's routes uses: the composition root
/// gives each function only the adapters its routes call, so that it links
/// no other.
pub const UNMOUNTED: Refuses = Refuses {
    why: "this function's routes do not use this store",
};

impl Refuses {
    fn refuse<T>(&self) -> StoreResult<T> {
        Err(StoreError::unavailable(self.why))
    }
}

#[async_trait]
impl WebhookStore for Refuses {
    async fn insert_webhook(&self, _webhook: &Webhook) -> StoreResult<()> {
        self.refuse()
    }
    async fn update_webhook(&self, _webhook: &Webhook) -> StoreResult<()> {
        self.refuse()
    }
    async fn get_by_token(&self, _token: &Token) -> StoreResult<Option<Webhook>> {
        self.refuse()
    }
    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.refuse()
    }
    async fn delete_webhook(&self, _token: &Token) -> StoreResult<bool> {
        self.refuse()
    }
    async fn rotate_token(&self, _current: &Token, _rotation: &Rotation) -> StoreResult<Webhook> {
        self.refuse()
    }
    async fn record_refusal(&self, _token: &Token, _code: &str, _at: Timestamp) -> StoreResult<()> {
        self.refuse()
    }
    async fn refusals(&self, _token: &Token) -> StoreResult<Option<Refusals>> {
        self.refuse()
    }
    async fn ping(&self) -> StoreResult<()> {
        self.refuse()
    }
}

#[async_trait]
impl EventLog for Refuses {
    async fn list_events(&self, _query: &EventQuery) -> StoreResult<EventPage> {
        self.refuse()
    }
    async fn logged_event(&self, _id: &CorrelationId) -> StoreResult<Option<LoggedEvent>> {
        self.refuse()
    }
}

#[async_trait]
impl EventIntake for Refuses {
    async fn accept(
        &self,
        _record: &EventRecord,
        _jobs: &[PipelineJob],
        _claim: Option<&DedupClaim>,
    ) -> StoreResult<Admission> {
        self.refuse()
    }
}

#[async_trait]
impl PipelineStore for Refuses {
    async fn put_pipeline(&self, _pipeline: &PipelineDefinition) -> StoreResult<()> {
        self.refuse()
    }
    async fn get_pipeline(&self, _name: &str) -> StoreResult<Option<PipelineDefinition>> {
        self.refuse()
    }
    async fn list_pipelines(&self) -> StoreResult<Vec<PipelineDefinition>> {
        self.refuse()
    }
    async fn delete_pipeline(&self, _name: &str) -> StoreResult<bool> {
        self.refuse()
    }
    async fn listeners_of(&self, _key: &EventKey) -> StoreResult<Vec<String>> {
        self.refuse()
    }
}

#[async_trait]
impl OutgoingStore for Refuses {
    async fn put_outgoing(&self, _webhook: &OutgoingWebhook) -> StoreResult<()> {
        self.refuse()
    }
    async fn get_outgoing(&self, _id: &str) -> StoreResult<Option<OutgoingWebhook>> {
        self.refuse()
    }
    async fn list_outgoing(&self) -> StoreResult<Vec<OutgoingWebhook>> {
        self.refuse()
    }
    async fn delete_outgoing(&self, _id: &str) -> StoreResult<bool> {
        self.refuse()
    }
}

#[async_trait]
impl InvocationStore for Refuses {
    async fn put_invocation(&self, _invocation: &Invocation) -> StoreResult<()> {
        self.refuse()
    }
    async fn get_invocation(&self, _id: &ReferenceId) -> StoreResult<Option<Invocation>> {
        self.refuse()
    }
    async fn list_invocations(
        &self,
        _webhook_id: &str,
        _limit: usize,
    ) -> StoreResult<Vec<Invocation>> {
        self.refuse()
    }
}

#[async_trait]
impl JobQueue for Refuses {
    async fn send_jobs(&self, _jobs: &[Job]) -> StoreResult<()> {
        self.refuse()
    }
    async fn receive_jobs(
        &self,
        _max: usize,
        _wait: Duration,
        _visibility: Duration,
    ) -> StoreResult<Vec<Delivery>> {
        self.refuse()
    }
    async fn delete_job(&self, _receipt: &str) -> StoreResult<()> {
        self.refuse()
    }
    async fn release_job(&self, _receipt: &str, _delay: Duration) -> StoreResult<()> {
        self.refuse()
    }
    async fn dead_letter_job(&self, _delivery: &Delivery, _reason: &str) -> StoreResult<()> {
        self.refuse()
    }
}

#[async_trait]
impl QueueDepthGauge for Refuses {
    async fn queue_depth(&self) -> StoreResult<QueueDepth> {
        self.refuse()
    }
}

#[async_trait]
impl DeadLetters for Refuses {
    async fn list_dead_letters(&self, _limit: usize) -> StoreResult<DeadLetterPage> {
        self.refuse()
    }
    async fn redrive_dead_letter(&self, _id: &str) -> StoreResult<bool> {
        self.refuse()
    }
    async fn redrive_all_dead_letters(&self) -> StoreResult<Redriven> {
        self.refuse()
    }
    async fn delete_dead_letter(&self, _id: &str) -> StoreResult<bool> {
        self.refuse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stand_ins_refuse_every_call_naming_the_missing_feature() {
        let err = NO_QUEUE.send_jobs(&[]).await.unwrap_err();
        assert!(err.to_string().contains("aws-sqs"), "{err}");
        let request = OutgoingRequest {
            method: http::Method::GET,
            url: "http://127.0.0.1/".into(),
            headers: Default::default(),
            body: Default::default(),
        };
        let err = NoHttpClient.call(request).await.unwrap_err();
        assert!(matches!(err, CallError::Unreachable(m) if m.contains("http-client")));
        let token = Token::parse("a29a4f16-989d-48c8-ab54-7b6150733ba1").unwrap();
        let err = UNMOUNTED.get_by_token(&token).await.unwrap_err();
        assert!(err.to_string().contains("routes do not use"), "{err}");
        let err = UNMOUNTED.send_jobs(&[]).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    }
}
