//! Writing and reading checkpoints on disk, in the order the protocol
//! (`state::checkpoint`) requires: data files (Parquet, each fsynced), then the
//! manifest (temp file, fsync, rename), then the `COMMIT` marker, then the
//! directory fsynced; obsolete checkpoints are deleted afterwards.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;

use super::checkpoint::{
    self, CatalogEntry, DataFile, Manifest, SourcePosition, COMMIT, FORMAT_VERSION, MANIFEST,
};

/// Data to write: a file of rows owned by a query.
pub struct Snapshot {
    pub owner: String,
    pub content: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint I/O on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("checkpoint file {path}: {message}")]
    Format { path: String, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn format(path: &Path, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Format {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes the checkpoint of batch `batch_time`; returns its manifest.
pub fn write(
    data_dir: &Path,
    batch_time: i64,
    catalog: Vec<CatalogEntry>,
    sources: Vec<SourcePosition>,
    snapshots: Vec<Snapshot>,
) -> Result<Manifest, CheckpointError> {
    let root = checkpoint::checkpoints_dir(data_dir);
    let dir = root.join(checkpoint::dir_name(batch_time));
    if dir.exists() {
        // A torn attempt at the same batch time: start over.
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let mut files = Vec::with_capacity(snapshots.len());
    for (i, s) in snapshots.into_iter().enumerate() {
        let name = format!("{i:03}-{}.parquet", sanitize(&s.owner));
        let path = dir.join(&name);
        let file = File::create(&path).map_err(io(&path))?;
        let mut writer =
            ArrowWriter::try_new(file, s.schema.clone(), None).map_err(|e| format(&path, e))?;
        let mut rows = 0u64;
        for b in &s.batches {
            rows += b.num_rows() as u64;
            writer.write(b).map_err(|e| format(&path, e))?;
        }
        let file = writer.into_inner().map_err(|e| format(&path, e))?;
        file.sync_all().map_err(io(&path))?;
        let bytes = file.metadata().map_err(io(&path))?.len();
        files.push(DataFile {
            file: name,
            owner: s.owner,
            content: s.content,
            rows,
            bytes,
        });
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        batch_time,
        catalog,
        sources,
        files,
    };
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| format(&tmp, e))?;
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&text).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    let path = dir.join(MANIFEST);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    crash_point("checkpoint-before-commit");
    let commit = dir.join(COMMIT);
    File::create(&commit)
        .and_then(|f| f.sync_all())
        .map_err(io(&commit))?;
    sync_dir(&dir)?;
    sync_dir(&root)?;
    // Old checkpoints go only once the new one is complete.
    let found = checkpoint::scan(data_dir).map_err(io(&root))?;
    for old in checkpoint::obsolete(&found) {
        if let Err(e) = std::fs::remove_dir_all(&old) {
            tracing::warn!(dir = %old.display(), "cannot delete an old checkpoint: {e}");
        }
    }
    Ok(manifest)
}

/// A crash injected for recovery tests: with `SLUICE_CRASH_AT=<point>` in the
/// environment, the process aborts (as kill -9 would stop it) when it reaches
/// that point. The one point: `checkpoint-before-commit` (data files and
/// manifest written, no `COMMIT` marker).
fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT
        .get_or_init(|| std::env::var("SLUICE_CRASH_AT").ok())
        .as_deref()
        == Some(point)
    {
        tracing::error!("SLUICE_CRASH_AT={point}: aborting here, as a crash would");
        std::process::abort();
    }
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect()
}

/// Reads a data file of a checkpoint.
pub fn read(dir: &Path, file: &str) -> Result<Vec<RecordBatch>, CheckpointError> {
    let path = dir.join(file);
    let f = File::open(&path).map_err(io(&path))?;
    // Large batches: a keyed state is restored as one chunk per batch read.
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| format(&path, e))?
        .with_batch_size(1 << 16)
        .build()
        .map_err(|e| format(&path, e))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format(&path, e))
}

/// `batch` with `extra` columns appended (a checkpoint's bookkeeping columns).
pub fn with_columns(
    batch: &RecordBatch,
    extra: Vec<(
        datafusion::arrow::datatypes::Field,
        datafusion::arrow::array::ArrayRef,
    )>,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let mut fields: Vec<datafusion::arrow::datatypes::FieldRef> =
        batch.schema().fields().iter().cloned().collect();
    let mut columns = batch.columns().to_vec();
    for (f, c) in extra {
        fields.push(std::sync::Arc::new(f));
        columns.push(c);
    }
    RecordBatch::try_new(
        std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
        columns,
    )
}

/// The schema of `schema` with `extra` fields appended.
pub fn extend_schema(
    schema: &SchemaRef,
    extra: Vec<datafusion::arrow::datatypes::Field>,
) -> SchemaRef {
    let mut fields: Vec<datafusion::arrow::datatypes::FieldRef> =
        schema.fields().iter().cloned().collect();
    fields.extend(extra.into_iter().map(std::sync::Arc::new));
    std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(fields))
}

/// Splits a batch read back into (its first `keep` columns, the rest).
pub fn split_columns(
    batch: &RecordBatch,
    schema: &SchemaRef,
    keep: usize,
) -> Result<
    (RecordBatch, Vec<datafusion::arrow::array::ArrayRef>),
    datafusion::arrow::error::ArrowError,
> {
    let kept = RecordBatch::try_new(schema.clone(), batch.columns()[..keep].to_vec())?;
    Ok((kept, batch.columns()[keep..].to_vec()))
}
