//! [`JobQueue`] on SQS: one message per job, sent in batches of ten.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};

use super::unavailable;
use crate::domain::Job;
use crate::error::StoreError;
use crate::ports::{Delivery, JobQueue, StoreResult};

/// SQS's longest visibility timeout.
const SQS_MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// Longest delay [`SqsJobQueue::release_job`] sets. SQS counts its 12 hours from
/// the receive and refuses a change past them, so the delay leaves room for the
/// longest a job is held between its receive and its release: a Lambda runs at
/// most 15 minutes, and so does a pipeline run in `serve`
/// (`HOOKFLOW_PIPELINE_TIMEOUT_MS`); an outgoing attempt takes at most 10. A
/// job released for longer comes back early and is released again for the rest
/// (an outgoing delivery keeps its `nextAttemptAt` for that).
pub const MAX_RELEASE_DELAY: Duration = Duration::from_secs(SQS_MAX_VISIBILITY.as_secs() - 20 * 60);

/// The job queue of the AWS shape.
pub struct SqsJobQueue {
    pub(super) client: Client,
    pub(super) queue_url: String,
    pub(super) dead_letter_queue_url: Option<String>,
}

/// The message attribute that tells an operator why a job was dead-lettered.
pub const DEAD_LETTER_REASON_ATTRIBUTE: &str = "hookflow-dead-letter-reason";
/// The message attribute that keeps how many times a dead-lettered job was
/// handed out (the dead-letter queue counts its own receives from zero).
pub const DEAD_LETTER_RECEIVE_COUNT_ATTRIBUTE: &str = "hookflow-receive-count";

impl SqsJobQueue {
    pub fn new(client: Client, queue_url: &str) -> Self {
        SqsJobQueue {
            client,
            queue_url: queue_url.to_owned(),
            dead_letter_queue_url: None,
        }
    }

    /// Dead-lettered jobs go to `url` (see [`JobQueue::dead_letter_job`]).
    pub fn with_dead_letter_queue(mut self, url: Option<String>) -> Self {
        self.dead_letter_queue_url = url;
        self
    }

    /// Sends the messages as they are, in batches of ten; all or an error.
    pub(super) async fn send_bodies(&self, bodies: &[String]) -> StoreResult<()> {
        for chunk in bodies.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, body) in chunk.iter().enumerate() {
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(StoreError::unavailable)?,
                );
            }
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(unavailable)?;
            if !sent.failed.is_empty() {
                // The caller answers 503 and the sender retries; jobs sent in
                // this call may then run twice, which outcomes tolerate.
                return Err(StoreError::unavailable(format!(
                    "SQS refused {} of {} messages",
                    sent.failed.len(),
                    chunk.len()
                )));
            }
        }
        Ok(())
    }
}

/// SQS counts whole seconds; round up so a delay is never shorter than asked.
fn whole_seconds(d: Duration, max: Duration) -> i32 {
    let secs = d.as_millis().div_ceil(1000) as u64;
    secs.min(max.as_secs()) as i32
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn send_jobs(&self, jobs: &[Job]) -> StoreResult<()> {
        let bodies = jobs
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::unavailable)?;
        self.send_bodies(&bodies).await
    }

    async fn receive_jobs(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> StoreResult<Vec<Delivery>> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            // Whole seconds, rounded down: a short wait becomes a short poll.
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .visibility_timeout(whole_seconds(visibility, SQS_MAX_VISIBILITY))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(received
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|message| Delivery {
                receive_count: message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                body: message.body.unwrap_or_default(),
                receipt: message.receipt_handle.unwrap_or_default(),
            })
            .collect())
    }

    async fn delete_job(&self, receipt: &str) -> StoreResult<()> {
        match self
            .client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // A receipt of an older delivery: the message lives on elsewhere; nothing to do.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_receipt_handle_is_invalid()) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    fn receive_outlives_its_caller(&self) -> bool {
        true
    }

    async fn release_job(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        let changed = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(whole_seconds(delay, MAX_RELEASE_DELAY))
            .send()
            .await;
        match changed {
            Ok(_) => Ok(()),
            Err(err)
                if err.as_service_error().is_some_and(|e| {
                    e.is_message_not_inflight() || e.is_receipt_handle_is_invalid()
                }) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    /// Sends the message to the dead-letter queue with its reason, then deletes
    /// it here. Not atomic: if the delete fails the message comes back, is
    /// dead-lettered again, and the dead-letter queue holds it twice (never
    /// none). Without a dead-letter queue URL it fails, and the message is left
    /// to the queue's redrive policy.
    async fn dead_letter_job(&self, delivery: &Delivery, reason: &str) -> StoreResult<()> {
        let Some(dead_letters) = &self.dead_letter_queue_url else {
            return Err(StoreError::Unavailable(
                "HOOKFLOW_DEAD_LETTER_QUEUE_URL is not set: the queue's redrive policy will move the job"
                    .into(),
            ));
        };
        let reason: String = reason.chars().take(1000).collect();
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason)
            .build()
            .map_err(StoreError::unavailable)?;
        let receive_count = MessageAttributeValue::builder()
            .data_type("Number")
            .string_value(delivery.receive_count.to_string())
            .build()
            .map_err(StoreError::unavailable)?;
        self.client
            .send_message()
            .queue_url(dead_letters)
            .message_body(&delivery.body)
            .message_attributes(DEAD_LETTER_REASON_ATTRIBUTE, attribute)
            .message_attributes(DEAD_LETTER_RECEIVE_COUNT_ATTRIBUTE, receive_count)
            .send()
            .await
            .map_err(unavailable)?;
        self.delete_job(&delivery.receipt).await
    }
}
