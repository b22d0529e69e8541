//! Receivers: the sources of data. Each declared source is a [`SourceHandle`]
//! (shared by its receiver, the engine and the HTTP API) plus a [`Source`] that
//! feeds it, in one of the two ways Spark Streaming has:
//!
//! - **push** (Spark's receivers): [`Source::start`] spawns a task that reads from
//!   the outside world, decodes records and calls [`SourceHandle::deliver`]. TCP.
//!   HTTP ingest is push too, with no task: the API calls [`SourceHandle::ingest`].
//! - **pull** (Spark's `InputDStream.compute(time)`): [`Source::on_seal`] is called
//!   by the engine for every batch time and returns that batch's rows. The
//!   generator, so that its output depends on batch times only (and tests are exact).
//!
//! Framing ([`framing`]) and decoding ([`decode`]) are pure and shared by all kinds.
//! How to add a kind: docs/architecture.md, "Adding a source".

pub mod decode;
pub mod directory;
pub mod framing;
pub mod generator;
pub mod kafka;
pub mod table;
pub mod tcp;
pub mod wal;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::batcher::{Batcher, MicroBatch};
use crate::clock::Clock;
use crate::lock;
use crate::time::BatchTime;
use decode::{Decoder, Format, RecordError};
use framing::{Frame, LineFramer};
use wal::{Logged, Wal, WalError};

/// Where a source's data comes from, as declared in `CREATE SOURCE ... FROM <kind>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A TCP client of `addr` (`host:port`), as Spark's `socketTextStream`.
    Tcp { addr: String },
    /// Rows POSTed to `/sources/{name}`.
    Http,
    /// Built-in demo data.
    Generator,
    /// Every partition of a Kafka topic.
    Kafka { brokers: String, topic: String },
    /// New files in a directory (confined, absolute).
    Directory { path: std::path::PathBuf },
}

impl SourceKind {
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Tcp { .. } => "tcp",
            SourceKind::Http => "http",
            SourceKind::Generator => "generator",
            SourceKind::Kafka { .. } => "kafka",
            SourceKind::Directory { .. } => "directory",
        }
    }
}

/// A validated `CREATE SOURCE`.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    pub schema: SchemaRef,
    pub kind: SourceKind,
    pub format: Format,
    /// `WITH (key = 'value', ...)`, keys lower-case.
    pub options: BTreeMap<String, String>,
    /// The statement as the user wrote it.
    pub sql: String,
}

/// Limits that apply to every source.
#[derive(Debug, Clone, Copy)]
pub struct SourceLimits {
    /// Longest record in bytes; a longer one is a bad record (default 1 MiB).
    pub max_record_bytes: usize,
    /// Rows a source may buffer before its receiver waits for the engine (default 4 M).
    pub max_buffered_rows: usize,
    /// Rows one HTTP ingest request may carry (default 1 000 000).
    pub max_ingest_rows: usize,
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits {
            max_record_bytes: 1 << 20,
            max_buffered_rows: 4_000_000,
            max_ingest_rows: 1_000_000,
        }
    }
}

/// A feeder of one source. See the module docs for push and pull.
pub trait Source: Send + Sync + 'static {
    /// Push sources spawn their receiver task here; it runs until aborted (on DROP)
    /// and reports trouble through the handle's status, never by returning.
    fn start(&mut self, _handle: Arc<SourceHandle>) -> Option<JoinHandle<()>> {
        None
    }

    /// Pull sources return the rows of batch `t` (called once per batch, in order).
    fn on_seal(&mut self, _t: BatchTime, _handle: &SourceHandle) -> Option<RecordBatch> {
        None
    }

    /// Called once a checkpoint holding the source's positions is durable.
    fn on_checkpoint(&mut self, _handle: &SourceHandle) {}
}

/// A push source's reconnection: after each failure the status shows `retrying`
/// with the error and the attempt count, the first failure of a run is logged,
/// and the pause doubles from `first` up to `max`. A success starts over.
pub(crate) struct Reconnect {
    first: std::time::Duration,
    max: std::time::Duration,
    backoff: std::time::Duration,
    attempts: u64,
}

impl Reconnect {
    pub(crate) fn new(first: std::time::Duration, max: std::time::Duration) -> Reconnect {
        Reconnect {
            first,
            max,
            backoff: first,
            attempts: 0,
        }
    }

