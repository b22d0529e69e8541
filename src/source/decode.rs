//! Decoding records (one line each) into Arrow columns, shared by every source.
//!
//! Pure and synchronous: a [`Decoder`] takes the bytes of one record at a time and
//! either appends one row to its column builders or returns a [`RecordError`]
//! naming what is wrong, having appended nothing (each row is validated in full
//! before any column is touched). [`Decoder::finish`] hands out the rows so far as
//! a `RecordBatch`.
//!
//! Formats: `LINES` (the whole line is the one TEXT column), `CSV` (RFC 4180
//! quoting, fields in column order), `JSON` (one object per line, fields by column
//! name; a missing field is NULL, unknown fields are ignored).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

/// How a source's records are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Lines,
    Csv,
    Json,
    /// Whole Parquet files (directory sources only): not record by record.
    Parquet,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Lines => "LINES",
            Format::Csv => "CSV",
            Format::Json => "JSON",
            Format::Parquet => "PARQUET",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why one record was rejected. `kind` is a stable short label (counted and logged
/// once per kind); `message` says what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub kind: &'static str,
    pub message: String,
}

impl RecordError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> RecordError {
        RecordError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The column types a source may declare (the SQL name is given in errors).
pub fn supported_type(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Boolean
            | DataType::Date32
            | DataType::Timestamp(TimeUnit::Nanosecond, None)
    )
}

/// One decoded field, validated against its column type but not yet appended.
#[derive(Debug, Clone, PartialEq)]
enum Cell<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

enum Column {
    Utf8(StringBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Date32(Date32Builder),
    Timestamp(TimestampNanosecondBuilder),
}

impl Column {
    fn new(dt: &DataType) -> Option<Column> {
        Some(match dt {
            DataType::Utf8 => Column::Utf8(StringBuilder::new()),
            DataType::Int16 => Column::Int16(Int16Builder::new()),
            DataType::Int32 => Column::Int32(Int32Builder::new()),
            DataType::Int64 => Column::Int64(Int64Builder::new()),
            DataType::Float32 => Column::Float32(Float32Builder::new()),
            DataType::Float64 => Column::Float64(Float64Builder::new()),
            DataType::Boolean => Column::Boolean(BooleanBuilder::new()),
            DataType::Date32 => Column::Date32(Date32Builder::new()),
            DataType::Timestamp(TimeUnit::Nanosecond, None) => {
                Column::Timestamp(TimestampNanosecondBuilder::new())
            }
            _ => return None,
        })
    }

