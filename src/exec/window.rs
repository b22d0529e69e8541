//! Running windowed queries, batch after batch.
//!
//! - [`PaneWindow`] (incremental): each batch's rows are aggregated into partial
//!   states by the query's `partial` plan; the states of one pane (gcd(L, S) long)
//!   are merged into one state row per key; at each slide the panes in the window
//!   are merged and the `final` plan evaluates the query on them. Merging uses
//!   the two-stacks scheme: a "back" aggregate of the newest panes and a "front"
//!   stack of suffix aggregates of the older ones, so an emission merges two
//!   state sets whatever the window's length, and each pane is merged a constant
//!   number of times on average. Memory: about (panes in the window) × (keys).
//! - [`RawWindow`] (buffering): for queries that cannot be split (no aggregate,
//!   joins, nested aggregates, ...), the raw input batches of the window are kept
//!   and the whole plan runs on the window at each slide.
//!
//! Both follow `state::window::WindowSpec`: emit at multiples of the slide from
//! the zero time, over the batches in (t − L, t]; panes leaving the window are dropped.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, StringArray, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, SchemaRef};
use datafusion::common::DataFusionError;

use crate::state::checkpoint_io::{extend_schema, split_columns, with_columns};

/// Bookkeeping columns of a window's checkpoint file.
pub const PART: &str = "_sluice_part";
pub const PANE_END: &str = "_sluice_pane_end";
/// The bookkeeping column of a raw window's checkpoint file: the batch of each row.
pub const BATCH_TIME: &str = "_sluice_batch_time";
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result as DfResult;

use super::live::Slot;
use super::split::SplitPlans;
use super::CompiledPlan;
use crate::state::window::WindowSpec;
use crate::time::BatchTime;

/// What a window holds, for `GET /queries/{name}` and the memory test.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct WindowMemory {
    /// Panes (or buffered batches, for a raw window) held.
    pub panes: usize,
    /// Rows held: state rows (panes) or raw input rows (raw window).
    pub rows: usize,
    /// Bytes of Arrow memory held.
    pub bytes: usize,
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn bytes(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::get_array_memory_size).sum()
}

/// Copies state rows into one exactly sized batch. Aggregation output keeps the
/// capacity of its hash tables and builders (kilobytes for a few keys); a window
/// holding thousands of panes must not keep that slack.
fn compact(batches: Vec<RecordBatch>) -> DfResult<Vec<RecordBatch>> {
    let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    let Some(first) = batches.first() else {
        return Ok(batches);
    };
    let schema = first.schema();
    let merged = if batches.len() == 1 {
        let all = UInt32Array::from_iter_values(0..first.num_rows() as u32);
        take_record_batch(first, &all)?
    } else {
        concat_batches(&schema, &batches)?
    };
    Ok(vec![merged])
}

/// An incrementally computed window; see the module docs.
pub struct PaneWindow {
    spec: WindowSpec,
    plans: SplitPlans,
    /// States of the batches of the pane being filled.
    open: Vec<RecordBatch>,
    /// Closed panes not yet moved to `front`, oldest first.
    back: Vec<(BatchTime, Vec<RecordBatch>)>,
    /// All of `back` merged.
    back_agg: Vec<RecordBatch>,
    /// (pane end, that pane merged with every newer pane of `front`); the last
    /// element is the oldest pane, so it holds all of `front` merged.
    front: Vec<(BatchTime, Vec<RecordBatch>)>,
}

impl PaneWindow {
    pub fn new(spec: WindowSpec, plans: SplitPlans) -> PaneWindow {
        PaneWindow {
            spec,
            plans,
            open: Vec::new(),
            back: Vec::new(),
            back_agg: Vec::new(),
            front: Vec::new(),
        }
    }

    /// Processes batch `t` (its rows are in the live tables' slots); returns the
    /// window's result if `t` is an emission time.
    pub async fn step(
        &mut self,
        t: BatchTime,
        input_rows: usize,
    ) -> DfResult<Option<Vec<RecordBatch>>> {
        let states = self.plans.partial(input_rows).await?;
        self.open
            .extend(states.into_iter().filter(|b| b.num_rows() > 0));
        if self.spec.closes_pane(t) {
            let open = std::mem::take(&mut self.open);
            let pane = self.merge(open).await?;
            let mut both = std::mem::take(&mut self.back_agg);
            both.extend(pane.iter().cloned());
            self.back_agg = self.merge(both).await?;
            self.back.push((t, pane));
        }
        if !self.spec.emits_at(t) {
            return Ok(None);
        }
        self.evict(t).await?;
        let mut input = self
            .front
            .last()
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        input.extend(self.back_agg.iter().cloned());
        self.plans.finish(input).await.map(Some)
    }

    /// Merges state batches into one state row per key.
    async fn merge(&self, states: Vec<RecordBatch>) -> DfResult<Vec<RecordBatch>> {
        if states.len() <= 1 || rows(&states) == 0 {
            // Already one (compact) aggregation output: one row per key.
            return Ok(states.into_iter().filter(|b| b.num_rows() > 0).collect());
        }
        compact(self.plans.merge(states).await?)
    }

