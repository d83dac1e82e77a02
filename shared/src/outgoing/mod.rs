//! Outgoing webhooks (seeds/004): a registry of external endpoints that the API
//! (`webhook.send`) and pipelines (`webhook.send` step) call, with an invocation
//! record per call, Standard Webhooks signatures, an SSRF guard and retried
//! asynchronous deliveries.
//!
//! - [`error`]: why an operation was refused, and whether retrying may help.
//! - [`model`]: the stored registration and invocation records.
//! - [`registry`]: validation of `outgoing.put` and of a trigger against a registration.
//! - [`signing`]: Standard Webhooks signatures.
//! - [`guard`]: which addresses calls may reach.
//! - [`service`]: trigger, send, record, retry: what both callers share.

pub mod error;
pub mod guard;
pub mod model;
pub mod registry;
pub mod schedule;
pub mod service;
pub mod signing;

#[cfg(test)]
mod tests;

pub use error::OutgoingError;
pub use model::{Invocation, OutgoingWebhook, ReferenceId};
pub use service::Outgoing;
