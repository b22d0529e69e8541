//! Applying parsed statements to the engine: the catalog side of the engine.
//!
//! A request is parsed in full first (a syntax error anywhere applies nothing);
//! then statements are applied in order and the first failure stops the rest.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use serde_json::{json, Value};

use super::registry::{read, write};
use super::registry::{CumulativeInfo, WindowInfo};
use super::{Engine, Mode, QueryInfo, QueryKind, Runner, SinkEntry, SourceEntry, StatementFailure};
use crate::exec::cumulative::Cumulative;
use crate::exec::split::SplitPlans;
use crate::exec::window::{PaneWindow, RawWindow};
use crate::exec::Slot;
use crate::sink;
use crate::sink::files::FileFormat;
use crate::sink::kafka::KafkaTarget;
use crate::sink::output::{SinkInfo, Target};
use crate::sink::postgres::PostgresTarget;
use crate::sink::{ResultStore, Retention};
use crate::source::decode::{Decoder, Format};
use crate::source::wal::{self, Wal};
use crate::source::{self, SourceHandle, SourceKind, SourceSpec};
use crate::sql::dialect::Emit;
use crate::sql::dialect::{
    self, ColumnSpec, CreateSink, CreateSource, CreateTable, Name, ObjectKind, Parsed, QueryBody,
    SinkInto, SourceFrom, SqlError, Statement, Window,
};
use crate::sql::planner::{self, Compiled, WindowPlan};
use crate::state::window::{check_multiple, WindowSpec};
use crate::time::{BatchTime, Interval};

/// Highest parallelism a query may ask for.
const MAX_PARALLELISM: usize = 256;

impl Engine {
    /// Runs every statement of `text`; see the module docs for what is applied.
    pub async fn execute(&mut self, text: &str) -> Result<Vec<Value>, StatementFailure> {
        let parsed = parse_apart(text).map_err(|(index, error)| StatementFailure {
            index,
            error,
            applied: Vec::new(),
        })?;
        let mut applied = Vec::with_capacity(parsed.len());
        for (i, statement) in parsed.into_iter().enumerate() {
            match self.apply(statement).await {
                Ok(result) => applied.push(result),
                Err(error) => {
                    return Err(StatementFailure {
                        index: i + 1,
                        error,
                        applied,
                    })
                }
            }
        }
        Ok(applied)
    }

    async fn apply(&mut self, parsed: Parsed) -> Result<Value, SqlError> {
        let at = parsed.at;
        // A restore recreates what was there, whatever the limits are now.
        if self.zero_override.is_none() {
            self.within_limits(&parsed.statement)
                .map_err(|e| e.or_at(at))?;
        }
        let result = match parsed.statement {
            Statement::CreateSource(create) => self.create_source(create, parsed.sql),
            Statement::CreateStream { name, body } => {
                self.create_stream(name, body, parsed.sql).await
            }
            Statement::CreateQuery {
                name,
                options,
                body,
            } => self.create_query(name, options, body, parsed.sql).await,
            Statement::Drop {
                kind,
                name,
                if_exists,
            } => self.drop_object(kind, name, if_exists),
            Statement::Show(kind) => Ok(self.show(kind)),
            Statement::Explain(body) => self.explain(body).await,
            Statement::CreateSink(create) => self.create_sink(create, parsed.sql),
            Statement::CreateTable(create) => self.create_table(create, parsed.sql),
        };
        result.map_err(|e| e.or_at(at))
    }

    /// Refuses a CREATE beyond the catalog limits (`--max-sources`, `--max-queries`,
    /// `--max-sinks`).
    fn within_limits(&self, statement: &Statement) -> Result<(), SqlError> {
        let limits = self.config.catalog_limits;
        let (what, count, max, flag) = match statement {
            Statement::CreateSource(_) | Statement::CreateTable(_) => (
                "sources and tables",
                self.sources.len() + self.tables.len(),
                limits.sources,
                "--max-sources",
            ),
            Statement::CreateStream { .. } | Statement::CreateQuery { .. } => (
                "queries and streams",
                self.queries.len() + self.streams.len(),
                limits.queries,
                "--max-queries",
            ),
            Statement::CreateSink(_) => ("sinks", self.sinks.len(), limits.sinks, "--max-sinks"),
            _ => return Ok(()),
        };
        if count >= max {
            return Err(SqlError::new(format!(
                "this server already has {count} {what}, its limit ({flag} {max}); DROP one first"
            )));
        }
        Ok(())
    }

