//! The write-ahead log of received rows, as Spark Streaming's receiver WAL, for
//! the sources that cannot replay their input (TCP, HTTP, generator).
//!
//! Every decoded chunk a source receives is appended to its log before it counts
//! as received: one writer task per source takes the appends that are waiting,
//! writes them, fsyncs once for the whole group (group commit), and only then
//! hands them to the source's batcher, in order, and answers the callers (HTTP
//! ingest returns 202 only then). Each record has a sequence number; a checkpoint
//! stores, per source, the number of the last record sealed into a batch it
//! covers ([`crate::batcher`] seals prefixes, so one number is enough). At
//! recovery the records after it are replayed into the next batches, and after
//! each checkpoint the segments it covers are deleted.
//!
//! On disk, `<data-dir>/wal/<source>/<first seq, 20 digits>.wal`, records of
//!
//! ```text
//! u32 length of the payload | u32 CRC-32 of the 16 header bytes and the payload
//! u64 sequence number       | i64 arrival stamp (batch time, ms)
//! payload: the chunk as an Arrow IPC stream (schema, one record batch)
//! ```
//!
//! all little-endian. A crash can only tear the tail of the segment being
//! written: reading a segment stops at its first incomplete or corrupt record.
//! After a restart the log continues in a new segment.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Weak;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, oneshot};

use super::SourceHandle;
use crate::time::BatchTime;

/// A segment is closed and a new one started beyond this size.
const SEGMENT_BYTES: u64 = 64 << 20;
/// Appends waiting for the writer; a receiver that outruns the disk waits.
const QUEUE: usize = 64;
/// Most appends written under one fsync.
const GROUP: usize = 256;
const HEADER: usize = 4 + 4 + 8 + 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log {path}: {message}")]
    Io { path: String, message: String },
    #[error("the write-ahead log of source '{0}' has stopped")]
    Stopped(String),
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> WalError {
    WalError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// A record read back from the log.
#[derive(Debug, Clone)]
pub struct Logged {
    pub seq: u64,
    pub stamp: BatchTime,
    pub chunk: RecordBatch,
}

/// The directory of source `name`'s log under `data_dir`. Characters other than
/// ASCII letters, digits and `_` are written as `%XX`, so names never collide.
pub fn dir_of(data_dir: &Path, name: &str) -> PathBuf {
    let mut file = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' {
            file.push(b as char);
        } else {
            file.push_str(&format!("%{b:02X}"));
        }
    }
    data_dir.join("wal").join(file)
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

/// The segments in `dir`, by first sequence number.
fn segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(io_error(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(seq) = stem.parse::<u64>() {
            found.push(seq);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Appends one record to `out`.
pub fn encode(
    seq: u64,
    stamp: BatchTime,
    chunk: &RecordBatch,
    out: &mut Vec<u8>,
) -> Result<(), ArrowError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER]);
    let mut writer = StreamWriter::try_new(&mut *out, &chunk.schema())?;
    writer.write(chunk)?;
    writer.finish()?;
    drop(writer);
    let payload = (out.len() - start - HEADER) as u32;
    out[start..start + 4].copy_from_slice(&payload.to_le_bytes());
    out[start + 8..start + 16].copy_from_slice(&seq.to_le_bytes());
    out[start + 16..start + 24].copy_from_slice(&stamp.millis().to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.finalize().to_le_bytes());
    Ok(())
}

/// A record as stored, its payload not decoded yet.
#[derive(Debug)]
pub struct RawRecord<'a> {
    pub seq: u64,
    pub stamp: BatchTime,
    pub payload: &'a [u8],
}

fn le<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// The records of one segment's bytes, up to the first incomplete or corrupt
/// one; the second value says why reading stopped early.
pub fn records(bytes: &[u8]) -> (Vec<RawRecord<'_>>, Option<String>) {
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes.len() - at < HEADER {
            return (
                found,
                Some(format!("incomplete record header at byte {at}")),
            );
        }
        let len = u32::from_le_bytes(le(bytes, at)) as usize;
        let end = at + HEADER + len;
        if end > bytes.len() {
            return (found, Some(format!("incomplete record at byte {at}")));
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&bytes[at + 8..end]);
        if crc.finalize() != u32::from_le_bytes(le(bytes, at + 4)) {
            return (found, Some(format!("checksum mismatch at byte {at}")));
        }
        found.push(RawRecord {
            seq: u64::from_le_bytes(le(bytes, at + 8)),
            stamp: BatchTime(i64::from_le_bytes(le(bytes, at + 16))),
            payload: &bytes[at + HEADER..end],
        });
        at = end;
    }
    (found, None)
}

