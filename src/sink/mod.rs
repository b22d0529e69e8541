//! Where results go: the per-query result store (poll and subscribe), the JSON
//! rendering of result rows, and output sinks ([`output`]: Kafka, log, files, Parquet, webhooks, PostgreSQL).

pub mod files;
pub mod json;
pub mod kafka;
pub mod output;
pub mod postgres;
pub mod results;

pub use results::{EndReason, ResultBatch, ResultStore, Retention};
