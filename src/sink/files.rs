//! `INTO FILES 'prefix' [FORMAT JSON | CSV]`: one file per result batch, named
//! `prefix-<TIME_IN_MS>.json` or `.csv` (Spark's saveAsTextFiles). JSON files hold
//! one row object per line; CSV files a header line, then one line per row (RFC
//! 4180 quoting; NULL is an empty field). A file is written to a temporary name
//! and renamed, so a reader never sees half a file and a batch run again after a
//! recovery replaces its file rather than adding one.

use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

use super::ResultBatch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Json,
    Csv,
}

impl FileFormat {
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Json => "JSON",
            FileFormat::Csv => "CSV",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            FileFormat::Json => "json",
            FileFormat::Csv => "csv",
        }
    }
}

/// The rows of a result batch's JSON (`{"batch_time", ..., "rows": [...]}`).
pub fn rows_of(json: &[u8]) -> Result<Vec<Value>, String> {
    match serde_json::from_slice::<Value>(json) {
        Ok(Value::Object(mut batch)) => match batch.remove("rows") {
            Some(Value::Array(rows)) => Ok(rows),
            _ => Err("a result batch without rows".into()),
        },
        Ok(_) => Err("a result batch that is not an object".into()),
        Err(e) => Err(format!("unreadable result batch: {e}")),
    }
}

pub struct Files {
    prefix: PathBuf,
    format: FileFormat,
    /// The query's columns, for the CSV header.
    columns: Vec<String>,
}

impl Files {
    pub fn new(prefix: PathBuf, format: FileFormat, columns: Vec<String>) -> Files {
        Files {
            prefix,
            format,
            columns,
        }
    }

    /// The file of batch `ms`.
    pub fn path(&self, ms: i64) -> PathBuf {
        let mut name = self.prefix.as_os_str().to_owned();
        name.push(format!("-{ms}.{}", self.format.extension()));
        PathBuf::from(name)
    }

    pub async fn write(&self, batch: &ResultBatch) -> Result<usize, String> {
        let rows = rows_of(&batch.json)?;
        let text = match self.format {
            FileFormat::Json => {
                let mut out = String::new();
                for row in &rows {
                    out.push_str(&row.to_string());
                    out.push('\n');
                }
                out
            }
            FileFormat::Csv => csv(&self.columns, &rows),
        };
        let path = self.path(batch.batch_time.millis());
        let n = rows.len();
        tokio::task::spawn_blocking(move || write_atomically(&path, text.as_bytes()))
            .await
            .map_err(|e| e.to_string())??;
        Ok(n)
    }
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    let shown = path.display();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp).map_err(|e| format!("cannot write {shown}: {e}"))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {shown}: {e}"))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {shown}: {e}"))?;
    // The rename is durable once the directory is.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// A header line, then the rows, RFC 4180 quoted.
fn csv(columns: &[String], rows: &[Value]) -> String {
    let mut out = String::new();
    let line = |fields: Vec<String>, out: &mut String| {
        out.push_str(&fields.join(","));
        out.push('\n');
    };
    line(columns.iter().map(|c| quote(c)).collect(), &mut out);
    for row in rows {
        let fields = columns
            .iter()
            .map(|c| match row.get(c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => quote(s),
                Some(other) => quote(&other.to_string()),
            })
            .collect();
        line(fields, &mut out);
    }
    out
}

fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// `INTO PARQUET 'dir'`: one Parquet file per batch, `dir/<TIME_IN_MS>.parquet`,
/// with the query's columns (a batch without rows is a file without rows).
pub struct ParquetFiles {
    dir: PathBuf,
    schema: datafusion::arrow::datatypes::SchemaRef,
}

impl ParquetFiles {
    pub fn new(dir: PathBuf, schema: datafusion::arrow::datatypes::SchemaRef) -> ParquetFiles {
        ParquetFiles { dir, schema }
    }

    pub async fn write(&self, batch: &ResultBatch) -> Result<usize, String> {
        let Some(rows) = batch.arrow.clone() else {
            return Err(
                "the result batch has no Arrow rows (the sink was created after it)".into(),
            );
        };
        let path = self
            .dir
            .join(format!("{}.parquet", batch.batch_time.millis()));
        let schema = self.schema.clone();
        let n = batch.rows;
        tokio::task::spawn_blocking(move || {
            let mut buf = Vec::new();
            let mut writer =
                datafusion::parquet::arrow::ArrowWriter::try_new(&mut buf, schema, None)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            for b in rows.iter() {
                writer
                    .write(b)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            writer
                .close()
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            write_atomically(&path, &buf)
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_has_a_header_and_quotes_what_needs_it() {
        let rows = vec![
            json!({"word": "a,b", "n": 2, "note": null}),
            json!({"word": "say \"hi\"", "n": 1, "note": "x"}),
        ];
        let columns = vec!["word".to_string(), "n".to_string(), "note".to_string()];
        assert_eq!(
            csv(&columns, &rows),
            "word,n,note\n\"a,b\",2,\n\"say \"\"hi\"\"\",1,x\n"
        );
    }

    #[test]
    fn files_are_named_by_prefix_and_batch_time() {
        let f = Files::new(PathBuf::from("/d/out/wc"), FileFormat::Csv, vec![]);
        assert_eq!(f.path(2000), PathBuf::from("/d/out/wc-2000.csv"));
    }
}
