//! Running cumulative queries (`WINDOW CUMULATIVE`, Spark's `updateStateByKey`).
//!
//! Each batch: the query's partial plan turns the batch into one state row per key
//! it touches; those keys' current states are looked up in the [`KeyedState`],
//! merged with the new ones by the `PartialReduce` plan, and written back. Only the
//! keys in the batch are touched, so the work follows the batch, not the state.
//! Then the final plan evaluates the emitted table: the whole state (`EMIT
//! COMPLETE`, O(state) by definition) or the keys updated in this batch (`EMIT
//! UPDATES`). A TTL drops the keys whose last update is TTL or more before the batch.

use std::sync::Arc;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result as DfResult};

use super::split::SplitPlans;
use super::window::WindowMemory;
use crate::sql::dialect::Emit;
use crate::state::keyed::KeyedState;
use crate::time::{BatchTime, Interval};

pub struct Cumulative {
    plans: SplitPlans,
    state: KeyedState,
    ttl: Option<Interval>,
    emit: Emit,
}

fn arrow(e: datafusion::arrow::error::ArrowError) -> DataFusionError {
    DataFusionError::ArrowError(Box::new(e), None)
}

impl Cumulative {
    pub fn new(plans: SplitPlans, ttl: Option<Interval>, emit: Emit) -> DfResult<Cumulative> {
        let state = KeyedState::new(
            plans.state_schema().clone(),
            plans.key_columns,
            ttl.is_some(),
        )
        .map_err(arrow)?;
        Ok(Cumulative {
            plans,
            state,
            ttl,
            emit,
        })
    }

    /// Folds batch `t` into the state and returns the emitted table.
    pub async fn step(&mut self, t: BatchTime, input_rows: usize) -> DfResult<Vec<RecordBatch>> {
        let watch = crate::clock::Stopwatch::start();
        let states = self.plans.partial(input_rows).await?;
        let partial_us = watch.elapsed_us();
        let mut updated = None;
        // A batch without rows changes no key (a global aggregate's partial plan
        // still answers one row for it: skip that).
        if input_rows > 0 && states.iter().any(|b| b.num_rows() > 0) {
            let schema = Arc::clone(self.state.schema());
            let fresh = concat_batches(&schema, &states).map_err(arrow)?;
            let keys = self.state.keys(&fresh).map_err(arrow)?;
            let (found, located) = self.state.lookup(&fresh, &keys).map_err(arrow)?;
            let mut inputs: Vec<RecordBatch> = found.into_iter().collect();
            let lookup_us = watch.elapsed_us();
            inputs.push(fresh);
            // Merge old and new states (and the duplicates a parallel partial plan
            // gives) into one row per key.
            let merged = self.plans.merge(inputs).await;
            let merged = concat_batches(&schema, &merged?).map_err(arrow)?;
            let merge_us = watch.elapsed_us();
            let keys = self.state.keys(&merged).map_err(arrow)?;
            self.state
                .upsert(merged.clone(), keys, t, Some(&located))
                .map_err(arrow)?;
            tracing::debug!(
                partial_us,
                lookup_us,
                merge_us,
                upsert_us = watch.elapsed_us(),
                rows = merged.num_rows(),
                "cumulative step"
            );
            updated = Some(merged);
        }
        if let Some(ttl) = self.ttl {
            self.state
                .expire(BatchTime(t.millis() - ttl.millis()))
                .map_err(arrow)?;
        }
        let input = match self.emit {
            Emit::Complete => self.state.all().map_err(arrow)?,
            Emit::Updates => match updated {
                Some(rows) => vec![rows],
                // Nothing changed: no rows (not even a global aggregate's row).
                None => return Ok(Vec::new()),
            },
        };
        self.evaluate(input).await
    }

    /// The whole current table (a pull query: `GET /queries/{name}/state`).
    pub async fn table(&self) -> DfResult<Vec<RecordBatch>> {
        self.evaluate(self.state.all().map_err(arrow)?).await
    }

    async fn evaluate(&self, input: Vec<RecordBatch>) -> DfResult<Vec<RecordBatch>> {
        self.plans.finish(input).await
    }

    /// The state for a checkpoint: schema and rows (see `KeyedState::snapshot`).
    pub fn snapshot(
        &self,
    ) -> DfResult<(datafusion::arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
        self.state.snapshot().map_err(arrow)
    }

    /// Loads a checkpoint's state into this (new) query.
    pub fn restore(&mut self, batches: Vec<RecordBatch>) -> DfResult<()> {
        self.state.restore(batches).map_err(arrow)
    }

    /// The state's key columns (the GROUP BY columns), by name.
    pub fn key_names(&self) -> Vec<String> {
        self.state
            .schema()
            .fields()
            .iter()
            .take(self.plans.key_columns)
            .map(|f| f.name().clone())
            .collect()
    }

    pub fn memory(&self) -> WindowMemory {
        WindowMemory {
            panes: 0,
            rows: self.state.len(),
            bytes: self.state.bytes(),
        }
    }
}
