//! sluice: a streaming SQL server in the model of Spark Streaming's discretized
//! streams. Every input stream is cut into micro-batches, one per batch interval
//! T; every continuous query runs on each batch, planned once by DataFusion and
//! executed on Arrow RecordBatches.
//!
//! The data path, one module per stage (imports point downstream):
//!
//! ```text
//! source (tcp, http, generator)   decode records into Arrow: framing, decode
//!   -> batcher                    seal one RecordBatch per source per interval
//!   -> engine (tick)              per tick: sources, derived streams, queries
//!        sql (compile once)       dialect: our statements + WINDOW; planner
//!        exec (run per batch)     live tables over slots; plan reuse
//!   -> sink                       result store (poll, SSE), JSON rendering
//!   -> api                        axum router (never binds); server binds it
//! clock                           the only reader of the wall clock
//! ```
//!
//! Invariants:
//! - No SQL is parsed or planned per batch: plans are built at CREATE.
//! - One task owns the engine; the timer and `POST /clock/advance` share
//!   `Engine::tick`, so ticks never interleave.
//! - A bad record never stops a source; a failing query never stops the others.
//! - A slow subscriber never blocks the engine: it is told it lagged.
//!
//! See docs/architecture.md for the code map.

pub mod api;
pub mod batcher;
pub mod bench;
pub mod client;
pub mod clock;
pub mod config;
pub mod engine;
pub mod exec;
pub mod paths;
pub mod server;
pub mod sink;
pub mod source;
pub mod sql;
pub mod state;
pub mod time;

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every
/// critical section in sluice leaves its data consistent, so a panic elsewhere
/// must not turn into a second panic here.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
