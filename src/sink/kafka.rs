//! `INTO KAFKA 'brokers' TOPIC 't' [FORMAT JSON] [KEY column]`: one JSON message
//! per result row, keyed by a column's value if KEY is given. A batch counts as
//! written once the broker acknowledged every row (librdkafka retries inside its
//! `message.timeout.ms`); a failed batch is retried whole, so a row may be
//! produced twice (at-least-once).

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use super::ResultBatch;

/// A validated `INTO KAFKA ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTarget {
    pub brokers: String,
    pub topic: String,
    /// The column whose value keys each message.
    pub key: Option<String>,
}

pub struct Producer {
    producer: FutureProducer,
    target: KafkaTarget,
}

impl Producer {
    pub fn new(target: &KafkaTarget) -> Result<Producer, String> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &target.brokers)
            .set("message.timeout.ms", "10000")
            .create()
            .map_err(|e| format!("cannot create a Kafka producer: {e}"))?;
        Ok(Producer {
            producer,
            target: target.clone(),
        })
    }

    /// Produces every row of one result batch (`{"batch_time", "rows": [...]}`).
    pub async fn write(&self, batch: &ResultBatch) -> Result<usize, String> {
        let rows = super::files::rows_of(&batch.json)?;
        let messages: Vec<(String, Option<String>)> = rows
            .iter()
            .map(|row| {
                let key = self
                    .target
                    .key
                    .as_ref()
                    .and_then(|k| row.get(k))
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                (row.to_string(), key)
            })
            .collect();
        // All rows in flight at once; the batch is written when all are acknowledged.
        let pending = messages.iter().map(|(payload, key)| {
            let mut record = FutureRecord::to(&self.target.topic).payload(payload);
            if let Some(k) = key {
                record = record.key(k);
            }
            self.producer.send(record, Duration::from_secs(10))
        });
        for sent in futures::future::join_all(pending).await {
            sent.map_err(|(e, _)| format!("Kafka: {e}"))?;
        }
        Ok(rows.len())
    }
}