    /// Connected: the status says so and the next failure is the first again.
    pub(crate) fn connected(&mut self, handle: &SourceHandle) {
        handle.set_status(SourceStatus::Connected);
        self.attempts = 0;
        self.backoff = self.first;
    }

    /// Records `error` and waits before the next attempt.
    pub(crate) async fn failed(&mut self, handle: &SourceHandle, error: String) {
        self.attempts += 1;
        if self.attempts == 1 {
            tracing::warn!(source = %handle.name(), "{error}; retrying with backoff");
        }
        handle.set_status(SourceStatus::Retrying {
            error,
            attempts: self.attempts,
        });
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(self.max);
    }
}

/// Builds the feeder for a validated spec; `zero` is the grid point at creation,
/// `offsets` a Kafka source's offsets to resume from (a restored checkpoint's).
pub fn build(
    spec: &SourceSpec,
    zero: BatchTime,
    offsets: kafka::Offsets,
) -> Result<Box<dyn Source>, String> {
    Ok(match &spec.kind {
        SourceKind::Tcp { addr } => Box::new(tcp::TcpSource::new(addr.clone())),
        SourceKind::Http => Box::new(HttpSource),
        SourceKind::Generator => Box::new(generator::Generator::new(spec, zero)?),
        SourceKind::Kafka { brokers, topic } => Box::new(kafka::KafkaSource::new(
            kafka::KafkaSpec::new(&spec.name, brokers, topic, &spec.options)?,
            kafka::payload_schema(&spec.schema),
            spec.format,
            offsets,
        )),
        SourceKind::Directory { path } => Box::new(directory::DirectorySource::new(path.clone())),
    })
}

/// HTTP ingest has no task: `POST /sources/{name}` calls [`SourceHandle::ingest`].
struct HttpSource;
impl Source for HttpSource {}

/// Connection state, shown in `GET /sources/{name}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SourceStatus {
    /// Receiving (or ready to receive, for HTTP and generator sources).
    Connected,
    /// Not connected; the receiver retries after a backoff.
    Retrying { error: String, attempts: u64 },
    /// Trying for the first time.
    Connecting,
    /// The server is shutting down.
    Stopped,
}

/// A sampled bad record, for the API and the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct BadSample {
    pub kind: &'static str,
    pub error: String,
    /// The first 200 bytes of the record, lossily decoded.
    pub record: String,
}

#[derive(Debug, Default)]
struct BadRecords {
    by_kind: BTreeMap<&'static str, u64>,
    samples: VecDeque<BadSample>,
}

/// Metrics of the last sealed batch of a source.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SourceBatchMetrics {
    pub batch_time: i64,
    pub rows: usize,
    /// When the batch was sealed, minus its batch time, in ms (0 on the manual clock).
    pub scheduling_delay_ms: i64,
}

/// Why an HTTP ingest request was refused; nothing of it was kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("line {line}: {message}")]
    BadRow { line: usize, message: String },
    #[error("source '{0}' is not an HTTP source; only FROM HTTP sources accept POSTed rows")]
    NotHttp(String),
    #[error("source '{0}' has {1} rows waiting for the engine; retry later")]
    Busy(String, usize),
    #[error("the request has {rows} rows, more than source '{source_name}' can buffer ({max}); split it into smaller requests")]
    TooBig {
        source_name: String,
        rows: usize,
        max: usize,
    },
    #[error("the request has {rows} rows, more than one request may carry ({max}, --max-ingest-rows); split it")]
    TooManyRows { rows: usize, max: usize },
    /// The server is shutting down: its sources have stopped.
    #[error("the server is shutting down; nothing of this request was kept")]
    Stopped,
    /// The write-ahead log could not take the rows (a disk problem).
    #[error("{0}; nothing of this request was kept, retry later")]
    Log(WalError),
}

/// The shared state of one declared source. See the module docs.
pub struct SourceHandle {
    pub spec: SourceSpec,
    pub limits: SourceLimits,
    clock: Clock,
    batcher: Mutex<Batcher>,
    status: Mutex<SourceStatus>,
    bad: Mutex<BadRecords>,
    last_batch: Mutex<SourceBatchMetrics>,
    /// Wakes a receiver waiting for room in the batcher.
    room: tokio::sync::Notify,
    /// Rows accepted since creation.
    pub rows_total: AtomicU64,
    /// Bytes received since creation (framing included).
    pub bytes_total: AtomicU64,
    /// Bad records since creation.
    pub bad_total: AtomicU64,
    /// The write-ahead log, when there is one (`--wal on` and a data dir).
    wal: OnceLock<Wal>,
    /// The log sequence number of the last record sealed into a batch.
    position: AtomicU64,
    /// A Kafka source's offsets: of the chunks buffered, and of those sealed.
    kafka: Mutex<KafkaPositions>,
    /// A directory source's files read into batches.
    files: Mutex<std::collections::BTreeSet<String>>,
    /// Set at shutdown: ingest is refused from then on.
    stopped: std::sync::atomic::AtomicBool,
}

