//! Compiling a continuous query's SELECT into physical plans, once, at CREATE.
//!
//! The query may read the declared sources and streams (as live tables, see
//! `exec::live`) and call `batch_time()`. Names are checked here first, so an
//! unknown one gets an error that lists the known ones and points at the name.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{LogicalPlan, ScalarUDF};
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::{displayable, ExecutionPlan};
use datafusion::prelude::SessionConfig;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{self, visit_relations, Query};
use datafusion::sql::sqlparser::tokenizer::Location;

use super::dialect::SqlError;
use crate::exec::split::{self, Split};
use crate::exec::{BatchClock, BatchTimeUdf, CompiledPlan, LiveTable, Slot};

/// A table a query may read: a source or a derived stream.
#[derive(Debug, Clone)]
pub struct Readable {
    pub schema: SchemaRef,
    pub slot: Arc<Slot>,
}

/// The result of compiling: the plans and the names the query reads.
pub struct Compiled {
    pub plan: CompiledPlan,
    /// Sources and streams the query reads, sorted.
    pub inputs: Vec<String>,
    pub logical: LogicalPlan,
}

/// Compiles `query` against the readable tables. `parallelism` ≥ 1.
pub async fn compile(
    query: &Query,
    tables: &BTreeMap<String, Readable>,
    parallelism: usize,
    clock: &BatchClock,
) -> Result<Compiled, SqlError> {
    let inputs = check_names(query, tables)?;
    compile_inputs(query, tables, inputs, parallelism, clock).await
}

async fn compile_inputs(
    query: &Query,
    tables: &BTreeMap<String, Readable>,
    inputs: Vec<String>,
    parallelism: usize,
    clock: &BatchClock,
) -> Result<Compiled, SqlError> {
    let (logical, single, ctx) = plan_with(query, tables, &inputs, 1, clock, false).await?;
    let schema = single.schema();
    unique_names(&schema)?;
    let (parallel, parallel_ctx) = if parallelism > 1 {
        let (_, plan, ctx) = plan_with(query, tables, &inputs, parallelism, clock, false).await?;
        (Some(plan), Some(ctx))
    } else {
        (None, None)
    };
    Ok(Compiled {
        plan: CompiledPlan {
            single,
            parallel,
            task_ctx: ctx,
            parallel_task_ctx: parallel_ctx,
            schema,
        },
        inputs,
        logical,
    })
}

/// Result rows are JSON objects keyed by column name: names must be unique.
fn unique_names(schema: &SchemaRef) -> Result<(), SqlError> {
    for (i, field) in schema.fields().iter().enumerate() {
        if schema
            .fields()
            .iter()
            .skip(i + 1)
            .any(|f| f.name() == field.name())
        {
            return Err(SqlError::new(format!(
                "output column '{}' appears twice; give one of them another name with AS",
                field.name()
            )));
        }
    }
    Ok(())
}

/// How a windowed query is computed.
pub enum WindowPlan {
    /// Incrementally: partial aggregates per batch, merged per pane and per slide.
    Panes {
        partial: CompiledPlan,
        split: Split,
        task_ctx: Arc<TaskContext>,
    },
    /// By buffering the raw input batches of the window; `inputs` are the
    /// private slots the plan reads the window from.
    Raw {
        plan: CompiledPlan,
        inputs: Vec<(String, Arc<Slot>)>,
    },
}

pub struct CompiledWindow {
    pub plan: WindowPlan,
    pub schema: SchemaRef,
    pub inputs: Vec<String>,
    pub logical: LogicalPlan,
}

