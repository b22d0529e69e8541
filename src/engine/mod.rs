//! The engine: the one owner of sources' feeders, compiled plans and slots, and
//! the single tick path.
//!
//! [`Engine::tick`] runs one batch time `t`, in order: seal every source's batch
//! (rows received in `(t - T, t]`), compute derived streams in creation order
//! (which is dependency order: a stream can only read what existed before it),
//! then run every query on its inputs and emit its result batch. The system
//! clock's timer and `POST /clock/advance` both go through [`Engine::tick`], and
//! one task ([`run`]) owns the engine, so ticks never interleave with each other
//! or with catalog changes.
//!
//! Missed ticks: when a tick takes longer than T, the next batch times are run
//! one after another as soon as possible, in order — none is skipped or merged,
//! as Spark queues late batches; the scheduling delay metric shows the lag.

pub mod registry;
mod statements;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock::{Clock, Stopwatch};
use crate::exec::cumulative::Cumulative;
use crate::exec::window::{PaneWindow, RawWindow};
use crate::exec::{BatchClock, CompiledPlan, Slot};
use crate::sink::json::write_rows;
use crate::sink::{ResultBatch, Retention};
use crate::source::{Source, SourceHandle, SourceLimits};
use crate::sql::dialect::SqlError;
use crate::sql::planner::Readable;
use crate::state::checkpoint::{CatalogEntry, Found, Manifest, SourcePosition};
use crate::state::checkpoint_io::{self, Snapshot};
use crate::state::window::WindowSpec;
use crate::time::BatchTime;
pub use registry::{BatchMetrics, QueryInfo, QueryKind, QueryStatus, Registry};
pub use statements::schema_json;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Default parallelism of a query (default: the cores available).
    pub parallelism: usize,
    /// Results kept per query.
    pub retention: Retention,
    pub source_limits: SourceLimits,
    /// Where checkpoints go; None: no checkpoints.
    pub data_dir: Option<std::path::PathBuf>,
    /// Checkpoint every this many batches (default 10; 0: only at shutdown).
    pub checkpoint_interval: u64,
    /// Log received rows before they count (needs `data_dir`; default on).
    pub wal: bool,
    /// Roots besides `data_dir` that file sinks may write under (`--allow-path`).
    pub allowed_paths: Vec<std::path::PathBuf>,
    /// How many objects the catalog may hold.
    pub catalog_limits: CatalogLimits,
}

/// Most objects of each kind (`--max-sources`, `--max-queries`, `--max-sinks`); a
/// CREATE beyond them is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogLimits {
    /// Sources and static tables together (default 100).
    pub sources: usize,
    /// Queries and derived streams together (default 1000).
    pub queries: usize,
    /// Sinks (default 100).
    pub sinks: usize,
}

impl Default for CatalogLimits {
    fn default() -> Self {
        CatalogLimits {
            sources: 100,
            queries: 1000,
            sinks: 100,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            retention: Retention::default(),
            source_limits: SourceLimits::default(),
            data_dir: None,
            checkpoint_interval: 10,
            wal: true,
            allowed_paths: Vec::new(),
            catalog_limits: CatalogLimits::default(),
        }
    }
}

struct SourceEntry {
    handle: Arc<SourceHandle>,
    feeder: Box<dyn Source>,
    task: Option<JoinHandle<()>>,
    slot: Arc<Slot>,
}