/// Offsets of a Kafka source's chunks. A chunk's offsets move from `pending` to
/// `sealed` when a batch takes it (the batcher seals prefixes, in `seq` order).
#[derive(Debug, Default)]
struct KafkaPositions {
    next_seq: u64,
    pending: VecDeque<(u64, kafka::Offsets)>,
    sealed: kafka::Offsets,
}

const BAD_SAMPLES: usize = 10;

impl SourceHandle {
    pub fn new(spec: SourceSpec, clock: Clock, limits: SourceLimits) -> SourceHandle {
        let initial = match spec.kind {
            SourceKind::Tcp { .. } | SourceKind::Kafka { .. } => SourceStatus::Connecting,
            SourceKind::Http | SourceKind::Generator | SourceKind::Directory { .. } => {
                SourceStatus::Connected
            }
        };
        SourceHandle {
            batcher: Mutex::new(Batcher::new(limits.max_buffered_rows)),
            spec,
            limits,
            clock,
            status: Mutex::new(initial),
            bad: Mutex::new(BadRecords::default()),
            last_batch: Mutex::new(SourceBatchMetrics::default()),
            room: tokio::sync::Notify::new(),
            rows_total: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            bad_total: AtomicU64::new(0),
            wal: OnceLock::new(),
            position: AtomicU64::new(0),
            kafka: Mutex::new(KafkaPositions::default()),
            files: Mutex::new(Default::default()),
            stopped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The files a directory source has read into batches.
    pub fn files_read(&self) -> std::collections::BTreeSet<String> {
        lock(&self.files).clone()
    }

    /// Records files read (or restored from a checkpoint).
    pub fn mark_files_read(&self, names: impl IntoIterator<Item = String>) {
        lock(&self.files).extend(names);
    }

    /// A Kafka source's offsets (next to read, per partition) of what batches
    /// have taken: what a checkpoint stores.
    pub fn kafka_offsets(&self) -> kafka::Offsets {
        lock(&self.kafka).sealed.clone()
    }

    /// The offsets restored from a checkpoint.
    pub fn restore_kafka_offsets(&self, offsets: kafka::Offsets) {
        lock(&self.kafka).sealed = offsets;
    }

    /// Buffers a Kafka chunk that read partitions up to `offsets` (next offsets).
    pub async fn deliver_offsets(&self, chunk: RecordBatch, offsets: kafka::Offsets) {
        let seq = {
            let mut k = lock(&self.kafka);
            k.next_seq += 1;
            let seq = k.next_seq;
            k.pending.push_back((seq, offsets));
            seq
        };
        self.push_logged(seq, None, chunk).await;
    }

    /// Routes this source's input through `wal` from now on.
    pub fn attach_wal(&self, wal: Wal) {
        let _ = self.wal.set(wal);
    }

    pub fn wal(&self) -> Option<&Wal> {
        self.wal.get()
    }

    /// The log sequence number of the last record sealed (what a checkpoint stores).
    pub fn position(&self) -> u64 {
        self.position.load(Ordering::Acquire)
    }

    /// Sets the position restored from a checkpoint and buffers the records
    /// logged after it, stamped as they arrived, for the next batches.
    pub fn replay(&self, position: u64, records: Vec<Logged>) {
        self.position.store(position, Ordering::Release);
        let mut batcher = lock(&self.batcher);
        for r in records {
            self.rows_total
                .fetch_add(r.chunk.num_rows() as u64, Ordering::Relaxed);
            batcher.force_push(r.stamp, r.seq, r.chunk);
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.spec.schema
    }

    /// A decoder for this source's schema and format (validated at CREATE).
    pub fn decoder(&self) -> Decoder {
        Decoder::new(self.spec.schema.clone(), self.spec.format)
            .unwrap_or_else(|e| unreachable!("source schema validated at CREATE: {e}"))
    }

    pub fn status(&self) -> SourceStatus {
        lock(&self.status).clone()
    }

    pub fn set_status(&self, status: SourceStatus) {
        *lock(&self.status) = status;
    }

    /// Hands decoded rows to the batcher, stamped with the batch they arrived in.
    /// Waits while the batcher is full (the engine is behind): push sources then
    /// stop reading, which is TCP's backpressure.
    /// With a write-ahead log, the chunk is logged first and counts as received
    /// once it is on disk.
    pub async fn deliver(&self, chunk: RecordBatch) {
        match self.wal() {
            Some(wal) => {
                let stamp = self.clock.arrival_batch();
                if let Err(e) = wal.append(stamp, chunk).await {
                    tracing::error!(source = %self.spec.name, "{e}");
                }
            }
            None => self.push_logged(0, None, chunk).await,
        }
    }

    /// Buffers a chunk (logged as `seq`, or 0 without a log) for the next batch
    /// to seal, or for batch `stamp` if given, waiting for room.
    pub(crate) async fn push_logged(&self, seq: u64, stamp: Option<BatchTime>, chunk: RecordBatch) {
        let rows = chunk.num_rows() as u64;
        loop {
            let waiter = self.room.notified();
            let pushed = {
                let mut batcher = lock(&self.batcher);
                let stamp = stamp.unwrap_or_else(|| self.clock.arrival_batch());
                batcher.push(stamp, seq, chunk.clone())
            };
            if pushed.is_ok() {
                self.rows_total.fetch_add(rows, Ordering::Relaxed);
                return;
            }
            waiter.await;
        }
    }

    /// Logs the rows a pull source made for batch `t` before they are used.
    /// Returns the rows to add to the batch directly: all of them without a log,
    /// none once logged (the log hands them to the batcher). If the log fails,
    /// the rows are used unlogged and the error is logged.
    pub async fn log_pulled(&self, t: BatchTime, rows: Option<RecordBatch>) -> Option<RecordBatch> {
        let rows = rows.filter(|r| r.num_rows() > 0)?;
        let Some(wal) = self.wal() else {
            return Some(rows);
        };
        match wal.append_durable(t, rows.clone(), true).await {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(source = %self.spec.name, "{e}; batch {} is used without being logged", t.millis());
                Some(rows)
            }
        }
    }

    /// Decodes an HTTP request body, all or nothing: 202 with the count, or the
    /// first bad line (1-based) and nothing kept.
    /// Shutdown: refuses further ingest and shows the source as stopped.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.set_status(SourceStatus::Stopped);
    }

    pub async fn ingest(&self, body: &[u8]) -> Result<usize, IngestError> {
        if self.spec.kind != SourceKind::Http {
            return Err(IngestError::NotHttp(self.spec.name.clone()));
        }
        if self.stopped.load(Ordering::Acquire) {
            return Err(IngestError::Stopped);
        }
        let batch = decode_all(body, self.decoder(), self.limits.max_record_bytes)
            .map_err(|(line, message)| IngestError::BadRow { line, message })?;
        let rows = batch.num_rows();
        if rows > self.limits.max_ingest_rows {
            return Err(IngestError::TooManyRows {
                rows,
                max: self.limits.max_ingest_rows,
            });
        }
        if rows > self.limits.max_buffered_rows {
            let max = self.limits.max_buffered_rows;
            return Err(IngestError::TooBig {
                source_name: self.spec.name.clone(),
                rows,
                max,
            });
        }
        if let Some(wal) = self.wal() {
            let buffered = self.buffered_rows();
            if buffered + rows > self.limits.max_buffered_rows {
                return Err(IngestError::Busy(self.spec.name.clone(), buffered));
            }
            // Acknowledged only once on disk (the log counts the rows).
            wal.append_durable(self.clock.arrival_batch(), batch, false)
                .await
                .map_err(IngestError::Log)?;
        } else {
            let pushed = {
                let mut batcher = lock(&self.batcher);
                let stamp = self.clock.arrival_batch();
                batcher.push(stamp, 0, batch)
            };
            if pushed.is_err() {
                return Err(IngestError::Busy(
                    self.spec.name.clone(),
                    self.buffered_rows(),
                ));
            }
            self.rows_total.fetch_add(rows as u64, Ordering::Relaxed);
        }
        self.bytes_total
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        Ok(rows)
    }

    /// Frames `bytes` into records and decodes them into `decoder`; a bad or
    /// over-long record is counted and skipped. `last`: the input ends here (a
    /// final record without a newline is taken).
    pub fn decode_into(
        &self,
        framer: &mut LineFramer,
        decoder: &mut Decoder,
        bytes: &[u8],
        last: bool,
    ) {
        let mut take = |frame: Frame<'_>| match frame {
            Frame::Record(record) => {
                if let Err(e) = decoder.push(record) {
                    self.record_bad(&e, record);
                }
            }
            Frame::TooLong { len } => {
                self.record_bad(&too_long(len, self.limits.max_record_bytes), b"")
            }
        };
        framer.feed(bytes, &mut take);
        if last {
            framer.finish(&mut take);
        }
    }

