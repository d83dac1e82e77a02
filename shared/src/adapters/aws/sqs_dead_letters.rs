//! [`DeadLetters`] on the SQS dead-letter queue.
//!
//! SQS has no way to read a queue without receiving from it, and a received
//! message is hidden for its visibility timeout. So every look is a scan: up
//! to [`MAX_DEAD_LETTER_RECEIVES`] receives of at most ten messages, each
//! hidden for [`SCAN_VISIBILITY_SECONDS`] so the next receive steps past it,
//! and what the scan did not take out is made visible again at once
//! (ChangeMessageVisibility 0). Nothing is lost; a scan that dies midway
//! leaves what it saw hidden for at most [`SCAN_VISIBILITY_SECONDS`], and two
//! scans at once each see only part. In a queue of more than about ten times
//! [`MAX_DEAD_LETTER_RECEIVES`] messages a list is partial and a dead letter
//! may not be found by its id until others are redriven or deleted.

use std::collections::HashSet;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName,
};

use super::sqs::{DEAD_LETTER_REASON_ATTRIBUTE, DEAD_LETTER_RECEIVE_COUNT_ATTRIBUTE};
use super::{SqsJobQueue, unavailable};
use crate::domain::Timestamp;
use crate::error::StoreError;
use crate::ports::{
    DeadLetter, DeadLetterPage, DeadLetters, MAX_REDRIVE_PER_CALL, QueueDepth, QueueDepthGauge,
    Redriven, StoreResult,
};

/// Most receives one list, redrive or delete makes on the dead-letter queue
/// (SQS answers at most ten messages to each).
pub const MAX_DEAD_LETTER_RECEIVES: usize = 25;

/// How long a scan hides each message it received, so the next receive of the
/// same scan answers others.
const SCAN_VISIBILITY_SECONDS: i32 = 30;

/// A receive waits this long when the queue looks empty: a long poll asks
/// every SQS server, where a short one samples some and can miss messages.
const SCAN_WAIT_SECONDS: i32 = 1;

/// What one scan received, in the order received.
struct Scan {
    messages: Vec<Message>,
    /// A receive came back empty: the scan saw every visible message.
    exhausted: bool,
}

impl SqsJobQueue {
    fn dead_letter_queue(&self) -> StoreResult<&str> {
        self.dead_letter_queue_url.as_deref().ok_or_else(|| {
            StoreError::unavailable(
                "HOOKFLOW_DEAD_LETTER_QUEUE_URL is not set: the dead letters cannot be read",
            )
        })
    }

    /// One receive of up to `max` messages of the dead-letter queue, hidden for
    /// the scan.
    async fn receive_dead(&self, max: usize) -> StoreResult<Vec<Message>> {
        let received = self
            .client
            .receive_message()
            .queue_url(self.dead_letter_queue()?)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(SCAN_WAIT_SECONDS)
            .visibility_timeout(SCAN_VISIBILITY_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names(DEAD_LETTER_REASON_ATTRIBUTE)
            .message_attribute_names(DEAD_LETTER_RECEIVE_COUNT_ATTRIBUTE)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(received.messages.unwrap_or_default())
    }

    /// Receives until the queue is exhausted, the receive bound is reached, or
    /// `enough` says the messages so far suffice.
    async fn scan(&self, enough: impl Fn(&[Message]) -> bool) -> StoreResult<Scan> {
        let mut messages: Vec<Message> = Vec::new();
        let mut seen = HashSet::new();
        for _ in 0..MAX_DEAD_LETTER_RECEIVES {
            let received = match self.receive_dead(10).await {
                Ok(received) => received,
                Err(err) => {
                    self.make_visible(&messages).await;
                    return Err(err);
                }
            };
            if received.is_empty() {
                return Ok(Scan {
                    messages,
                    exhausted: true,
                });
            }
            for message in received {
                // A message whose hiding ran out comes again: keep its newest receipt.
                let id = message.message_id.clone().unwrap_or_default();
                if seen.insert(id.clone()) {
                    messages.push(message);
                } else if let Some(earlier) = messages
                    .iter_mut()
                    .find(|m| m.message_id.as_deref() == Some(id.as_str()))
                {
                    *earlier = message;
                }
            }
            if enough(&messages) {
                break;
            }
        }
        Ok(Scan {
            messages,
            exhausted: false,
        })
    }

    /// Makes scanned messages visible again at once. A failure is only logged:
    /// they reappear by themselves after [`SCAN_VISIBILITY_SECONDS`].
    async fn make_visible(&self, messages: &[Message]) {
        let Ok(queue) = self.dead_letter_queue() else {
            return;
        };
        for chunk in messages.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .set_receipt_handle(m.receipt_handle.clone())
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            let changed = self
                .client
                .change_message_visibility_batch()
                .queue_url(queue)
                .set_entries(Some(entries))
                .send()
                .await;
            match changed {
                Ok(answer) if answer.failed.is_empty() => {}
                Ok(answer) => tracing::warn!(
                    failed = answer.failed.len(),
                    "some scanned dead letters stay hidden until their visibility timeout"
                ),
                Err(err) => tracing::warn!(
                    error = %super::describe_failure(&err),
                    "scanned dead letters stay hidden until their visibility timeout"
                ),
            }
        }
    }

