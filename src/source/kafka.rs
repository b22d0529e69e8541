//! The Kafka source: reads every partition of a topic through librdkafka (the
//! `rdkafka` crate, bundled), decodes each message's value with the source's
//! format, and adds the metadata columns `_key`, `_partition`, `_offset` and
//! `_timestamp`.
//!
//! Exactly-once state: partitions are assigned explicitly (no group rebalances),
//! each delivered chunk carries the next offset of every partition it read, and
//! the source keeps the offsets of the chunks sealed into batches. A checkpoint
//! stores those; a restored source seeks every partition to them, not to the
//! group's committed offsets. Offsets are committed to the group only once a
//! checkpoint holding them is durable, so group lag is visible to Kafka tools.
//! Without a checkpoint a partition starts at the group's committed offset, or at
//! `start` (`earliest` or `latest`) when the group has none.
//!
//! Broker trouble never stops the engine: the source's status says `retrying`
//! with the error while librdkafka reconnects, and batches are empty meanwhile.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::array::{
    ArrayRef, Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};
use tokio::task::JoinHandle;

use super::decode::{Decoder, Format};
use super::{Source, SourceHandle, SourceStatus};
use crate::lock;

/// The metadata columns every Kafka source has after its declared ones.
pub fn metadata_fields() -> Vec<Field> {
    vec![
        Field::new("_key", DataType::Utf8, true),
        Field::new("_partition", DataType::Int32, false),
        Field::new("_offset", DataType::Int64, false),
        Field::new(
            "_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
    ]
}

/// Where a new partition starts when neither a checkpoint nor the group has an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
}

/// A validated `FROM KAFKA ... WITH (...)`.
#[derive(Debug, Clone)]
pub struct KafkaSpec {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub start: Start,
    /// `kafka.<property>` options, passed to librdkafka as `<property>`.
    pub properties: Vec<(String, String)>,
}

impl KafkaSpec {
    /// Reads the options of source `name`: `group_id`, `start`, `kafka.*`.
    pub fn new(
        name: &str,
        brokers: &str,
        topic: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<KafkaSpec, String> {
        let mut spec = KafkaSpec {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            group: format!("sluice-{name}"),
            start: Start::Latest,
            properties: Vec::new(),
        };
        for (key, value) in options {
            match key.as_str() {
                "group_id" => spec.group = value.clone(),
                "start" => {
                    spec.start = match value.to_ascii_lowercase().as_str() {
                        "earliest" => Start::Earliest,
                        "latest" => Start::Latest,
                        _ => {
                            return Err(format!(
                                "Kafka option start = '{value}' must be 'earliest' or 'latest'"
                            ))
                        }
                    }
                }
                other => match other.strip_prefix("kafka.") {
                    Some(property) if !property.is_empty() => {
                        refuse_unsafe_property(property)?;
                        spec.properties.push((property.to_string(), value.clone()))
                    }
                    _ => {
                        return Err(format!(
                            "unknown Kafka option '{other}'; known options: group_id, start, and kafka.<librdkafka property>"
                        ))
                    }
                },
            }
        }
        Ok(spec)
    }
}

/// The offsets (next to read, per partition) of what has been delivered.
pub type Offsets = BTreeMap<i32, i64>;

pub struct KafkaSource {
    spec: KafkaSpec,
    /// The declared columns: what a message's value decodes into.
    payload: SchemaRef,
    format: Format,
    /// Offsets to resume from (a restored checkpoint's), per partition.
    resume: Offsets,
    /// The consumer once connected, for committing offsets after checkpoints.
    consumer: Arc<Mutex<Option<Arc<Kafka>>>>,
}

impl KafkaSource {
    pub fn new(
        spec: KafkaSpec,
        payload: SchemaRef,
        format: Format,
        resume: Offsets,
    ) -> KafkaSource {
        KafkaSource {
            spec,
            payload,
            format,
            resume,
            consumer: Arc::new(Mutex::new(None)),
        }
    }
}

impl Source for KafkaSource {
    fn start(&mut self, handle: Arc<SourceHandle>) -> Option<JoinHandle<()>> {
        let receiver = Receiver {
            spec: self.spec.clone(),
            payload: Arc::clone(&self.payload),
            format: self.format,
            delivered: self.resume.clone(),
            consumer: Arc::clone(&self.consumer),
        };
        Some(tokio::spawn(receiver.run(handle)))
    }