impl Drop for SourceEntry {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A static table (`CREATE TABLE ... FROM FILE`): its rows stay in its slot.
struct TableEntry {
    name: String,
    schema: datafusion::arrow::datatypes::SchemaRef,
    slot: Arc<Slot>,
    rows: usize,
    sql: String,
}

/// A running output sink; its task ends when the entry is dropped (DROP SINK).
struct SinkEntry {
    info: Arc<crate::sink::output::SinkInfo>,
    task: JoinHandle<()>,
}

impl Drop for SinkEntry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a query runs each batch.
enum Mode {
    /// No WINDOW clause (and every derived stream): the plan on the batch.
    PerBatch(CompiledPlan),
    /// A window computed from panes of partial aggregates.
    Panes(Box<PaneWindow>),
    /// A window computed from its buffered raw rows.
    Raw(Box<RawWindow>),
    /// Keyed state since the zero time.
    Cumulative(Box<Cumulative>),
}

/// A compiled query or stream.
struct Runner {
    info: Arc<QueryInfo>,
    mode: Mode,
    /// Sliding and tumbling queries: when they emit and what they cover.
    window: Option<WindowSpec>,
    /// Streams write their output here for the queries that read them.
    slot: Option<Arc<Slot>>,
}

/// A failed statement: which one (1-based), why, and what was applied before it.
#[derive(Debug)]
pub struct StatementFailure {
    pub index: usize,
    pub error: SqlError,
    pub applied: Vec<Value>,
}

pub struct Engine {
    config: EngineConfig,
    clock: Clock,
    registry: Arc<Registry>,
    batch_clock: BatchClock,
    sources: Vec<SourceEntry>,
    streams: Vec<Runner>,
    queries: Vec<Runner>,
    sinks: Vec<SinkEntry>,
    tables: Vec<TableEntry>,
    /// Counter for names of unnamed queries (`query_1`, ...).
    unnamed: u64,
    last_tick: Option<BatchTime>,
    /// What was created, in order, to rebuild it from a checkpoint.
    catalog: Vec<CatalogEntry>,
    /// While restoring: the zero time recorded for the object being recreated.
    zero_override: Option<BatchTime>,
    /// Batches run by this engine (checkpoints fall every `checkpoint_interval`).
    batches_run: u64,
    /// The catalog changed since the last checkpoint.
    catalog_dirty: bool,
    /// The batch time of the last checkpoint written or restored.
    last_checkpoint: Option<BatchTime>,
    /// While restoring: each source's position (log sequence number, Kafka
    /// offsets, files read), by source name.
    restoring: BTreeMap<String, SourcePosition>,
}

impl Engine {
    pub fn new(clock: Clock, config: EngineConfig) -> Engine {
        Engine {
            registry: Arc::new(Registry::new(clock.clone())),
            config,
            clock,
            batch_clock: BatchClock::default(),
            sources: Vec::new(),
            streams: Vec::new(),
            queries: Vec::new(),
            sinks: Vec::new(),
            tables: Vec::new(),
            unnamed: 0,
            last_tick: None,
            catalog: Vec::new(),
            zero_override: None,
            batches_run: 0,
            catalog_dirty: false,
            last_checkpoint: None,
            restoring: BTreeMap::new(),
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The tables queries can read: sources, streams and static tables.
    fn readable(&self) -> BTreeMap<String, Readable> {
        let mut tables = BTreeMap::new();
        for t in &self.tables {
            tables.insert(
                t.name.clone(),
                Readable {
                    schema: t.schema.clone(),
                    slot: Arc::clone(&t.slot),
                },
            );
        }
        for s in &self.sources {
            tables.insert(
                s.handle.name().to_string(),
                Readable {
                    schema: s.handle.schema().clone(),
                    slot: Arc::clone(&s.slot),
                },
            );
        }
        for s in &self.streams {
            if let Some(slot) = &s.slot {
                tables.insert(
                    s.info.name.clone(),
                    Readable {
                        schema: s.info.schema.clone(),
                        slot: Arc::clone(slot),
                    },
                );
            }
        }
        tables
    }

    /// Runs batch `t`. `t` must be later than the last batch run.
    pub async fn tick(&mut self, t: BatchTime) {
        if self.last_tick.is_some_and(|last| t <= last) {
            tracing::warn!(
                batch_time = t.millis(),
                "tick for a batch time already run; ignored"
            );
            return;
        }
        let delay = if self.clock.is_manual() {
            0
        } else {
            (self.clock.now_ms() - t.millis()).max(0)
        };
        self.batch_clock.set(t.millis());
        let mut rows: BTreeMap<String, usize> = BTreeMap::new();
        for s in &mut self.sources {
            let pulled = s.feeder.on_seal(t, &s.handle);
            let pulled = s.handle.log_pulled(t, pulled).await;
            let batch = s.handle.seal(t, pulled, delay);
            rows.insert(s.handle.name().to_string(), batch.rows);
            s.slot.set(batch.chunks);
        }
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let current: BTreeMap<String, Arc<Slot>> = self
            .readable()
            .into_iter()
            .map(|(k, r)| (k, r.slot))
            .collect();
        for stream in &mut self.streams {
            let out = run_one(stream, t, delay, &rows, &mut failed, &current).await;
            let n: usize = out.iter().map(|b| b.num_rows()).sum();
            rows.insert(stream.info.name.clone(), n);
            if let Some(slot) = &stream.slot {
                slot.set(out);
            }
        }
        for query in &mut self.queries {
            run_one(query, t, delay, &rows, &mut failed, &current).await;
        }
        for s in &self.sources {
            s.slot.clear();
        }
        for s in &self.streams {
            if let Some(slot) = &s.slot {
                slot.clear();
            }
        }
        self.last_tick = Some(t);
        self.registry.set_last_batch(t);
        self.clock.set_ran(t);
        self.batches_run += 1;
        let every = self.config.checkpoint_interval;
        if every > 0 && (self.batches_run.is_multiple_of(every) || self.catalog_dirty) {
            self.checkpoint_now().await;
        }
    }

    /// Stops every source: receivers end, HTTP ingest is refused. What they had
    /// received but not sealed into a batch is in the write-ahead log (or, for
    /// Kafka, after the checkpoint's offsets), so a restart reads it again.
    fn stop_sources(&mut self) {
        for s in &mut self.sources {
            s.handle.stop();
            if let Some(task) = s.task.take() {
                task.abort();
            }
        }
    }

    /// Writes a checkpoint now, if there is a data dir and a batch to cover.
    /// A failure is logged; the engine goes on (the previous checkpoint stays).
    pub async fn checkpoint_now(&mut self) -> Option<Manifest> {
        let (Some(dir), Some(t)) = (self.config.data_dir.clone(), self.last_tick) else {
            return None;
        };
        if self.last_checkpoint == Some(t) {
            // Nothing ran since: the checkpoint on disk is this one, and rewriting
            // it would only put it at risk.
            return None;
        }
        let manifest = self.write_checkpoint(&dir, t).await?;
        self.catalog_dirty = false;
        self.last_checkpoint = Some(t);
        // The log up to the positions is covered now; Kafka offsets may go to
        // the consumer group.
        for (s, p) in self.sources.iter_mut().zip(&manifest.sources) {
            if let Some(wal) = s.handle.wal() {
                wal.truncate(p.wal_seq).await;
            }
            s.feeder.on_checkpoint(&s.handle);
        }
        Some(manifest)
    }

    /// Writes a checkpoint of batch `t` into `dir`; logs and returns None on failure.
    async fn write_checkpoint(&self, dir: &std::path::Path, t: BatchTime) -> Option<Manifest> {
        let watch = Stopwatch::start();
        let mut snapshots = Vec::new();
        for q in &self.queries {
            // (content, schema, rows) of each file the query's state needs.
            let taken = match &q.mode {
                Mode::Cumulative(c) => c
                    .snapshot()
                    .map(|(schema, rows)| vec![("keyed-state".to_string(), schema, rows)]),
                Mode::Panes(w) => w
                    .snapshot()
                    .map(|(schema, rows)| vec![("window-panes".to_string(), schema, rows)]),
                Mode::Raw(w) => w.snapshot().map(|inputs| {
                    inputs
                        .into_iter()
                        .map(|(input, schema, rows)| (format!("window-raw:{input}"), schema, rows))
                        .collect()
                }),
                Mode::PerBatch(_) => Ok(Vec::new()),
            };
            match taken {
                Ok(files) => {
                    for (content, schema, batches) in files {
                        snapshots.push(Snapshot {
                            owner: q.info.name.clone(),
                            content,
                            schema,
                            batches,
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(query = %q.info.name, "cannot snapshot the query's state: {e}; no checkpoint this time");
                    return None;
                }
            }
        }
        let positions: Vec<SourcePosition> = self
            .sources
            .iter()
            .map(|s| SourcePosition {
                name: s.handle.name().to_string(),
                wal_seq: s.handle.position(),
                kafka_offsets: s.handle.kafka_offsets(),
                files: s.handle.files_read().into_iter().collect(),
            })
            .collect();
        match checkpoint_io::write(dir, t.millis(), self.catalog.clone(), positions, snapshots) {
            Ok(m) => {
                tracing::info!(
                    batch_time = t.millis(),
                    files = m.files.len(),
                    ms = watch.elapsed_us() / 1000,
                    "checkpoint written"
                );
                Some(m)
            }
            Err(e) => {
                tracing::error!("checkpoint failed: {e}");
                None
            }
        }
    }

    /// Rebuilds everything from a checkpoint: the catalog (with its zero times),
    /// each query's state, and the last batch time. The engine must be empty.
    pub async fn restore(&mut self, found: &Found) -> Result<i64, String> {
        let manifest = found
            .manifest
            .clone()
            .map_err(|e| format!("unreadable manifest: {e}"))?;
        let t = BatchTime(manifest.batch_time);
        // The manual clock resumes at the checkpoint; the system clock at now.
        self.clock.set_ran(t);
        self.restoring = manifest
            .sources
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect();
        for entry in &manifest.catalog {
            // Sources start now: a generator makes no rows for the downtime.
            let zero = if entry.kind == "source" {
                self.clock.zero_time()
            } else {
                BatchTime(entry.zero_time)
            };
            self.zero_override = Some(zero);
            let result = self.execute(&entry.sql).await;
            self.zero_override = None;
            if let Err(f) = result {
                self.restoring.clear();
                return Err(format!(
                    "cannot recreate {} '{}': {}",
                    entry.kind, entry.name, f.error.message
                ));
            }
        }
        self.restoring.clear();
        for file in &manifest.files {
            let watch = Stopwatch::start();
            let batches = checkpoint_io::read(&found.dir, &file.file).map_err(|e| e.to_string())?;
            let read_us = watch.elapsed_us();
            let Some(q) = self.queries.iter_mut().find(|q| q.info.name == file.owner) else {
                return Err(format!(
                    "the checkpoint has state for '{}', which its catalog does not create",
                    file.owner
                ));
            };
            let raw_input = file.content.strip_prefix("window-raw:");
            let restored = match (&mut q.mode, raw_input) {
                (Mode::Cumulative(c), None) => c.restore(batches),
                (Mode::Panes(w), None) => w.restore(batches),
                (Mode::Raw(w), Some(input)) => w.restore_input(input, batches),
                _ => {
                    return Err(format!(
                        "query '{}' has no state of the kind '{}' to restore into",
                        file.owner, file.content
                    ))
                }
            };
            restored.map_err(|e| format!("cannot restore the state of '{}': {e}", file.owner))?;
            tracing::debug!(file = %file.file, read_us, load_us = watch.elapsed_us() - read_us, "restored a data file");
        }
        self.last_tick = Some(t);
        self.last_checkpoint = Some(t);
        // The catalog just replayed is the checkpoint's.
        self.catalog_dirty = false;
        self.registry.set_last_batch(t);
        for q in &self.queries {
            match &q.mode {
                Mode::Cumulative(c) => q.info.set_window_memory(c.memory()),
                Mode::Panes(w) => q.info.set_window_memory(w.memory()),
                Mode::Raw(w) => q.info.set_window_memory(w.memory()),
                Mode::PerBatch(_) => {}
            }
        }
        Ok(t.millis())
    }

    /// Records a created object for checkpoints.
    fn remember(&mut self, kind: &str, name: &str, sql: String, zero: BatchTime) {
        self.catalog.push(CatalogEntry {
            kind: kind.to_string(),
            name: name.to_string(),
            sql,
            zero_time: zero.millis(),
        });
        self.catalog_changed();
    }

    fn forget(&mut self, name: &str) {
        self.catalog.retain(|e| e.name != name);
        self.catalog_changed();
    }

    /// A catalog change is made durable by a checkpoint at the end of the next
    /// batch rather than up to `--checkpoint-interval` batches later.
    fn catalog_changed(&mut self) {
        self.catalog_dirty = true;
    }

    /// The zero time of an object created now (or restored).
    fn zero_time(&self) -> BatchTime {
        self.zero_override.unwrap_or_else(|| self.clock.zero_time())
    }

    /// The current table of cumulative query `name` as `{"batch_time", "rows"}` JSON.
    async fn cumulative_table(&self, name: &str) -> Option<Result<Vec<u8>, String>> {
        let runner = self.queries.iter().find(|q| q.info.name == name)?;
        let Mode::Cumulative(c) = &runner.mode else {
            return None;
        };
        let batches = match c.table().await {
            Ok(b) => b,
            Err(e) => return Some(Err(e.to_string())),
        };
        let t = self
            .last_tick
            .map_or("null".to_string(), |t| t.millis().to_string());
        let mut json = format!("{{\"batch_time\":{t},\"rows\":").into_bytes();
        write_rows(&batches, &mut json);
        json.push(b'}');
        Some(Ok(json))
    }

    /// The next batch time of the manual clock.
    pub fn next_manual_batch(&self) -> BatchTime {
        BatchTime(self.clock.now_ms()).next(self.clock.interval())
    }
}

/// Runs one query or stream for batch `t`; emits results for queries. Returns the
/// output (empty for a failed or not yet started one). `failed` holds the streams
/// that have failed: a reader of one fails too, rather than emit results computed
/// without its input; a failing stream adds itself.
async fn run_one(
    runner: &mut Runner,
    t: BatchTime,
    delay: i64,
    rows: &BTreeMap<String, usize>,
    failed: &mut BTreeSet<String>,
    current: &BTreeMap<String, Arc<Slot>>,
) -> Vec<datafusion::arrow::record_batch::RecordBatch> {
    let info = Arc::clone(&runner.info);
    if info.is_running() {
        if let Some(input) = info.inputs.iter().find(|i| failed.contains(*i)) {
            info.fail(format!("its input stream '{input}' has failed"), t);
        }
    }
    if !info.is_running() {
        if info.kind == QueryKind::Stream {
            failed.insert(info.name.clone());
        }
        return Vec::new();
    }
    if t <= info.zero_time {
        return Vec::new();
    }
    let input_rows: usize = info.inputs.iter().filter_map(|i| rows.get(i)).sum();
    let watch = Stopwatch::start();
    let result = match &mut runner.mode {
        Mode::PerBatch(plan) => plan.run(input_rows).await.map(Some),
        Mode::Panes(w) => {
            let r = w.step(t, input_rows).await;
            info.set_window_memory(w.memory());
            r
        }
        Mode::Raw(w) => {
            let r = w.step(t, current).await;
            info.set_window_memory(w.memory());
            r
        }
        Mode::Cumulative(c) => {
            let r = c.step(t, input_rows).await.map(Some);
            info.set_window_memory(c.memory());
            r
        }
    };
    let emitted = match result {
        Ok(out) => out,
        Err(e) => {
            info.fail(crate::sql::planner::user_error(e).message, t);
            if info.kind == QueryKind::Stream {
                failed.insert(info.name.clone());
            }
            return Vec::new();
        }
    };
    let emits = emitted.is_some();
    let out = emitted.unwrap_or_default();
    let output_rows = out.iter().map(|b| b.num_rows()).sum();
    if info.kind != QueryKind::Stream && emits {
        let mut json = Vec::with_capacity(64 + output_rows * 32);
        let head = match runner.window {
            Some(w) => {
                let (start, end) = w.bounds(t);
                format!(
                    "{{\"batch_time\":{},\"window_start\":{},\"window_end\":{},\"rows\":",
                    t.millis(),
                    start.millis(),
                    end.millis()
                )
            }
            None => format!("{{\"batch_time\":{},\"rows\":", t.millis()),
        };
        json.extend_from_slice(head.as_bytes());
        write_rows(&out, &mut json);
        json.push(b'}');
        let arrow = info
            .keep_arrow
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| Arc::new(out.clone()));
        let mut batch = ResultBatch::new(t, output_rows, json.into());
        batch.arrow = arrow;
        info.results.push(batch);
    }
    info.record(BatchMetrics {
        batch_time: t.millis(),
        input_rows,
        output_rows,
        processing_us: watch.elapsed_us(),
        scheduling_delay_ms: delay,
    });
    out
}

/// A request to the engine task.
pub enum Command {
    Sql {
        text: String,
        reply: oneshot::Sender<Result<Vec<Value>, StatementFailure>>,
    },
    /// Manual clock: run `batches` batches now.
    Advance {
        batches: u32,
        reply: oneshot::Sender<Vec<i64>>,
    },
    /// Write a checkpoint now.
    Checkpoint { reply: oneshot::Sender<bool> },
    /// Clean shutdown: stop the sources, write a final checkpoint, and end the
    /// engine task (after the batch in progress, since commands run between ticks).
    Shutdown { reply: oneshot::Sender<bool> },
    /// Write a checkpoint into another data dir (benchmarks).
    CheckpointInto {
        dir: std::path::PathBuf,
        reply: oneshot::Sender<Option<Manifest>>,
    },
    /// The current table of a cumulative query, as result JSON; None if the
    /// query is not cumulative.
    State {
        query: String,
        reply: oneshot::Sender<Option<Result<Vec<u8>, String>>>,
    },
}

/// How the rest of the server talks to the engine task.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
    pub registry: Arc<Registry>,
}

/// The engine task has stopped (the server is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the engine has stopped")]
pub struct EngineStopped;

impl EngineHandle {
    pub async fn sql(
        &self,
        text: String,
    ) -> Result<Result<Vec<Value>, StatementFailure>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Sql { text, reply })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Writes a checkpoint of the current state into `dir` (a data dir of its own).
    pub async fn checkpoint_into(
        &self,
        dir: std::path::PathBuf,
    ) -> Result<Option<Manifest>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::CheckpointInto { dir, reply })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Writes a checkpoint now; false if none was written.
    pub async fn checkpoint(&self) -> Result<bool, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Checkpoint { reply })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Stops the sources, writes a final checkpoint and ends the engine task; true
    /// if a checkpoint was written (false: none was needed or possible).
    pub async fn shutdown(&self) -> Result<bool, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Shutdown { reply })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// The current table of a cumulative query (computed between ticks).
    pub async fn state(
        &self,
        query: String,
    ) -> Result<Option<Result<Vec<u8>, String>>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::State { query, reply })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    pub async fn advance(&self, batches: u32) -> Result<Vec<i64>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Advance { batches, reply })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }
}