    /// Which kind of object holds `name`, if any (one namespace for all).
    fn kind_of(&self, name: &str) -> Option<ObjectKind> {
        if self.sources.iter().any(|s| s.handle.name() == name) {
            Some(ObjectKind::Source)
        } else if self.streams.iter().any(|s| s.info.name == name) {
            Some(ObjectKind::Stream)
        } else if self.queries.iter().any(|s| s.info.name == name) {
            Some(ObjectKind::Query)
        } else if self.sinks.iter().any(|s| s.info.name == name) {
            Some(ObjectKind::Sink)
        } else if self.tables.iter().any(|t| t.name == name) {
            Some(ObjectKind::Table)
        } else {
            None
        }
    }

    fn ensure_free(&self, name: &Name) -> Result<(), SqlError> {
        match self.kind_of(&name.value) {
            Some(kind) => Err(SqlError::at(
                format!(
                    "a {} named '{}' already exists; DROP it first or choose another name",
                    kind.name(),
                    name.value
                ),
                name.at,
            )),
            None => Ok(()),
        }
    }

    fn create_source(&mut self, create: CreateSource, sql: String) -> Result<Value, SqlError> {
        self.ensure_free(&create.name)?;
        let schema = schema_of(&create.columns);
        // PARQUET is read file by file: directory sources only.
        let whole_files =
            create.format == Format::Parquet && matches!(create.from, SourceFrom::Directory { .. });
        if !whole_files {
            Decoder::new(schema.clone(), create.format)
                .map_err(|m| SqlError::at(m, create.name.at))?;
        }
        let kind = match create.from {
            SourceFrom::Tcp { addr } => SourceKind::Tcp { addr },
            SourceFrom::Http => SourceKind::Http,
            SourceFrom::Generator => SourceKind::Generator,
            SourceFrom::Kafka { brokers, topic } => SourceKind::Kafka { brokers, topic },
            SourceFrom::Directory { path, at } => {
                let dir = self.confine(&path, at)?;
                if !dir.is_dir() {
                    return Err(SqlError::at(
                        format!(
                            "directory '{path}' ({}) does not exist; create it first",
                            dir.display()
                        ),
                        at,
                    ));
                }
                SourceKind::Directory { path: dir }
            }
        };
        // A Kafka source's table has the metadata columns after the declared ones.
        let schema = if let SourceKind::Kafka { .. } = kind {
            let meta = source::kafka::metadata_fields();
            if let Some(clash) = schema
                .fields()
                .iter()
                .find(|f| meta.iter().any(|m| m.name() == f.name()))
            {
                return Err(SqlError::at(
                    format!(
                        "column '{}' is a metadata column of every Kafka source; give the declared column another name",
                        clash.name()
                    ),
                    create.name.at,
                ));
            }
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.extend(meta);
            Arc::new(Schema::new(fields))
        } else {
            schema
        };
        if !matches!(kind, SourceKind::Generator | SourceKind::Kafka { .. }) {
            if let Some((key, _)) = create.options.first() {
                return Err(SqlError::at(
                    format!(
                        "unknown option '{key}' for a {} source; it takes no options",
                        kind.name().to_uppercase()
                    ),
                    create.name.at,
                ));
            }
        }
        let spec = SourceSpec {
            name: create.name.value.clone(),
            schema,
            kind,
            format: create.format,
            options: create.options.into_iter().collect(),
            sql,
        };
        // The write-ahead log first: a generator resumes after the last batch it
        // logged, whose rows are replayed rather than made again.
        // Where a restored source resumes (nothing when not restoring).
        let resume = self.restoring.get(&spec.name).cloned().unwrap_or_default();
        // Kafka replays from its offsets, a directory from its files: no log.
        let logged = !matches!(
            spec.kind,
            SourceKind::Kafka { .. } | SourceKind::Directory { .. }
        );
        let log = match (&self.config.data_dir, self.config.wal && logged) {
            (Some(dir), true) => {
                let position = resume.wal_seq;
                let opened = wal::open(
                    wal::dir_of(dir, &spec.name),
                    &spec.name,
                    &spec.schema,
                    position,
                    self.clock.now_ms(),
                )
                .map_err(|e| SqlError::at(e.to_string(), create.name.at))?;
                Some((position, opened))
            }
            (Some(dir), false) => {
                // A log left from a run with the log on would be replayed the
                // next time it is on, although checkpoints made meanwhile
                // (position 0) no longer say what it covers: drop it now.
                let old = wal::dir_of(dir, &spec.name);
                if old.exists() {
                    tracing::warn!(source = %spec.name, log = %old.display(), "--wal off: deleting the write-ahead log left by an earlier run");
                    if let Err(e) = std::fs::remove_dir_all(&old) {
                        tracing::warn!(log = %old.display(), "cannot delete the write-ahead log: {e}");
                    }
                }
                None
            }
            (None, _) => None,
        };
        let zero = match log.as_ref().and_then(|(_, o)| o.last_stamp()) {
            Some(logged) => logged.max(self.zero_time()),
            None => self.zero_time(),
        };
        let mut feeder = source::build(&spec, zero, resume.kafka_offsets.clone())
            .map_err(|m| SqlError::at(m, create.name.at))?;
        let handle = Arc::new(SourceHandle::new(
            spec,
            self.clock.clone(),
            self.config.source_limits,
        ));
        handle.restore_kafka_offsets(resume.kafka_offsets);
        handle.mark_files_read(resume.files);
        if let Some((position, mut opened)) = log {
            handle.replay(position, std::mem::take(&mut opened.replay));
            handle.attach_wal(Wal::start(opened, Arc::downgrade(&handle), handle.name()));
        }
        let task = feeder.start(Arc::clone(&handle));
        write(&self.registry.sources).insert(handle.name().to_string(), Arc::clone(&handle));
        let result = json!({
            "statement": "CREATE SOURCE",
            "name": handle.name(),
            "kind": handle.spec.kind.name(),
            "format": handle.spec.format.name(),
        });
        let zero = self.zero_time();
        self.remember(
            "source",
            &handle.spec.name.clone(),
            handle.spec.sql.clone(),
            zero,
        );
        self.sources.push(SourceEntry {
            handle,
            feeder,
            task,
            slot: Arc::new(Slot::default()),
        });
        Ok(result)
    }