    fn on_checkpoint(&mut self, handle: &SourceHandle) {
        let offsets = handle.kafka_offsets();
        let Some(consumer) = lock(&self.consumer).clone() else {
            return;
        };
        if offsets.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in &offsets {
            if tpl
                .add_partition_offset(&self.spec.topic, *partition, Offset::Offset(*offset))
                .is_err()
            {
                return;
            }
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(source = %handle.name(), "cannot commit offsets to group '{}': {e}", self.spec.group);
        }
    }
}

/// Reports librdkafka's client errors (a broker gone, all brokers down) in the
/// source's status; the consumer itself reconnects.
pub struct StatusContext {
    handle: std::sync::Weak<SourceHandle>,
}

impl ClientContext for StatusContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(handle) = self.handle.upgrade() {
            tracing::warn!(source = %handle.name(), "Kafka: {error}: {reason}");
            handle.set_status(SourceStatus::Retrying {
                error: format!("Kafka: {reason}"),
                attempts: 1,
            });
        }
    }
}

impl ConsumerContext for StatusContext {}

type Kafka = StreamConsumer<StatusContext>;

/// Messages gathered into one chunk at most.
const CHUNK_ROWS: usize = 10_000;
/// A chunk is delivered when no message came for this long.
const IDLE: Duration = Duration::from_millis(20);
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

struct Receiver {
    spec: KafkaSpec,
    payload: SchemaRef,
    format: Format,
    /// Next offset per partition of what was delivered (or restored).
    delivered: Offsets,
    consumer: Arc<Mutex<Option<Arc<Kafka>>>>,
}

impl Receiver {
    async fn run(mut self, handle: Arc<SourceHandle>) {
        let mut reconnect = super::Reconnect::new(BACKOFF_FIRST, BACKOFF_MAX);
        loop {
            let error = match self.connect(&handle).await {
                Ok(consumer) => {
                    tracing::info!(source = %handle.name(), brokers = %self.spec.brokers, topic = %self.spec.topic, "consuming");
                    reconnect.connected(&handle);
                    *lock(&self.consumer) = Some(Arc::clone(&consumer));
                    self.consume(&consumer, &handle).await
                }
                Err(e) => e,
            };
            reconnect.failed(&handle, error).await;
        }
    }

    /// Creates the consumer and assigns every partition of the topic at its
    /// starting offset.
    async fn connect(&self, handle: &Arc<SourceHandle>) -> Result<Arc<Kafka>, String> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.spec.brokers)
            .set("group.id", &self.spec.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                match self.spec.start {
                    Start::Earliest => "earliest",
                    Start::Latest => "latest",
                },
            );
        for (key, value) in &self.spec.properties {
            config.set(key, value);
        }
        let context = StatusContext {
            handle: Arc::downgrade(handle),
        };
        let consumer: Kafka = config
            .create_with_context(context)
            .map_err(|e| format!("cannot create a Kafka consumer: {e}"))?;
        let consumer = Arc::new(consumer);
        let (topic, delivered, start) = (
            self.spec.topic.clone(),
            self.delivered.clone(),
            self.spec.start,
        );
        let c = Arc::clone(&consumer);
        // Metadata and committed offsets are blocking librdkafka calls.
        tokio::task::spawn_blocking(move || assign(&c, &topic, &delivered, start))
            .await
            .map_err(|e| e.to_string())??;
        Ok(consumer)
    }

    /// Reads until the consumer reports an error that is not transient.
    async fn consume(&mut self, consumer: &Kafka, handle: &SourceHandle) -> String {
        let mut decoder = match Decoder::new(Arc::clone(&self.payload), self.format) {
            Ok(d) => d,
            Err(e) => return e,
        };
        let mut meta = Meta::default();
        let mut offsets = Offsets::new();
        let mut failing: Option<String> = None;
        loop {
            let received = tokio::time::timeout(IDLE, consumer.recv()).await;
            let idle = !matches!(received, Ok(Ok(_)));
            match received {
                Ok(Ok(message)) => {
                    if failing.take().is_some() {
                        handle.set_status(SourceStatus::Connected);
                    }
                    let value = message.payload().unwrap_or_default();
                    handle
                        .bytes_total
                        .fetch_add(value.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    offsets.insert(message.partition(), message.offset() + 1);
                    let before = decoder.rows();
                    match decoder.push(value) {
                        // A blank value (or a tombstone) makes no row.
                        Ok(()) if decoder.rows() == before => {}
                        Ok(()) => meta.push(
                            message
                                .key()
                                .map(|k| String::from_utf8_lossy(k).into_owned()),
                            message.partition(),
                            message.offset(),
                            message.timestamp().to_millis(),
                        ),
                        Err(e) => handle.record_bad(&e, value),
                    }
                }
                Ok(Err(e)) => {
                    // librdkafka reconnects by itself; say so, and wait a little
                    // so that a dead broker is not a busy loop.
                    let error = format!("Kafka: {e}");
                    if failing.as_deref() != Some(error.as_str()) {
                        tracing::warn!(source = %handle.name(), "{error}");
                        handle.set_status(SourceStatus::Retrying {
                            error: error.clone(),
                            attempts: 1,
                        });
                        failing = Some(error);
                    }
                    tokio::time::sleep(BACKOFF_FIRST).await;
                }
                Err(_idle) => {}
            }
            if decoder.rows() >= CHUNK_ROWS || (idle && !offsets.is_empty()) {
                let chunk = with_metadata(decoder.finish(), meta.take(), handle.schema());
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => return format!("cannot build a Kafka chunk: {e}"),
                };
                for (p, o) in &offsets {
                    self.delivered.insert(*p, *o);
                }
                // Messages flow: whatever a client error said before is over.
                if handle.status() != SourceStatus::Connected {
                    handle.set_status(SourceStatus::Connected);
                }
                handle
                    .deliver_offsets(chunk, std::mem::take(&mut offsets))
                    .await;
            }
        }
    }
}