    /// Drops the panes that ended at or before t − L.
    async fn evict(&mut self, t: BatchTime) -> DfResult<()> {
        while self
            .front
            .last()
            .is_some_and(|(end, _)| !self.spec.still_needed(t, *end))
        {
            self.front.pop();
        }
        let back_stale = self
            .back
            .first()
            .is_some_and(|(end, _)| !self.spec.still_needed(t, *end));
        if self.front.is_empty() && back_stale {
            // Flip: the back panes that are still needed become the front, each
            // with the merge of itself and every newer one.
            let panes = std::mem::take(&mut self.back);
            self.back_agg.clear();
            let mut suffix: Vec<RecordBatch> = Vec::new();
            let mut front = Vec::new();
            for (end, pane) in panes.into_iter().rev() {
                if !self.spec.still_needed(t, end) {
                    break;
                }
                let mut both = pane;
                both.extend(suffix.iter().cloned());
                suffix = self.merge(both).await?;
                front.push((end, suffix.clone()));
            }
            self.front = front;
        }
        Ok(())
    }

    /// Every pane and merged state for a checkpoint: state rows followed by
    /// `_sluice_part` (`open`, `back`, `back_agg`, `front`) and `_sluice_pane_end`
    /// (ms; -1 where it does not apply).
    pub fn snapshot(&self) -> DfResult<(SchemaRef, Vec<RecordBatch>)> {
        let extra = || {
            vec![
                Field::new(PART, DataType::Utf8, false),
                Field::new(PANE_END, DataType::Int64, false),
            ]
        };
        let schema = extend_schema(self.plans.state_schema(), extra());
        let mut groups: Vec<(&str, i64, &[RecordBatch])> =
            vec![("open", -1, &self.open), ("back_agg", -1, &self.back_agg)];
        groups.extend(
            self.back
                .iter()
                .map(|(t, b)| ("back", t.millis(), b.as_slice())),
        );
        groups.extend(
            self.front
                .iter()
                .map(|(t, b)| ("front", t.millis(), b.as_slice())),
        );
        let mut out = Vec::new();
        for (part, end, batches) in groups {
            for b in batches {
                let n = b.num_rows();
                let fields = extra();
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(StringArray::from(vec![part; n])),
                    Arc::new(Int64Array::from(vec![end; n])),
                ];
                out.push(with_columns(b, fields.into_iter().zip(columns).collect())?);
            }
        }
        Ok((schema, out))
    }

    /// Loads what [`PaneWindow::snapshot`] wrote into this (new) window.
    pub fn restore(&mut self, batches: Vec<RecordBatch>) -> DfResult<()> {
        let width = self.plans.state_schema().fields().len();
        let mut back: BTreeMap<i64, Vec<RecordBatch>> = BTreeMap::new();
        let mut front: BTreeMap<i64, Vec<RecordBatch>> = BTreeMap::new();
        for b in batches {
            let (rows, extra) = split_columns(&b, self.plans.state_schema(), width)?;
            let parts = extra[0].as_string::<i32>().clone();
            let ends = extra[1].as_primitive::<Int64Type>().clone();
            // Rows of one (part, pane end) are contiguous; a read batch may hold several.
            let mut start = 0;
            while start < rows.num_rows() {
                let (part, end) = (parts.value(start).to_string(), ends.value(start));
                let mut stop = start + 1;
                while stop < rows.num_rows() && parts.value(stop) == part && ends.value(stop) == end
                {
                    stop += 1;
                }
                let run = rows.slice(start, stop - start);
                match part.as_str() {
                    "open" => self.open.push(run),
                    "back_agg" => self.back_agg.push(run),
                    "back" => back.entry(end).or_default().push(run),
                    "front" => front.entry(end).or_default().push(run),
                    other => {
                        return Err(DataFusionError::Execution(format!(
                            "unknown pane part '{other}' in a checkpoint"
                        )))
                    }
                }
                start = stop;
            }
        }
        self.back = back.into_iter().map(|(t, b)| (BatchTime(t), b)).collect();
        // The front stack's last element is its oldest pane.
        self.front = front
            .into_iter()
            .rev()
            .map(|(t, b)| (BatchTime(t), b))
            .collect();
        Ok(())
    }

    pub fn memory(&self) -> WindowMemory {
        let mut held: Vec<&[RecordBatch]> = vec![&self.open, &self.back_agg];
        held.extend(self.back.iter().map(|(_, s)| s.as_slice()));
        held.extend(self.front.iter().map(|(_, s)| s.as_slice()));
        WindowMemory {
            panes: self.back.len() + self.front.len(),
            rows: held.iter().map(|b| rows(b)).sum(),
            bytes: held.iter().map(|b| bytes(b)).sum(),
        }
    }
}