    /// A user's path, confined (see `paths`); the error points at `at`.
    fn confine(
        &self,
        path: &str,
        at: datafusion::sql::sqlparser::tokenizer::Location,
    ) -> Result<std::path::PathBuf, SqlError> {
        crate::paths::confine(
            path,
            self.config.data_dir.as_deref(),
            &self.config.allowed_paths,
        )
        .map_err(|m| SqlError::at(m, at))
    }

    fn create_table(&mut self, create: CreateTable, sql: String) -> Result<Value, SqlError> {
        self.ensure_free(&create.name)?;
        let schema = schema_of(&create.columns);
        let path = self.confine(&create.path, create.path_at)?;
        let batches = source::table::load(
            &path,
            &schema,
            create.format,
            self.config.source_limits.max_record_bytes,
        )
        .map_err(|m| SqlError::at(m, create.path_at))?;
        let rows = batches.iter().map(|b| b.num_rows()).sum();
        let slot = Arc::new(Slot::default());
        slot.set(batches);
        let zero = self.zero_time();
        self.remember("table", &create.name.value, sql.clone(), zero);
        self.tables.push(super::TableEntry {
            name: create.name.value.clone(),
            schema,
            slot,
            rows,
            sql,
        });
        Ok(json!({"statement": "CREATE TABLE", "name": create.name.value, "rows": rows}))
    }

