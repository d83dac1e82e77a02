//! Implementations of the ports: AWS (DynamoDB, SQS, S3), SQLite (embedded
//! shape), in-memory (unit tests), result signals, SMTP mail, and a short-lived
//! lookup cache for the receive path.

pub mod aws;
pub mod cache;
mod job_wait;
pub mod memory;
pub mod signal;
pub mod smtp;
pub mod sqlite;

pub use memory::{MemoryQueue, MemoryStore};
pub use signal::{LocalSignal, PollingSignal};
pub use smtp::SmtpMailer;
pub use sqlite::SqliteStore;
