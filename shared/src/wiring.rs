//! The composition root: the one place that names concrete adapters. It builds
//! the memory, SQLite and AWS sets of ports, the HTTP transport, the SMTP mailer
//! and the services over them; everything else in the core receives traits.
//!
//! Which adapters exist depends on the crate's features (`sqlite`, `aws`,
//! `smtp`, `http-client`), so each Lambda function links only what it uses.

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "sqlite")]
use crate::adapters::SqliteStore;
use crate::adapters::cache::{CachedPipelines, CachedWebhooks};
use crate::adapters::{LocalSignal, MemoryQueue, MemoryStore};
use crate::api::{Gateway, Routes};
use crate::config::{ConfigError, OutgoingSettings, Settings};
use crate::outgoing::Outgoing;
use crate::pipeline::commands::Services;
use crate::pipeline::worker::Worker;
use crate::ports::{
    EffectLog, Housekeeping, JobQueue, Mailer, Ports, QueueDepthGauge, StoreThenEnqueue, Transport,
};
#[cfg(feature = "aws")]
use crate::{
    adapters::PollingSignal,
    adapters::aws::{
        AwsClients, AwsResources, DynamoEventStore, DynamoInvocationStore, DynamoOutgoingStore,
        DynamoPipelineStore, DynamoWebhookStore, RESULT_POLL_INTERVAL,
    },
    ports::{PipelineStore, ResultSignal, WebhookStore},
};

impl Ports {
    /// Everything in one SQLite store, with in-process result signalling.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(store: Arc<SqliteStore>) -> Self {
        Ports {
            webhooks: store.clone(),
            events: store.clone(),
            event_log: store.clone(),
            intake: store.clone(),
            pipelines: store.clone(),
            outgoing: store.clone(),
            invocations: store.clone(),
            dead_letters: store.clone(),
            queue: store,
            signal: Arc::new(LocalSignal::new()),
        }
    }

    /// The receive path's lookups (webhook by token, listeners by event key)
    /// cached per process for `ttl`; zero leaves them uncached. Changes made
    /// through these ports drop the entries at once.
    pub fn with_lookup_cache(mut self, ttl: Duration) -> Self {
        if !ttl.is_zero() {
            self.webhooks = Arc::new(CachedWebhooks::new(self.webhooks, ttl));
            self.pipelines = Arc::new(CachedPipelines::new(self.pipelines, ttl));
        }
        self
    }

    /// Everything in memory (unit tests).
    pub fn memory() -> Self {
        let store = Arc::new(MemoryStore::new());
        let memory_queue = Arc::new(MemoryQueue::new());
        let queue: Arc<dyn JobQueue> = memory_queue.clone();
        Ports {
            webhooks: store.clone(),
            events: store.clone(),
            event_log: store.clone(),
            intake: Arc::new(StoreThenEnqueue {
                events: store.clone(),
                queue: queue.clone(),
            }),
            pipelines: store.clone(),
            outgoing: store.clone(),
            invocations: store,
            queue,
            dead_letters: memory_queue,
            signal: Arc::new(LocalSignal::new()),
        }
    }

    /// The AWS shape. `signal` is the in-process one when the worker runs in the
    /// same process (`serve --backend aws`), else a [`PollingSignal`].
    /// `lookup_cache` above zero caches the receive path's lookups per process.
    #[cfg(feature = "aws")]
    pub fn aws(
        clients: &AwsClients,
        resources: &AwsResources,
        signal: Option<Arc<dyn ResultSignal>>,
        lookup_cache: Duration,
    ) -> Self {
        let aws = AwsPorts { clients, resources };
        let events = aws.events();
        let sqs = aws.sqs();
        let queue: Arc<dyn JobQueue> = sqs.clone();
        Ports {
            webhooks: aws.webhooks(),
            events: events.clone(),
            event_log: events.clone(),
            intake: Arc::new(StoreThenEnqueue {
                events,
                queue: queue.clone(),
            }),
            pipelines: aws.pipelines(),
            queue,
            dead_letters: sqs,
            signal: signal.unwrap_or_else(|| Arc::new(PollingSignal::new(RESULT_POLL_INTERVAL))),
            outgoing: aws.outgoing(),
            invocations: aws.invocations(),
        }
        .with_lookup_cache(lookup_cache)
    }

    /// `events`, a polling result signal, and every other port refusing each
    /// call (the stand-in [`UNMOUNTED`]): what a Lambda function starts from,
    /// setting the ports its routes use, so that it links no other adapter.
    #[cfg(feature = "lambda")]
    fn unmounted(events: Arc<dyn crate::ports::EventStore>) -> Self {
        let unmounted = Arc::new(crate::adapters::absent::UNMOUNTED);
        Ports {
            webhooks: unmounted.clone(),
            events,
            event_log: unmounted.clone(),
            intake: unmounted.clone(),
            pipelines: unmounted.clone(),
            queue: unmounted.clone(),
            signal: Arc::new(PollingSignal::new(RESULT_POLL_INTERVAL)),
            outgoing: unmounted.clone(),
            invocations: unmounted.clone(),
            dead_letters: unmounted,
        }
    }
}

