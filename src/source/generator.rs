//! The built-in generator: demo data with no other program. A pull source: the
//! rows of batch `t` are made when the engine seals `t`, `rate` rows per second of
//! batch time, from a seeded random stream, so a run is repeatable.
//!
//! A `(line TEXT)` LINES source gets lines of 1 to 8 words from a small vocabulary;
//! other schemas get random values of each column's type. Options:
//! `rate` (rows per second, default 1000, at most 10 000 000), `seed` (default 42).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, StringArray, TimestampNanosecondArray,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::decode::Format;
use super::{Source, SourceHandle, SourceSpec};
use crate::time::BatchTime;

pub const WORDS: &[&str] = &[
    "spark", "stream", "batch", "window", "state", "query", "kafka", "arrow", "river", "sluice",
    "data", "event", "time", "key", "value", "count", "sum", "merge", "pane", "slide",
];

const MAX_RATE: u64 = 10_000_000;

pub struct Generator {
    schema: SchemaRef,
    lines: bool,
    rate: u64,
    rng: StdRng,
    /// Fractional rows carried to the next batch (rate × interval need not be whole).
    carry_millirows: u64,
    /// The last batch time generated for (or the creation time).
    last: Option<BatchTime>,
}

impl Generator {
    /// `zero` is the grid point the source was created at: its first batch covers (zero, zero + T].
    pub fn new(spec: &SourceSpec, zero: BatchTime) -> Result<Generator, String> {
        let rate = match spec.options.get("rate") {
            None => 1000,
            Some(r) => r
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|r| *r <= MAX_RATE)
                .ok_or_else(|| format!("generator option rate = '{r}' must be a whole number of rows per second from 0 to {MAX_RATE}"))?,
        };
        let seed = match spec.options.get("seed") {
            None => 42,
            Some(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("generator option seed = '{s}' must be a whole number"))?,
        };
        if let Some(unknown) = spec
            .options
            .keys()
            .find(|k| !["rate", "seed"].contains(&k.as_str()))
        {
            return Err(format!(
                "unknown generator option '{unknown}'; known options: rate, seed"
            ));
        }
        Ok(Generator {
            schema: spec.schema.clone(),
            lines: spec.format == Format::Lines,
            rate,
            rng: StdRng::seed_from_u64(seed),
            carry_millirows: 0,
            last: Some(zero),
        })
    }

    fn make(&mut self, rows: usize) -> RecordBatch {
        let columns: Vec<ArrayRef> = if self.lines {
            let lines: Vec<String> = (0..rows).map(|_| self.line()).collect();
            vec![Arc::new(StringArray::from(lines))]
        } else {
            let types: Vec<DataType> = self
                .schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect();
            types.iter().map(|dt| self.column(dt, rows)).collect()
        };
        RecordBatch::try_new(self.schema.clone(), columns)
            .unwrap_or_else(|_| RecordBatch::new_empty(self.schema.clone()))
    }

    fn line(&mut self) -> String {
        let n = self.rng.random_range(1..=8);
        let words: Vec<&str> = (0..n)
            .map(|_| WORDS[self.rng.random_range(0..WORDS.len())])
            .collect();
        words.join(" ")
    }

    fn column(&mut self, dt: &DataType, rows: usize) -> ArrayRef {
        let rng = &mut self.rng;
        match dt {
            DataType::Int16 => Arc::new(Int16Array::from_iter_values(
                (0..rows).map(|_| rng.random_range(0..100)),
            )),
            DataType::Int32 => Arc::new(Int32Array::from_iter_values(
                (0..rows).map(|_| rng.random_range(0..1000)),
            )),
            DataType::Int64 => Arc::new(Int64Array::from_iter_values(
                (0..rows).map(|_| rng.random_range(0..1000)),
            )),
            DataType::Float32 => Arc::new(Float32Array::from_iter_values(
                (0..rows).map(|_| rng.random_range(0.0..100.0)),
            )),
            DataType::Float64 => Arc::new(Float64Array::from_iter_values(
                (0..rows).map(|_| rng.random_range(0.0..100.0)),
            )),
            DataType::Boolean => Arc::new(BooleanArray::from_iter(
                (0..rows).map(|_| Some(rng.random_bool(0.5))),
            )),
            DataType::Date32 => Arc::new(Date32Array::from_iter_values(
                (0..rows).map(|_| rng.random_range(19_000..20_000)),
            )),
            DataType::Timestamp(_, _) => Arc::new(TimestampNanosecondArray::from_iter_values(
                (0..rows)
                    .map(|_| rng.random_range(1_700_000_000_000i64..1_800_000_000_000) * 1_000_000),
            )),
            _ => Arc::new(StringArray::from_iter_values(
                (0..rows).map(|_| WORDS[rng.random_range(0..WORDS.len())]),
            )),
        }
    }
}

