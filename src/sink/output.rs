//! Output sinks, `CREATE SINK name FROM query INTO ...`: every result batch of a
//! query goes to an external system (Spark's output operations: print(),
//! saveAsTextFiles, foreachRDD).
//!
//! - `INTO KAFKA 'brokers' TOPIC 't' [FORMAT JSON] [KEY column]`: one JSON message
//!   per row, keyed by a column's value ([`kafka`]).
//! - `INTO LOG`: Spark's print() on the server's standard output.
//! - `INTO FILES 'prefix' [FORMAT JSON | CSV]`: one file per batch,
//!   `prefix-<TIME_IN_MS>.json|csv`, written atomically ([`files`]).
//! - `INTO PARQUET 'dir'`: one Parquet file per batch, `dir/<TIME_IN_MS>.parquet`.
//! - `INTO POSTGRES 'postgres://...' TABLE 't' [KEY (...)]`: appended, or
//!   upserted by key for cumulative queries ([`super::postgres`]).
//! - `INTO WEBHOOK 'http://...'`: each batch POSTed as its result JSON
//!   (`{"batch_time", ..., "rows": [...]}`); a non-2xx answer is a failure.
//!
//! A sink is a task of its own that follows the query's result store (the same
//! retained batches a poll reads), so a slow or dead target never stalls the
//! engine. A batch that fails is retried with backoff, then counted as failed
//! and skipped. A sink that falls further behind than the store retains
//! (`--retain-batches`) misses the evicted batches. Delivery is at-least-once
//! across recovery: the batches run again after a restore (from the
//! checkpoint's batch on) are written again (a file sink rewrites the same files).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::files::{self, FileFormat};
use super::kafka::{self, KafkaTarget};
use super::ResultBatch;
use crate::engine::QueryInfo;
use crate::lock;
use crate::time::BatchTime;

/// Where a sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Kafka(KafkaTarget),
    Log,
    /// `prefix` is confined and absolute.
    Files {
        prefix: std::path::PathBuf,
        format: FileFormat,
    },
    Webhook {
        url: String,
    },
    /// `dir` is confined and absolute.
    Parquet {
        dir: std::path::PathBuf,
    },
    Postgres(super::postgres::PostgresTarget),
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Kafka(_) => "kafka",
            Target::Log => "log",
            Target::Files { .. } => "files",
            Target::Webhook { .. } => "webhook",
            Target::Parquet { .. } => "parquet",
            Target::Postgres(_) => "postgres",
        }
    }

    fn describe(&self) -> Value {
        match self {
            Target::Kafka(t) => json!({"brokers": t.brokers, "topic": t.topic, "key": t.key}),
            Target::Log => json!({}),
            Target::Files { prefix, format } => {
                json!({"prefix": prefix.display().to_string(), "format": format.name()})
            }
            Target::Webhook { url } => json!({"url": url}),
            Target::Parquet { dir } => json!({"dir": dir.display().to_string()}),
            Target::Postgres(t) => {
                json!({"table": t.table, "key": t.key, "mode": if t.key.is_some() { "upsert" } else { "append" }})
            }
        }
    }
}

/// A sink's state, shown by `GET /sinks/{name}` and `SHOW SINKS`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SinkStatus {
    /// Delivering (or waiting for results).
    Running,
    /// The last attempt failed; the sink retries.
    Retrying { error: String },
}

/// One declared sink, shared by its task and the API.
pub struct SinkInfo {
    pub name: String,
    pub query: String,
    pub target: Target,
    pub sql: String,
    status: Mutex<SinkStatus>,
    /// Rows written (acknowledged, for Kafka).
    pub rows: AtomicU64,
    /// Result batches written.
    pub batches: AtomicU64,
    /// Failed attempts (each retried).
    pub retries: AtomicU64,
    /// Result batches given up after the last attempt.
    pub failed_batches: AtomicU64,
    /// The batch time of the last batch handled.
    pub last_batch: Mutex<Option<i64>>,
}

impl SinkInfo {
    pub fn new(name: String, query: String, target: Target, sql: String) -> SinkInfo {
        SinkInfo {
            name,
            query,
            target,
            sql,
            status: Mutex::new(SinkStatus::Running),
            rows: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            failed_batches: AtomicU64::new(0),
            last_batch: Mutex::new(None),
        }
    }

    pub fn status(&self) -> SinkStatus {
        lock(&self.status).clone()
    }

    pub fn describe(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "query": self.query,
            "kind": self.target.kind(),
            "sql": self.sql,
            "status": self.status(),
            "counters": {
                "rows": self.rows.load(Ordering::Relaxed),
                "batches": self.batches.load(Ordering::Relaxed),
                "retries": self.retries.load(Ordering::Relaxed),
                "failed_batches": self.failed_batches.load(Ordering::Relaxed),
            },
            "last_batch_time": *lock(&self.last_batch),
        });
        if let (Value::Object(out), Value::Object(target)) = (&mut v, self.target.describe()) {
            out.extend(target);
        }
        v
    }
}

