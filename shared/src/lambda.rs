//! What the Lambda functions mount: SQS batches handed to the worker, and (from
//! `api::lambda`) API Gateway events handed to the router. Their start-up is
//! `wiring::FunctionContext`.

use std::panic::AssertUnwindSafe;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::FutureExt;

pub use crate::api::lambda::handle_http;
use crate::pipeline::worker::{Acknowledge, Worker, settle};
use crate::ports::{Delivery, JobQueue};

/// Runs the worker on one SQS batch. Messages that finished are left to Lambda to
/// delete; the others are reported as failures (partial batch response), after
/// their visibility was set to the retry delay. Nothing is deleted on failure.
/// A message whose processing panics is reported as failed, and the others
/// carry on (the release profile unwinds; see Cargo.toml).
pub async fn handle_sqs(
    worker: &Worker,
    queue: &dyn JobQueue,
    event: SqsEvent,
) -> SqsBatchResponse {
    let runs = event.records.into_iter().map(|message| async move {
        let id = message.message_id.clone().unwrap_or_default();
        let finished = AssertUnwindSafe(process_message(worker, queue, message))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(message_id = %id, "processing a job panicked; it comes back for a retry");
                false
            });
        (id, finished)
    });
    let mut response = SqsBatchResponse::default();
    for (id, finished) in futures_util::future::join_all(runs).await {
        if !finished {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    crate::metrics::emf::flush_invocation();
    response
}

/// True when the message is done with (finished or dead-lettered); the event
/// source mapping deletes those, and hands the others out again.
async fn process_message(worker: &Worker, queue: &dyn JobQueue, message: SqsMessage) -> bool {
    let delivery = Delivery {
        body: message.body.unwrap_or_default(),
        receipt: message.receipt_handle.unwrap_or_default(),
        receive_count: message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
    };
    let disposition = worker.handle(&delivery).await;
    settle(queue, &delivery, disposition, Acknowledge::ByTheCaller).await
}