/// Starts the engine task: it owns `engine`, runs the system clock's ticks (if
/// any) and serves commands, one at a time.
pub fn spawn(engine: Engine) -> (EngineHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let handle = EngineHandle {
        tx,
        registry: engine.registry(),
    };
    let task = tokio::spawn(run(engine, rx));
    (handle, task)
}

async fn run(mut engine: Engine, mut rx: mpsc::Receiver<Command>) {
    let interval = engine.clock.interval();
    let system = !engine.clock.is_manual();
    let mut next = BatchTime::containing(engine.clock.now_ms(), interval);
    loop {
        let due = engine.clock.instant_of(next);
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(due), if system => {
                engine.tick(next).await;
                next = next.next(interval);
            }
            command = rx.recv() => match command {
                None => break,
                Some(Command::Sql { text, reply }) => {
                    let _ = reply.send(engine.execute(&text).await);
                }
                Some(Command::CheckpointInto { dir, reply }) => {
                    let written = match engine.last_tick {
                        Some(t) => engine.write_checkpoint(&dir, t).await,
                        None => None,
                    };
                    let _ = reply.send(written);
                }
                Some(Command::Checkpoint { reply }) => {
                    let _ = reply.send(engine.checkpoint_now().await.is_some());
                }
                Some(Command::Shutdown { reply }) => {
                    engine.stop_sources();
                    let written = engine.checkpoint_now().await.is_some();
                    tracing::info!(checkpoint = written, "engine stopped: sources stopped, final checkpoint done");
                    let _ = reply.send(written);
                    break;
                }
                Some(Command::State { query, reply }) => {
                    let _ = reply.send(engine.cumulative_table(&query).await);
                }
                Some(Command::Advance { batches, reply }) => {
                    let mut times = Vec::with_capacity(batches as usize);
                    for _ in 0..batches {
                        let t = engine.next_manual_batch();
                        engine.tick(t).await;
                        times.push(t.millis());
                    }
                    let _ = reply.send(times);
                }
            }
        }
    }
}