/// The AWS adapters, one port at a time, so each function builds only its own.
#[cfg(feature = "aws")]
struct AwsPorts<'a> {
    clients: &'a AwsClients,
    resources: &'a AwsResources,
}

#[cfg(feature = "aws")]
impl AwsPorts<'_> {
    fn events(&self) -> Arc<DynamoEventStore> {
        Arc::new(DynamoEventStore::new(
            self.clients.dynamodb.clone(),
            self.clients.s3.clone(),
            &self.resources.events_table,
            &self.resources.payload_bucket,
        ))
    }

    /// The job queue and its dead letters; without the `aws-sqs` feature, [`NO_QUEUE`](crate::adapters::absent::NO_QUEUE).
    #[cfg(feature = "aws-sqs")]
    fn sqs(&self) -> Arc<crate::adapters::aws::SqsJobQueue> {
        Arc::new(
            crate::adapters::aws::SqsJobQueue::new(
                self.clients.sqs.clone(),
                &self.resources.queue_url,
            )
            .with_dead_letter_queue(self.resources.dead_letter_queue_url.clone()),
        )
    }

    #[cfg(not(feature = "aws-sqs"))]
    fn sqs(&self) -> Arc<crate::adapters::absent::Refuses> {
        Arc::new(crate::adapters::absent::NO_QUEUE)
    }

    fn webhooks(&self) -> Arc<dyn WebhookStore> {
        Arc::new(DynamoWebhookStore::new(
            self.clients.dynamodb.clone(),
            &self.resources.webhooks_table,
        ))
    }

    fn pipelines(&self) -> Arc<dyn PipelineStore> {
        Arc::new(DynamoPipelineStore::new(
            self.clients.dynamodb.clone(),
            &self.resources.pipelines_table,
        ))
    }

    fn outgoing(&self) -> Arc<dyn crate::ports::OutgoingStore> {
        Arc::new(DynamoOutgoingStore::new(
            self.clients.dynamodb.clone(),
            &self.resources.outgoing_table,
        ))
    }

    fn invocations(&self) -> Arc<dyn crate::ports::InvocationStore> {
        Arc::new(DynamoInvocationStore::new(
            self.clients.dynamodb.clone(),
            &self.resources.invocations_table,
        ))
    }

    /// What `/api/v3/result` reads: the events' results.
    #[cfg(feature = "lambda")]
    fn result_ports(&self) -> Ports {
        Ports::unmounted(self.events())
    }

    /// What `webhook.receive` and the health check use: webhooks, listeners,
    /// the intake (events, then jobs on `queue`) and the results it waits for.
    #[cfg(feature = "lambda")]
    fn receive_ports(&self) -> Ports {
        let events = self.events();
        let queue: Arc<dyn JobQueue> = self.sqs();
        Ports {
            webhooks: self.webhooks(),
            intake: Arc::new(StoreThenEnqueue {
                events: events.clone(),
                queue: queue.clone(),
            }),
            pipelines: self.pipelines(),
            queue,
            ..Ports::unmounted(events)
        }
    }

    /// What the pipeline worker uses: events and their outcomes, pipelines, the
    /// queue (its own jobs, and `webhook.send`'s), outgoing webhooks and their
    /// invocations.
    #[cfg(feature = "lambda")]
    fn worker_ports(&self) -> Ports {
        Ports {
            pipelines: self.pipelines(),
            queue: self.sqs(),
            outgoing: self.outgoing(),
            invocations: self.invocations(),
            ..Ports::unmounted(self.events())
        }
    }
}

