//! Static tables, `CREATE TABLE name (cols) FROM FILE 'path' FORMAT CSV | JSON |
//! PARQUET`: read once, whole, at CREATE (and again at a restore), and joined
//! with streams by queries (Spark's `transform` with a static RDD). A bad row
//! refuses the table, naming its line: a table is all or nothing.

use std::path::Path;

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::decode::{Decoder, Format};

/// The rows of `path` as `schema`; `format` None is Parquet.
pub fn load(
    path: &Path,
    schema: &SchemaRef,
    format: Option<Format>,
    max_record_bytes: usize,
) -> Result<Vec<RecordBatch>, String> {
    let shown = path.display();
    match format {
        Some(format) => {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
            let decoder = Decoder::new(schema.clone(), format)?;
            let rows = super::decode_all(&bytes, decoder, max_record_bytes)
                .map_err(|(line, message)| format!("{shown}, line {line}: {message}"))?;
            Ok(vec![rows])
        }
        None => {
            let file =
                std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| b.build())
                .map_err(|e| format!("cannot read {shown} as Parquet: {e}"))?;
            let mut out = Vec::new();
            for batch in reader {
                let batch = batch.map_err(|e| format!("cannot read {shown}: {e}"))?;
                // The declared columns, by name, cast to the declared types.
                let mut columns = Vec::with_capacity(schema.fields().len());
                for field in schema.fields() {
                    let column = batch
                        .column_by_name(field.name())
                        .ok_or_else(|| format!("{shown} has no column '{}'", field.name()))?;
                    columns.push(
                        cast(column, field.data_type())
                            .map_err(|e| format!("{shown}: column '{}': {e}", field.name()))?,
                    );
                }
                out.push(
                    RecordBatch::try_new(schema.clone(), columns)
                        .map_err(|e| format!("{shown}: {e}"))?,
                );
            }
            Ok(out)
        }
    }
}