    fn create_sink(&mut self, create: CreateSink, sql: String) -> Result<Value, SqlError> {
        self.ensure_free(&create.name)?;
        let Some(query) = self.registry.query(&create.query.value) else {
            let what = match self.kind_of(&create.query.value) {
                Some(kind) => format!(
                    "'{}' is a {}, not a query; a sink writes a query's results",
                    create.query.value,
                    kind.name()
                ),
                None => format!("unknown query '{}'", create.query.value),
            };
            return Err(SqlError::at(what, create.query.at));
        };
        let target = match create.into {
            SinkInto::Kafka {
                brokers,
                topic,
                key,
            } => {
                if let Some(key) = &key {
                    if query.schema.field_with_name(&key.value).is_err() {
                        let columns: Vec<&str> = query
                            .schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect();
                        return Err(SqlError::at(
                            format!(
                                "query '{}' has no column '{}' to key messages with; its columns: {}",
                                create.query.value,
                                key.value,
                                columns.join(", ")
                            ),
                            key.at,
                        ));
                    }
                }
                Target::Kafka(KafkaTarget {
                    brokers,
                    topic,
                    key: key.map(|k| k.value),
                })
            }
            SinkInto::Log => Target::Log,
            SinkInto::Postgres { url, table, key } => {
                let names: Vec<&str> = query
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                let key = match (key, &query.cumulative) {
                    (Some(key), _) => Some(key),
                    (None, Some(c)) if !c.keys.is_empty() => Some(
                        c.keys
                            .iter()
                            .map(|k| Name {
                                value: k.clone(),
                                at: create.query.at,
                            })
                            .collect(),
                    ),
                    _ => None,
                };
                if let Some(key) = &key {
                    if let Some(missing) = key.iter().find(|k| !names.contains(&k.value.as_str())) {
                        return Err(SqlError::at(
                            format!(
                                "query '{}' has no column '{}' to upsert by; its columns: {}; name the key with KEY (column, ...)",
                                create.query.value,
                                missing.value,
                                names.join(", ")
                            ),
                            missing.at,
                        ));
                    }
                }
                Target::Postgres(PostgresTarget {
                    url,
                    table,
                    key: key.map(|k| k.into_iter().map(|n| n.value).collect()),
                    windowed: query.window.is_some(),
                })
            }
            SinkInto::Webhook { url } => Target::Webhook { url },
            SinkInto::Parquet { dir, at } => Target::Parquet {
                dir: self.confine(&dir, at)?,
            },
            SinkInto::Files { prefix, at, csv } => {
                let mut confined = self.confine(&prefix, at)?;
                // 'out/' names files inside out/ (out/-<ms>.json), as Spark does.
                if prefix.ends_with('/') {
                    confined.push("");
                }
                let prefix = confined;
                Target::Files {
                    prefix,
                    format: if csv {
                        FileFormat::Csv
                    } else {
                        FileFormat::Json
                    },
                }
            }
        };
        // Two sinks writing the same files would overwrite each other's.
        if let Some(other) = self.sinks.iter().find(|s| match (&s.info.target, &target) {
            (
                Target::Files {
                    prefix: a,
                    format: f,
                },
                Target::Files {
                    prefix: b,
                    format: g,
                },
            ) => a == b && f == g,
            (Target::Parquet { dir: a }, Target::Parquet { dir: b }) => a == b,
            _ => false,
        }) {
            return Err(SqlError::at(
                format!(
                    "sink '{}' already writes these files; give this sink another path",
                    other.info.name
                ),
                create.name.at,
            ));
        }
        let info = Arc::new(SinkInfo::new(
            create.name.value.clone(),
            create.query.value.clone(),
            target,
            sql.clone(),
        ));
        // Results from the next batch on (after a restore: the batches run again).
        let task = sink::output::start(Arc::clone(&info), query, self.last_tick)
            .map_err(|m| SqlError::at(m, create.name.at))?;
        write(&self.registry.sinks).insert(info.name.clone(), Arc::clone(&info));
        let zero = self.zero_time();
        self.remember("sink", &info.name, sql, zero);
        let result = json!({"statement": "CREATE SINK", "name": info.name, "query": info.query, "kind": info.target.kind()});
        self.sinks.push(SinkEntry { info, task });
        Ok(result)
    }

