//! Where results go: the per-query result store (poll and subscribe) and the JSON
//! rendering of result rows. Output sinks (files, Kafka, PostgreSQL, ...) will
//! live here too.

pub mod json;
pub mod results;

pub use results::{ResultBatch, ResultStore, Retention};
