//! AWS adapters: DynamoDB (webhooks, pipelines, events and outcomes, outgoing
//! webhooks and their invocations), SQS (the job queue) and S3 (claim checks
//! for payloads too large for an item).
//!
//! Keys, chosen so no hot path scans:
//! - webhooks table, `pk`: `webhook#<token>` holds a webhook (receive: one
//!   GetItem); `eventkey#<key>` claims an event key for one token, written in the
//!   same transaction as the webhook, which is how a taken key is refused (409).
//!   `refusals#<token>` counts the calls the webhook's signature check refused
//!   (`ADD`, an atomic increment; written only on a refusal).
//!   `tokenalias#<token>` names the current token of the webhook a
//!   `webhook.rotate` took this token from, until `expiresAtMs` (checked on
//!   read; `expiresAt`, epoch seconds, is the TTL attribute that deletes it
//!   later). Read only when no `webhook#<token>` exists.
//!   Listing webhooks scans, but only for the management command.
//! - pipelines table, `name`; GSI `byEventKey` (`eventKey`, keys only) answers
//!   "who listens to this webhook" with one Query on receive.
//! - events table, `correlationId` + `sk`: `event` holds the event, and each
//!   `outcome#<pipeline>` one pipeline's outcome, written with a condition so a
//!   redelivered job cannot write a second one; each `effect#<effect>` claims
//!   a side effect done at most once (a step's mail), written with the same
//!   kind of condition. A result is one Query of the partition. `expiresAt`
//!   (epoch seconds: the later of the result's end and the event's retention)
//!   is the TTL attribute, copied from the event to the other items; reads
//!   check `expiresAtMs` (the result) and `keptUntilMs` (the event log)
//!   themselves, because TTL deletion lags by up to days. GSIs `eventsByTime`
//!   and `eventsByKey` list events for the event log (see `eventlog`).
//! - outgoing table, `id`: one registered outgoing webhook, its JSON in `doc`.
//! - invocations table, `referenceId`: one invocation record, its JSON in `doc`;
//!   GSI `byWebhook` (`webhookId`, sort `createdAt` in ms, projection all)
//!   lists one webhook's records newest first. `expiresAt` (epoch seconds) is
//!   the TTL attribute; reads check the document's expiry themselves.

mod dynamo;
mod eventlog;
mod outgoing;
#[cfg(feature = "aws-sqs")]
mod provision;
#[cfg(feature = "aws-secrets")]
mod secrets;
mod settings;
#[cfg(feature = "aws-sqs")]
mod sqs;
#[cfg(feature = "aws-sqs")]
mod sqs_dead_letters;

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

pub use dynamo::{
    DynamoEventStore, DynamoPipelineStore, DynamoWebhookStore, MAX_INLINE_EVENT_BYTES,
    MAX_INLINE_OUTCOME_BYTES,
};
pub use eventlog::{EVENTS_BY_KEY, EVENTS_BY_TIME, LOG_PARTITION, LOG_PROJECTION, LOG_SORT};
pub use outgoing::{DynamoInvocationStore, DynamoOutgoingStore, INVOCATIONS_BY_WEBHOOK};
#[cfg(feature = "aws-sqs")]
pub use provision::provision;
#[cfg(feature = "aws-secrets")]
pub use secrets::{SECRET_CACHE, SecretsManagerSecret};
pub use settings::missing_aws_settings;

#[cfg(feature = "aws-sqs")]
pub use sqs::{
    DEAD_LETTER_REASON_ATTRIBUTE, DEAD_LETTER_RECEIVE_COUNT_ATTRIBUTE, MAX_RELEASE_DELAY,
    SqsJobQueue,
};
#[cfg(feature = "aws-sqs")]
pub use sqs_dead_letters::MAX_DEAD_LETTER_RECEIVES;

use crate::config::ConfigError;