    async fn compile(&self, body: &QueryBody, parallelism: usize) -> Result<Compiled, SqlError> {
        planner::compile(
            &body.query,
            &self.readable(),
            parallelism,
            &self.batch_clock,
        )
        .await
    }

    async fn create_stream(
        &mut self,
        name: Name,
        body: QueryBody,
        sql: String,
    ) -> Result<Value, SqlError> {
        self.ensure_free(&name)?;
        let compiled = self.compile(&body, self.config.parallelism).await?;
        let info = Arc::new(QueryInfo::new(
            name.value.clone(),
            sql,
            QueryKind::Stream,
            compiled.plan.schema.clone(),
            self.zero_time(),
            self.config.parallelism,
            compiled.inputs,
            ResultStore::new(Retention {
                max_batches: 1,
                max_bytes: 0,
            }),
        ));
        write(&self.registry.streams).insert(info.name.clone(), Arc::clone(&info));
        let result = json!({"statement": "CREATE STREAM", "name": info.name, "schema": schema_json(&info.schema)});
        self.remember("stream", &info.name, info.sql.clone(), info.zero_time);
        self.streams.push(Runner {
            info,
            mode: Mode::PerBatch(compiled.plan),
            window: None,
            slot: Some(Arc::new(Slot::default())),
        });
        Ok(result)
    }

    async fn create_query(
        &mut self,
        name: Option<Name>,
        options: Vec<(String, String)>,
        body: QueryBody,
        sql: String,
    ) -> Result<Value, SqlError> {
        if let Some(name) = &name {
            self.ensure_free(name)?;
        }
        let parallelism = query_parallelism(&options, self.config.parallelism)?;
        let zero = self.zero_time();
        let window = self.window_spec(&body, zero)?;
        let mut cumulative = None;
        let (mode, schema, inputs, kind, window_info) = match window {
            None => {
                let compiled = self.compile(&body, parallelism).await?;
                let schema = compiled.plan.schema.clone();
                (
                    Mode::PerBatch(compiled.plan),
                    schema,
                    compiled.inputs,
                    QueryKind::PerBatch,
                    None,
                )
            }
            Some(Shape::Cumulative { ttl, emit }) => {
                let c = planner::compile_cumulative(
                    &body.query,
                    &self.readable(),
                    parallelism,
                    &self.batch_clock,
                )
                .await?;
                let runner =
                    Cumulative::new(SplitPlans::new(c.partial, c.split, c.task_ctx), ttl, emit)
                        .map_err(|e| {
                            SqlError::new(format!("internal error while planning: {e}"))
                        })?;
                let info = CumulativeInfo {
                    keys: runner.key_names(),
                    ttl_ms: ttl.map(|t| t.millis()),
                    emit: if emit == Emit::Complete {
                        "complete"
                    } else {
                        "updates"
                    },
                };
                cumulative = Some(info);
                (
                    Mode::Cumulative(Box::new(runner)),
                    c.schema,
                    c.inputs,
                    QueryKind::Cumulative,
                    None,
                )
            }
            Some(Shape::Window(spec, kind)) => {
                let w = planner::compile_window(
                    &body.query,
                    &self.readable(),
                    parallelism,
                    &self.batch_clock,
                )
                .await?;
                let (mode, info) = match w.plan {
                    WindowPlan::Panes {
                        partial,
                        split,
                        task_ctx,
                    } => (
                        Mode::Panes(Box::new(PaneWindow::new(
                            spec,
                            SplitPlans::new(partial, split, task_ctx),
                        ))),
                        window_info(&spec, "panes"),
                    ),
                    WindowPlan::Raw { plan, inputs } => {
                        // A raw window buffers its inputs batch by batch: a
                        // static table would be buffered again every batch.
                        if let Some((table, _)) = inputs
                            .iter()
                            .find(|(i, _)| self.tables.iter().any(|t| t.name == *i))
                        {
                            return Err(SqlError::new(format!(
                                "a window that buffers rows cannot read static table '{table}'; join the table in a derived stream (CREATE STREAM s AS SELECT ... JOIN {table} ...) and window the stream"
                            )));
                        }
                        (
                            Mode::Raw(Box::new(RawWindow::new(spec, plan, inputs))),
                            window_info(&spec, "raw"),
                        )
                    }
                };
                (mode, w.schema, w.inputs, kind, Some((spec, info)))
            }
        };
        let named = name.is_some();
        let name = match name {
            Some(n) => n.value,
            None => self.generated_name(),
        };
        let mut info = QueryInfo::new(
            name,
            sql,
            kind,
            schema,
            zero,
            parallelism,
            inputs,
            ResultStore::new(self.config.retention),
        );
        if let Some((_, w)) = window_info {
            info = info.with_window(w);
        }
        info.cumulative = cumulative;
        let info = Arc::new(info);
        write(&self.registry.queries).insert(info.name.clone(), Arc::clone(&info));
        let result = json!({
            "statement": "CREATE QUERY",
            "name": info.name,
            "kind": info.kind.name(),
            "window": info.window,
            "schema": schema_json(&info.schema),
        });
        // An unnamed query is recreated under the name it was given.
        let recreate = if named {
            info.sql.clone()
        } else {
            format!(
                "CREATE QUERY \"{}\" AS {}",
                info.name.replace('"', "\"\""),
                info.sql
            )
        };
        self.remember("query", &info.name, recreate, info.zero_time);
        self.queries.push(Runner {
            info,
            mode,
            window: window_info.map(|(spec, _)| spec),
            slot: None,
        });
        Ok(result)
    }

