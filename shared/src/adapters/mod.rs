//! Implementations of the ports: SQLite (embedded shape), in-memory (unit tests),
//! the in-process result signal, and SMTP mail.

pub mod memory;
pub mod signal;
pub mod smtp;
pub mod sqlite;

pub use memory::{MemoryQueue, MemoryStore};
pub use signal::LocalSignal;
pub use smtp::SmtpMailer;
pub use sqlite::SqliteStore;
