//! Running compiled plans for one interval.
//!
//! A query's physical plan is built once (see `sql::planner`) over *live tables*:
//! each source and derived stream is a DataFusion table whose scan reads, at
//! execution time, whatever its [`Slot`] holds for the current batch. Each tick the
//! engine fills the slots, then [`CompiledPlan::run`] resets the plan's execution
//! state and collects it. No SQL is parsed or planned per batch.
//!
//! The function `batch_time()` reads the tick's batch time from a shared cell.

pub mod cumulative;
pub mod live;
pub mod split;
pub mod window;

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{collect, ExecutionPlan};

pub use live::{LiveTable, Slot};

/// Rows in a batch from which a query runs its parallel plan: below it, spreading
/// rows over partitions costs more in task spawning than it gains (measured in
/// docs/benchmarks.md).
pub const PARALLEL_MIN_ROWS: usize = 32_768;

/// A query's physical plans, built once. `single` runs on one partition, `parallel`
/// (when the query's parallelism is above 1) on `parallelism` partitions.
#[derive(Debug, Clone)]
pub struct CompiledPlan {
    pub single: Arc<dyn ExecutionPlan>,
    pub parallel: Option<Arc<dyn ExecutionPlan>>,
    pub task_ctx: Arc<TaskContext>,
    pub parallel_task_ctx: Option<Arc<TaskContext>>,
    /// The output schema.
    pub schema: SchemaRef,
}

impl CompiledPlan {
    /// Runs the plan on what the slots hold now; `input_rows` picks the plan.
    pub async fn run(&self, input_rows: usize) -> DfResult<Vec<RecordBatch>> {
        let (plan, ctx) = match (&self.parallel, &self.parallel_task_ctx) {
            (Some(plan), Some(ctx)) if input_rows >= PARALLEL_MIN_ROWS => (plan, ctx),
            _ => (&self.single, &self.task_ctx),
        };
        // A plan keeps execution state (repartition channels, join build sides):
        // reset it so the same plan can run again on the next batch.
        let plan = reset_plan_states(Arc::clone(plan))?;
        collect(plan, Arc::clone(ctx)).await
    }
}

/// Runs a hand-built plan (merge and final plans of windows and cumulative
/// queries) once, after resetting its execution state.
pub(crate) async fn run_once(
    plan: &Arc<dyn ExecutionPlan>,
    ctx: &Arc<TaskContext>,
) -> DfResult<Vec<RecordBatch>> {
    let plan = reset_plan_states(Arc::clone(plan))?;
    collect(plan, Arc::clone(ctx)).await
}

/// The cell `batch_time()` reads: the current batch time in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct BatchClock(Arc<AtomicI64>);

impl BatchClock {
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::Release);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }
}

/// `batch_time()`: the current batch's time as a TIMESTAMP (Spark hands it to
/// `transform`). Volatile, so the optimizer never folds it into a constant of the
/// batch the plan was built in.
#[derive(Debug)]
pub struct BatchTimeUdf {
    clock: BatchClock,
    signature: Signature,
}

impl BatchTimeUdf {
    pub fn new(clock: BatchClock) -> BatchTimeUdf {
        BatchTimeUdf {
            clock,
            signature: Signature::nullary(Volatility::Volatile),
        }
    }
}

impl PartialEq for BatchTimeUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.clock.0, &other.clock.0)
    }
}

impl Eq for BatchTimeUdf {}

impl Hash for BatchTimeUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "batch_time".hash(state);
    }
}

impl ScalarUDFImpl for BatchTimeUdf {
    fn name(&self) -> &str {
        "batch_time"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Nanosecond, None))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let nanos = self.clock.get().saturating_mul(1_000_000);
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(
            Some(nanos),
            None,
        )))
    }
}
