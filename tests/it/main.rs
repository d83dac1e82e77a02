//! Integration tests: the real `hookflow` binary, driven over HTTP.
//! One test binary (faster to build), one module per area.

mod bad_input;
mod cli;
mod conformance;
mod data_dir_lock;
mod disk_full;
mod durability;
mod endpoint;
mod harness;
mod outgoing;
mod pipelines;
mod receive;
mod results;
mod wal_bound;
mod webhooks;