impl Source for Generator {
    fn on_seal(&mut self, t: BatchTime, _handle: &SourceHandle) -> Option<RecordBatch> {
        let elapsed_ms = match self.last {
            Some(last) => (t.millis() - last.millis()).max(0) as u64,
            None => 0,
        };
        self.last = Some(t.max(self.last.unwrap_or(t)));
        if elapsed_ms == 0 {
            return None;
        }
        let millirows = self.rate * elapsed_ms + self.carry_millirows;
        self.carry_millirows = millirows % 1000;
        let rows = (millirows / 1000) as usize;
        (rows > 0).then(|| self.make(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::source::{SourceKind, SourceLimits};
    use crate::time::Interval;
    use datafusion::arrow::datatypes::{Field, Schema};

    fn spec(fields: Vec<Field>, format: Format, rate: &str) -> SourceSpec {
        SourceSpec {
            name: "g".into(),
            schema: Arc::new(Schema::new(fields)),
            kind: SourceKind::Generator,
            format,
            options: [("rate".to_string(), rate.to_string())].into(),
            sql: String::new(),
        }
    }

    fn rows(g: &mut Generator, handle: &SourceHandle, t: i64) -> usize {
        g.on_seal(BatchTime(t), handle).map_or(0, |b| b.num_rows())
    }

    #[test]
    fn makes_rate_rows_per_second_of_batch_time_carrying_fractions() {
        let s = spec(
            vec![Field::new("line", DataType::Utf8, true)],
            Format::Lines,
            "3",
        );
        let handle = SourceHandle::new(
            s.clone(),
            Clock::manual(Interval::from_millis(500).unwrap()),
            SourceLimits::default(),
        );
        let mut g = Generator::new(&s, BatchTime(0)).unwrap();
        let counts: Vec<usize> = (1..=4).map(|i| rows(&mut g, &handle, i * 500)).collect();
        assert_eq!(counts, [1, 2, 1, 2]);
        // A batch time skipped (engine behind) still gets its share.
        assert_eq!(rows(&mut g, &handle, 3000), 3);
    }

    #[test]
    fn lines_are_words_and_typed_columns_are_typed() {
        let s = spec(
            vec![Field::new("line", DataType::Utf8, true)],
            Format::Lines,
            "10",
        );
        let handle = SourceHandle::new(
            s.clone(),
            Clock::manual(Interval::from_millis(1000).unwrap()),
            SourceLimits::default(),
        );
        let batch = Generator::new(&s, BatchTime(0))
            .unwrap()
            .on_seal(BatchTime(1000), &handle)
            .unwrap();
        let lines = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        for line in lines.iter().flatten() {
            assert!(line.split(' ').all(|w| WORDS.contains(&w)), "{line}");
        }
        let typed = spec(
            vec![
                Field::new("n", DataType::Int64, true),
                Field::new("ok", DataType::Boolean, true),
            ],
            Format::Csv,
            "5",
        );
        let batch = Generator::new(&typed, BatchTime(0))
            .unwrap()
            .on_seal(BatchTime(1000), &handle)
            .unwrap();
        assert_eq!(
            (
                batch.num_rows(),
                batch.column(0).data_type(),
                batch.column(1).data_type()
            ),
            (5, &DataType::Int64, &DataType::Boolean)
        );
    }

    #[test]
    fn options_are_checked() {
        let field = || vec![Field::new("line", DataType::Utf8, true)];
        let err = |s: SourceSpec| Generator::new(&s, BatchTime(0)).err().unwrap();
        assert!(err(spec(field(), Format::Lines, "-1")).starts_with("generator option rate = '-1'"));
        let mut s = spec(field(), Format::Lines, "1");
        s.options.insert("speed".into(), "2".into());
        assert_eq!(
            err(s),
            "unknown generator option 'speed'; known options: rate, seed"
        );
    }
}
