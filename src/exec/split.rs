//! Splitting an aggregate query's physical plan at DataFusion's two-phase
//! aggregation, so a window can keep partial aggregates per pane.
//!
//! A plan built without the `CombinePartialFinalAggregate` rule has
//! `Final(...) <- Partial(...) <- rows`. The split gives three plans:
//! - **partial**: the `Partial` aggregate and everything below it, run on each
//!   batch: its output is the batch's accumulator states, one row per key;
//! - **reduce**: a `PartialReduce` aggregate over a slot of state rows: merges
//!   any number of state batches into one state row per key (panes, windows);
//! - **final**: the original plan with the `Partial` subtree replaced by a scan
//!   of a slot of state rows: merges them and evaluates the query (HAVING,
//!   ORDER BY, LIMIT included) on the window.
//!
//! The split is refused (and the window buffers raw rows instead) unless the
//! plan has exactly one aggregation, the rows below it are computed row by row
//! from the current batch (no join, sort, limit or nested aggregate), and the
//! only table read is below the `Partial` aggregate, which does not call
//! `batch_time()` (in a window it is the emission's time, not each batch's).

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result as DfResult;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::ExecutionPlan;

use super::live::{live_scan, Slot};

/// Operators that compute their output row by row from the current batch.
const ROW_WISE: &[&str] = &[
    "StreamingTableExec",
    "ProjectionExec",
    "FilterExec",
    "UnnestExec",
    "CoalesceBatchesExec",
    "CoalescePartitionsExec",
    "RepartitionExec",
    "UnionExec",
    "InterleaveExec",
];

/// The three plans of a split aggregate; see the module docs.
pub struct Split {
    pub partial: Arc<dyn ExecutionPlan>,
    pub reduce: Arc<dyn ExecutionPlan>,
    pub final_plan: Arc<dyn ExecutionPlan>,
    /// The schema of state rows (group keys, then accumulator state columns).
    pub state_schema: SchemaRef,
    /// How many leading columns of `state_schema` are the group keys.
    pub key_columns: usize,
    /// What `reduce` reads.
    pub reduce_input: Arc<Slot>,
    /// What `final_plan` reads.
    pub final_input: Arc<Slot>,
}

fn visit(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<Arc<dyn ExecutionPlan>>) {
    out.push(Arc::clone(plan));
    for child in plan.children() {
        visit(child, out);
    }
}

fn nodes(plan: &Arc<dyn ExecutionPlan>) -> Vec<Arc<dyn ExecutionPlan>> {
    let mut out = Vec::new();
    visit(plan, &mut out);
    out
}

fn aggregate(plan: &Arc<dyn ExecutionPlan>) -> Option<&AggregateExec> {
    plan.as_ref().downcast_ref::<AggregateExec>()
}

/// The `Partial` aggregate of a plan, if the plan can be split (see module docs).
/// `batch_time()` below it is allowed only when each batch's own time is meant.
pub fn partial_node(
    plan: &Arc<dyn ExecutionPlan>,
    allow_batch_time: bool,
) -> Option<Arc<dyn ExecutionPlan>> {
    let all = nodes(plan);
    let aggregates: Vec<&Arc<dyn ExecutionPlan>> =
        all.iter().filter(|n| aggregate(n).is_some()).collect();
    if aggregates.len() != 2 {
        return None;
    }
    let partial = aggregates
        .iter()
        .find(|n| aggregate(n).is_some_and(|a| *a.mode() == AggregateMode::Partial))?;
    let exec = aggregate(partial)?;
    if exec.limit_options().is_some() {
        return None;
    }
    let below = nodes(exec.input());
    if !below.iter().all(|n| ROW_WISE.contains(&n.name())) {
        return None;
    }
    // batch_time() in a windowed query is the time of the window's emission; below
    // the aggregation of a split plan it would be each input batch's time instead.
    let text = datafusion::physical_plan::displayable(exec)
        .indent(true)
        .to_string();
    if !allow_batch_time && text.contains("batch_time()") {
        return None;
    }
    // Every table scan must be below the Partial aggregate.
    let scans_total = all
        .iter()
        .filter(|n| n.name() == "StreamingTableExec")
        .count();
    let scans_below = below
        .iter()
        .filter(|n| n.name() == "StreamingTableExec")
        .count();
    (scans_total == scans_below).then(|| Arc::clone(partial))
}

