//! The read model the HTTP API sees: declared sources, streams and queries with
//! their status, metrics and result stores. The engine task writes it; handlers
//! read it without waiting for a tick to finish.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use datafusion::arrow::datatypes::SchemaRef;
use serde::Serialize;

use crate::clock::Clock;
use crate::exec::window::WindowMemory;
use crate::lock;
use crate::sink::ResultStore;
use crate::source::SourceHandle;
use crate::time::BatchTime;

/// What kind of continuous computation a query or stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueryKind {
    /// A derived stream (`CREATE STREAM`).
    Stream,
    /// No WINDOW clause: runs on each batch alone.
    PerBatch,
    Sliding,
    Tumbling,
    Cumulative,
}

impl QueryKind {
    pub fn name(self) -> &'static str {
        match self {
            QueryKind::Stream => "stream",
            QueryKind::PerBatch => "per-batch",
            QueryKind::Sliding => "sliding",
            QueryKind::Tumbling => "tumbling",
            QueryKind::Cumulative => "cumulative",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum QueryStatus {
    Running,
    /// Stopped at `batch_time` by `error`; it does not run again (drop and recreate it).
    Failed {
        error: String,
        batch_time: i64,
    },
}

/// Measurements of one batch of one query or stream.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct BatchMetrics {
    pub batch_time: i64,
    pub input_rows: usize,
    pub output_rows: usize,
    /// Wall time spent running the plan and rendering results, in microseconds.
    pub processing_us: u64,
    /// Start of processing minus the batch time, in milliseconds (0 on the manual clock).
    pub scheduling_delay_ms: i64,
}

/// Totals and the recent history of a query.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueryMetrics {
    pub batches: u64,
    pub input_rows_total: u64,
    pub output_rows_total: u64,
    pub processing_us_total: u64,
    /// The last [`HISTORY`] batches, oldest first.
    pub history: VecDeque<BatchMetrics>,
}

/// Batches of metrics history kept per query (for the dashboard's charts).
pub const HISTORY: usize = 120;

impl QueryMetrics {
    pub fn record(&mut self, m: BatchMetrics) {
        self.batches += 1;
        self.input_rows_total += m.input_rows as u64;
        self.output_rows_total += m.output_rows as u64;
        self.processing_us_total += m.processing_us;
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(m);
    }

    pub fn last(&self) -> Option<&BatchMetrics> {
        self.history.back()
    }
}

/// The window of a sliding or tumbling query.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WindowInfo {
    pub length_ms: i64,
    pub slide_ms: i64,
    /// Pane length gcd(length, slide), for an incremental window.
    pub pane_ms: i64,
    /// `panes` (partial aggregates merged per slide) or `raw` (raw rows buffered).
    pub mode: &'static str,
}

/// The settings of a cumulative query.
#[derive(Debug, Clone, Serialize)]
pub struct CumulativeInfo {
    /// Keys idle this long are dropped; None keeps them forever.
    pub ttl_ms: Option<i64>,
    /// `complete` (the whole table every batch) or `updates` (changed keys).
    pub emit: &'static str,
    /// The GROUP BY columns, as the state names them.
    pub keys: Vec<String>,
}

/// One continuous query or derived stream.
pub struct QueryInfo {
    pub name: String,
    /// The statement as written.
    pub sql: String,
    pub kind: QueryKind,
    pub schema: SchemaRef,
    /// The grid point at creation; the first batch ends at zero + T.
    pub zero_time: BatchTime,
    pub parallelism: usize,
    /// Sources and streams read.
    pub inputs: Vec<String>,
    pub results: ResultStore,
    /// Set for sliding and tumbling queries.
    pub window: Option<WindowInfo>,
    /// Set for cumulative queries.
    pub cumulative: Option<CumulativeInfo>,
    status: Mutex<QueryStatus>,
    metrics: Mutex<QueryMetrics>,
    window_memory: Mutex<WindowMemory>,
    /// Keep each result batch as Arrow too (a Parquet sink reads this query).
    pub keep_arrow: std::sync::atomic::AtomicBool,
}

