//! The directory source, as Spark's `textFileStream`: files that appear in a
//! directory (written elsewhere and moved in) go into the next batch, each read
//! once, whole, in order of modification time (then name). A pull source: the
//! directory is listed when the engine seals a batch.
//!
//! Names starting with `.` or `_`, or ending in `.tmp`, are skipped: they are
//! files still being written. The set of files read is kept in the source's
//! handle and stored in checkpoints, so a restart neither skips nor re-reads a
//! file: files read after the last checkpoint are read again into the batches
//! after the restore, whose state is the checkpoint's.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::SystemTime;

use datafusion::arrow::record_batch::RecordBatch;

use super::decode::Format;
use super::framing::LineFramer;
use super::{Source, SourceHandle, SourceStatus};
use crate::time::BatchTime;

pub struct DirectorySource {
    dir: PathBuf,
}

impl DirectorySource {
    /// `dir` is confined and absolute.
    pub fn new(dir: PathBuf) -> DirectorySource {
        DirectorySource { dir }
    }

    /// The files not read yet, oldest first.
    fn new_files(&self, read: &BTreeSet<String>) -> std::io::Result<Vec<(SystemTime, String)>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || name.starts_with('_') || name.ends_with(".tmp") {
                continue;
            }
            let meta = entry.metadata()?;
            if !meta.is_file() || read.contains(&name) {
                continue;
            }
            found.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), name));
        }
        found.sort();
        Ok(found)
    }
}

impl DirectorySource {
    /// Whole Parquet files: columns by name, cast to the declared types. A file
    /// that cannot be read as such is a bad record (and is not read again).
    fn read_parquet(
        &self,
        files: Vec<(SystemTime, String)>,
        handle: &SourceHandle,
    ) -> Option<RecordBatch> {
        let mut batches = Vec::new();
        let mut done = Vec::with_capacity(files.len());
        for (_, name) in files {
            let path = self.dir.join(&name);
            if let Ok(meta) = std::fs::metadata(&path) {
                handle
                    .bytes_total
                    .fetch_add(meta.len(), std::sync::atomic::Ordering::Relaxed);
            }
            match super::table::load(&path, handle.schema(), None, handle.limits.max_record_bytes) {
                Ok(read) => batches.extend(read),
                Err(message) => handle.record_bad(
                    &super::decode::RecordError::new("unreadable Parquet file", message),
                    name.as_bytes(),
                ),
            }
            done.push(name);
        }
        handle.mark_files_read(done);
        let schema = handle.schema().clone();
        datafusion::arrow::compute::concat_batches(&schema, &batches)
            .ok()
            .filter(|b| b.num_rows() > 0)
    }
}

impl Source for DirectorySource {
    fn on_seal(&mut self, _t: BatchTime, handle: &SourceHandle) -> Option<RecordBatch> {
        let read = handle.files_read();
        let files = match self.new_files(&read) {
            Ok(f) => f,
            Err(e) => {
                handle.set_status(SourceStatus::Retrying {
                    error: format!("cannot list {}: {e}", self.dir.display()),
                    attempts: 1,
                });
                return None;
            }
        };
        if handle.status() != SourceStatus::Connected {
            handle.set_status(SourceStatus::Connected);
        }
        if handle.spec.format == Format::Parquet {
            return self.read_parquet(files, handle);
        }
        let mut decoder = handle.decoder();
        let mut done = Vec::with_capacity(files.len());
        for (_, name) in files {
            let path = self.dir.join(&name);
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    // Gone or unreadable: try again at the next batch.
                    tracing::warn!(source = %handle.name(), file = %path.display(), "cannot read: {e}");
                    continue;
                }
            };
            let mut framer = LineFramer::new(handle.limits.max_record_bytes);
            if let Err(e) = read_lines(file, &mut framer, &mut decoder, handle) {
                // The rows before the error are kept, and the file is not read again.
                tracing::warn!(source = %handle.name(), file = %path.display(), "read stopped midway: {e}");
            }
            done.push(name);
        }
        handle.mark_files_read(done);
        (decoder.rows() > 0).then(|| decoder.finish())
    }
}

/// Bytes read from a file at a time: a line longer than the source's record limit
/// is skipped as it streams by and counted as one bad record, never held whole.
const READ_CHUNK: usize = 1 << 20;

/// Frames and decodes the lines of one file, a chunk at a time.
fn read_lines(
    mut file: std::fs::File,
    framer: &mut LineFramer,
    decoder: &mut crate::source::decode::Decoder,
    handle: &SourceHandle,
) -> std::io::Result<()> {
    use std::io::Read;
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        handle
            .bytes_total
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        handle.decode_into(framer, decoder, &buf[..n], n == 0);
        if n == 0 {
            return Ok(());
        }
    }
}