/// Splits a single-partition plan; None if it cannot be split.
pub fn split(plan: &Arc<dyn ExecutionPlan>, allow_batch_time: bool) -> DfResult<Option<Split>> {
    let Some(partial) = partial_node(plan, allow_batch_time) else {
        return Ok(None);
    };
    let all = nodes(plan);
    let Some(final_node) = all
        .iter()
        .find(|n| aggregate(n).is_some_and(|a| *a.mode() == AggregateMode::Final))
    else {
        return Ok(None);
    };
    let Some(final_exec) = aggregate(final_node) else {
        return Ok(None);
    };
    let state_schema = partial.schema();
    let reduce_input = Arc::new(Slot::default());
    let final_input = Arc::new(Slot::default());
    let reduce = Arc::new(AggregateExec::try_new(
        AggregateMode::PartialReduce,
        final_exec.group_expr().clone(),
        final_exec.aggr_expr().to_vec(),
        final_exec.filter_expr().to_vec(),
        live_scan(state_schema.clone(), Arc::clone(&reduce_input))?,
        final_exec.input_schema(),
    )?) as Arc<dyn ExecutionPlan>;
    // The merged states must look exactly like the partial states they merge.
    if reduce.schema().fields() != state_schema.fields() {
        return Ok(None);
    }
    let leaf = live_scan(state_schema.clone(), Arc::clone(&final_input))?;
    let final_plan = replace(plan, &partial, &leaf)?;
    let state_columns: usize = final_exec
        .aggr_expr()
        .iter()
        .map(|a| a.state_fields().map_or(0, |f| f.len()))
        .sum();
    let key_columns = state_schema.fields().len().saturating_sub(state_columns);
    Ok(Some(Split {
        partial,
        reduce,
        final_plan,
        state_schema,
        key_columns,
        reduce_input,
        final_input,
    }))
}

/// `plan` with the node `target` replaced by `with`.
fn replace(
    plan: &Arc<dyn ExecutionPlan>,
    target: &Arc<dyn ExecutionPlan>,
    with: &Arc<dyn ExecutionPlan>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    if Arc::ptr_eq(plan, target) {
        return Ok(Arc::clone(with));
    }
    let children = plan.children();
    if children.is_empty() {
        return Ok(Arc::clone(plan));
    }
    let new_children = children
        .into_iter()
        .map(|c| replace(c, target, with))
        .collect::<DfResult<Vec<_>>>()?;
    replace_children_if_necessary(Arc::clone(plan), new_children)
}

/// A split query's plans, ready to run: what windows and cumulative queries share.
pub struct SplitPlans {
    /// The partial plan, run on each batch (single and parallel variants).
    pub partial: super::CompiledPlan,
    reduce: Arc<dyn ExecutionPlan>,
    final_plan: Arc<dyn ExecutionPlan>,
    reduce_input: Arc<Slot>,
    final_input: Arc<Slot>,
    task_ctx: Arc<datafusion::execution::TaskContext>,
    /// How many leading columns of the state rows are the group keys.
    pub key_columns: usize,
}

impl SplitPlans {
    pub fn new(
        partial: super::CompiledPlan,
        split: Split,
        task_ctx: Arc<datafusion::execution::TaskContext>,
    ) -> SplitPlans {
        SplitPlans {
            partial,
            reduce: split.reduce,
            final_plan: split.final_plan,
            reduce_input: split.reduce_input,
            final_input: split.final_input,
            task_ctx,
            key_columns: split.key_columns,
        }
    }

    /// The schema of state rows.
    pub fn state_schema(&self) -> &SchemaRef {
        &self.partial.schema
    }

    /// The state rows of the current batch (what the live tables hold now).
    pub async fn partial(&self, input_rows: usize) -> DfResult<Vec<RecordBatch>> {
        self.partial.run(input_rows).await
    }

    /// Merges state rows into one state row per key.
    pub async fn merge(&self, states: Vec<RecordBatch>) -> DfResult<Vec<RecordBatch>> {
        Self::run_on(&self.reduce, &self.reduce_input, states, &self.task_ctx).await
    }

    /// Evaluates the query (final aggregation, HAVING, ORDER BY, ...) on state rows.
    pub async fn finish(&self, states: Vec<RecordBatch>) -> DfResult<Vec<RecordBatch>> {
        Self::run_on(&self.final_plan, &self.final_input, states, &self.task_ctx).await
    }

    async fn run_on(
        plan: &Arc<dyn ExecutionPlan>,
        input: &Slot,
        states: Vec<RecordBatch>,
        ctx: &Arc<datafusion::execution::TaskContext>,
    ) -> DfResult<Vec<RecordBatch>> {
        input.set(states);
        let out = super::run_once(plan, ctx).await;
        input.clear();
        out
    }
}
