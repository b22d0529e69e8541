//! The one integration test binary (each extra binary relinks all of DataFusion).
//! Modules: the `.slt` semantics runner, the HTTP API, real TCP peers, a real
//! Kafka-protocol broker, the CLI, the dashboard in headless Chromium,
//! the examples in queries/, and the corpus of bad SQL and bad records.

mod cli;
mod common;
mod corpus;
mod dashboard;
mod directory;
mod examples;
mod fuzz_regressions;
mod hardening;
mod http_api;
mod kafka;
mod postgres;
mod recovery;
mod semantics;
mod sinks;
mod subscribers;
mod tcp;
mod windows;
