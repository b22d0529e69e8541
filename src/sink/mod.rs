//! Where results go: the per-query result store (poll and subscribe), the JSON
//! rendering of result rows, and output sinks (Kafka).

pub mod json;
pub mod kafka;
pub mod results;

pub use results::{ResultBatch, ResultStore, Retention};
