//! Stand-ins for adapters a build leaves out (see the crate's features), so
//! that a Lambda function links only what its route uses and the rest of the
//! core need not know. Each refuses every call with the feature it lacks; none
//! is reachable through the routes the SAM template gives that function.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Job;
use crate::error::StoreError;
use crate::ports::{
    CallError, DeadLetterPage, DeadLetters, Delivery, JobQueue, OutgoingRequest, OutgoingResponse,
    QueueDepth, QueueDepthGauge, Redriven, StoreResult, Transport,
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

/// The job queue of an AWS build without SQS (feature `aws-sqs`, which
/// `result-poll` does without): every call fails as unavailable.
pub struct NoQueue;

fn no_queue<T>() -> StoreResult<T> {
    Err(StoreError::unavailable(
        "this build has no job queue (feature aws-sqs)",
    ))
}

#[async_trait]
impl JobQueue for NoQueue {
    async fn send_jobs(&self, _jobs: &[Job]) -> StoreResult<()> {
        no_queue()
    }
    async fn receive_jobs(
        &self,
        _max: usize,
        _wait: Duration,
        _visibility: Duration,
    ) -> StoreResult<Vec<Delivery>> {
        no_queue()
    }
    async fn delete_job(&self, _receipt: &str) -> StoreResult<()> {
        no_queue()
    }
    async fn release_job(&self, _receipt: &str, _delay: Duration) -> StoreResult<()> {
        no_queue()
    }
    async fn dead_letter_job(&self, _delivery: &Delivery, _reason: &str) -> StoreResult<()> {
        no_queue()
    }
}

#[async_trait]
impl QueueDepthGauge for NoQueue {
    async fn queue_depth(&self) -> StoreResult<QueueDepth> {
        no_queue()
    }
}

#[async_trait]
impl DeadLetters for NoQueue {
    async fn list_dead_letters(&self, _limit: usize) -> StoreResult<DeadLetterPage> {
        no_queue()
    }
    async fn redrive_dead_letter(&self, _id: &str) -> StoreResult<bool> {
        no_queue()
    }
    async fn redrive_all_dead_letters(&self) -> StoreResult<Redriven> {
        no_queue()
    }
    async fn delete_dead_letter(&self, _id: &str) -> StoreResult<bool> {
        no_queue()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stand_ins_refuse_every_call_naming_the_missing_feature() {
        let err = NoQueue.send_jobs(&[]).await.unwrap_err();
        assert!(err.to_string().contains("aws-sqs"), "{err}");
        let request = OutgoingRequest {
            method: http::Method::GET,
            url: "http://127.0.0.1/".into(),
            headers: Default::default(),
            body: Default::default(),
        };
        let err = NoHttpClient.call(request).await.unwrap_err();
        assert!(matches!(err, CallError::Unreachable(m) if m.contains("http-client")));
    }
}
