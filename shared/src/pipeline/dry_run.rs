//! The mailer of a dry run (`pipeline.test` without `sideEffects`): it sends
//! nothing, and the `mail.send` step's body becomes its record of the mail.
//! Part of the engine, not an adapter: it reaches nothing outside.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::ports::{Mail, MailError, Mailer};

/// A [`Mailer`] that only answers what it would have sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct DryRunMailer;

#[async_trait]
impl Mailer for DryRunMailer {
    async fn send(&self, _mail: &Mail) -> Result<(), MailError> {
        Ok(())
    }

    /// `{dryRun, command, from, to, cc, bcc, subject, body}`.
    fn step_answer(&self, mail: &Mail) -> Option<Value> {
        Some(json!({
            "dryRun": true,
            "command": "mail.send",
            "from": mail.from,
            "to": mail.to,
            "cc": mail.cc,
            "bcc": mail.bcc,
            "subject": mail.subject,
            "body": mail.body,
        }))
    }
}
