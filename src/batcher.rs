//! The batcher: receivers push decoded chunks stamped with the batch they arrived
//! in; the engine seals one batch per source per tick. Pure: no clock, no I/O.
//!
//! Invariant: `seal(t)` returns exactly the chunks stamped `<= t` that were not
//! sealed before, in arrival order; chunks stamped later stay for their own tick
//! (when the engine runs late, records still land in the interval they arrived in).

use std::collections::VecDeque;

use datafusion::arrow::record_batch::RecordBatch;

use crate::time::BatchTime;

#[derive(Debug, Default)]
pub struct Batcher {
    chunks: VecDeque<(BatchTime, RecordBatch)>,
    rows: usize,
    /// Upper bound on buffered rows; pushes beyond it are refused (backpressure).
    max_rows: usize,
}

/// The batcher is full: the engine is not keeping up with the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// One sealed micro-batch of a source.
#[derive(Debug, Clone, Default)]
pub struct MicroBatch {
    pub chunks: Vec<RecordBatch>,
    pub rows: usize,
}

impl Batcher {
    pub fn new(max_rows: usize) -> Batcher {
        Batcher {
            chunks: VecDeque::new(),
            rows: 0,
            max_rows,
        }
    }

    /// Buffered rows not yet sealed.
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn push(&mut self, stamp: BatchTime, chunk: RecordBatch) -> Result<(), Full> {
        if chunk.num_rows() == 0 {
            return Ok(());
        }
        if self.rows + chunk.num_rows() > self.max_rows {
            return Err(Full);
        }
        self.rows += chunk.num_rows();
        self.chunks.push_back((stamp, chunk));
        Ok(())
    }

    /// Takes the chunks stamped `<= t`.
    pub fn seal(&mut self, t: BatchTime) -> MicroBatch {
        let mut batch = MicroBatch::default();
        // Stamps are non-decreasing except when a receiver raced a tick; scan all.
        let mut kept = VecDeque::new();
        for (stamp, chunk) in self.chunks.drain(..) {
            if stamp <= t {
                batch.rows += chunk.num_rows();
                batch.chunks.push(chunk);
            } else {
                kept.push_back((stamp, chunk));
            }
        }
        self.chunks = kept;
        self.rows -= batch.rows;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn chunk(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    fn values(b: &MicroBatch) -> Vec<i64> {
        b.chunks
            .iter()
            .flat_map(|c| {
                c.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn seals_what_arrived_up_to_the_tick() {
        let mut b = Batcher::new(100);
        b.push(BatchTime(1000), chunk(&[1, 2])).unwrap();
        b.push(BatchTime(1000), chunk(&[3])).unwrap();
        b.push(BatchTime(2000), chunk(&[4])).unwrap();
        let first = b.seal(BatchTime(1000));
        assert_eq!((values(&first), first.rows), (vec![1, 2, 3], 3));
        assert_eq!(b.rows(), 1);
        assert_eq!(values(&b.seal(BatchTime(2000))), vec![4]);
        assert_eq!(b.seal(BatchTime(3000)).rows, 0);
    }

    #[test]
    fn late_tick_keeps_later_records_for_their_interval() {
        let mut b = Batcher::new(100);
        b.push(BatchTime(2000), chunk(&[5])).unwrap();
        b.push(BatchTime(1000), chunk(&[6])).unwrap();
        assert_eq!(values(&b.seal(BatchTime(1000))), vec![6]);
        assert_eq!(values(&b.seal(BatchTime(2000))), vec![5]);
    }

    #[test]
    fn refuses_beyond_capacity_and_ignores_empty_chunks() {
        let mut b = Batcher::new(3);
        b.push(BatchTime(1000), chunk(&[])).unwrap();
        b.push(BatchTime(1000), chunk(&[1, 2])).unwrap();
        assert_eq!(b.push(BatchTime(1000), chunk(&[3, 4])), Err(Full));
        assert_eq!(b.rows(), 2);
    }
}
