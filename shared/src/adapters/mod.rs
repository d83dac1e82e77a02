//! Implementations of the ports: AWS (DynamoDB, SQS, S3; feature `aws`), SQLite
//! (embedded shape; `sqlite`), in-memory (unit tests), result signals, SMTP mail
//! (`smtp`), guarded outgoing HTTP (`http-client`), and a short-lived lookup
//! cache for the receive path. Only [`crate::wiring`] builds them.

pub mod absent;
#[cfg(feature = "aws")]
pub mod aws;
pub mod cache;
#[cfg(feature = "http-client")]
pub mod http;
mod job_wait;
pub mod memory;
pub mod signal;
#[cfg(feature = "smtp")]
pub mod smtp;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use memory::{MemoryQueue, MemoryStore};
pub use signal::{LocalSignal, PollingSignal};
#[cfg(feature = "smtp")]
pub use smtp::SmtpMailer;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
