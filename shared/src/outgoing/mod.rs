//! Outgoing webhooks (seeds/004): a registry of external endpoints that the API
//! (`webhook.send`) and pipelines (`webhook.send` step) call, with an invocation
//! record per call, Standard Webhooks signatures, an SSRF guard and retried
//! asynchronous deliveries.
//!
//! - [`error`]: why an operation was refused, and whether retrying may help.
//! - The stored registration and invocation records are domain data:
//!   [`crate::domain::outgoing`].
//! - [`registry`]: what `outgoing.put` accepts as a registration; secret rotation.
//! - [`trigger`]: what a trigger may ask of a registration, and the body it sends.
//! - [`schema`]: a registration's JSON Schema, compiled and checked.
//! - [`request`]: the signed HTTP request a send becomes.
//! - [`audit`]: what an invocation record keeps about the request.
//! - [`signing`]: Standard Webhooks signatures.
//! - [`guard`]: which addresses calls may reach.
//! - [`service`]: trigger, send, record, retry: what both callers share.
//! - [`settings`]: timeouts, bounds, retry schedule and record lifetime.

pub mod audit;
pub mod error;
pub mod guard;
pub mod registry;
pub mod request;
pub mod schedule;
pub mod schema;
pub mod service;
pub mod settings;
pub mod signing;
pub mod trigger;

#[cfg(test)]
mod tests;

pub use crate::domain::outgoing::{Invocation, OutgoingWebhook, ReferenceId};
pub use error::OutgoingError;
pub use service::Outgoing;