/// The transport outgoing webhooks call through: guarded HTTP, its client built
/// on first use so functions that never call out never pay for it.
#[cfg(feature = "http-client")]
pub fn http_transport(settings: &OutgoingSettings) -> Arc<dyn Transport> {
    Arc::new(crate::adapters::http::LazyHttpTransport::new(settings))
}

/// Without the `http-client` feature (the functions that never call out), a
/// call fails as unreachable instead of linking an HTTP client.
#[cfg(not(feature = "http-client"))]
pub fn http_transport(_settings: &OutgoingSettings) -> Arc<dyn Transport> {
    Arc::new(crate::adapters::absent::NoHttpClient)
}

/// The outgoing-webhook service over `ports`, calling out over guarded HTTP.
pub fn outgoing(ports: &Ports, settings: &OutgoingSettings) -> Arc<Outgoing> {
    outgoing_with(ports, settings, http_transport(settings))
}

/// The outgoing-webhook service over `ports`, calling out through `transport`.
pub fn outgoing_with(
    ports: &Ports,
    settings: &OutgoingSettings,
    transport: Arc<dyn Transport>,
) -> Arc<Outgoing> {
    Arc::new(Outgoing::new(
        ports.outgoing.clone(),
        ports.invocations.clone(),
        ports.queue.clone(),
        transport,
        settings,
    ))
}

/// The gateway over `ports`, its outgoing webhooks over guarded HTTP, and
/// the SMTP mailer of the settings for `pipeline.test sideEffects=true`.
pub fn gateway(ports: Ports, settings: Settings) -> Gateway {
    // A mail server the settings describe badly stops `serve` where its
    // worker is built ([`worker_beside`]); a function without an SMTP client
    // answers `mail_not_configured` instead.
    let mailer = mailer(&settings).ok().flatten();
    gateway_with_mailer(Routes::ALL, ports, settings, mailer)
}

/// A gateway answering `routes`, sending `pipeline.test`'s mail through `mailer`.
fn gateway_with_mailer(
    routes: Routes,
    ports: Ports,
    settings: Settings,
    mailer: Option<Arc<dyn Mailer>>,
) -> Gateway {
    let outgoing = outgoing(&ports, &settings.outgoing);
    Gateway::new(routes, ports, settings, outgoing).with_mailer(mailer)
}

/// The pipeline worker beside `gateway` in one process (`serve`): over the
/// gateway's ports, with the mail server of the settings, sending outgoing
/// webhooks through the gateway's service (one connection pool per process).
pub fn worker_beside(gateway: &Gateway) -> Result<Worker, ConfigError> {
    let settings = gateway.settings();
    let mut services = services(settings, gateway.ports())?;
    services.outgoing = Some(gateway.outgoing().clone());
    Ok(Worker::new(
        gateway.ports().into(),
        Arc::new(services),
        gateway.settings().worker.clone(),
    ))
}

