//! Incoming webhooks: the rules a received call must pass before it is stored.
//!
//! - [`verify`]: the sender's signature, per webhook (`webhook.put` `verify`).

pub mod verify;