/// Where the AWS resources are: names from the environment (the SAM template
/// sets them), or the defaults `serve --backend aws --provision` creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsResources {
    /// `HOOKFLOW_WEBHOOKS_TABLE`
    pub webhooks_table: String,
    /// `HOOKFLOW_PIPELINES_TABLE`
    pub pipelines_table: String,
    /// `HOOKFLOW_EVENTS_TABLE`
    pub events_table: String,
    /// `HOOKFLOW_QUEUE_URL`
    pub queue_url: String,
    /// `HOOKFLOW_PAYLOAD_BUCKET`
    pub payload_bucket: String,
    /// `HOOKFLOW_OUTGOING_TABLE`
    pub outgoing_table: String,
    /// `HOOKFLOW_INVOCATIONS_TABLE`
    pub invocations_table: String,
    /// `HOOKFLOW_DEAD_LETTER_QUEUE_URL` (optional): where the worker moves a job
    /// it gives up on at once. Without it such a job is left to the queue's
    /// redrive policy, which moves it after its `maxReceiveCount` deliveries.
    pub dead_letter_queue_url: Option<String>,
}

/// The settings that name the resources, in the order they are reported.
const RESOURCE_SETTINGS: [&str; 7] = [
    "HOOKFLOW_WEBHOOKS_TABLE",
    "HOOKFLOW_PIPELINES_TABLE",
    "HOOKFLOW_EVENTS_TABLE",
    "HOOKFLOW_OUTGOING_TABLE",
    "HOOKFLOW_INVOCATIONS_TABLE",
    "HOOKFLOW_QUEUE_URL",
    "HOOKFLOW_PAYLOAD_BUCKET",
];

/// Names `--provision` uses when the environment names none.
pub const DEFAULT_PREFIX: &str = "hookflow";

impl AwsResources {
    /// Reads the resource names; every one is required.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The names of the resource settings `lookup` does not give.
    pub fn missing(lookup: impl Fn(&str) -> Option<String>) -> Vec<&'static str> {
        RESOURCE_SETTINGS
            .into_iter()
            .filter(|name| lookup(name).is_none_or(|v| v.trim().is_empty()))
            .collect()
    }

    /// Reads the resource names through `lookup`; every one is required.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError {
                    name,
                    problem: "is required (the SAM template sets it)".into(),
                })
        };
        Ok(AwsResources {
            webhooks_table: get("HOOKFLOW_WEBHOOKS_TABLE")?,
            pipelines_table: get("HOOKFLOW_PIPELINES_TABLE")?,
            events_table: get("HOOKFLOW_EVENTS_TABLE")?,
            queue_url: get("HOOKFLOW_QUEUE_URL")?,
            payload_bucket: get("HOOKFLOW_PAYLOAD_BUCKET")?,
            outgoing_table: get("HOOKFLOW_OUTGOING_TABLE")?,
            invocations_table: get("HOOKFLOW_INVOCATIONS_TABLE")?,
            dead_letter_queue_url: lookup("HOOKFLOW_DEAD_LETTER_QUEUE_URL")
                .filter(|v| !v.trim().is_empty()),
        })
    }
}

/// The AWS clients, built once per process from the standard AWS configuration
/// (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL` for moto or LocalStack).
#[derive(Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    #[cfg(feature = "aws-sqs")]
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    /// What the clients were built from, for the clients only some functions need.
    pub config: aws_config::SdkConfig,
}

/// Which root certificates the AWS clients trust (`HOOKFLOW_AWS_TLS_ROOTS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsRoots {
    /// The system's store (`SSL_CERT_FILE`, `SSL_CERT_DIR`, or the platform's
    /// files), read and parsed when the clients are built: about 70 % of a
    /// function's start-up (see the README's "Size, start-up and memory").
    #[default]
    System,
    /// Only Amazon Trust Services' five roots, which AWS service endpoints
    /// chain to, compiled in: nothing is read at start-up. An endpoint whose
    /// certificate chains elsewhere (`AWS_ENDPOINT_URL` over HTTPS to something
    /// that is not AWS) is refused.
    Amazon,
}

/// Amazon Root CA 1–4 and Starfield Services Root CA G2, as Mozilla's store
/// (Debian's ca-certificates) has them.
const AMAZON_TRUST_SERVICES: &[u8] = include_bytes!("amazon-trust-services.pem");

impl TlsRoots {
    /// The setting that chooses them.
    pub const SETTING: &str = "HOOKFLOW_AWS_TLS_ROOTS";

    /// `system` (or unset) or `amazon`.
    pub fn parse(value: Option<&str>) -> Result<Self, ConfigError> {
        match value.map(str::trim) {
            None | Some("") | Some("system") => Ok(TlsRoots::System),
            Some("amazon") => Ok(TlsRoots::Amazon),
            Some(_) => Err(ConfigError {
                name: Self::SETTING,
                problem: "must be system or amazon".into(),
            }),
        }
    }

