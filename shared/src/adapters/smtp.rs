//! [`Mailer`] over SMTP with lettre: `smtp://host:port` (plain, for local servers),
//! `smtp://host:587?tls=required` (STARTTLS) or `smtps://host:465`, with optional
//! `user:password@` credentials in the URL.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Mutex;

use crate::ports::{Mail, MailError, Mailer, SecretSource};

/// Longest a delivery may take before it counts as unavailable.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends mail through one SMTP server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpMailer {
    /// A mailer for `url`; no connection is made until the first mail.
    pub fn from_url(url: &str) -> Result<Self, String> {
        Self::build(url, None)
    }

    /// A mailer for `url` that logs in as `username`, whatever the URL says.
    pub fn with_login(url: &str, username: &str, password: &str) -> Result<Self, String> {
        Self::build(
            url,
            Some(Credentials::new(username.into(), password.into())),
        )
    }

    fn build(url: &str, login: Option<Credentials>) -> Result<Self, String> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("not a valid SMTP URL: {e}"))?
            .timeout(Some(SMTP_TIMEOUT));
        if let Some(login) = login {
            builder = builder.credentials(login);
        }
        Ok(SmtpMailer {
            transport: builder.build(),
        })
    }
}

/// The SMTP login kept in a secret, as Secrets Manager keeps credentials.
#[derive(serde::Deserialize)]
struct Login {
    username: String,
    password: String,
}

/// [`Mailer`] over SMTP whose login (`{"username": "…", "password": "…"}`) is
/// kept in a secret: read when the first mail is sent, not at start-up, and the
/// mailer rebuilt only when the secret changed.
pub struct SecretLoginMailer {
    url: String,
    login: Arc<dyn SecretSource>,
    current: Mutex<Option<(String, Arc<SmtpMailer>)>>,
}

impl SecretLoginMailer {
    /// A mailer for `url` that logs in with what `login` holds.
    pub fn new(url: &str, login: Arc<dyn SecretSource>) -> Self {
        SecretLoginMailer {
            url: url.to_owned(),
            login,
            current: Mutex::new(None),
        }
    }

    async fn mailer(&self) -> Result<Arc<SmtpMailer>, MailError> {
        let secret = self.login.reveal().await.map_err(|err| {
            tracing::error!(error = %err, "reading the SMTP login secret failed");
            MailError::Unavailable("the SMTP login could not be read".into())
        })?;
        let mut current = self.current.lock().await;
        if let Some((seen, mailer)) = current.as_ref()
            && *seen == secret
        {
            return Ok(mailer.clone());
        }
        // Unavailable rather than rejected: once the secret is fixed, a retry works.
        let login: Login = serde_json::from_str(&secret).map_err(|_| {
            MailError::Unavailable(
                "the SMTP login secret must hold {\"username\": …, \"password\": …}".into(),
            )
        })?;
        let mailer = Arc::new(
            SmtpMailer::with_login(&self.url, &login.username, &login.password)
                .map_err(MailError::Unavailable)?,
        );
        *current = Some((secret, mailer.clone()));
        Ok(mailer)
    }
}

#[async_trait]
impl Mailer for SecretLoginMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        self.mailer().await?.send(mail).await
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
