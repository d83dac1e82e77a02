//! Integration tests: the real `hookflow` binary, driven over HTTP.
//! One test binary (faster to build), one module per area.

mod aws_shape;
mod bad_input;
mod cli;
mod conformance;
mod data_dir_lock;
mod dead_letters;
mod dedup;
mod deep_json;
mod disk_full;
mod durability;
mod edges;
mod event_log;
mod function_deps;
mod fuzz;
mod harness;
mod infra_agrees;
mod observe;
mod openapi;
mod outgoing;
mod pipeline_test;
mod pipelines;
mod receive;
mod results;
mod rotate;
mod runaway_pipelines;
mod side_effects;
mod slow_clients;
mod sources;
mod token_never_stored;
mod unread_answers;
mod verify;
mod wal_bound;
mod webhooks;
