//! Live tables: DataFusion tables whose contents are "the current batch".
//!
//! A [`Slot`] holds the chunks of the current interval for one source or derived
//! stream; the engine fills it before running queries and empties it after. A
//! [`LiveTable`] exposes a slot to DataFusion as a `StreamingTable` with one
//! partition stream per plan partition; each partition reads the slot when the
//! plan is executed (not when it is built) and yields its share of zero-copy
//! slices, so a big batch is spread over the partitions with no repartitioning.

use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::TableProvider;
use datafusion::common::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::ExecutionPlan;

/// The current batch of one source or stream.
#[derive(Debug, Default)]
pub struct Slot(RwLock<Arc<Vec<RecordBatch>>>);

impl Slot {
    pub fn set(&self, chunks: Vec<RecordBatch>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(chunks);
    }

    pub fn get(&self) -> Arc<Vec<RecordBatch>> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn clear(&self) {
        self.set(Vec::new());
    }

    pub fn rows(&self) -> usize {
        self.get().iter().map(RecordBatch::num_rows).sum()
    }
}

/// Builds live tables over slots.
pub struct LiveTable;

impl LiveTable {
    /// A table over `slot` with `partitions` partition streams.
    pub fn provider(
        schema: SchemaRef,
        slot: Arc<Slot>,
        partitions: usize,
    ) -> DfResult<Arc<dyn TableProvider>> {
        let partitions = partitions.max(1);
        let streams: Vec<Arc<dyn PartitionStream>> = (0..partitions)
            .map(|index| {
                Arc::new(LivePartition {
                    schema: schema.clone(),
                    slot: slot.clone(),
                    index,
                    count: partitions,
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(
            StreamingTable::try_new(schema, streams)?.with_infinite_table(false),
        ))
    }
}

/// A one-partition scan of `slot`, to put under a plan built by hand.
pub fn live_scan(schema: SchemaRef, slot: Arc<Slot>) -> DfResult<Arc<dyn ExecutionPlan>> {
    let partition: Arc<dyn PartitionStream> = Arc::new(LivePartition {
        schema: schema.clone(),
        slot,
        index: 0,
        count: 1,
    });
    let no_ordering: Vec<LexOrdering> = Vec::new();
    Ok(Arc::new(StreamingTableExec::try_new(
        schema,
        vec![partition],
        None,
        no_ordering,
        false,
        None,
    )?))
}

#[derive(Debug)]
struct LivePartition {
    schema: SchemaRef,
    slot: Arc<Slot>,
    index: usize,
    count: usize,
}

impl PartitionStream for LivePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let slice_rows = ctx.session_config().batch_size().max(1);
        let chunks = self.slot.get();
        let mut mine = Vec::new();
        let mut n = 0usize;
        for chunk in chunks.iter() {
            let mut offset = 0;
            while offset < chunk.num_rows() {
                let len = slice_rows.min(chunk.num_rows() - offset);
                if n % self.count == self.index {
                    mine.push(Ok(chunk.slice(offset, len)));
                }
                n += 1;
                offset += len;
            }
        }
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(mine),
        ))
    }
}