/// The SMTP mailer `HOOKFLOW_SMTP_URL` describes, if set.
pub fn mailer(settings: &Settings) -> Result<Option<Arc<dyn Mailer>>, ConfigError> {
    let Some(url) = &settings.smtp_url else {
        return Ok(None);
    };
    #[cfg(feature = "smtp")]
    {
        let mailer = crate::adapters::SmtpMailer::from_url(url).map_err(|problem| ConfigError {
            name: "HOOKFLOW_SMTP_URL",
            problem,
        })?;
        Ok(Some(Arc::new(mailer)))
    }
    #[cfg(not(feature = "smtp"))]
    {
        let _ = url;
        Err(ConfigError {
            name: "HOOKFLOW_SMTP_URL",
            problem: "this build has no SMTP client (feature smtp)".into(),
        })
    }
}

/// The services the settings describe: users, the SMTP mailer if configured,
/// outgoing webhooks over guarded HTTP, and the effect log of `ports`.
pub fn services(settings: &Settings, ports: &Ports) -> Result<Services, ConfigError> {
    Ok(services_with_mailer(settings, ports, mailer(settings)?))
}

/// [`services`] with `mailer` for `mail.send`.
fn services_with_mailer(
    settings: &Settings,
    ports: &Ports,
    mailer: Option<Arc<dyn Mailer>>,
) -> Services {
    let effects: Arc<dyn EffectLog> = ports.events.clone();
    Services {
        users: settings.users.clone(),
        mailer,
        mail_from: settings.mail_from.clone(),
        outgoing: Some(outgoing(ports, &settings.outgoing)),
        effects: Some(effects),
    }
}

// ----- `hookflow serve`'s storage -----

/// The storage `serve` runs on: its ports, the upkeep it owes them when it owns
/// them alone, and how the start-up banner names them.
pub struct ServeStorage {
    pub ports: Ports,
    /// The embedded shape's store; none in the AWS shape.
    pub housekeeping: Option<Arc<dyn Housekeeping>>,
    /// Where the data is, for the banner (never a credential).
    pub described: String,
    /// Counts the queue for the metrics' gauges.
    pub queue_depth: Arc<dyn QueueDepthGauge>,
}

/// Why `serve`'s storage could not be opened, in words for the operator.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// The embedded shape: everything in the SQLite file `database`.
#[cfg(feature = "sqlite")]
pub fn embedded_storage(
    database: &std::path::Path,
    settings: &Settings,
) -> Result<ServeStorage, StartError> {
    let store = SqliteStore::open_with_wal_limit(database, settings.wal_max_bytes)
        .map_err(|e| format!("cannot open {}: {e}", database.display()))?;
    let store = Arc::new(store);
    Ok(ServeStorage {
        ports: Ports::sqlite(store.clone()).with_lookup_cache(settings.lookup_cache),
        housekeeping: Some(store.clone()),
        described: database.display().to_string(),
        queue_depth: store,
    })
}

/// The AWS shape with its worker in this process: the resources the settings
/// name, or with `provision_prefix` those it creates where missing. Completes
/// `settings` for a queue on SQS ([`Settings::check_for_sqs`]).
#[cfg(feature = "aws-sqs")]
pub async fn aws_storage(
    settings: &mut Settings,
    provision_prefix: Option<&str>,
) -> Result<ServeStorage, StartError> {
    use crate::adapters::aws::missing_aws_settings;
    // Checked first: without them the SDK would look for credentials at the
    // cloud metadata address before failing in words that name nothing.
    let missing = missing_aws_settings(provision_prefix.is_some()).await;
    if !missing.is_empty() {
        return Err(format!("the AWS backend needs settings: {}", missing.join("; ")).into());
    }
    settings.check_for_sqs()?;
    let clients = AwsClients::from_env().await;
    let resources = match provision_prefix {
        Some(prefix) => crate::adapters::aws::provision(&clients, prefix)
            .await
            .map_err(|e| format!("provisioning the AWS resources failed: {e}"))?,
        None => AwsResources::from_env()?,
    };
    let described = format!(
        "DynamoDB {}, {}, {}; SQS {}; S3 {}",
        resources.webhooks_table,
        resources.pipelines_table,
        resources.events_table,
        resources.queue_url,
        resources.payload_bucket
    );
    // The worker runs in this process, so waiting callers are woken directly.
    let signal: Arc<dyn ResultSignal> = Arc::new(LocalSignal::new());
    let queue_depth = Arc::new(
        crate::adapters::aws::SqsJobQueue::new(clients.sqs.clone(), &resources.queue_url)
            .with_dead_letter_queue(resources.dead_letter_queue_url.clone()),
    );
    Ok(ServeStorage {
        ports: Ports::aws(&clients, &resources, Some(signal), settings.lookup_cache),
        housekeeping: None,
        described,
        queue_depth,
    })
}

