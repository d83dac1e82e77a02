//! Incoming webhooks: the rules a received call must pass before it is stored.
//!
//! - [`verify`]: the sender's signature, per webhook (`webhook.put` `verify`).
//! - [`source`]: the caller's address and the per-webhook allowlist.

pub mod source;
pub mod verify;