    /// Deletes a received dead letter; a receipt that no longer holds (its
    /// hiding ran out and another scan took it) deletes nothing.
    async fn delete_received(&self, message: &Message) -> StoreResult<()> {
        self.client
            .delete_message()
            .queue_url(self.dead_letter_queue()?)
            .set_receipt_handle(message.receipt_handle.clone())
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Queues a received dead letter again as a fresh message, then deletes it.
    async fn requeue(&self, message: &Message) -> StoreResult<()> {
        self.send_bodies(std::slice::from_ref(
            &message.body.clone().unwrap_or_default(),
        ))
        .await?;
        self.delete_received(message).await
    }

    /// Finds the dead letter with MessageId `id`, makes every other one it saw
    /// visible again, and hands it to `then`; false if the scan did not find it.
    async fn with_found<F, Fut>(&self, id: &str, then: F) -> StoreResult<bool>
    where
        F: FnOnce(Message) -> Fut,
        Fut: Future<Output = StoreResult<()>>,
    {
        let holds = |m: &Message| m.message_id.as_deref() == Some(id);
        let scan = self.scan(|messages| messages.iter().any(holds)).await?;
        let (found, others): (Vec<Message>, Vec<Message>) =
            scan.messages.into_iter().partition(holds);
        self.make_visible(&others).await;
        let Some(found) = found.into_iter().next() else {
            return Ok(false);
        };
        match then(found.clone()).await {
            Ok(()) => Ok(true),
            Err(err) => {
                self.make_visible(std::slice::from_ref(&found)).await;
                Err(err)
            }
        }
    }
}

/// A received dead letter as the port shows it.
fn dead_letter(message: &Message) -> DeadLetter {
    let attribute = |name: &str| {
        message
            .message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
            .map(str::to_owned)
    };
    let sent_at = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    DeadLetter {
        id: message.message_id.clone().unwrap_or_default(),
        body: message.body.clone().unwrap_or_default(),
        reason: attribute(DEAD_LETTER_REASON_ATTRIBUTE),
        receive_count: attribute(DEAD_LETTER_RECEIVE_COUNT_ATTRIBUTE).and_then(|c| c.parse().ok()),
        dead_at: Timestamp(sent_at),
    }
}

#[async_trait]
impl DeadLetters for SqsJobQueue {
    async fn list_dead_letters(&self, limit: usize) -> StoreResult<DeadLetterPage> {
        let scan = self.scan(|messages| messages.len() > limit).await?;
        self.make_visible(&scan.messages).await;
        let mut dead_letters: Vec<DeadLetter> = scan.messages.iter().map(dead_letter).collect();
        dead_letters.sort_by(|a, b| (a.dead_at, &a.id).cmp(&(b.dead_at, &b.id)));
        let partial = !scan.exhausted || dead_letters.len() > limit;
        dead_letters.truncate(limit);
        Ok(DeadLetterPage {
            dead_letters,
            partial,
        })
    }

    async fn redrive_dead_letter(&self, id: &str) -> StoreResult<bool> {
        self.with_found(id, |found| async move { self.requeue(&found).await })
            .await
    }

    async fn redrive_all_dead_letters(&self) -> StoreResult<Redriven> {
        let mut count = 0;
        for _ in 0..MAX_DEAD_LETTER_RECEIVES {
            let left = MAX_REDRIVE_PER_CALL - count;
            if left == 0 {
                break;
            }
            let received = self.receive_dead(left).await?;
            if received.is_empty() {
                return Ok(Redriven { count, more: false });
            }
            let bodies: Vec<String> = received
                .iter()
                .map(|m| m.body.clone().unwrap_or_default())
                .collect();
            if let Err(err) = self.send_bodies(&bodies).await {
                self.make_visible(&received).await;
                return Err(err);
            }
            for message in &received {
                self.delete_received(message).await?;
            }
            count += received.len();
        }
        Ok(Redriven { count, more: true })
    }

    async fn delete_dead_letter(&self, id: &str) -> StoreResult<bool> {
        self.with_found(
            id,
            |found| async move { self.delete_received(&found).await },
        )
        .await
    }
}

impl SqsJobQueue {
    /// SQS's approximate count of the messages in `queue`, visible or in flight.
    async fn approximate_messages(&self, queue: &str) -> StoreResult<u64> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(queue)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(unavailable)?
            .attributes
            .unwrap_or_default();
        Ok([
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .filter_map(|name| attributes.get(name)?.parse::<u64>().ok())
        .sum())
    }
}

#[async_trait]
impl QueueDepthGauge for SqsJobQueue {
    /// One GetQueueAttributes per queue (SQS's own counts are approximate).
    async fn queue_depth(&self) -> StoreResult<QueueDepth> {
        Ok(QueueDepth {
            jobs: self.approximate_messages(&self.queue_url).await?,
            dead_letters: match &self.dead_letter_queue_url {
                Some(url) => self.approximate_messages(url).await?,
                None => 0,
            },
        })
    }
}
