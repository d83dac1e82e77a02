//! Implementations of the ports: SQLite (embedded shape), in-memory (unit tests),
//! and the in-process result signal.

pub mod memory;
pub mod signal;
pub mod sqlite;

pub use memory::{MemoryQueue, MemoryStore};
pub use signal::LocalSignal;
pub use sqlite::SqliteStore;
