//! hookflow-core: everything hookflow does, independent of where it runs.
//!
//! - [`domain`]: webhooks, events, results and their rules.
//! - [`webhooks`]: incoming-webhook registrations: the rules of `webhook.*`, their
//!   typed inputs and errors.
//! - [`ports`]: the small traits the core needs from the outside world.
//! - [`adapters`]: implementations of the ports (SQLite, AWS, SMTP, HTTP, in-memory),
//!   each concrete one behind a cargo feature.
//! - [`wiring`]: the composition root, the one place that builds adapters.
//! - [`inbound`]: the checks a received call passes (signatures).
//! - [`api`]: the HTTP routing, one `Request -> Response` function mounted by the
//!   local server and by the Lambda functions alike.
//! - [`pipeline`]: the YAML pipeline engine and the worker that runs it.
//! - [`config`]: typed settings read once from the environment.
//! - [`limits`]: bounds every part shares (JSON nesting).
//! - [`compile_cache`]: compiled pipelines and schemas, by name and version.

pub mod adapters;
pub mod api;
pub mod compile_cache;
pub mod config;
pub mod domain;
pub mod error;
pub mod inbound;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod limits;
pub mod metrics;
pub mod outgoing;
pub mod pipeline;
pub mod ports;
pub mod random;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod webhooks;
pub mod wiring;

pub use api::Gateway;
pub use config::Settings;