/// Compiles a windowed query: split at its aggregation when it can be (see
/// `exec::split`), else planned over private slots that will hold the window's rows.
pub async fn compile_window(
    query: &Query,
    tables: &BTreeMap<String, Readable>,
    parallelism: usize,
    clock: &BatchClock,
) -> Result<CompiledWindow, SqlError> {
    let inputs = check_names(query, tables)?;
    let (logical, single, ctx) = plan_with(query, tables, &inputs, 1, clock, true).await?;
    if let Some(split) = split::split(&single, false).map_err(internal)? {
        let schema = split.final_plan.schema();
        unique_names(&schema)?;
        let partial = partial_plans(
            query,
            tables,
            &inputs,
            parallelism,
            clock,
            &split,
            &ctx,
            false,
        )
        .await?;
        return Ok(CompiledWindow {
            plan: WindowPlan::Panes {
                partial,
                split,
                task_ctx: ctx,
            },
            schema,
            inputs,
            logical,
        });
    }
    // Buffer raw rows: the same query over private copies of its inputs.
    let mut private = BTreeMap::new();
    let mut slots = Vec::new();
    for name in &inputs {
        if let Some(t) = tables.get(name) {
            let slot = Arc::new(Slot::default());
            private.insert(
                name.clone(),
                Readable {
                    schema: t.schema.clone(),
                    slot: Arc::clone(&slot),
                },
            );
            slots.push((name.clone(), slot));
        }
    }
    let compiled = compile_inputs(query, &private, inputs, parallelism, clock).await?;
    Ok(CompiledWindow {
        schema: compiled.plan.schema.clone(),
        plan: WindowPlan::Raw {
            plan: compiled.plan,
            inputs: slots,
        },
        inputs: compiled.inputs,
        logical: compiled.logical,
    })
}

/// The partial plans of a split query: the split's own (one partition) and, with
/// parallelism above 1, the partial part of the query planned on that many.
#[allow(clippy::too_many_arguments)]
async fn partial_plans(
    query: &Query,
    tables: &BTreeMap<String, Readable>,
    inputs: &[String],
    parallelism: usize,
    clock: &BatchClock,
    split: &Split,
    ctx: &Arc<TaskContext>,
    allow_batch_time: bool,
) -> Result<CompiledPlan, SqlError> {
    let (parallel, parallel_task_ctx) = if parallelism > 1 {
        let (_, plan, pctx) = plan_with(query, tables, inputs, parallelism, clock, true).await?;
        match split::partial_node(&plan, allow_batch_time) {
            Some(p) => (Some(p), Some(pctx)),
            None => (None, None),
        }
    } else {
        (None, None)
    };
    Ok(CompiledPlan {
        single: Arc::clone(&split.partial),
        parallel,
        task_ctx: Arc::clone(ctx),
        parallel_task_ctx,
        schema: split.state_schema.clone(),
    })
}

/// A cumulative query's plans: partial per batch, merge, final.
pub struct CompiledCumulative {
    pub partial: CompiledPlan,
    pub split: Split,
    pub task_ctx: Arc<TaskContext>,
    pub schema: SchemaRef,
    pub inputs: Vec<String>,
    pub logical: LogicalPlan,
}

/// Compiles a `WINDOW CUMULATIVE` query: it must be one mergeable aggregation
/// over its inputs (see `exec::split`), since its state is kept per key.
pub async fn compile_cumulative(
    query: &Query,
    tables: &BTreeMap<String, Readable>,
    parallelism: usize,
    clock: &BatchClock,
) -> Result<CompiledCumulative, SqlError> {
    let inputs = check_names(query, tables)?;
    let (logical, single, ctx) = plan_with(query, tables, &inputs, 1, clock, true).await?;
    let Some(split) = split::split(&single, true).map_err(internal)? else {
        return Err(SqlError::new(
            "WINDOW CUMULATIVE needs a query that is one aggregation (GROUP BY and aggregates) computed row by row from its inputs: no join, nested aggregate or LIMIT below the aggregation; join in a derived stream first",
        ));
    };
    let schema = split.final_plan.schema();
    unique_names(&schema)?;
    let partial = partial_plans(
        query,
        tables,
        &inputs,
        parallelism,
        clock,
        &split,
        &ctx,
        true,
    )
    .await?;
    Ok(CompiledCumulative {
        partial,
        split,
        task_ctx: ctx,
        schema,
        inputs,
        logical,
    })
}