    /// Counts, samples and (once per kind) logs a bad record. Never fails.
    pub fn record_bad(&self, error: &RecordError, record: &[u8]) {
        self.bad_total.fetch_add(1, Ordering::Relaxed);
        let mut bad = lock(&self.bad);
        let seen = bad.by_kind.entry(error.kind).or_insert(0);
        *seen += 1;
        if *seen == 1 {
            tracing::warn!(source = %self.spec.name, kind = error.kind, "bad record skipped: {error} (further records of this kind are counted, not logged)");
        }
        let shown = &record[..record.len().min(200)];
        if bad.samples.len() == BAD_SAMPLES {
            bad.samples.pop_front();
        }
        bad.samples.push_back(BadSample {
            kind: error.kind,
            error: error.message.clone(),
            record: String::from_utf8_lossy(shown).into_owned(),
        });
    }

    /// Bad record counts by kind, and the latest samples.
    pub fn bad_records(&self) -> (BTreeMap<&'static str, u64>, Vec<BadSample>) {
        let bad = lock(&self.bad);
        (bad.by_kind.clone(), bad.samples.iter().cloned().collect())
    }

    pub fn buffered_rows(&self) -> usize {
        lock(&self.batcher).rows()
    }

    /// Seals batch `t`: the rows that arrived up to `t`, plus what a pull source
    /// adds; `delay_ms` is the tick's scheduling delay, kept in the metrics.
    pub fn seal(&self, t: BatchTime, pulled: Option<RecordBatch>, delay_ms: i64) -> MicroBatch {
        let mut batch = lock(&self.batcher).seal(t);
        self.room.notify_waiters();
        if let Some(seq) = batch.last_seq.filter(|_| self.wal().is_some()) {
            self.position.store(seq, Ordering::Release);
        }
        if let (Some(seq), SourceKind::Kafka { .. }) = (batch.last_seq, &self.spec.kind) {
            let mut k = lock(&self.kafka);
            while k.pending.front().is_some_and(|(s, _)| *s <= seq) {
                if let Some((_, offsets)) = k.pending.pop_front() {
                    k.sealed.extend(offsets);
                }
            }
        }
        if let Some(rows) = pulled.filter(|b| b.num_rows() > 0) {
            self.rows_total
                .fetch_add(rows.num_rows() as u64, Ordering::Relaxed);
            batch.rows += rows.num_rows();
            batch.chunks.push(rows);
        }
        *lock(&self.last_batch) = SourceBatchMetrics {
            batch_time: t.millis(),
            rows: batch.rows,
            scheduling_delay_ms: delay_ms,
        };
        batch
    }

