//! Incoming webhooks: what a valid registration or change is (`webhook.put`,
//! `webhook.get`, `webhook.delete`), its defaults and bounds, and the store
//! calls that carry a command out. Every refusal is a [`WebhookError`] with a
//! stable code, which the API turns into its answer.
//!
//! Named after the registrations it governs, like [`crate::outgoing`]. It is not
//! [`crate::inbound`], which checks each *received call* (its signature); a name
//! such as `incoming` would read as a synonym of that.
//!
//! - [`error`]: why a command was refused.
//! - [`registration`]: the typed inputs of the commands and the rules they follow.
//! - [`rotation`]: the input of `webhook.rotate` and the bound of its grace.
//! - [`service`]: create, change, rotate, read and delete over the [`WebhookStore`](crate::ports::WebhookStore).

pub mod error;
pub mod registration;
pub mod rotation;
pub mod service;

pub use error::WebhookError;
pub use registration::{WebhookPut, WebhookSelector};
pub use rotation::WebhookRotate;