    /// Checks a text field against this column's type.
    fn parse_text<'a>(&self, text: &'a str, empty_is_null: bool) -> Result<Cell<'a>, String> {
        if let Column::Utf8(_) = self {
            return Ok(Cell::Str(Cow::Borrowed(text)));
        }
        let t = text.trim();
        if t.is_empty() && empty_is_null {
            return Ok(Cell::Null);
        }
        match self {
            Column::Utf8(_) => unreachable!("handled above"),
            Column::Int16(_) | Column::Int32(_) | Column::Int64(_) => {
                let v: i64 = t
                    .parse()
                    .map_err(|_| format!("'{}' is not an integer", clip(t)))?;
                self.check_int(v)
            }
            Column::Float32(_) | Column::Float64(_) => t
                .parse()
                .map(Cell::Float)
                .map_err(|_| format!("'{}' is not a number", clip(t))),
            Column::Boolean(_) => match t.to_ascii_lowercase().as_str() {
                "true" | "t" | "1" | "yes" => Ok(Cell::Bool(true)),
                "false" | "f" | "0" | "no" => Ok(Cell::Bool(false)),
                _ => Err(format!("'{}' is not a boolean", clip(t))),
            },
            Column::Date32(_) => {
                let d = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .map_err(|_| format!("'{}' is not a date (YYYY-MM-DD)", clip(t)))?;
                Ok(Cell::Int(days_since_epoch(d)))
            }
            Column::Timestamp(_) => {
                datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(t)
                    .map(Cell::Int)
                    .map_err(|_| format!("'{}' is not a timestamp (RFC 3339)", clip(t)))
            }
        }
    }

    /// Checks a JSON value against this column's type.
    fn parse_json<'a>(&self, v: &'a serde_json::Value) -> Result<Cell<'a>, String> {
        use serde_json::Value;
        match (self, v) {
            (_, Value::Null) => Ok(Cell::Null),
            (Column::Utf8(_), Value::String(s)) => Ok(Cell::Str(Cow::Borrowed(s))),
            // Numbers and booleans are accepted into TEXT as their JSON text.
            (Column::Utf8(_), Value::Number(_) | Value::Bool(_)) => {
                Ok(Cell::Str(Cow::Owned(v.to_string())))
            }
            (Column::Int16(_) | Column::Int32(_) | Column::Int64(_), Value::Number(n)) => {
                match n.as_i64() {
                    Some(i) => self.check_int(i),
                    None => Err(format!("{n} is not an integer")),
                }
            }
            (Column::Float32(_) | Column::Float64(_), Value::Number(n)) => n
                .as_f64()
                .map(Cell::Float)
                .ok_or_else(|| format!("{n} is not a number")),
            (Column::Boolean(_), Value::Bool(b)) => Ok(Cell::Bool(*b)),
            // A number for a TIMESTAMP is milliseconds since the Unix epoch.
            (Column::Timestamp(_), Value::Number(n)) => n
                .as_i64()
                .and_then(|ms| ms.checked_mul(1_000_000))
                .map(Cell::Int)
                .ok_or_else(|| format!("{n} is not a timestamp in epoch milliseconds")),
            (Column::Timestamp(_) | Column::Date32(_), Value::String(s)) => {
                self.parse_text(s, false)
            }
            (_, other) => Err(format!("{} is not {}", json_kind(other), self.sql_type())),
        }
    }

    fn check_int<'a>(&self, v: i64) -> Result<Cell<'a>, String> {
        let fits = match self {
            Column::Int16(_) => i16::try_from(v).is_ok(),
            Column::Int32(_) => i32::try_from(v).is_ok(),
            _ => true,
        };
        if fits {
            Ok(Cell::Int(v))
        } else {
            Err(format!("{v} is out of range for {}", self.sql_type()))
        }
    }

    fn sql_type(&self) -> &'static str {
        match self {
            Column::Utf8(_) => "TEXT",
            Column::Int16(_) => "SMALLINT",
            Column::Int32(_) => "INT",
            Column::Int64(_) => "BIGINT",
            Column::Float32(_) => "REAL",
            Column::Float64(_) => "DOUBLE",
            Column::Boolean(_) => "BOOLEAN",
            Column::Date32(_) => "DATE",
            Column::Timestamp(_) => "TIMESTAMP",
        }
    }

    /// Appends a cell that `parse_*` produced for this column.
    fn append(&mut self, cell: &Cell<'_>) {
        match (self, cell) {
            (Column::Utf8(b), Cell::Str(s)) => b.append_value(s),
            (Column::Int16(b), Cell::Int(v)) => b.append_value(*v as i16),
            (Column::Int32(b), Cell::Int(v)) => b.append_value(*v as i32),
            (Column::Int64(b), Cell::Int(v)) => b.append_value(*v),
            (Column::Float32(b), Cell::Float(v)) => b.append_value(*v as f32),
            (Column::Float64(b), Cell::Float(v)) => b.append_value(*v),
            (Column::Boolean(b), Cell::Bool(v)) => b.append_value(*v),
            (Column::Date32(b), Cell::Int(v)) => b.append_value(*v as i32),
            (Column::Timestamp(b), Cell::Int(v)) => b.append_value(*v),
            (column, _) => column.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::Utf8(b) => b.append_null(),
            Column::Int16(b) => b.append_null(),
            Column::Int32(b) => b.append_null(),
            Column::Int64(b) => b.append_null(),
            Column::Float32(b) => b.append_null(),
            Column::Float64(b) => b.append_null(),
            Column::Boolean(b) => b.append_null(),
            Column::Date32(b) => b.append_null(),
            Column::Timestamp(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Utf8(b) => Arc::new(b.finish()),
            Column::Int16(b) => Arc::new(b.finish()),
            Column::Int32(b) => Arc::new(b.finish()),
            Column::Int64(b) => Arc::new(b.finish()),
            Column::Float32(b) => Arc::new(b.finish()),
            Column::Float64(b) => Arc::new(b.finish()),
            Column::Boolean(b) => Arc::new(b.finish()),
            Column::Date32(b) => Arc::new(b.finish()),
            Column::Timestamp(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Column::Utf8(b) => b.len(),
            Column::Int16(b) => b.len(),
            Column::Int32(b) => b.len(),
            Column::Int64(b) => b.len(),
            Column::Float32(b) => b.len(),
            Column::Float64(b) => b.len(),
            Column::Boolean(b) => b.len(),
            Column::Date32(b) => b.len(),
            Column::Timestamp(b) => b.len(),
        }
    }
}

fn days_since_epoch(d: chrono::NaiveDate) -> i64 {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    (d - epoch).num_days()
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The first 40 characters of a value, for error messages about huge inputs.
fn clip(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(40) {
        Some((i, _)) => Cow::Owned(format!("{}...", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

/// Turns records into rows of a fixed schema. See the module docs.
pub struct Decoder {
    schema: SchemaRef,
    format: Format,
    columns: Vec<Column>,
    /// Which columns are declared NOT NULL.
    required: Vec<bool>,
    csv: csv_core::Reader,
    csv_out: Vec<u8>,
    csv_ends: Vec<usize>,
}

impl Decoder {
    /// Fails with a message when the schema has a type no format can decode, or a
    /// LINES source does not have exactly one TEXT column.
    pub fn new(schema: SchemaRef, format: Format) -> Result<Decoder, String> {
        if format == Format::Parquet {
            return Err(
                "FORMAT PARQUET reads whole files: it is for DIRECTORY sources and file tables; use LINES, CSV or JSON"
                    .to_string(),
            );
        }
        if format == Format::Lines
            && (schema.fields().len() != 1 || schema.field(0).data_type() != &DataType::Utf8)
        {
            return Err(
                "FORMAT LINES needs exactly one TEXT column, as in (line TEXT); use FORMAT CSV or JSON for several columns"
                    .to_string(),
            );
        }
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let column = Column::new(field.data_type()).ok_or_else(|| {
                format!(
                    "column '{}' has type {}, which sources cannot decode; use TEXT, SMALLINT, INT, BIGINT, REAL, DOUBLE, BOOLEAN, DATE or TIMESTAMP",
                    field.name(),
                    field.data_type()
                )
            })?;
            columns.push(column);
        }
        let required = schema.fields().iter().map(|f| !f.is_nullable()).collect();
        Ok(Decoder {
            schema,
            format,
            columns,
            required,
            csv: csv_core::Reader::new(),
            csv_out: Vec::new(),
            csv_ends: Vec::new(),
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows appended since the last `finish`.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    /// Decodes one record (without its line terminator). On error nothing is
    /// appended; a blank CSV or JSON line is skipped.
    pub fn push(&mut self, record: &[u8]) -> Result<(), RecordError> {
        let text = std::str::from_utf8(record).map_err(|e| {
            RecordError::new(
                "invalid UTF-8",
                format!("record is not valid UTF-8 (byte {})", e.valid_up_to()),
            )
        })?;
        match self.format {
            Format::Lines => {
                if let Some(Column::Utf8(b)) = self.columns.first_mut() {
                    b.append_value(text);
                }
                Ok(())
            }
            // Blank lines between CSV or JSON records carry no row.
            Format::Csv | Format::Json if text.trim().is_empty() => Ok(()),
            Format::Csv => self.push_csv(record),
            Format::Json => self.push_json(text),
            Format::Parquet => Err(RecordError::new(
                "not a record format",
                "PARQUET is read file by file".to_string(),
            )),
        }
    }

    fn push_csv(&mut self, record: &[u8]) -> Result<(), RecordError> {
        self.csv.reset();
        self.csv_out.resize(record.len() + 1, 0);
        self.csv_ends.resize(record.len() + 2, 0);
        let (_, _, nout, nends) =
            self.csv
                .read_record(record, &mut self.csv_out, &mut self.csv_ends);
        let (res, _, _, more) =
            self.csv
                .read_record(&[], &mut self.csv_out[nout..], &mut self.csv_ends[nends..]);
        if res != csv_core::ReadRecordResult::Record {
            return Err(RecordError::new(
                "malformed CSV",
                "record is not a complete CSV row",
            ));
        }
        let fields = nends + more;
        if fields != self.columns.len() {
            return Err(RecordError::new(
                "wrong field count",
                format!("expected {} CSV fields, got {fields}", self.columns.len()),
            ));
        }
        // Fields are valid UTF-8: the whole record was, and CSV unquoting only removes bytes.
        let out = std::str::from_utf8(&self.csv_out[..self.csv_ends[fields - 1]])
            .map_err(|_| RecordError::new("invalid UTF-8", "record is not valid UTF-8"))?;
        let mut cells = Vec::with_capacity(fields);
        let mut start = 0;
        for (i, column) in self.columns.iter().enumerate() {
            let end = self.csv_ends[i];
            let cell = column
                .parse_text(&out[start..end], true)
                .map_err(|m| bad_value(self.schema.field(i).name(), m))?;
            if cell == Cell::Null && self.required[i] {
                return Err(missing(self.schema.field(i).name()));
            }
            cells.push(cell);
            start = end;
        }
        for (column, cell) in self.columns.iter_mut().zip(&cells) {
            column.append(cell);
        }
        Ok(())
    }

    fn push_json(&mut self, text: &str) -> Result<(), RecordError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| RecordError::new("malformed JSON", format!("malformed JSON: {e}")))?;
        let serde_json::Value::Object(object) = &value else {
            return Err(RecordError::new(
                "malformed JSON",
                format!("expected a JSON object, got {}", json_kind(&value)),
            ));
        };
        let mut cells = Vec::with_capacity(self.columns.len());
        for (i, column) in self.columns.iter().enumerate() {
            let name = self.schema.field(i).name();
            let cell = match object.get(name) {
                Some(v) => column.parse_json(v).map_err(|m| bad_value(name, m))?,
                None => Cell::Null,
            };
            if cell == Cell::Null && self.required[i] {
                return Err(missing(name));
            }
            cells.push(cell);
        }
        for (column, cell) in self.columns.iter_mut().zip(&cells) {
            column.append(cell);
        }
        Ok(())
    }

    /// The rows so far as one batch; the decoder starts empty again.
    pub fn finish(&mut self) -> RecordBatch {
        let rows = self.rows();
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        // The arrays are built from this schema's own types, row by row, so the
        // batch is well-formed; an empty batch is the only sane fallback.
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .unwrap_or_else(|_| RecordBatch::new_empty(self.schema.clone()))
    }
}

fn bad_value(column: &str, message: String) -> RecordError {
    RecordError::new("bad value", format!("column '{column}': {message}"))
}

fn missing(column: &str) -> RecordError {
    RecordError::new(
        "missing value",
        format!("column '{column}' is NOT NULL but the record has no value for it"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;

    fn schema(fields: Vec<(&str, DataType, bool)>) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .into_iter()
                .map(|(n, t, null)| Field::new(n, t, null))
                .collect::<Vec<_>>(),
        ))
    }

    fn sales() -> SchemaRef {
        schema(vec![
            ("store", DataType::Utf8, true),
            ("qty", DataType::Int64, true),
            ("price", DataType::Float64, true),
            ("ok", DataType::Boolean, true),
        ])
    }

    fn table(d: &mut Decoder) -> String {
        pretty_format_batches(&[d.finish()]).unwrap().to_string()
    }

    #[test]
    fn lines_take_the_whole_record() {
        let mut d =
            Decoder::new(schema(vec![("line", DataType::Utf8, true)]), Format::Lines).unwrap();
        d.push(b"hello world").unwrap();
        d.push(b"").unwrap();
        assert_eq!(d.rows(), 2);
        let err = d.push(b"\xff\xfe").unwrap_err();
        assert_eq!(err.kind, "invalid UTF-8");
        assert_eq!(d.rows(), 2);
    }

    #[test]
    fn lines_need_one_text_column() {
        let err = Decoder::new(sales(), Format::Lines).err().unwrap();
        assert!(err.contains("exactly one TEXT column"), "{err}");
    }

    #[test]
    fn csv_decodes_quoted_fields_and_empty_as_null() {
        let mut d = Decoder::new(sales(), Format::Csv).unwrap();
        d.push(b"\"a, b\",3,1.5,true").unwrap();
        d.push(b"x,,,").unwrap();
        d.push(b"\"say \"\"hi\"\"\",-2,0,f").unwrap();
        assert_eq!(
            table(&mut d),
            "+----------+-----+-------+-------+\n\
             | store    | qty | price | ok    |\n\
             +----------+-----+-------+-------+\n\
             | a, b     | 3   | 1.5   | true  |\n\
             | x        |     |       |       |\n\
             | say \"hi\" | -2  | 0.0   | false |\n\
             +----------+-----+-------+-------+"
        );
    }

    #[test]
    fn csv_bad_rows_append_nothing() {
        let mut d = Decoder::new(sales(), Format::Csv).unwrap();
        let e = d.push(b"a,1,2").unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            ("wrong field count", "expected 4 CSV fields, got 3")
        );
        let e = d.push(b"a,x,2,true").unwrap_err();
        assert_eq!(e.message, "column 'qty': 'x' is not an integer");
        let e = d.push(b"a,1,2,maybe").unwrap_err();
        assert_eq!(e.message, "column 'ok': 'maybe' is not a boolean");
        assert_eq!(d.rows(), 0);
        d.push(b"a,1,2,true").unwrap();
        assert_eq!(d.rows(), 1);
    }

    #[test]
    fn json_decodes_by_name_with_missing_as_null() {
        let mut d = Decoder::new(sales(), Format::Json).unwrap();
        d.push(br#"{"store": "s1", "qty": 2, "price": 2.5, "ok": false, "extra": [1]}"#)
            .unwrap();
        d.push(br#"{"qty": 7}"#).unwrap();
        assert_eq!(
            table(&mut d),
            "+-------+-----+-------+-------+\n\
             | store | qty | price | ok    |\n\
             +-------+-----+-------+-------+\n\
             | s1    | 2   | 2.5   | false |\n\
             |       | 7   |       |       |\n\
             +-------+-----+-------+-------+"
        );
    }

    #[test]
    fn json_bad_rows_name_the_problem() {
        let mut d = Decoder::new(sales(), Format::Json).unwrap();
        assert_eq!(d.push(b"{\"qty\": ").unwrap_err().kind, "malformed JSON");
        assert_eq!(
            d.push(b"[1,2]").unwrap_err().message,
            "expected a JSON object, got an array"
        );
        assert_eq!(
            d.push(br#"{"qty": "seven"}"#).unwrap_err().message,
            "column 'qty': a string is not BIGINT"
        );
        assert_eq!(
            d.push(br#"{"qty": 1.5}"#).unwrap_err().message,
            "column 'qty': 1.5 is not an integer"
        );
        assert_eq!(d.rows(), 0);
    }

    #[test]
    fn not_null_columns_reject_missing_values() {
        let s = schema(vec![
            ("k", DataType::Utf8, false),
            ("v", DataType::Int64, true),
        ]);
        let mut d = Decoder::new(s, Format::Json).unwrap();
        assert_eq!(d.push(br#"{"v": 1}"#).unwrap_err().kind, "missing value");
        d.push(br#"{"k": "a"}"#).unwrap();
        assert_eq!(d.rows(), 1);
    }

    #[test]
    fn timestamps_dates_and_small_ints() {
        let s = schema(vec![
            ("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            ("d", DataType::Date32, true),
            ("n", DataType::Int16, true),
        ]);
        let mut d = Decoder::new(s.clone(), Format::Csv).unwrap();
        d.push(b"2024-01-02T03:04:05Z,2024-01-02,7").unwrap();
        assert_eq!(
            d.push(b"yesterday,2024-01-02,7").unwrap_err().kind,
            "bad value"
        );
        assert_eq!(
            d.push(b"2024-01-02T03:04:05Z,2024-01-02,70000")
                .unwrap_err()
                .message,
            "column 'n': 70000 is out of range for SMALLINT"
        );
        let mut j = Decoder::new(s, Format::Json).unwrap();
        j.push(br#"{"ts": 1000, "d": "1970-01-02", "n": 1}"#)
            .unwrap();
        assert_eq!(
            table(&mut d),
            "+---------------------+------------+---+\n\
             | ts                  | d          | n |\n\
             +---------------------+------------+---+\n\
             | 2024-01-02T03:04:05 | 2024-01-02 | 7 |\n\
             +---------------------+------------+---+"
        );
        assert_eq!(
            table(&mut j),
            "+---------------------+------------+---+\n\
             | ts                  | d          | n |\n\
             +---------------------+------------+---+\n\
             | 1970-01-01T00:00:01 | 1970-01-02 | 1 |\n\
             +---------------------+------------+---+"
        );
    }

    #[test]
    fn finish_resets() {
        let mut d = Decoder::new(sales(), Format::Csv).unwrap();
        d.push(b"a,1,2,true").unwrap();
        assert_eq!(d.finish().num_rows(), 1);
        assert_eq!(d.rows(), 0);
        assert_eq!(d.finish().num_rows(), 0);
    }
}