    fn generated_name(&mut self) -> String {
        loop {
            self.unnamed += 1;
            let name = format!("query_{}", self.unnamed);
            if self.kind_of(&name).is_none() {
                return name;
            }
        }
    }

    fn drop_object(
        &mut self,
        kind: ObjectKind,
        name: Name,
        if_exists: bool,
    ) -> Result<Value, SqlError> {
        let found = self.kind_of(&name.value);
        let done = json!({"statement": format!("DROP {}", kind.name().to_uppercase()), "name": name.value, "dropped": found == Some(kind)});
        match found {
            None if if_exists => return Ok(done),
            None => {
                return Err(SqlError::at(
                    format!("unknown {} '{}'", kind.name(), name.value),
                    name.at,
                ));
            }
            Some(other) if other != kind => {
                return Err(SqlError::at(
                    format!(
                        "'{}' is a {}, not a {}; use DROP {}",
                        name.value,
                        other.name(),
                        kind.name(),
                        other.name().to_uppercase()
                    ),
                    name.at,
                ));
            }
            Some(_) => {}
        }
        let sinks: Vec<String> = self
            .sinks
            .iter()
            .filter(|s| s.info.query == name.value)
            .map(|s| format!("sink '{}'", s.info.name))
            .collect();
        if !sinks.is_empty() {
            return Err(SqlError::at(
                format!(
                    "cannot drop {} '{}': it is read by {}; drop those first",
                    kind.name(),
                    name.value,
                    sinks.join(", ")
                ),
                name.at,
            ));
        }
        if !matches!(kind, ObjectKind::Query | ObjectKind::Sink) {
            let readers: Vec<String> = self
                .streams
                .iter()
                .chain(&self.queries)
                .filter(|r| r.info.inputs.contains(&name.value))
                .map(|r| {
                    format!(
                        "{} '{}'",
                        if r.info.kind == QueryKind::Stream {
                            "stream"
                        } else {
                            "query"
                        },
                        r.info.name
                    )
                })
                .collect();
            if !readers.is_empty() {
                return Err(SqlError::at(
                    format!(
                        "cannot drop {} '{}': it is read by {}; drop those first",
                        kind.name(),
                        name.value,
                        readers.join(", ")
                    ),
                    name.at,
                ));
            }
        }
        match kind {
            ObjectKind::Source => {
                self.sources.retain(|s| s.handle.name() != name.value);
                write(&self.registry.sources).remove(&name.value);
                // Its log goes with it: rows received and not yet in a batch
                // are dropped with the source.
                if let (Some(dir), true) = (&self.config.data_dir, self.config.wal) {
                    let log = wal::dir_of(dir, &name.value);
                    if let Err(e) = std::fs::remove_dir_all(&log) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            tracing::warn!(log = %log.display(), "cannot delete the write-ahead log of a dropped source: {e}");
                        }
                    }
                }
            }
            ObjectKind::Stream => {
                self.streams.retain(|s| s.info.name != name.value);
                write(&self.registry.streams).remove(&name.value);
            }
            ObjectKind::Query => {
                for q in self.queries.iter().filter(|q| q.info.name == name.value) {
                    q.info.results.close(crate::sink::EndReason::Dropped);
                }
                self.queries.retain(|s| s.info.name != name.value);
                write(&self.registry.queries).remove(&name.value);
            }
            ObjectKind::Sink => {
                self.sinks.retain(|s| s.info.name != name.value);
                write(&self.registry.sinks).remove(&name.value);
            }
            ObjectKind::Table => self.tables.retain(|t| t.name != name.value),
        }
        self.forget(&name.value);
        Ok(done)
    }

    fn show(&self, kind: ObjectKind) -> Value {
        let rows: Vec<Value> = match kind {
            ObjectKind::Source => read(&self.registry.sources)
                .values()
                .map(|s| {
                    json!({
                        "name": s.name(),
                        "kind": s.spec.kind.name(),
                        "format": s.spec.format.name(),
                        "schema": schema_json(s.schema()),
                        "status": s.status(),
                    })
                })
                .collect(),
            ObjectKind::Stream => read(&self.registry.streams)
                .values()
                .map(|q| query_row(q))
                .collect(),
            ObjectKind::Query => read(&self.registry.queries)
                .values()
                .map(|q| query_row(q))
                .collect(),
            ObjectKind::Sink => read(&self.registry.sinks)
                .values()
                .map(|s| s.describe())
                .collect(),
            ObjectKind::Table => self
                .tables
                .iter()
                .map(|t| json!({"name": t.name, "rows": t.rows, "schema": schema_json(&t.schema), "sql": t.sql}))
                .collect(),
        };
        let what = match kind {
            ObjectKind::Source => "SOURCES",
            ObjectKind::Stream => "STREAMS",
            ObjectKind::Query => "QUERIES",
            ObjectKind::Sink => "SINKS",
            ObjectKind::Table => "TABLES",
        };
        json!({"statement": format!("SHOW {what}"), "rows": rows})
    }

    /// The window of a query, checked against the batch interval; None without a
    /// WINDOW clause.
    fn window_spec(&self, body: &QueryBody, zero: BatchTime) -> Result<Option<Shape>, SqlError> {
        let Some(clause) = body.window else {
            return Ok(None);
        };
        let (length, slide, kind) = match clause.window {
            Window::Sliding { length, slide } => (length, slide, QueryKind::Sliding),
            Window::Tumbling { length } => (length, length, QueryKind::Tumbling),
            Window::Cumulative { ttl, emit } => return Ok(Some(Shape::Cumulative { ttl, emit })),
        };
        let batch = self.clock.interval();
        check_multiple("window length", length, batch).map_err(|m| SqlError::at(m, clause.at))?;
        check_multiple("window slide", slide, batch).map_err(|m| SqlError::at(m, clause.at))?;
        Ok(Some(Shape::Window(
            WindowSpec {
                length,
                slide,
                zero,
            },
            kind,
        )))
    }

    async fn explain(&self, body: QueryBody) -> Result<Value, SqlError> {
        let shape = self.window_spec(&body, self.clock.zero_time())?;
        if let Some(Shape::Cumulative { .. }) = shape {
            let c = planner::compile_cumulative(
                &body.query,
                &self.readable(),
                self.config.parallelism,
                &self.batch_clock,
            )
            .await?;
            let show = |p: &Arc<dyn datafusion::physical_plan::ExecutionPlan>| {
                datafusion::physical_plan::displayable(p.as_ref())
                    .indent(true)
                    .to_string()
            };
            return Ok(json!({
                "statement": "EXPLAIN",
                "schema": schema_json(&c.schema),
                "plan": format!(
                    "cumulative: keyed state, partial aggregates per batch merged into the keys they touch\nlogical plan:\n{}\npartial plan (each batch):\n{}\nmerge plan (state of the touched keys):\n{}\nfinal plan (emitted table):\n{}",
                    c.logical.display_indent(),
                    show(c.partial.parallel.as_ref().unwrap_or(&c.partial.single)),
                    show(&c.split.reduce),
                    show(&c.split.final_plan)
                ),
            }));
        }
        if let Some(Shape::Window(spec, _)) = shape {
            let w = planner::compile_window(
                &body.query,
                &self.readable(),
                self.config.parallelism,
                &self.batch_clock,
            )
            .await?;
            let pane = Interval::from_millis(spec.pane_ms())
                .map(|p| p.to_string())
                .unwrap_or_default();
            return Ok(json!({
                "statement": "EXPLAIN",
                "schema": schema_json(&w.schema),
                "plan": planner::explain_window(&w, &pane),
            }));
        }
        let compiled = self.compile(&body, self.config.parallelism).await?;
        Ok(json!({
            "statement": "EXPLAIN",
            "schema": schema_json(&compiled.plan.schema),
            "plan": planner::explain(&compiled),
        }))
    }
}