/// The text of `EXPLAIN` for a windowed query.
pub fn explain_window(w: &CompiledWindow, pane: &str) -> String {
    let show = |p: &Arc<dyn ExecutionPlan>| displayable(p.as_ref()).indent(true).to_string();
    match &w.plan {
        WindowPlan::Panes { partial, split, .. } => format!(
            "window: incremental, partial aggregates per batch merged in panes of {pane}\nlogical plan:\n{}\npartial plan (each batch):\n{}\nmerge plan (panes):\n{}\nfinal plan (each slide):\n{}",
            w.logical.display_indent(),
            show(partial.parallel.as_ref().unwrap_or(&partial.single)),
            show(&split.reduce),
            show(&split.final_plan),
        ),
        WindowPlan::Raw { plan, .. } => format!(
            "window: raw input rows of the window are buffered and the plan runs on them each slide (the query is not a single mergeable aggregation)\nlogical plan:\n{}\nphysical plan:\n{}",
            w.logical.display_indent(),
            show(plan.parallel.as_ref().unwrap_or(&plan.single)),
        ),
    }
}

/// The text of `EXPLAIN`: the logical and the physical plan.
pub fn explain(compiled: &Compiled) -> String {
    let physical = match &compiled.plan.parallel {
        Some(p) => displayable(p.as_ref()).indent(true).to_string(),
        None => displayable(compiled.plan.single.as_ref())
            .indent(true)
            .to_string(),
    };
    format!(
        "logical plan:\n{}\nphysical plan:\n{}",
        compiled.logical.display_indent(),
        physical
    )
}

async fn plan_with(
    query: &Query,
    tables: &BTreeMap<String, Readable>,
    inputs: &[String],
    partitions: usize,
    clock: &BatchClock,
    split_aggregates: bool,
) -> Result<(LogicalPlan, Arc<dyn ExecutionPlan>, Arc<TaskContext>), SqlError> {
    let mut config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_information_schema(false);
    let options = config.options_mut();
    options.sql_parser.collect_spans = true;
    // Dynamic filters live inside a plan and are not reset between runs: a plan
    // reused every batch must not have them.
    options.optimizer.enable_dynamic_filter_pushdown = false;
    options.optimizer.enable_join_dynamic_filter_pushdown = false;
    options.optimizer.enable_topk_dynamic_filter_pushdown = false;
    options.optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    if split_aggregates {
        // Partial aggregates become kept state (panes, keyed state): they must
        // aggregate, never pass rows through unaggregated when keys look distinct.
        options
            .execution
            .skip_partial_aggregation_probe_ratio_threshold = 2.0;
        options
            .execution
            .skip_partial_aggregation_probe_rows_threshold = usize::MAX;
    }
    let ctx = if split_aggregates {
        // Keep Partial and Final aggregates apart (windows split plans there), and
        // keep limits out of partial aggregates (a pane must keep every key).
        let rules = PhysicalOptimizer::new()
            .rules
            .into_iter()
            .filter(|r| {
                ![
                    "CombinePartialFinalAggregate",
                    "LimitedDistinctAggregation",
                    "LimitAggregation",
                ]
                .contains(&r.name())
            })
            .collect();
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        SessionContext::new_with_state(state)
    } else {
        SessionContext::new_with_config(config)
    };
    ctx.register_udf(ScalarUDF::new_from_impl(BatchTimeUdf::new(clock.clone())));
    for name in inputs {
        if let Some(t) = tables.get(name) {
            let provider = LiveTable::provider(t.schema.clone(), t.slot.clone(), partitions)
                .map_err(internal)?;
            ctx.register_table(name.as_str(), provider)
                .map_err(internal)?;
        }
    }
    let state = ctx.state();
    let statement =
        DfStatement::Statement(Box::new(ast::Statement::Query(Box::new(query.clone()))));
    let logical = state
        .statement_to_plan(statement)
        .await
        .map_err(user_error)?;
    let physical = state
        .create_physical_plan(&logical)
        .await
        .map_err(user_error)?;
    Ok((logical, physical, state.task_ctx()))
}

