//! What each fuzz target checks, as plain functions: the libFuzzer binaries in
//! fuzz_targets/ call them, and so does the stable regression test
//! (tests/integration/fuzz_regressions.rs includes this file by path), so a
//! crashing input is replayed through exactly the code that found it.
//!
//! Only `sluice` and its own dependencies (`datafusion`, `tokio`, `serde_json`)
//! are used here, so that the integration test can include this file as is.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::Value;
use sluice::clock::Clock;
use sluice::engine::{self, Engine, EngineConfig, EngineHandle};
use sluice::source::decode::{Decoder, Format};
use sluice::source::framing::LineFramer;
use sluice::source::{decode_all, SourceHandle, SourceKind, SourceLimits, SourceSpec};
use sluice::sql::dialect::{self, SqlError};
use sluice::time::Interval;

/// Longer SQL inputs are skipped: they slow the fuzzer down without reaching
/// code that shorter ones cannot.
pub const MAX_SQL_BYTES: usize = 4096;

/// Records longer than this are bad records; small, so that the fuzzer reaches
/// the too-long path of the framer with short inputs.
pub const MAX_RECORD_BYTES: usize = 1024;

// ---------------------------------------------------------------- sql_parse

/// `sql_parse`: the dialect parser never panics, and an error's position lies
/// inside the text (1-based line and column, at most one past the end).
pub fn sql_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err((index, error)) = dialect::parse(text) {
        assert!(index >= 1, "statement index {index} is not 1-based");
        check_position(text, &error);
    }
}

/// Asserts that `error` points at a character of `text` or just after a line's end.
fn check_position(text: &str, error: &SqlError) {
    let (line, column) = match (error.line, error.column) {
        (None, None) => return,
        (Some(line), Some(column)) => (line, column),
        _ => panic!("error has only half a position: {error:?}"),
    };
    assert!(line >= 1 && column >= 1, "position not 1-based: {error:?}");
    // `lines()` drops a final empty line; the position just after a final
    // newline is still inside the text, hence the + 1.
    let lines = text.lines().count() as u64;
    assert!(
        line <= lines + 1,
        "line {line} is past the text's {lines} lines: {error:?}"
    );
    // Columns count characters, as the tokenizer does; one past the end of a
    // line is where "expected ..." errors at the end of input point.
    let width = text
        .split('\n')
        .nth(line as usize - 1)
        .map_or(0, |l| l.chars().count()) as u64;
    assert!(
        column <= width + 1,
        "column {column} is past the end of line {line} ({width} characters): {error:?}"
    );
}

// ----------------------------------------------------------------- sql_plan

/// The catalog every `sql_plan` input starts from.
pub const FIXED_CATALOG: &str = "\
CREATE SOURCE s (k TEXT, v BIGINT, t TIMESTAMP) FROM HTTP FORMAT CSV;
CREATE STREAM w AS SELECT k, v FROM s;
CREATE TABLE products (id BIGINT, name TEXT, category TEXT) FROM FILE 'products.csv' FORMAT CSV;";

/// How long one request may take before it counts as a hang (libFuzzer's own
/// `-timeout` is shorter and fires first when fuzzing).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Object kinds in the order they can be dropped: readers before what they read.
const KINDS: [&str; 5] = ["SINK", "QUERY", "STREAM", "TABLE", "SOURCE"];

/// `sql_plan`: one engine, as `sluice serve` builds it, with the manual clock and
/// a data directory of its own (for `CREATE TABLE ... FROM FILE` and confined
/// paths); every input is sent as one `POST /sql` body, then the catalog is put
/// back to [`FIXED_CATALOG`].
pub struct PlanHarness {
    runtime: tokio::runtime::Runtime,
    engine: EngineHandle,
    data_dir: std::path::PathBuf,
    /// `SHOW SOURCES`, `SHOW STREAMS` and `SHOW TABLES` of the fixed catalog.
    baseline: Vec<Value>,
}

