//! The one integration test binary (each extra binary relinks all of DataFusion).
//! Modules: the `.slt` semantics runner, the HTTP API, real TCP peers, a real
//! Kafka-protocol broker, the CLI, the dashboard in headless Chromium,
//! and the examples in queries/.

mod cli;
mod common;
mod dashboard;
mod directory;
mod examples;
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