/// Attempts per batch before it is counted as failed.
const ATTEMPTS: u32 = 5;
const BACKOFF_FIRST: Duration = Duration::from_millis(200);

/// What writes a batch.
enum Writer {
    Kafka(kafka::Producer),
    Log,
    Files(files::Files),
    Webhook(reqwest::Client, String),
    Parquet(files::ParquetFiles),
    Postgres(Box<super::postgres::Postgres>),
}

impl Writer {
    /// Writes one batch; returns the rows written.
    async fn write(&self, batch: &ResultBatch) -> Result<usize, String> {
        match self {
            Writer::Kafka(p) => p.write(batch).await,
            Writer::Log => {
                let parsed: Value = serde_json::from_slice(&batch.json)
                    .map_err(|e| format!("unreadable result batch: {e}"))?;
                let text = crate::client::print_batch(&parsed);
                // An error (standard output closed) is the batch's failure, not a panic.
                std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())
                    .map_err(|e| format!("cannot write to standard output: {e}"))?;
                Ok(batch.rows)
            }
            Writer::Files(f) => f.write(batch).await,
            Writer::Parquet(f) => f.write(batch).await,
            Writer::Postgres(p) => p.write(batch).await,
            Writer::Webhook(client, url) => {
                let answer = client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(batch.json.clone())
                    .send()
                    .await
                    .map_err(|e| format!("POST {url}: {e}"))?;
                if answer.status().is_success() {
                    Ok(batch.rows)
                } else {
                    Err(format!("POST {url}: answered {}", answer.status()))
                }
            }
        }
    }
}

/// Starts the sink's task: it writes every result batch of `query` emitted after
/// `from` (the batch the sink was created at).
pub fn start(
    info: Arc<SinkInfo>,
    query: Arc<QueryInfo>,
    from: Option<BatchTime>,
) -> Result<JoinHandle<()>, String> {
    let writer = match &info.target {
        Target::Kafka(t) => Writer::Kafka(kafka::Producer::new(t)?),
        Target::Log => Writer::Log,
        Target::Files { prefix, format } => Writer::Files(files::Files::new(
            prefix.clone(),
            *format,
            query
                .schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
        )),
        Target::Webhook { url } => Writer::Webhook(
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| format!("cannot build an HTTP client: {e}"))?,
            url.clone(),
        ),
        Target::Parquet { dir } => {
            query
                .keep_arrow
                .store(true, std::sync::atomic::Ordering::Relaxed);
            Writer::Parquet(files::ParquetFiles::new(dir.clone(), query.schema.clone()))
        }
        Target::Postgres(t) => Writer::Postgres(Box::new(super::postgres::Postgres::new(
            t.clone(),
            &query.schema,
        ))),
    };
    Ok(tokio::spawn(run(info, query, writer, from)))
}

async fn run(
    info: Arc<SinkInfo>,
    query: Arc<QueryInfo>,
    writer: Writer,
    mut cursor: Option<BatchTime>,
) {
    let Some(mut live) = query.results.subscribe() else {
        return;
    };
    loop {
        // The store is the source of truth; the broadcast only wakes us.
        let batches = query.results.after(cursor, 16);
        if batches.is_empty() {
            match live.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
        for batch in batches {
            deliver(&info, &writer, &batch).await;
            cursor = Some(batch.batch_time);
            *lock(&info.last_batch) = Some(batch.batch_time.millis());
        }
    }
}

/// Writes one batch, retrying with backoff; counts what happened.
async fn deliver(info: &SinkInfo, writer: &Writer, batch: &ResultBatch) {
    let mut backoff = BACKOFF_FIRST;
    for attempt in 1..=ATTEMPTS {
        match writer.write(batch).await {
            Ok(rows) => {
                info.rows.fetch_add(rows as u64, Ordering::Relaxed);
                info.batches.fetch_add(1, Ordering::Relaxed);
                *lock(&info.status) = SinkStatus::Running;
                return;
            }
            Err(error) => {
                info.retries.fetch_add(1, Ordering::Relaxed);
                if attempt == 1 {
                    tracing::warn!(sink = %info.name, batch_time = batch.batch_time.millis(), "{error}; retrying");
                }
                *lock(&info.status) = SinkStatus::Retrying { error };
                if attempt < ATTEMPTS {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
    }
    info.failed_batches.fetch_add(1, Ordering::Relaxed);
    tracing::error!(sink = %info.name, batch_time = batch.batch_time.millis(), "gave up on a result batch after {ATTEMPTS} attempts");
}