impl PlanHarness {
    pub fn new() -> PlanHarness {
        // One thread: what the engine spawns runs while a request is served,
        // and coverage does not mix in other threads' work.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let data_dir = std::env::temp_dir().join(format!("sluice-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(data_dir.join("incoming")).expect("create the data dir");
        std::fs::write(
            data_dir.join("products.csv"),
            include_str!("../../queries/products.csv"),
        )
        .expect("write products.csv");
        let config = EngineConfig {
            parallelism: 1,
            data_dir: Some(data_dir.clone()),
            wal: false,
            // Checkpoints only at shutdown: the clock never moves here anyway.
            checkpoint_interval: 0,
            source_limits: SourceLimits {
                max_record_bytes: MAX_RECORD_BYTES,
                ..SourceLimits::default()
            },
            ..EngineConfig::default()
        };
        let clock = Clock::manual(Interval::from_millis(1000).expect("1 s interval"));
        let engine = runtime.block_on(async { engine::spawn(Engine::new(clock, config)).0 });
        let mut harness = PlanHarness {
            runtime,
            engine,
            data_dir,
            baseline: Vec::new(),
        };
        harness.create_fixed_catalog();
        harness.baseline = harness.snapshot();
        harness
    }

    /// Sends `data` (if UTF-8, cut to [`MAX_SQL_BYTES`]) as one request, then
    /// puts the catalog back. Any answer is fine; a panic or a hang is not.
    pub fn run(&self, data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if text.len() > MAX_SQL_BYTES {
            return;
        }
        let _ = self.sql(text);
        self.reset();
    }

    /// The engine still serves requests (the regression test's "still alive").
    pub fn answers(&self) -> bool {
        matches!(self.sql("SHOW SOURCES"), Ok(Ok(_)))
    }

    /// One request, as `POST /sql` sends it.
    fn sql(&self, text: &str) -> Result<Result<Vec<Value>, engine::StatementFailure>, String> {
        self.runtime.block_on(async {
            match tokio::time::timeout(REQUEST_TIMEOUT, self.engine.sql(text.to_string())).await {
                Ok(answer) => answer.map_err(|e| e.to_string()),
                Err(_) => panic!("the engine did not answer within {REQUEST_TIMEOUT:?}: {text:?}"),
            }
        })
    }

    fn create_fixed_catalog(&self) {
        match self.sql(FIXED_CATALOG) {
            Ok(Ok(_)) => {}
            other => panic!("the fixed catalog was refused: {other:?}"),
        }
    }

