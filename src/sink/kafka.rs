//! Output sinks: `CREATE SINK name FROM query INTO KAFKA 'brokers' TOPIC 't'
//! [FORMAT JSON] [KEY column]` produces every result batch of a query to a topic,
//! one JSON message per row (keyed by a column's value if KEY is given).
//!
//! A sink is a task of its own that follows the query's result store (the same
//! retained batches a poll reads), so a slow or dead broker never stalls the
//! engine. A message that fails is retried with backoff (librdkafka retries
//! inside its `message.timeout.ms` too), then counted as failed and skipped. A
//! sink that falls further behind than the store retains (`--retain-batches`)
//! misses the evicted batches. Delivery is at-least-once across recovery: the
//! batches run again after a restore (from the checkpoint's batch on) are
//! produced again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::engine::QueryInfo;
use crate::lock;
use crate::time::BatchTime;

/// A validated `INTO KAFKA ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTarget {
    pub brokers: String,
    pub topic: String,
    /// The column whose value keys each message.
    pub key: Option<String>,
}

/// A sink's state, shown by `GET /sinks/{name}` and `SHOW SINKS`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SinkStatus {
    /// Delivering (or waiting for results).
    Running,
    /// The last delivery failed; the sink retries.
    Retrying { error: String },
}

/// One declared sink, shared by its task and the API.
pub struct SinkInfo {
    pub name: String,
    pub query: String,
    pub target: KafkaTarget,
    pub sql: String,
    status: Mutex<SinkStatus>,
    /// Rows produced (acknowledged by the broker).
    pub rows: AtomicU64,
    /// Result batches fully handled.
    pub batches: AtomicU64,
    /// Failed delivery attempts (each retried).
    pub retries: AtomicU64,
    /// Rows given up after the last retry.
    pub failed_rows: AtomicU64,
    /// The batch time of the last batch handled.
    pub last_batch: Mutex<Option<i64>>,
}

impl SinkInfo {
    pub fn new(name: String, query: String, target: KafkaTarget, sql: String) -> SinkInfo {
        SinkInfo {
            name,
            query,
            target,
            sql,
            status: Mutex::new(SinkStatus::Running),
            rows: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            failed_rows: AtomicU64::new(0),
            last_batch: Mutex::new(None),
        }
    }

    pub fn status(&self) -> SinkStatus {
        lock(&self.status).clone()
    }

    pub fn describe(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "query": self.query,
            "kind": "kafka",
            "brokers": self.target.brokers,
            "topic": self.target.topic,
            "key": self.target.key,
            "sql": self.sql,
            "status": self.status(),
            "counters": {
                "rows": self.rows.load(Ordering::Relaxed),
                "batches": self.batches.load(Ordering::Relaxed),
                "retries": self.retries.load(Ordering::Relaxed),
                "failed_rows": self.failed_rows.load(Ordering::Relaxed),
            },
            "last_batch_time": *lock(&self.last_batch),
        })
    }
}

/// Attempts per message before it is counted as failed.
const ATTEMPTS: u32 = 5;
const BACKOFF_FIRST: Duration = Duration::from_millis(200);

/// Starts the sink's task: it produces every result batch of `query` emitted
/// after `from` (the batch the sink was created at).
pub fn start(
    info: Arc<SinkInfo>,
    query: Arc<QueryInfo>,
    from: Option<BatchTime>,
) -> Result<JoinHandle<()>, String> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &info.target.brokers)
        .set("message.timeout.ms", "10000")
        .create()
        .map_err(|e| format!("cannot create a Kafka producer: {e}"))?;
    Ok(tokio::spawn(run(info, query, producer, from)))
}

async fn run(
    info: Arc<SinkInfo>,
    query: Arc<QueryInfo>,
    producer: FutureProducer,
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
            deliver(&info, &producer, &batch.json).await;
            cursor = Some(batch.batch_time);
            info.batches.fetch_add(1, Ordering::Relaxed);
            *lock(&info.last_batch) = Some(batch.batch_time.millis());
        }
    }
}

/// Produces every row of one result batch (`{"batch_time", "rows": [...]}`).
async fn deliver(info: &SinkInfo, producer: &FutureProducer, json: &[u8]) {
    let Ok(Value::Object(batch)) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let Some(Value::Array(rows)) = batch.get("rows") else {
        return;
    };
    for row in rows {
        let payload = row.to_string();
        let key = info
            .target
            .key
            .as_ref()
            .and_then(|k| row.get(k))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        let mut backoff = BACKOFF_FIRST;
        let mut delivered = false;
        for attempt in 1..=ATTEMPTS {
            let mut record = FutureRecord::to(&info.target.topic).payload(&payload);
            if let Some(k) = &key {
                record = record.key(k);
            }
            match producer.send(record, Duration::from_secs(10)).await {
                Ok(_) => {
                    delivered = true;
                    break;
                }
                Err((e, _)) => {
                    info.retries.fetch_add(1, Ordering::Relaxed);
                    *lock(&info.status) = SinkStatus::Retrying {
                        error: format!("Kafka: {e}"),
                    };
                    if attempt == 1 {
                        tracing::warn!(sink = %info.name, "cannot produce to '{}': {e}; retrying", info.target.topic);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
        if delivered {
            info.rows.fetch_add(1, Ordering::Relaxed);
            *lock(&info.status) = SinkStatus::Running;
        } else {
            info.failed_rows.fetch_add(1, Ordering::Relaxed);
        }
    }
}