/// A window that buffers raw input batches; see the module docs.
pub struct RawWindow {
    spec: WindowSpec,
    plan: CompiledPlan,
    /// Each input's name and the private slot the plan reads it from.
    inputs: Vec<(String, Arc<Slot>)>,
    /// Per batch time, each input's chunks (in `inputs` order).
    buffer: VecDeque<(BatchTime, Vec<Arc<Vec<RecordBatch>>>)>,
}

impl RawWindow {
    pub fn new(
        spec: WindowSpec,
        plan: CompiledPlan,
        inputs: Vec<(String, Arc<Slot>)>,
    ) -> RawWindow {
        RawWindow {
            spec,
            plan,
            inputs,
            buffer: VecDeque::new(),
        }
    }

    /// Keeps batch `t` of every input (from the shared slots in `current`); runs the
    /// plan on the window if `t` is an emission time.
    pub async fn step(
        &mut self,
        t: BatchTime,
        current: &BTreeMap<String, Arc<Slot>>,
    ) -> DfResult<Option<Vec<RecordBatch>>> {
        let data = self
            .inputs
            .iter()
            .map(|(name, _)| current.get(name).map(|s| s.get()).unwrap_or_default())
            .collect();
        self.buffer.push_back((t, data));
        let out = if self.spec.emits_at(t) {
            let mut total = 0;
            for (i, (_, slot)) in self.inputs.iter().enumerate() {
                let chunks: Vec<RecordBatch> = self
                    .buffer
                    .iter()
                    .filter(|(b, _)| self.spec.covers(t, *b))
                    .flat_map(|(_, d)| d[i].iter().cloned())
                    .collect();
                total += rows(&chunks);
                slot.set(chunks);
            }
            let out = self.plan.run(total).await;
            for (_, slot) in &self.inputs {
                slot.clear();
            }
            Some(out?)
        } else {
            None
        };
        while self
            .buffer
            .front()
            .is_some_and(|(b, _)| !self.spec.still_needed(t, *b))
        {
            self.buffer.pop_front();
        }
        Ok(out)
    }

    /// The buffered rows for a checkpoint: per input that has any, its name and
    /// its rows (the input's columns, then [`BATCH_TIME`]), oldest batch first.
    pub fn snapshot(&self) -> DfResult<Vec<(String, SchemaRef, Vec<RecordBatch>)>> {
        let mut out = Vec::new();
        for (i, (name, _)) in self.inputs.iter().enumerate() {
            let mut batches = Vec::new();
            for (t, data) in &self.buffer {
                for chunk in data[i].iter().filter(|c| c.num_rows() > 0) {
                    let times: ArrayRef =
                        Arc::new(Int64Array::from(vec![t.millis(); chunk.num_rows()]));
                    batches.push(with_columns(
                        chunk,
                        vec![(Field::new(BATCH_TIME, DataType::Int64, false), times)],
                    )?);
                }
            }
            if let Some(first) = batches.first() {
                out.push((name.clone(), first.schema(), batches));
            }
        }
        Ok(out)
    }

    /// Loads the rows of `input` written by [`RawWindow::snapshot`].
    pub fn restore_input(&mut self, input: &str, batches: Vec<RecordBatch>) -> DfResult<()> {
        let Some(i) = self.inputs.iter().position(|(name, _)| name == input) else {
            return Err(DataFusionError::Execution(format!(
                "the window does not read '{input}'"
            )));
        };
        let inputs = self.inputs.len();
        for b in batches {
            let width = b.num_columns().saturating_sub(1);
            let schema = b.schema();
            if width == 0 || schema.field(width).name() != BATCH_TIME {
                return Err(DataFusionError::Execution(format!(
                    "a raw window file must end with column {BATCH_TIME}"
                )));
            }
            let times = b
                .column(width)
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| DataFusionError::Execution(format!("{BATCH_TIME} must be BIGINT")))?
                .clone();
            let rows = b.project(&(0..width).collect::<Vec<_>>())?;
            // Runs of one batch time (the file is written batch by batch).
            let mut start = 0;
            while start < rows.num_rows() {
                let t = times.value(start);
                let mut end = start + 1;
                while end < rows.num_rows() && times.value(end) == t {
                    end += 1;
                }
                let t = BatchTime(t);
                let at = self.buffer.partition_point(|(b, _)| *b < t);
                if self.buffer.get(at).is_none_or(|(b, _)| *b != t) {
                    self.buffer
                        .insert(at, (t, (0..inputs).map(|_| Arc::new(Vec::new())).collect()));
                }
                if let Some((_, data)) = self.buffer.get_mut(at) {
                    Arc::make_mut(&mut data[i]).push(rows.slice(start, end - start));
                }
                start = end;
            }
        }
        Ok(())
    }

    pub fn memory(&self) -> WindowMemory {
        let all: Vec<&RecordBatch> = self
            .buffer
            .iter()
            .flat_map(|(_, d)| d.iter().flat_map(|c| c.iter()))
            .collect();
        WindowMemory {
            panes: self.buffer.len(),
            rows: all.iter().map(|b| b.num_rows()).sum(),
            bytes: all.iter().map(|b| b.get_array_memory_size()).sum(),
        }
    }
}
