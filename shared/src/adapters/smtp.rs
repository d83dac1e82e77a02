//! [`Mailer`] over SMTP with lettre: `smtp://host:port` (plain, for local servers),
//! `smtp://host:587?tls=required` (STARTTLS) or `smtps://host:465`, with optional
//! `user:password@` credentials in the URL.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::ports::{Mail, MailError, Mailer};

/// Longest a delivery may take before it counts as unavailable.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends mail through one SMTP server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpMailer {
    /// A mailer for `url`; no connection is made until the first mail.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("not a valid SMTP URL: {e}"))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(SmtpMailer { transport })
    }
}

fn mailbox(address: &str) -> Result<Mailbox, MailError> {
    address
        .trim()
        .parse()
        .map_err(|_| MailError::Rejected(format!("'{address}' is not a valid e-mail address")))
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let mut builder = Message::builder()
            .from(mailbox(&mail.from)?)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN);
        for to in &mail.to {
            builder = builder.to(mailbox(to)?);
        }
        for cc in &mail.cc {
            builder = builder.cc(mailbox(cc)?);
        }
        for bcc in &mail.bcc {
            builder = builder.bcc(mailbox(bcc)?);
        }
        let message = builder
            .body(mail.body.clone())
            .map_err(|e| MailError::Rejected(e.to_string()))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Rejected(e.to_string())),
            Err(e) => Err(MailError::Unavailable(e.to_string())),
        }
    }
}