    /// Names of every object of `kind` ("SOURCE", ...), from `SHOW <kind>S`.
    fn names(&self, kind: &str) -> Vec<String> {
        let plural = if kind == "QUERY" {
            "QUERIES".to_string()
        } else {
            format!("{kind}S")
        };
        let Ok(Ok(answer)) = self.sql(&format!("SHOW {plural}")) else {
            panic!("SHOW {plural} failed");
        };
        answer[0]["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn snapshot(&self) -> Vec<Value> {
        ["SOURCES", "STREAMS", "TABLES"]
            .iter()
            .map(|what| match self.sql(&format!("SHOW {what}")) {
                Ok(Ok(answer)) => answer[0].clone(),
                other => panic!("SHOW {what} failed: {other:?}"),
            })
            .collect()
    }

    /// Drops what the input created; if it dropped or replaced part of the fixed
    /// catalog, drops everything and creates the catalog again.
    fn reset(&self) {
        let fixed = |name: &str| matches!(name, "s" | "w" | "products");
        self.drop_all(|name| !fixed(name));
        if self.snapshot() != self.baseline {
            self.drop_all(|_| true);
            self.create_fixed_catalog();
            assert_eq!(
                self.snapshot(),
                self.baseline,
                "the fixed catalog came back different"
            );
        }
    }

    /// Drops every object whose name `doomed` picks, readers first.
    fn drop_all(&self, doomed: impl Fn(&str) -> bool) {
        for kind in KINDS {
            // Streams can read streams: drop again until nothing more goes.
            loop {
                let names: Vec<String> =
                    self.names(kind).into_iter().filter(|n| doomed(n)).collect();
                if names.is_empty() {
                    break;
                }
                let dropped = names
                    .iter()
                    .filter(|name| {
                        let quoted = name.replace('"', "\"\"");
                        matches!(self.sql(&format!("DROP {kind} \"{quoted}\"")), Ok(Ok(_)))
                    })
                    .count();
                assert!(dropped > 0, "cannot drop any of the {kind}s {names:?}");
            }
        }
    }
}

impl Default for PlanHarness {
    fn default() -> Self {
        PlanHarness::new()
    }
}

impl Drop for PlanHarness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

// ------------------------------------------------------------------- decode

/// `decode`: the first byte picks the format (`byte % 3`: LINES, CSV, JSON) and
/// the chunk size of the streaming path (`byte / 3 + 1` bytes); the rest is the
/// payload. Decoded through both paths the sources use:
///
/// - streaming (TCP, Kafka, directory): [`SourceHandle::decode_into`] chunk by
///   chunk, bad records counted and skipped;
/// - all or nothing (HTTP ingest, file tables): [`decode_all`].
///
/// Never panics, and the two paths agree: the rows kept when streaming are the
/// rows `decode_all` returns whenever no record was bad, and every framed record
/// is either a row, a counted bad record or a skipped blank line.
pub fn decode(data: &[u8]) {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let format = [Format::Lines, Format::Csv, Format::Json][usize::from(selector % 3)];
    let chunk = usize::from(selector / 3) + 1;
    let schema = decode_schema(format);
    let handle = SourceHandle::new(
        SourceSpec {
            name: "fuzz".into(),
            schema: schema.clone(),
            kind: SourceKind::Http,
            format,
            options: Default::default(),
            sql: String::new(),
        },
        Clock::manual(Interval::from_millis(1000).expect("1 s interval")),
        SourceLimits {
            max_record_bytes: MAX_RECORD_BYTES,
            ..SourceLimits::default()
        },
    );

    let mut framer = LineFramer::new(MAX_RECORD_BYTES);
    let mut decoder = handle.decoder();
    let mut pieces = payload.chunks(chunk).peekable();
    if pieces.peek().is_none() {
        handle.decode_into(&mut framer, &mut decoder, &[], true);
    }
    while let Some(piece) = pieces.next() {
        handle.decode_into(&mut framer, &mut decoder, piece, pieces.peek().is_none());
    }
    let rows = decoder.rows();
    let streamed = decoder.finish();
    assert_eq!(streamed.num_rows(), rows, "finish lost or invented rows");
    let bad = handle.bad_total.load(std::sync::atomic::Ordering::Relaxed);
    let (by_kind, samples) = handle.bad_records();
    assert_eq!(
        by_kind.values().sum::<u64>(),
        bad,
        "bad records by kind do not add up"
    );
    assert!(samples.len() as u64 <= bad.min(10));

    let mut records = 0u64;
    let mut whole = LineFramer::new(MAX_RECORD_BYTES);
    whole.feed(payload, |_| records += 1);
    whole.finish(|_| records += 1);
    assert!(
        rows as u64 + bad <= records,
        "{rows} rows + {bad} bad records out of {records} framed records"
    );

    let decoder = Decoder::new(schema, format).expect("schema fits the format");
    match decode_all(payload, decoder, MAX_RECORD_BYTES) {
        Ok(all) => {
            assert_eq!(
                bad, 0,
                "decode_all took everything, streaming found {bad} bad records"
            );
            // Debug, not ==: a CSV "NaN" is a float that is not equal to itself.
            assert_eq!(
                format!("{all:?}"),
                format!("{streamed:?}"),
                "decode_all and streaming decoded different rows"
            );
        }
        Err((line, _)) => {
            assert!(
                bad > 0,
                "decode_all refused line {line}, streaming found no bad record"
            );
            assert!(
                line >= 1 && line as u64 <= records,
                "bad line {line} of {records} records"
            );
        }
    }
}

/// LINES: one TEXT column. CSV and JSON: every type sources decode, one NOT NULL.
fn decode_schema(format: Format) -> SchemaRef {
    let fields = match format {
        Format::Lines => vec![Field::new("line", DataType::Utf8, true)],
        _ => vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("small", DataType::Int16, true),
            Field::new("int", DataType::Int32, true),
            Field::new("v", DataType::Int64, false),
            Field::new("real", DataType::Float32, true),
            Field::new("x", DataType::Float64, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("d", DataType::Date32, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        ],
    };
    Arc::new(Schema::new(fields))
}