/// Every table the query reads must be a declared source or stream (CTE names
/// aside). Returns the names read.
fn check_names(
    query: &Query,
    tables: &BTreeMap<String, Readable>,
) -> Result<Vec<String>, SqlError> {
    let mut ctes = Vec::new();
    collect_ctes(query, &mut ctes);
    refuse_table_functions(query)?;
    let mut inputs = Vec::new();
    let mut unknown = None;
    let _ = visit_relations(query, |name: &ast::ObjectName| {
        let parts: Vec<&ast::Ident> = name.0.iter().filter_map(|p| p.as_ident()).collect();
        let Some(ident) = parts.last() else {
            return ControlFlow::Continue(());
        };
        let value = if ident.quote_style.is_some() {
            ident.value.clone()
        } else {
            ident.value.to_lowercase()
        };
        if parts.len() > 1 {
            unknown = Some(SqlError::at(
                format!(
                    "qualified name '{name}' is not supported; name a source or stream directly"
                ),
                ident.span.start,
            ));
            return ControlFlow::Break(());
        }
        if ctes.contains(&value) {
            return ControlFlow::Continue(());
        }
        if ident.quote_style == Some('\'') {
            unknown = Some(SqlError::at(
                format!(
                    "'{value}' is a string, not a source: a query cannot read a file or URL by name; \
                     declare it with CREATE SOURCE ... FROM DIRECTORY or CREATE TABLE ... FROM FILE"
                ),
                ident.span.start,
            ));
            return ControlFlow::Break(());
        }
        if !tables.contains_key(&value) {
            unknown = Some(SqlError::at(
                unknown_message(&value, tables),
                ident.span.start,
            ));
            return ControlFlow::Break(());
        }
        if !inputs.contains(&value) {
            inputs.push(value);
        }
        ControlFlow::Continue(())
    });
    if let Some(e) = unknown {
        return Err(e);
    }
    inputs.sort();
    Ok(inputs)
}

/// The SQL sandbox: a table function in FROM (`read_csv(...)`, `generate_series(...)`)
/// could read files or make unbounded rows, so a query may read only declared
/// sources, streams and tables (and `unnest`, which flattens a row's own arrays).
fn refuse_table_functions(query: &Query) -> Result<(), SqlError> {
    use ast::{Spanned, TableFactor, Visit, Visitor};
    struct Refuse;
    impl Visitor for Refuse {
        type Break = SqlError;
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<SqlError> {
            let (name, at) = match factor {
                TableFactor::Table {
                    name,
                    args: Some(_),
                    ..
                } => (name.to_string(), name.span().start),
                TableFactor::Function { name, .. } => (name.to_string(), name.span().start),
                TableFactor::TableFunction { expr, .. } => (expr.to_string(), expr.span().start),
                _ => return ControlFlow::Continue(()),
            };
            ControlFlow::Break(SqlError::at(
                format!(
                    "table function '{name}' is not available: a continuous query reads only \
                     declared sources, streams and tables (files through CREATE SOURCE ... FROM \
                     DIRECTORY or CREATE TABLE ... FROM FILE)"
                ),
                at,
            ))
        }
    }
    match query.visit(&mut Refuse) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn unknown_message(name: &str, tables: &BTreeMap<String, Readable>) -> String {
    if tables.is_empty() {
        format!("unknown source or stream '{name}'; none is declared yet (CREATE SOURCE first)")
    } else {
        let known: Vec<&str> = tables.keys().map(String::as_str).collect();
        format!(
            "unknown source or stream '{name}'; known: {}",
            known.join(", ")
        )
    }
}

fn collect_ctes(query: &Query, out: &mut Vec<String>) {
    if let Some(with) = &query.with {
        for cte in &with.cte_tables {
            let ident = &cte.alias.name;
            out.push(if ident.quote_style.is_some() {
                ident.value.clone()
            } else {
                ident.value.to_lowercase()
            });
            collect_ctes(&cte.query, out);
        }
    }
}

fn internal(e: DataFusionError) -> SqlError {
    SqlError::new(format!("internal error while planning: {e}"))
}

/// DataFusion's planning errors, without their category prefixes, located by
/// their diagnostic span where DataFusion gives one.
pub fn user_error(e: DataFusionError) -> SqlError {
    let location = e
        .diagnostic()
        .and_then(|d| d.span)
        .map(|s| Location {
            line: s.start.line,
            column: s.start.column,
        })
        .unwrap_or(Location { line: 0, column: 0 });
    let message = strip_prefixes(&e.strip_backtrace());
    SqlError::at(message, location)
}

fn strip_prefixes(message: &str) -> String {
    let mut m = message.trim();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "SQL error: ",
        "This feature is not implemented: ",
        "Optimizer rule ",
        "Execution error: ",
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest;
        }
    }
    let m = m
        .strip_prefix("ParserError(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .unwrap_or(m);
    m.to_string()
}