/// What a WINDOW clause asks for.
enum Shape {
    Window(WindowSpec, QueryKind),
    Cumulative { ttl: Option<Interval>, emit: Emit },
}

fn window_info(spec: &WindowSpec, mode: &'static str) -> WindowInfo {
    WindowInfo {
        length_ms: spec.length.millis(),
        slide_ms: spec.slide.millis(),
        pane_ms: spec.pane_ms(),
        mode,
    }
}

fn query_row(q: &QueryInfo) -> Value {
    json!({
        "name": q.name,
        "kind": q.kind.name(),
        "sql": q.sql,
        "status": q.status(),
        "inputs": q.inputs,
    })
}

/// The schema of declared columns.
fn schema_of(columns: &[ColumnSpec]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
            .collect::<Vec<Field>>(),
    ))
}

/// `[{"name": ..., "type": ..., "nullable": ...}]`
pub fn schema_json(schema: &Schema) -> Value {
    Value::Array(
        schema
            .fields()
            .iter()
            .map(|f| json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
            .collect(),
    )
}

fn query_parallelism(options: &[(String, String)], default: usize) -> Result<usize, SqlError> {
    let options: BTreeMap<&str, &str> = options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for key in options.keys() {
        if *key != "parallelism" {
            return Err(SqlError::new(format!(
                "unknown query option '{key}'; known options: parallelism"
            )));
        }
    }
    match options.get("parallelism") {
        None => Ok(default.max(1)),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PARALLELISM).contains(n))
            .ok_or_else(|| {
                SqlError::new(format!(
                    "parallelism = '{v}' must be a whole number from 1 to {MAX_PARALLELISM}"
                ))
            }),
    }
}

/// Stack of the thread that parses a request: parsing and checking a statement
/// recurse as deep as it nests (sqlparser, its visitors, dropping a refused tree).
const PARSE_STACK: usize = 64 << 20;

/// Parses on a thread of its own with a large stack, so that a pathologically
/// nested statement is refused by the depth checks (and its tree dropped there)
/// rather than overflowing the engine's stack; a panic in the parser becomes an
/// error, not a dead engine.
fn parse_apart(text: &str) -> Result<Vec<Parsed>, (usize, SqlError)> {
    std::thread::scope(|scope| {
        let parser = std::thread::Builder::new()
            .name("sluice-parse".into())
            .stack_size(PARSE_STACK)
            .spawn_scoped(scope, || dialect::parse(text));
        match parser {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err((
                    1,
                    SqlError::new("internal error: the SQL parser failed on this text"),
                ))
            }),
            // No thread to be had: parse here.
            Err(_) => dialect::parse(text),
        }
    })
}