    pub fn last_batch(&self) -> SourceBatchMetrics {
        *lock(&self.last_batch)
    }
}

/// Decodes all of `bytes`, all or nothing (HTTP ingest, file tables): the rows,
/// or the first bad line (1-based) and why.
pub fn decode_all(
    bytes: &[u8],
    mut decoder: Decoder,
    max_record_bytes: usize,
) -> Result<RecordBatch, (usize, String)> {
    let mut framer = LineFramer::new(max_record_bytes);
    let mut line = 0;
    let mut failure = None;
    let mut take = |frame: Frame<'_>| {
        line += 1;
        if failure.is_some() {
            return;
        }
        let result = match frame {
            Frame::Record(record) => decoder.push(record).map_err(|e| e.message),
            Frame::TooLong { len } => Err(too_long(len, max_record_bytes).message),
        };
        if let Err(message) = result {
            failure = Some((line, message));
        }
    };
    framer.feed(bytes, &mut take);
    framer.finish(&mut take);
    match failure {
        Some(f) => Err(f),
        None => Ok(decoder.finish()),
    }
}

/// The bad-record error for an over-long line.
pub fn too_long(len: usize, max: usize) -> RecordError {
    RecordError {
        kind: "record too long",
        message: format!("record of {len} bytes exceeds the limit of {max} bytes"),
    }
}
