//! Integration tests: the real `hookflow` binary, driven over HTTP.
//! One test binary (faster to build), one module per area.

mod aws_shape;
mod bad_input;
mod cli;
mod conformance;
mod deep_json;
mod durability;
mod endpoint;
mod fuzz;
mod harness;
mod outgoing;
mod pipelines;
mod receive;
mod results;
mod runaway_pipelines;
mod side_effects;
mod token_never_stored;
mod webhooks;