/// `hookflow provision`: creates the AWS resources named `<prefix>-…` where
/// missing (against moto, LocalStack or an account) and answers their names.
#[cfg(feature = "aws-sqs")]
pub async fn provision_aws(prefix: &str) -> Result<AwsResources, StartError> {
    let clients = AwsClients::from_env().await;
    Ok(crate::adapters::aws::provision(&clients, prefix).await?)
}

// ----- the Lambda functions' start-up -----

#[cfg(feature = "lambda")]
pub use function::{ADMIN_TOKEN_SECRET, FunctionContext, SMTP_LOGIN_SECRET};

#[cfg(feature = "lambda")]
mod function {
    use std::sync::Arc;

    use super::{AwsPorts, gateway_with_mailer, services_with_mailer};
    use crate::adapters::aws::{AwsClients, AwsResources, TlsRoots};
    use crate::api::{Gateway, Routes};
    use crate::config::{ConfigError, Settings};
    use crate::pipeline::worker::Worker;
    use crate::ports::{JobQueue, Mailer, Ports, SecretSource};

    /// Names the Secrets Manager secret holding the admin token (`webhook-admin`).
    pub const ADMIN_TOKEN_SECRET: &str = "HOOKFLOW_ADMIN_TOKEN_SECRET";
    /// Names the Secrets Manager secret holding the SMTP login (`pipeline-worker`,
    /// and `webhook-admin` for `pipeline.test sideEffects=true`).
    pub const SMTP_LOGIN_SECRET: &str = "HOOKFLOW_SMTP_LOGIN_SECRET";

    /// Settings, resource names and clients of a function, read once at start.
    /// Each function builds its gateway or worker from it over only the ports
    /// its routes use.
    pub struct FunctionContext {
        pub settings: Settings,
        resources: AwsResources,
        clients: AwsClients,
        admin_token_secret: Option<String>,
        #[cfg_attr(not(feature = "smtp"), allow(dead_code))]
        smtp_login_secret: Option<String>,
    }

    impl FunctionContext {
        /// Reads and validates every setting of the process environment (failing
        /// with the setting's name) and builds the clients. Makes no network call.
        pub async fn from_env() -> Result<Self, ConfigError> {
            // A function's metrics go to its log as EMF, flushed per invocation.
            crate::metrics::emf::install();
            Self::from_lookup(|name| std::env::var(name).ok()).await
        }

        /// [`FunctionContext::from_env`] with the settings read through `lookup`.
        pub async fn from_lookup(
            lookup: impl Fn(&str) -> Option<String>,
        ) -> Result<Self, ConfigError> {
            let mut settings = Settings::from_lookup(&lookup)?;
            settings.check_for_sqs()?;
            let resources = AwsResources::from_lookup(&lookup)?;
            let roots = TlsRoots::parse(lookup(TlsRoots::SETTING).as_deref())?;
            let clients = AwsClients::trusting(roots).await;
            let named = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
            Ok(FunctionContext {
                settings,
                resources,
                clients,
                admin_token_secret: named(ADMIN_TOKEN_SECRET),
                smtp_login_secret: named(SMTP_LOGIN_SECRET),
            })
        }

        fn aws(&self) -> AwsPorts<'_> {
            AwsPorts {
                clients: &self.clients,
                resources: &self.resources,
            }
        }