/// Decodes a record's payload.
fn decode(payload: &[u8]) -> Result<RecordBatch, ArrowError> {
    let reader = StreamReader::try_new(std::io::Cursor::new(payload), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    datafusion::arrow::compute::concat_batches(&schema, &batches)
}

/// A source's log, opened: the records to replay and where appends continue.
pub struct Opened {
    /// Records after the checkpoint's position, in order.
    pub replay: Vec<Logged>,
    writer: Writer,
}

impl Opened {
    /// The latest arrival stamp of the records to replay.
    pub fn last_stamp(&self) -> Option<BatchTime> {
        self.replay.iter().map(|r| r.stamp).max()
    }
}

/// Opens source `name`'s log in `dir` (creating it): reads the records after
/// `position` for replay. A log written for another schema cannot be replayed
/// into this source: it is moved aside (`<dir>.stale-<ms>`) with a warning.
pub fn open(
    dir: PathBuf,
    name: &str,
    schema: &SchemaRef,
    position: u64,
    now_ms: i64,
) -> Result<Opened, WalError> {
    let mut replay = Vec::new();
    let mut next_seq = position + 1;
    let mut stale = None;
    'segments: for first in segments(&dir)? {
        let path = dir.join(segment_name(first));
        let bytes = fs::read(&path).map_err(|e| io_error(&path, e))?;
        let (found, torn) = records(&bytes);
        if let Some(why) = torn {
            tracing::warn!(source = name, segment = %path.display(), "write-ahead log segment ends in a torn record ({why}); the records before it are replayed");
        }
        for RawRecord {
            seq,
            stamp,
            payload,
        } in found
        {
            next_seq = next_seq.max(seq + 1);
            if seq <= position {
                continue;
            }
            let chunk = match decode(payload) {
                Ok(c) => c,
                Err(e) => {
                    stale = Some(format!("record {seq} cannot be decoded: {e}"));
                    break 'segments;
                }
            };
            if !same_columns(&chunk.schema(), schema) {
                stale = Some(format!(
                    "record {seq} has columns {:?}, the source has {:?}",
                    names(&chunk.schema()),
                    names(schema)
                ));
                break 'segments;
            }
            let chunk = RecordBatch::try_new(schema.clone(), chunk.columns().to_vec())
                .map_err(|e| io_error(&path, e))?;
            replay.push(Logged { seq, stamp, chunk });
        }
    }
    if let Some(why) = stale {
        let aside = PathBuf::from(format!("{}.stale-{now_ms}", dir.display()));
        tracing::warn!(source = name, log = %dir.display(), moved_to = %aside.display(), "the write-ahead log was written for another definition of the source ({why}); moved aside, not replayed");
        fs::rename(&dir, &aside).map_err(|e| io_error(&dir, e))?;
        replay.clear();
        next_seq = position + 1;
    }
    fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    if !replay.is_empty() {
        tracing::info!(
            source = name,
            records = replay.len(),
            rows = replay.iter().map(|r| r.chunk.num_rows()).sum::<usize>(),
            "replaying the write-ahead log after the checkpoint"
        );
    }
    let writer = Writer {
        dir: dir.clone(),
        segments: segments(&dir)?,
        current: None,
        next_seq,
    };
    Ok(Opened { replay, writer })
}

