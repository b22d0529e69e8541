//! Result rows as JSON, per DESIGN.md: objects keyed by column name; integers and
//! floats as numbers (NaN and infinities as null), timestamps as RFC 3339 strings
//! (UTC, `Z`), dates as `YYYY-MM-DD`, lists as arrays, structs as objects, NULL as
//! null; other types as their display text. Pure.

use std::io::Write;

use chrono::{DateTime, SecondsFormat};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, GenericListArray, OffsetSizeTrait, StructArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// Appends `[{...}, ...]` for all rows of `batches` to `out`.
pub fn write_rows(batches: &[RecordBatch], out: &mut Vec<u8>) {
    out.push(b'[');
    let mut first = true;
    for batch in batches {
        let schema = batch.schema();
        let names: Vec<Vec<u8>> = schema
            .fields()
            .iter()
            .map(|f| serde_json::to_vec(f.name()).unwrap_or_else(|_| b"\"?\"".to_vec()))
            .collect();
        for row in 0..batch.num_rows() {
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'{');
            for (i, column) in batch.columns().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&names[i]);
                out.push(b':');
                write_value(column, row, out);
            }
            out.push(b'}');
        }
    }
    out.push(b']');
}

/// One cell as JSON.
pub fn write_value(array: &ArrayRef, row: usize, out: &mut Vec<u8>) {
    if array.is_null(row) {
        out.extend_from_slice(b"null");
        return;
    }
    macro_rules! int {
        ($t:ty) => {{
            let _ = write!(out, "{}", array.as_primitive::<$t>().value(row));
        }};
    }
    match array.data_type() {
        DataType::Boolean => {
            let v = array
                .as_any()
                .downcast_ref::<BooleanArray>()
                .map(|a| a.value(row))
                .unwrap_or(false);
            out.extend_from_slice(if v { b"true" } else { b"false" });
        }
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float16 => float(array.as_primitive::<Float16Type>().value(row).to_f32(), out),
        DataType::Float32 => float(array.as_primitive::<Float32Type>().value(row), out),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row), out),
        DataType::Utf8 => string(array.as_string::<i32>().value(row), out),
        DataType::LargeUtf8 => string(array.as_string::<i64>().value(row), out),
        DataType::Utf8View => string(array.as_string_view().value(row), out),
        DataType::Timestamp(unit, _) => {
            let nanos = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .checked_mul(1_000_000_000),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .checked_mul(1_000_000),
                TimeUnit::Microsecond => array
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(row)
                    .checked_mul(1000),
                TimeUnit::Nanosecond => {
                    Some(array.as_primitive::<TimestampNanosecondType>().value(row))
                }
            };
            match nanos {
                Some(n) => string(
                    &DateTime::from_timestamp_nanos(n).to_rfc3339_opts(SecondsFormat::AutoSi, true),
                    out,
                ),
                None => display(array, row, out),
            }
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row) as i64;
            date(days * 86_400_000, array, row, out)
        }
        DataType::Date64 => date(
            array.as_primitive::<Date64Type>().value(row),
            array,
            row,
            out,
        ),
        DataType::List(_) => list(array.as_list::<i32>(), row, out),
        DataType::LargeList(_) => list(array.as_list::<i64>(), row, out),
        DataType::Struct(_) => {
            let s: &StructArray = array.as_struct();
            out.push(b'{');
            for (i, (field, child)) in s.fields().iter().zip(s.columns()).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(field.name(), out);
                out.push(b':');
                write_value(child, row, out);
            }
            out.push(b'}');
        }
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => {
            // A decimal's exact digits, as a JSON number.
            let mut text = Vec::new();
            display(array, row, &mut text);
            let digits = text
                .get(1..text.len().saturating_sub(1))
                .unwrap_or_default();
            out.extend_from_slice(digits);
        }
        _ => display(array, row, out),
    }
}

/// The shortest text that reads back as the same float (`4.0`, `0.1`); NaN and
/// infinities, which JSON cannot express, as null.
fn float<F: Into<f64> + Copy + serde::Serialize>(v: F, out: &mut Vec<u8>) {
    if v.into().is_finite() {
        let _ = serde_json::to_writer(&mut *out, &v);
    } else {
        out.extend_from_slice(b"null");
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, s);
}

fn date(ms: i64, array: &ArrayRef, row: usize, out: &mut Vec<u8>) {
    match DateTime::from_timestamp_millis(ms) {
        Some(d) => string(&d.format("%Y-%m-%d").to_string(), out),
        None => display(array, row, out),
    }
}

fn list<O: OffsetSizeTrait>(list: &GenericListArray<O>, row: usize, out: &mut Vec<u8>) {
    let values = list.value(row);
    out.push(b'[');
    for i in 0..values.len() {
        if i > 0 {
            out.push(b',');
        }
        write_value(&values, i, out);
    }
    out.push(b']');
}

/// Arrow's display text of a cell, as a JSON string.
fn display(array: &ArrayRef, row: usize, out: &mut Vec<u8>) {
    let options = FormatOptions::default();
    match ArrayFormatter::try_new(array.as_ref(), &options) {
        Ok(f) => string(&f.value(row).to_string(), out),
        Err(_) => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Date32Array, Float64Array, Int64Array, ListArray, StringArray, TimestampNanosecondArray,
    };
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn renders_types_as_the_design_says() {
        let list = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
        ]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new("d", DataType::Date32, true),
            Field::new("l", list.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a\"b"), None])),
                Arc::new(Int64Array::from(vec![Some(-3), Some(4)])),
                Arc::new(Float64Array::from(vec![Some(1.5), Some(f64::NAN)])),
                Arc::new(TimestampNanosecondArray::from(vec![
                    Some(1_000_000_000),
                    Some(1_500_000_000),
                ])),
                Arc::new(Date32Array::from(vec![Some(1), None])),
                Arc::new(list),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        write_rows(&[batch], &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"s":"a\"b","n":-3,"f":1.5,"ts":"1970-01-01T00:00:01Z","d":"1970-01-02","l":[1,null]},{"s":null,"n":4,"f":null,"ts":"1970-01-01T00:00:01.500Z","d":null,"l":null}]"#
        );
    }

    #[test]
    fn no_batches_is_an_empty_array() {
        let mut out = Vec::new();
        write_rows(&[], &mut out);
        assert_eq!(out, b"[]");
    }
}
