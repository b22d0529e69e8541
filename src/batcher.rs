//! The batcher: receivers push decoded chunks stamped with the batch they arrived
//! in; the engine seals one batch per source per tick. Pure: no clock, no I/O.
//!
//! Invariants:
//! - `seal(t)` returns the chunks stamped `<= t` that were not sealed before, in
//!   push order; chunks stamped later stay for their own tick (when the engine
//!   runs late, records still land in the interval they arrived in).
//! - Stamps never go backwards, and never fall at or before a sealed batch: a
//!   chunk stamped earlier than the last one pushed takes that one's stamp, and a
//!   chunk stamped into a batch already sealed (a receiver raced the tick) goes
//!   into the next. So every seal takes a prefix of the pushes, and the
//!   write-ahead log's position of a source is simply the sequence number of the
//!   last chunk sealed ([`MicroBatch::last_seq`]).

use std::collections::VecDeque;

use datafusion::arrow::record_batch::RecordBatch;

use crate::time::BatchTime;

#[derive(Debug, Default)]
pub struct Batcher {
    chunks: VecDeque<Pushed>,
    rows: usize,
    /// Upper bound on buffered rows; pushes beyond it are refused (backpressure).
    max_rows: usize,
    /// The latest stamp pushed.
    last_stamp: Option<BatchTime>,
    /// The latest batch sealed.
    sealed: Option<BatchTime>,
}

#[derive(Debug)]
struct Pushed {
    stamp: BatchTime,
    /// The chunk's write-ahead log sequence number (0 when there is no log).
    seq: u64,
    chunk: RecordBatch,
}

/// The batcher is full: the engine is not keeping up with the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// One sealed micro-batch of a source.
#[derive(Debug, Clone, Default)]
pub struct MicroBatch {
    pub chunks: Vec<RecordBatch>,
    pub rows: usize,
    /// The log sequence number of the last chunk sealed, if any was.
    pub last_seq: Option<u64>,
}

impl Batcher {
    pub fn new(max_rows: usize) -> Batcher {
        Batcher {
            max_rows,
            ..Batcher::default()
        }
    }

    /// Buffered rows not yet sealed.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Buffers a chunk stamped `stamp`; refused when it would exceed the limit.
    pub fn push(&mut self, stamp: BatchTime, seq: u64, chunk: RecordBatch) -> Result<(), Full> {
        if self.rows + chunk.num_rows() > self.max_rows && chunk.num_rows() > 0 {
            return Err(Full);
        }
        self.force_push(stamp, seq, chunk);
        Ok(())
    }

    /// Buffers a chunk whatever the limit: rows replayed from the write-ahead log
    /// were acknowledged once and must not be refused.
    pub fn force_push(&mut self, stamp: BatchTime, seq: u64, chunk: RecordBatch) {
        if chunk.num_rows() == 0 {
            return;
        }
        let mut stamp = stamp.max(self.last_stamp.unwrap_or(stamp));
        if let Some(sealed) = self.sealed {
            stamp = stamp.max(BatchTime(sealed.millis() + 1));
        }
        self.last_stamp = Some(stamp);
        self.rows += chunk.num_rows();
        self.chunks.push_back(Pushed { stamp, seq, chunk });
    }

    /// Takes the chunks stamped `<= t`.
    pub fn seal(&mut self, t: BatchTime) -> MicroBatch {
        let mut batch = MicroBatch::default();
        while self.chunks.front().is_some_and(|p| p.stamp <= t) {
            if let Some(p) = self.chunks.pop_front() {
                batch.rows += p.chunk.num_rows();
                batch.last_seq = Some(p.seq);
                batch.chunks.push(p.chunk);
            }
        }
        self.rows -= batch.rows;
        self.sealed = Some(self.sealed.map_or(t, |s| s.max(t)));
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
        b.push(BatchTime(1000), 1, chunk(&[1, 2])).unwrap();
        b.push(BatchTime(1000), 2, chunk(&[3])).unwrap();
        b.push(BatchTime(2000), 3, chunk(&[4])).unwrap();
        let first = b.seal(BatchTime(1000));
        assert_eq!(
            (values(&first), first.rows, first.last_seq),
            (vec![1, 2, 3], 3, Some(2))
        );
        assert_eq!(b.rows(), 1);
        assert_eq!(values(&b.seal(BatchTime(2000))), vec![4]);
        assert_eq!(b.seal(BatchTime(3000)).rows, 0);
    }

    #[test]
    fn stamps_never_go_backwards_nor_into_a_sealed_batch() {
        let mut b = Batcher::new(100);
        b.push(BatchTime(2000), 1, chunk(&[5])).unwrap();
        // Stamped earlier than a chunk already buffered: joins its batch.
        b.push(BatchTime(1000), 2, chunk(&[6])).unwrap();
        let first = b.seal(BatchTime(1000));
        assert_eq!((first.rows, first.last_seq), (0, None));
        let second = b.seal(BatchTime(2000));
        assert_eq!((values(&second), second.last_seq), (vec![5, 6], Some(2)));
        // A receiver that raced the tick of 2000: its chunk goes into the next batch.
        b.push(BatchTime(2000), 3, chunk(&[7])).unwrap();
        assert_eq!(values(&b.seal(BatchTime(3000))), vec![7]);
    }

    #[test]
    fn replayed_chunks_are_taken_beyond_capacity() {
        let mut b = Batcher::new(1);
        b.force_push(BatchTime(1000), 1, chunk(&[1, 2, 3]));
        assert_eq!(b.push(BatchTime(1000), 2, chunk(&[4])), Err(Full));
        assert_eq!(b.seal(BatchTime(1000)).rows, 3);
    }

    #[test]
    fn refuses_beyond_capacity_and_ignores_empty_chunks() {
        let mut b = Batcher::new(3);
        b.push(BatchTime(1000), 0, chunk(&[])).unwrap();
        b.push(BatchTime(1000), 0, chunk(&[1, 2])).unwrap();
        assert_eq!(b.push(BatchTime(1000), 0, chunk(&[3, 4])), Err(Full));
        assert_eq!(b.rows(), 2);
    }
}