fn same_columns(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

fn names(s: &SchemaRef) -> Vec<String> {
    s.fields().iter().map(|f| f.name().clone()).collect()
}

/// The file side of the log, owned by the writer task.
struct Writer {
    dir: PathBuf,
    /// First sequence numbers of the segments on disk, ascending.
    segments: Vec<u64>,
    /// The open segment and its size; None until the first append after an open
    /// or a roll.
    current: Option<(File, u64)>,
    next_seq: u64,
}

impl Writer {
    /// Writes `group` (assigning sequence numbers) and fsyncs once.
    fn append(&mut self, group: &[(BatchTime, RecordBatch)]) -> Result<Vec<u64>, WalError> {
        let mut buf = Vec::new();
        let mut seqs = Vec::with_capacity(group.len());
        for (stamp, chunk) in group {
            let seq = self.next_seq;
            self.next_seq += 1;
            encode(seq, *stamp, chunk, &mut buf).map_err(|e| io_error(&self.dir, e))?;
            seqs.push(seq);
        }
        let first = seqs.first().copied().unwrap_or(self.next_seq);
        if self.current.is_none() {
            let path = self.dir.join(segment_name(first));
            let file = File::create(&path).map_err(|e| io_error(&path, e))?;
            sync_dir(&self.dir)?;
            self.segments.push(first);
            self.current = Some((file, 0));
        }
        let result = match &mut self.current {
            Some((file, size)) => file
                .write_all(&buf)
                .and_then(|_| file.sync_data())
                .map(|_| *size += buf.len() as u64),
            None => Ok(()),
        };
        if let Err(e) = result {
            // The segment may end in a torn record now: continue in a new one.
            self.current = None;
            return Err(io_error(&self.dir, e));
        }
        if self
            .current
            .as_ref()
            .is_some_and(|(_, size)| *size >= SEGMENT_BYTES)
        {
            self.current = None;
        }
        Ok(seqs)
    }

    /// Closes the open segment and deletes the segments whose records are all at
    /// or before `through` (covered by a checkpoint).
    fn truncate(&mut self, through: u64) {
        if self.current.is_some() {
            self.current = None;
        }
        let mut kept = Vec::with_capacity(self.segments.len());
        for (i, first) in self.segments.iter().enumerate() {
            let last = self.segments.get(i + 1).map_or(self.next_seq, |next| *next) - 1;
            if last <= through {
                let path = self.dir.join(segment_name(*first));
                if let Err(e) = fs::remove_file(&path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(segment = %path.display(), "cannot delete a write-ahead log segment: {e}");
                        kept.push(*first);
                    }
                }
            } else {
                kept.push(*first);
            }
        }
        self.segments = kept;
    }
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

enum Request {
    Append {
        stamp: BatchTime,
        chunk: RecordBatch,
        /// Pulled rows belong to the batch being sealed: they keep `stamp`;
        /// received rows are stamped when they count as received.
        exact: bool,
        done: Option<oneshot::Sender<Result<(), WalError>>>,
    },
    Truncate(u64),
}

/// The appending side of a source's log; cheap to share.
pub struct Wal {
    source: String,
    tx: mpsc::Sender<Request>,
}

impl Wal {
    /// Starts the writer task of an opened log. It hands logged chunks to
    /// `handle` and ends when the handle is dropped.
    pub fn start(opened: Opened, handle: Weak<SourceHandle>, source: &str) -> Wal {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(opened.writer, rx, handle, source.to_string()));
        Wal {
            source: source.to_string(),
            tx,
        }
    }

    /// Queues a chunk; it counts as received once logged. Waits only while the
    /// queue is full (the disk is behind), which is backpressure for receivers.
    pub async fn append(&self, stamp: BatchTime, chunk: RecordBatch) -> Result<(), WalError> {
        self.tx
            .send(Request::Append {
                stamp,
                chunk,
                exact: false,
                done: None,
            })
            .await
            .map_err(|_| WalError::Stopped(self.source.clone()))
    }

    /// Logs a chunk and waits until it is on disk and handed to the source.
    /// `exact`: the chunk keeps `stamp` in the batcher (pulled rows of batch
    /// `stamp`) rather than being stamped when it is handed over.
    pub async fn append_durable(
        &self,
        stamp: BatchTime,
        chunk: RecordBatch,
        exact: bool,
    ) -> Result<(), WalError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Request::Append {
                stamp,
                chunk,
                exact,
                done: Some(done),
            })
            .await
            .map_err(|_| WalError::Stopped(self.source.clone()))?;
        rx.await
            .map_err(|_| WalError::Stopped(self.source.clone()))?
    }

    /// After a checkpoint covering records up to `through`: deletes the segments
    /// it makes unnecessary (in the writer task, after the appends before it).
    pub async fn truncate(&self, through: u64) {
        let _ = self.tx.send(Request::Truncate(through)).await;
    }
}

