//! Incoming webhooks: the rules a received call must pass before it is stored.
//!
//! - [`verify`]: the sender's signature, per webhook (`webhook.put` `verify`).
//! - [`source`]: the caller's address and the per-webhook allowlist.
//! - [`dedup`]: the key of a delivery, so a repeat is not stored twice.

pub mod dedup;
pub mod source;
pub mod verify;