    /// The HTTPS client trusting only these roots; `None` leaves the SDK's own.
    fn http_client(self) -> Option<aws_sdk_dynamodb::config::SharedHttpClient> {
        use aws_smithy_http_client::tls::{
            self, TlsContext, TrustStore, rustls_provider::CryptoMode,
        };
        match self {
            TlsRoots::System => None,
            TlsRoots::Amazon => {
                let trust = TrustStore::empty()
                    .with_native_roots(false)
                    .with_pem_certificate(AMAZON_TRUST_SERVICES);
                let context = TlsContext::builder()
                    .with_trust_store(trust)
                    .build()
                    .expect("the compiled-in roots make a TLS context (tested)");
                Some(
                    aws_smithy_http_client::Builder::new()
                        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
                        .tls_context(context)
                        .build_https(),
                )
            }
        }
    }
}

impl AwsClients {
    /// Loads the configuration from the environment; no network call.
    pub async fn from_env() -> Self {
        Self::trusting(TlsRoots::System).await
    }

    /// [`AwsClients::from_env`], trusting `roots`.
    pub async fn trusting(roots: TlsRoots) -> Self {
        let mut loader = aws_config::from_env();
        if let Some(client) = roots.http_client() {
            loader = loader.http_client(client);
        }
        let config = loader.load().await;
        // Path-style addressing works with every S3 endpoint, moto included.
        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build();
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            #[cfg(feature = "aws-sqs")]
            sqs: aws_sdk_sqs::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            config,
        }
    }

    /// A Secrets Manager client (only the functions that read a secret build one).
    #[cfg(feature = "aws-secrets")]
    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.config)
    }
}

/// Longest description of a failed AWS call that is kept (and so logged).
const MAX_FAILURE_TEXT: usize = 240;

/// A failed AWS call in one short line: the service's error code and message,
/// or what kind of failure it was and its causes. Never the SDK's debug chain,
/// which holds the raw response (kilobytes of headers) and can echo the request.
pub fn describe_failure<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = match err {
        SdkError::ServiceError(_) => format!(
            "{}: {}",
            err.code().unwrap_or("unknown service error"),
            err.message().unwrap_or("no message")
        ),
        _ => {
            let mut text = err.to_string();
            let mut cause = std::error::Error::source(err);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            text
        }
    };
    match text.char_indices().nth(MAX_FAILURE_TEXT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// A failed AWS call as a store error (a retry may help).
pub(crate) fn unavailable<E, R>(err: SdkError<E, R>) -> crate::error::StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    crate::error::StoreError::unavailable(describe_failure(&err))
}

/// How long a Lambda's long poll waits between two reads of a result.
pub const RESULT_POLL_INTERVAL: Duration = Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_roots_are_system_unless_amazon_is_asked_for() {
        assert_eq!(TlsRoots::parse(None).unwrap(), TlsRoots::System);
        assert_eq!(TlsRoots::parse(Some(" ")).unwrap(), TlsRoots::System);
        assert_eq!(TlsRoots::parse(Some("system")).unwrap(), TlsRoots::System);
        assert_eq!(TlsRoots::parse(Some("amazon")).unwrap(), TlsRoots::Amazon);
        let err = TlsRoots::parse(Some("mozilla")).unwrap_err();
        assert_eq!(err.name, TlsRoots::SETTING);
    }

    #[test]
    fn the_compiled_in_roots_are_amazon_trust_services_five() {
        let text = std::str::from_utf8(AMAZON_TRUST_SERVICES).unwrap();
        assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        assert_eq!(text.matches("-----END CERTIFICATE-----").count(), 5);
    }

    /// The client trusting only Amazon's roots parses them when it is built
    /// (a bad bundle would panic there, in every function's first call) and
    /// makes calls like any other: here to an HTTPS port where nothing listens,
    /// which fails as a failed call, not a panic.
    #[tokio::test]
    async fn a_client_trusting_amazon_roots_is_built_and_calls() {
        let config = aws_config::from_env()
            .http_client(TlsRoots::Amazon.http_client().unwrap())
            .region(aws_types::region::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::for_tests())
            .endpoint_url("https://127.0.0.1:1")
            .load()
            .await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let err = dynamodb.list_tables().send().await.unwrap_err();
        assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    }
}