async fn write_loop(
    mut writer: Writer,
    mut rx: mpsc::Receiver<Request>,
    handle: Weak<SourceHandle>,
    source: String,
) {
    let mut reported = false;
    while let Some(first) = rx.recv().await {
        let mut requests = vec![first];
        while requests.len() < GROUP {
            match rx.try_recv() {
                Ok(r) => requests.push(r),
                Err(_) => break,
            }
        }
        let mut group = Vec::with_capacity(requests.len());
        let mut waiting = Vec::with_capacity(requests.len());
        let mut truncate = None;
        for r in requests {
            match r {
                Request::Append {
                    stamp,
                    chunk,
                    exact,
                    done,
                } => {
                    group.push((stamp, chunk));
                    waiting.push((exact, done));
                }
                Request::Truncate(through) => truncate = Some(through),
            }
        }
        let (w, group, appended) = if group.is_empty() {
            (writer, group, Ok(Vec::new()))
        } else {
            // File writes and fsync block: off the async threads.
            match tokio::task::spawn_blocking(move || {
                let seqs = writer.append(&group);
                (writer, group, seqs)
            })
            .await
            {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(source = %source, "the write-ahead log writer failed: {e}");
                    return;
                }
            }
        };
        writer = w;
        match appended {
            Ok(seqs) => {
                let Some(h) = handle.upgrade() else {
                    return;
                };
                for (((stamp, chunk), seq), (exact, done)) in
                    group.into_iter().zip(seqs).zip(waiting)
                {
                    h.push_logged(seq, exact.then_some(stamp), chunk).await;
                    if let Some(done) = done {
                        let _ = done.send(Ok(()));
                    }
                }
            }
            Err(e) => {
                if !reported {
                    tracing::error!(source = %source, "cannot write the write-ahead log: {e}; the rows are refused");
                    reported = true;
                }
                for (_, done) in waiting {
                    let Some(done) = done else { continue };
                    let _ = done.send(Err(e.clone()));
                }
            }
        }
        if let Some(through) = truncate {
            writer = match tokio::task::spawn_blocking(move || {
                writer.truncate(through);
                writer
            })
            .await
            {
                Ok(w) => w,
                Err(_) => return,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn chunk(k: &[&str], v: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(k.to_vec())),
                Arc::new(Int64Array::from(v.to_vec())),
            ],
        )
        .unwrap()
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-wal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn records_round_trip_and_stop_at_a_torn_tail() {
        let mut buf = Vec::new();
        encode(7, BatchTime(1000), &chunk(&["a"], &[1]), &mut buf).unwrap();
        encode(8, BatchTime(2000), &chunk(&["b", "c"], &[2, 3]), &mut buf).unwrap();
        let (found, torn) = records(&buf);
        assert_eq!(torn, None);
        let got: Vec<(u64, i64, usize)> = found
            .iter()
            .map(|r| {
                (
                    r.seq,
                    r.stamp.millis(),
                    decode(r.payload).unwrap().num_rows(),
                )
            })
            .collect();
        assert_eq!(got, vec![(7, 1000, 1), (8, 2000, 2)]);
        let first_len = found[0].payload.len() + HEADER;
        // Cut inside the second record: the first survives.
        let (found, torn) = records(&buf[..buf.len() - 5]);
        assert_eq!((found.len(), torn.is_some()), (1, true));
        // A flipped byte in the second record's payload: its checksum fails.
        let mut bad = buf.clone();
        bad[first_len + HEADER + 3] ^= 0xff;
        let (found, torn) = records(&bad);
        assert_eq!(found.len(), 1);
        assert!(torn.unwrap().contains("checksum"));
    }

    #[test]
    fn replays_after_the_position_and_truncates_covered_segments() {
        let dir = tmp("replay");
        let opened = open(dir.clone(), "s", &schema(), 0, 0).unwrap();
        assert!(opened.replay.is_empty());
        let mut w = opened.writer;
        assert_eq!(
            w.append(&[(BatchTime(1000), chunk(&["a"], &[1]))]).unwrap(),
            vec![1]
        );
        w.truncate(0); // rolls: the next append starts segment 2
        assert_eq!(
            w.append(&[
                (BatchTime(2000), chunk(&["b"], &[2])),
                (BatchTime(2000), chunk(&["c"], &[3]))
            ])
            .unwrap(),
            vec![2, 3]
        );
        assert_eq!(segments(&dir).unwrap(), vec![1, 2]);
        drop(w);
        let opened = open(dir.clone(), "s", &schema(), 1, 0).unwrap();
        let seqs: Vec<u64> = opened.replay.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![2, 3]);
        let mut w = opened.writer;
        assert_eq!(w.next_seq, 4);
        // A checkpoint through 1 deletes segment 1 only; through 3, both.
        w.truncate(1);
        assert_eq!(segments(&dir).unwrap(), vec![2]);
        w.truncate(3);
        assert_eq!(segments(&dir).unwrap(), Vec::<u64>::new());
        assert_eq!(
            w.append(&[(BatchTime(3000), chunk(&["d"], &[4]))]).unwrap(),
            vec![4]
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_log_of_another_schema_is_moved_aside() {
        let dir = tmp("stale");
        let mut w = open(dir.clone(), "s", &schema(), 0, 0).unwrap().writer;
        w.append(&[(BatchTime(1000), chunk(&["a"], &[1]))]).unwrap();
        drop(w);
        let other: SchemaRef =
            Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, true)]));
        let opened = open(dir.clone(), "s", &other, 0, 99).unwrap();
        assert!(opened.replay.is_empty());
        let aside = PathBuf::from(format!("{}.stale-99", dir.display()));
        assert_eq!(segments(&aside).unwrap(), vec![1]);
        assert_eq!(segments(&dir).unwrap(), Vec::<u64>::new());
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&aside);
    }

    #[test]
    fn names_map_to_distinct_directories() {
        let root = Path::new("/d");
        assert_eq!(dir_of(root, "sales_1"), PathBuf::from("/d/wal/sales_1"));
        assert_eq!(
            dir_of(root, "a b/.."),
            PathBuf::from("/d/wal/a%20b%2F%2E%2E")
        );
    }
}