        /// The `webhook-receive` function: `webhook.receive` and the health check.
        pub fn receive_gateway(self) -> Gateway {
            let ports = self.aws().receive_ports();
            let ports = ports.with_lookup_cache(self.settings.lookup_cache);
            gateway_with_mailer(Routes::RECEIVE, ports, self.settings, None)
        }

        /// The `result-poll` function: `/api/v3/result`.
        pub fn result_gateway(self) -> Gateway {
            let ports = self.aws().result_ports();
            gateway_with_mailer(Routes::RESULT, ports, self.settings, None)
        }

        /// The `webhook-admin` function: the management commands over every
        /// port. Its token is `HOOKFLOW_ADMIN_TOKEN` or, failing that, the
        /// secret `HOOKFLOW_ADMIN_TOKEN_SECRET` names, read when the first
        /// management request arrives.
        pub fn admin_gateway(self) -> Result<Gateway, ConfigError> {
            let secret = match (&self.settings.admin_token, &self.admin_token_secret) {
                (Some(_), _) => None,
                (None, Some(name)) => Some(self.secret(ADMIN_TOKEN_SECRET, name)?),
                (None, None) => {
                    return Err(ConfigError {
                        name: ADMIN_TOKEN_SECRET,
                        problem: "is required (or HOOKFLOW_ADMIN_TOKEN)".into(),
                    });
                }
            };
            let mailer = self.mailer()?;
            let ports = Ports::aws(
                &self.clients,
                &self.resources,
                None,
                self.settings.lookup_cache,
            );
            let gateway = gateway_with_mailer(Routes::MANAGEMENT, ports, self.settings, mailer);
            Ok(match secret {
                Some(secret) => gateway.with_admin_token_secret(secret),
                None => gateway,
            })
        }

        /// The secret `name` in Secrets Manager, which `setting` names; a build
        /// without the `aws-secrets` feature refuses to start with it set.
        fn secret(
            &self,
            setting: &'static str,
            name: &str,
        ) -> Result<Arc<dyn SecretSource>, ConfigError> {
            #[cfg(feature = "aws-secrets")]
            {
                let _ = setting;
                Ok(Arc::new(crate::adapters::aws::SecretsManagerSecret::new(
                    self.clients.secrets_manager(),
                    name,
                )))
            }
            #[cfg(not(feature = "aws-secrets"))]
            {
                let _ = (&self.clients, name);
                Err(ConfigError {
                    name: setting,
                    problem: "this function cannot read Secrets Manager (feature aws-secrets)"
                        .into(),
                })
            }
        }

        /// The mail server of the settings. With `HOOKFLOW_SMTP_LOGIN_SECRET`,
        /// it logs in with the login that secret holds, read when the first
        /// mail is sent. A function without an SMTP client has none (its
        /// `mail.send` answers `mail_not_configured`).
        fn mailer(&self) -> Result<Option<Arc<dyn Mailer>>, ConfigError> {
            #[cfg(feature = "smtp")]
            if let (Some(url), Some(name)) = (&self.settings.smtp_url, &self.smtp_login_secret) {
                let login = self.secret(SMTP_LOGIN_SECRET, name)?;
                return Ok(Some(Arc::new(
                    crate::adapters::smtp::SecretLoginMailer::new(url, login),
                )));
            }
            if cfg!(feature = "smtp") {
                super::mailer(&self.settings)
            } else {
                Ok(None)
            }
        }

        /// The pipeline worker and the queue it acknowledges on; `mail.send`
        /// goes through [`FunctionContext::mailer`].
        pub fn worker(self) -> Result<(Worker, Arc<dyn JobQueue>), ConfigError> {
            let ports = self
                .aws()
                .worker_ports()
                .with_lookup_cache(self.settings.lookup_cache);
            let services = services_with_mailer(&self.settings, &ports, self.mailer()?);
            let queue = ports.queue.clone();
            Ok((
                Worker::new((&ports).into(), Arc::new(services), self.settings.worker),
                queue,
            ))
        }
    }
}