/// Assigns every partition of `topic`: at the delivered (or restored) offset,
/// else at the group's committed offset, else at `start`.
fn assign(consumer: &Kafka, topic: &str, delivered: &Offsets, start: Start) -> Result<(), String> {
    let timeout = Duration::from_secs(5);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("cannot read the metadata of topic '{topic}': {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!(
            "topic '{topic}' does not exist or has no partitions"
        ));
    }
    let mut wanted = TopicPartitionList::new();
    for p in &partitions {
        wanted.add_partition(topic, *p);
    }
    let committed = consumer
        .committed_offsets(wanted, timeout)
        .map_err(|e| format!("cannot read the group's committed offsets: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let offset = match delivered.get(&p) {
            Some(o) => Offset::Offset(*o),
            None => match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Offset::Offset(o),
                _ => match start {
                    Start::Earliest => Offset::Beginning,
                    Start::Latest => Offset::End,
                },
            },
        };
        tpl.add_partition_offset(topic, p, offset)
            .map_err(|e| e.to_string())?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| format!("cannot assign the partitions of '{topic}': {e}"))
}

/// The metadata of the decoded messages of a chunk, column by column.
#[derive(Default)]
struct Meta {
    keys: Vec<Option<String>>,
    partitions: Vec<i32>,
    offsets: Vec<i64>,
    timestamps: Vec<Option<i64>>,
}

impl Meta {
    fn push(&mut self, key: Option<String>, partition: i32, offset: i64, timestamp: Option<i64>) {
        self.keys.push(key);
        self.partitions.push(partition);
        self.offsets.push(offset);
        self.timestamps.push(timestamp);
    }

    fn take(&mut self) -> Meta {
        std::mem::take(self)
    }
}

/// The decoded values with the metadata columns appended, as `schema`.
fn with_metadata(
    values: RecordBatch,
    meta: Meta,
    schema: &SchemaRef,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let mut columns: Vec<ArrayRef> = values.columns().to_vec();
    columns.push(Arc::new(StringArray::from(meta.keys)));
    columns.push(Arc::new(Int32Array::from(meta.partitions)));
    columns.push(Arc::new(Int64Array::from(meta.offsets)));
    columns.push(Arc::new(TimestampMillisecondArray::from(meta.timestamps)));
    RecordBatch::try_new(Arc::clone(schema), columns)
}

/// The declared columns of a Kafka source's full schema (without the metadata).
pub fn payload_schema(schema: &SchemaRef) -> SchemaRef {
    let n = schema
        .fields()
        .len()
        .saturating_sub(metadata_fields().len());
    Arc::new(Schema::new(schema.fields()[..n].to_vec()))
}

/// The SQL sandbox for `kafka.<property>` options: librdkafka properties that load
/// code, run commands or read local files are refused, since whoever may run
/// CREATE SOURCE / SINK could otherwise reach the server's file system through them.
pub fn refuse_unsafe_property(property: &str) -> Result<(), String> {
    let p = property.to_ascii_lowercase();
    let unsafe_property = p == "plugin.library.paths"
        || p.starts_with("sasl.kerberos.")
        || p.starts_with("ssl.engine.")
        || p == "ssl_engine_id"
        || p.ends_with(".location")
        || p.ends_with(".path")
        || p.ends_with(".paths")
        || p.ends_with(".file")
        || p.ends_with(".cmd")
        || p == "sasl.oauthbearer.config";
    if unsafe_property {
        return Err(format!(
            "Kafka property '{property}' is refused: it loads code, runs a command or reads a local file on the server"
        ));
    }
    Ok(())
}
