//! Integration tests: the real `hookflow` binary, driven over HTTP.
//! One test binary (faster to build), one module per area.

mod bad_input;
mod cli;
mod conformance;
mod durability;
mod edges;
mod endpoint;
mod harness;
mod outgoing;
mod pipelines;
mod receive;
mod results;
mod slow_clients;
mod unread_answers;
mod webhooks;