impl QueryInfo {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        sql: String,
        kind: QueryKind,
        schema: SchemaRef,
        zero_time: BatchTime,
        parallelism: usize,
        inputs: Vec<String>,
        results: ResultStore,
    ) -> QueryInfo {
        QueryInfo {
            name,
            sql,
            kind,
            schema,
            zero_time,
            parallelism,
            inputs,
            results,
            window: None,
            cumulative: None,
            status: Mutex::new(QueryStatus::Running),
            metrics: Mutex::new(QueryMetrics::default()),
            window_memory: Mutex::new(WindowMemory::default()),
            keep_arrow: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn with_window(mut self, window: WindowInfo) -> QueryInfo {
        self.window = Some(window);
        self
    }

    /// Time between two result batches: the slide, or the batch interval.
    pub fn cadence_ms(&self, batch_interval_ms: i64) -> i64 {
        self.window.map_or(batch_interval_ms, |w| w.slide_ms)
    }

    pub fn set_window_memory(&self, m: WindowMemory) {
        *lock(&self.window_memory) = m;
    }

    pub fn window_memory(&self) -> WindowMemory {
        *lock(&self.window_memory)
    }

    pub fn status(&self) -> QueryStatus {
        lock(&self.status).clone()
    }

    pub fn is_running(&self) -> bool {
        matches!(*lock(&self.status), QueryStatus::Running)
    }

    pub fn fail(&self, error: String, at: BatchTime) {
        tracing::error!(query = %self.name, batch_time = at.millis(), "query failed: {error}");
        *lock(&self.status) = QueryStatus::Failed {
            error,
            batch_time: at.millis(),
        };
    }

    pub fn record(&self, m: BatchMetrics) {
        lock(&self.metrics).record(m);
    }

    pub fn metrics(&self) -> QueryMetrics {
        lock(&self.metrics).clone()
    }

    pub fn last_metrics(&self) -> Option<BatchMetrics> {
        lock(&self.metrics).last().copied()
    }

    /// Batches run and rows emitted since the query started (or was restored).
    pub fn totals(&self) -> (u64, u64) {
        let m = lock(&self.metrics);
        (m.batches, m.output_rows_total)
    }
}

/// Everything declared, as the API reads it.
pub struct Registry {
    pub clock: Clock,
    pub sources: RwLock<BTreeMap<String, Arc<SourceHandle>>>,
    pub streams: RwLock<BTreeMap<String, Arc<QueryInfo>>>,
    pub queries: RwLock<BTreeMap<String, Arc<QueryInfo>>>,
    pub sinks: RwLock<BTreeMap<String, Arc<crate::sink::output::SinkInfo>>>,
    /// The last batch time run, or -1 before the first.
    last_batch: AtomicI64,
}

impl Registry {
    pub fn new(clock: Clock) -> Registry {
        Registry {
            clock,
            sources: RwLock::default(),
            streams: RwLock::default(),
            queries: RwLock::default(),
            sinks: RwLock::default(),
            last_batch: AtomicI64::new(-1),
        }
    }

    pub fn source(&self, name: &str) -> Option<Arc<SourceHandle>> {
        read(&self.sources).get(name).cloned()
    }

    pub fn query(&self, name: &str) -> Option<Arc<QueryInfo>> {
        read(&self.queries).get(name).cloned()
    }

    pub fn stream(&self, name: &str) -> Option<Arc<QueryInfo>> {
        read(&self.streams).get(name).cloned()
    }

    pub fn all_sources(&self) -> Vec<Arc<SourceHandle>> {
        read(&self.sources).values().cloned().collect()
    }

    pub fn all_queries(&self) -> Vec<Arc<QueryInfo>> {
        read(&self.queries).values().cloned().collect()
    }

    pub fn sink(&self, name: &str) -> Option<Arc<crate::sink::output::SinkInfo>> {
        read(&self.sinks).get(name).cloned()
    }

    pub fn all_sinks(&self) -> Vec<Arc<crate::sink::output::SinkInfo>> {
        read(&self.sinks).values().cloned().collect()
    }

    pub fn all_streams(&self) -> Vec<Arc<QueryInfo>> {
        read(&self.streams).values().cloned().collect()
    }

    pub fn last_batch(&self) -> Option<BatchTime> {
        let t = self.last_batch.load(Ordering::Acquire);
        (t >= 0).then_some(BatchTime(t))
    }

    pub(crate) fn set_last_batch(&self, t: BatchTime) {
        self.last_batch.store(t.millis(), Ordering::Release);
    }
}

pub(crate) fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
