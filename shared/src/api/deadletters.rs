//! Dead-letter commands: `deadletter.list`, `deadletter.redrive`, `deadletter.delete`,
//! and `queue.get`, how many jobs wait on either side.

use serde_json::{Value, json};

use super::params::{Params, limit_param};
use super::{ApiError, Gateway};
use crate::domain::Job;
use crate::ports::DeadLetter;

/// Most dead letters `deadletter.list` answers.
pub const MAX_DEAD_LETTER_LIST: usize = 200;
/// Dead letters listed without `limit`.
const DEFAULT_DEAD_LETTER_LIST: usize = 50;
/// Most characters of an unreadable message `deadletter.list` shows.
pub const MAX_SHOWN_MESSAGE_CHARS: usize = 1000;

fn not_found() -> ApiError {
    ApiError::not_found(
        "dead_letter_not_found",
        "no dead letter has this id (it was redriven or deleted, or the dead-letter queue's scan did not reach it)",
    )
}

fn required_id(params: &Params) -> Result<&str, ApiError> {
    params
        .get("id")
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("id_missing", "id is required"))
}

/// A dead letter as the API shows it: what the job was for, readable or not.
fn to_api_json(dead: &DeadLetter) -> Value {
    let mut out = json!({
        "id": dead.id,
        "attempts": dead.receive_count,
        "reason": dead.reason,
        "deadAt": dead.dead_at.to_rfc3339(),
    });
    match serde_json::from_str::<Job>(&dead.body) {
        Ok(Job::Pipeline(job)) => {
            out["kind"] = json!("pipeline");
            out["correlationId"] = json!(job.correlation_id.to_string());
            out["pipeline"] = json!(job.pipeline);
        }
        Ok(Job::Delivery(job)) => {
            out["kind"] = json!("delivery");
            out["referenceId"] = json!(job.reference_id.to_string());
        }
        Err(_) => {
            // A queue message holds ids only, never a payload; an unreadable
            // one is shown (bounded) so the operator can tell what wrote it.
            out["kind"] = json!("unreadable");
            let mut shown: String = dead.body.chars().take(MAX_SHOWN_MESSAGE_CHARS).collect();
            if shown.len() < dead.body.len() {
                shown.push('…');
                out["messageTruncated"] = json!(true);
            }
            out["message"] = json!(shown);
        }
    }
    out
}

impl Gateway {
    /// `queue.get`: jobs in the queue (waiting or being run) and dead letters,
    /// counted now (SQLite: the tables; SQS: its approximate counts).
    pub(super) async fn queue_counts(&self) -> Result<Value, ApiError> {
        let depth = self.ports.dead_letters.queue_depth().await?;
        Ok(json!({"queued": depth.jobs, "deadLetters": depth.dead_letters}))
    }

    /// `deadletter.list [limit=]`: the dead letters, oldest first.
    pub(super) async fn list_dead_letters(&self, params: &Params) -> Result<Value, ApiError> {
        let limit = limit_param(params, DEFAULT_DEAD_LETTER_LIST, MAX_DEAD_LETTER_LIST)?;
        let page = self.ports.dead_letters.list_dead_letters(limit).await?;
        Ok(json!({
            "deadLetters": page.dead_letters.iter().map(to_api_json).collect::<Vec<_>>(),
            "partial": page.partial,
        }))
    }

    /// `deadletter.redrive [id=]`: one dead letter, or all (a bounded number
    /// per call), back to the queue as fresh jobs.
    pub(super) async fn redrive_dead_letters(&self, params: &Params) -> Result<Value, ApiError> {
        let dead_letters = &self.ports.dead_letters;
        if params.get("id").is_some() {
            let id = required_id(params)?;
            if !dead_letters.redrive_dead_letter(id).await? {
                return Err(not_found());
            }
            tracing::info!(dead_letter = %id, "dead letter redriven");
            return Ok(json!({"redriven": 1, "more": false}));
        }
        let redriven = dead_letters.redrive_all_dead_letters().await?;
        tracing::info!(
            count = redriven.count,
            more = redriven.more,
            "dead letters redriven"
        );
        Ok(json!({"redriven": redriven.count, "more": redriven.more}))
    }

    /// `deadletter.delete id=`: drops one dead letter.
    pub(super) async fn delete_dead_letter(&self, params: &Params) -> Result<Value, ApiError> {
        let id = required_id(params)?;
        if !self.ports.dead_letters.delete_dead_letter(id).await? {
            return Err(not_found());
        }
        tracing::info!(dead_letter = %id, "dead letter deleted");
        Ok(json!({"id": id, "deleted": true}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    fn unreadable(body: String) -> Value {
        to_api_json(&DeadLetter {
            id: "1".into(),
            body,
            reason: Some("unreadable message".into()),
            receive_count: Some(1),
            dead_at: Timestamp(0),
        })
    }

    #[test]
    fn an_unreadable_message_is_shown_up_to_its_bound() {
        let at_bound = "é".repeat(MAX_SHOWN_MESSAGE_CHARS);
        let shown = unreadable(at_bound.clone());
        assert_eq!(shown["message"], at_bound.as_str());
        assert_eq!(shown.get("messageTruncated"), None);

        let over = unreadable(format!("{at_bound}x"));
        assert_eq!(over["message"], format!("{at_bound}…"));
        assert_eq!(over["messageTruncated"], true);
        assert_eq!(over["kind"], "unreadable");
    }
}
