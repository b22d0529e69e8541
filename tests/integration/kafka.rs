//! The Kafka source against a real Kafka-protocol broker (tansu, installed by
//! scripts/test.sh through scripts/install-broker.sh), on 127.0.0.1 only.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use crate::common::{rows, TestServer};
use crate::examples::example;
use crate::recovery::{advance, call, scratch, start};

/// A broker in memory on a free local port; stopped (SIGINT) when dropped.
pub struct Broker {
    pub child: Child,
    pub addr: String,
    bin: std::path::PathBuf,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_on(free_port())
    }

    /// A broker on `port` of 127.0.0.1.
    pub fn start_on(port: u16) -> Broker {
        let bin = std::env::var_os("SLUICE_TANSU")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/sluice-tools/bin/tansu")
            });
        assert!(
            bin.exists(),
            "the Kafka broker is not installed at {}: run scripts/test.sh (or scripts/install-broker.sh)",
            bin.display()
        );
        let addr = format!("127.0.0.1:{port}");
        // tansu reads a .env from its working directory and parents: start it
        // in an empty directory of its own.
        let dir = std::env::temp_dir().join(format!("sluice-broker-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("tcp://{addr}");
        let child = Command::new(&bin)
            .args(["broker", "--silent", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Dropped (stopped) on every path from here.
        let broker = Broker {
            child,
            addr,
            bin,
            _dir: TempDir(dir),
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(&broker.addr).is_ok() {
                return broker;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the broker did not listen on {}", broker.addr);
    }

    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let status = Command::new(&self.bin)
            .args(["topic", "create", topic, "--partitions"])
            .arg(partitions.to_string())
            .args(["--broker", &format!("tcp://{}", self.addr)])
            .current_dir(&self._dir.0)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "tansu topic create {topic}");
    }

    pub fn producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .set("message.timeout.ms", "10000")
            .create()
            .unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `value` (with `key`) to `partition` of `topic` and waits for the ack.
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    key: &str,
    value: &str,
) {
    producer
        .send(
            FutureRecord::to(topic)
                .partition(partition)
                .key(key)
                .payload(value),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce to {topic}/{partition}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_source_reads_every_partition_with_metadata_and_counts_bad_messages() {
    let broker = Broker::start();
    broker.create_topic("words", 3);
    let producer = broker.producer();
    // 300 keyed JSON messages, 100 per partition, 3 bad ones in partition 0 and
    // an empty one in partition 1.
    for i in 0..300i64 {
        let value = json!({"word": format!("w{}", i % 5), "n": i}).to_string();
        produce(
            &producer,
            "words",
            (i % 3) as i32,
            &format!("k{}", i % 3),
            &value,
        )
        .await;
    }
    for bad in ["not json", "{\"word\": ", "{\"n\": \"x\"}"] {
        produce(&producer, "words", 0, "bad", bad).await;
    }
    // An empty value (as a tombstone has) makes no row and is no bad record.
    produce(&producer, "words", 1, "empty", "").await;

    let s = TestServer::start(1000).await;
    s.ok(&format!(
        "CREATE SOURCE ks (word TEXT, n BIGINT) FROM KAFKA '{}' TOPIC 'words' FORMAT JSON WITH (start = 'earliest');
         CREATE QUERY per_batch AS SELECT count(*) AS c, sum(n) AS total, count(DISTINCT _partition) AS partitions,
             count(DISTINCT _key) AS keys, min(_offset) AS first, max(_offset) AS last FROM ks;
         CREATE QUERY words AS SELECT word, count(*) AS c FROM ks GROUP BY word WINDOW CUMULATIVE ORDER BY word;",
        broker.addr
    ))
    .await;
    s.eventually("300 rows and 3 bad records received", || async {
        let (_, src) = s.get("/sources/ks").await;
        src["counters"]["rows"] == 300 && src["counters"]["bad_rows"] == 3
    })
    .await;
    let (_, src) = s.get("/sources/ks").await;
    assert_eq!(src["kind"], "kafka");
    assert_eq!(src["status"]["state"], "connected");
    s.advance(1).await;
    let batch = &s.results("per_batch", None).await[0];
    assert_eq!(
        batch["rows"],
        json!([{"c": 300, "total": 44850, "partitions": 3, "keys": 3, "first": 0, "last": 99}])
    );
    let (_, state) = s.get("/queries/words/state").await;
    let expected: Vec<_> = (0..5)
        .map(|w| json!({"word": format!("w{w}"), "c": 60}))
        .collect();
    assert_eq!(state["rows"], json!(expected));
    // The sealed offsets: what a checkpoint would store (next offset per partition).
    let (_, src) = s.get("/sources/ks").await;
    assert_eq!(src["offsets"], json!({"0": 103, "1": 101, "2": 100}));
}

/// The words state of the binary at `base`, as (word, count) pairs.
async fn word_counts(http: &reqwest::Client, base: &str) -> serde_json::Value {
    call(
        http,
        "GET",
        format!("{base}/queries/words/state?order_by=word"),
        "",
    )
    .await["rows"]
        .clone()
}

async fn source_rows(http: &reqwest::Client, base: &str) -> i64 {
    call(http, "GET", format!("{base}/sources/ks"), "").await["counters"]["rows"]
        .as_i64()
        .unwrap_or(-1)
}

/// Waits (bounded) until the source has received `rows` rows since start.
async fn until_rows(http: &reqwest::Client, base: &str, rows: i64) {
    for _ in 0..500 {
        if source_rows(http, base).await == rows {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the Kafka source did not receive {rows} rows in 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_state_is_exactly_once_across_kill_nine() {
    let broker = Broker::start();
    broker.create_topic("sales", 3);
    let producer = broker.producer();
    let send = |from: i64, to: i64| {
        let producer = producer.clone();
        async move {
            for i in from..to {
                let value = json!({"word": format!("w{}", i % 4), "n": i}).to_string();
                produce(&producer, "sales", (i % 3) as i32, "k", &value).await;
            }
        }
    };
    let (dir, init) = scratch(
        "kafka-exactly-once",
        &format!(
            "CREATE SOURCE ks (word TEXT, n BIGINT) FROM KAFKA '{}' TOPIC 'sales' FORMAT JSON WITH (start = 'earliest', group_id = 'exactly-once');
             CREATE QUERY words AS SELECT word, count(*) AS c, sum(n) AS total FROM ks GROUP BY word WINDOW CUMULATIVE;",
            broker.addr
        ),
    );
    let http = reqwest::Client::new();
    // The totals of messages 0..400: every word 100 times.
    let expected = json!([
        {"word": "w0", "c": 100, "total": 19800},
        {"word": "w1", "c": 100, "total": 19900},
        {"word": "w2", "c": 100, "total": 20000},
        {"word": "w3", "c": 100, "total": 20100},
    ]);

    send(0, 150).await;
    let server = start(&dir, &init);
    let b = server.base.clone();
    until_rows(&http, &b, 150).await;
    // Checkpoints at 1000 (the catalog) and 2000 hold offsets after 150 messages.
    advance(&http, &b, 2).await;
    send(150, 300).await;
    until_rows(&http, &b, 300).await;
    advance(&http, &b, 1).await; // batch 3000: not checkpointed
    drop(server); // kill -9
                  // Someone commits the group past everything: a restored source must still
                  // seek to its checkpoint's offsets, not to the group's.
    {
        use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
        let committer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &broker.addr)
            .set("group.id", "exactly-once")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition_offset("sales", p, rdkafka::Offset::Offset(100))
                .unwrap();
        }
        committer.commit(&tpl, CommitMode::Sync).unwrap();
    }

    // Restored at 2000: the source seeks to the checkpoint's offsets and reads
    // messages 150..300 again, into the state of 2000 (not on top of 3000's).
    let server = start(&dir, &init);
    let b = server.base.clone();
    until_rows(&http, &b, 150).await;
    drop(server); // kill -9 again, before any batch ran

    let server = start(&dir, &init);
    let b = server.base.clone();
    send(300, 400).await;
    until_rows(&http, &b, 250).await;
    advance(&http, &b, 1).await;
    assert_eq!(word_counts(&http, &b).await, expected);
    // Offsets are committed to the group once a checkpoint holds them.
    advance(&http, &b, 2).await;
    let log = server.log.lock().unwrap().clone();
    assert!(!log.contains("cannot commit offsets"), "{log}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_absent_at_start_is_retried_and_then_caught_up() {
    let port = free_port();
    let s = TestServer::start(1000).await;
    s.ok(&format!(
        "CREATE SOURCE ks (word TEXT, n BIGINT) FROM KAFKA '127.0.0.1:{port}' TOPIC 'late' FORMAT JSON WITH (start = 'earliest');
         CREATE QUERY total AS SELECT count(*) AS c FROM ks WINDOW CUMULATIVE;"
    ))
    .await;
    s.eventually("the source says it is retrying", || async {
        let (_, src) = s.get("/sources/ks").await;
        src["status"]["state"] == "retrying"
    })
    .await;
    let (_, src) = s.get("/sources/ks").await;
    let error = src["status"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!error.is_empty(), "{src}");
    // The engine keeps ticking: empty batches.
    assert_eq!(s.advance(2).await, vec![1000, 2000]);
    let (_, state) = s.get("/queries/total/state").await;
    assert_eq!(state["rows"], json!([{"c": 0}]));

    let broker = Broker::start_on(port);
    broker.create_topic("late", 3);
    let producer = broker.producer();
    for i in 0..30i64 {
        let value = json!({"word": "w", "n": i}).to_string();
        produce(&producer, "late", (i % 3) as i32, "k", &value).await;
    }
    // Reconnection backs off up to 5 s: wait up to 20 s.
    for _ in 0..1000 {
        let (_, src) = s.get("/sources/ks").await;
        if src["counters"]["rows"] == 30 {
            assert_eq!(src["status"]["state"], "connected");
            s.advance(1).await;
            let (_, state) = s.get("/queries/total/state").await;
            assert_eq!(state["rows"], json!([{"c": 30}]));
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the source did not catch up after the broker started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_sink_writes_each_result_row_as_a_keyed_json_message() {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Message;
    let broker = Broker::start();
    broker.create_topic("out", 1);
    let s = TestServer::start(1000).await;
    s.ok(&format!(
        "CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV;
         CREATE QUERY totals AS SELECT k, sum(v) AS total FROM s GROUP BY k ORDER BY k;
         CREATE SINK to_kafka FROM totals INTO KAFKA '{}' TOPIC 'out' FORMAT JSON KEY k;",
        broker.addr
    ))
    .await;
    s.post("/sources/s", "a,1\nb,2\na,3").await;
    s.advance(1).await;
    s.post("/sources/s", "c,5").await;
    s.advance(1).await;
    s.eventually("the sink produced 3 rows", || async {
        let (_, sink) = s.get("/sinks/to_kafka").await;
        sink["counters"]["rows"] == 3
    })
    .await;
    let (_, sink) = s.get("/sinks/to_kafka").await;
    assert_eq!(sink["counters"]["batches"], 2, "{sink}");
    assert_eq!(sink["status"]["state"], "running");

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "sink-reader")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("out", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
            .await
            .expect("a message within 10 s")
            .unwrap();
        got.push((
            String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default()).unwrap(),
        ));
    }
    assert_eq!(
        got,
        vec![
            ("a".to_string(), json!({"k": "a", "total": 4})),
            ("b".to_string(), json!({"k": "b", "total": 2})),
            ("c".to_string(), json!({"k": "c", "total": 5})),
        ]
    );
    // A query read by a sink cannot be dropped before the sink.
    let (status, body) = s.sql("DROP QUERY totals").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("read by sink 'to_kafka'"),
        "{body}"
    );
    s.ok("DROP SINK to_kafka").await;
    let shown = s.ok("SHOW SINKS").await;
    assert_eq!(shown["results"][0]["rows"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_wordcount_example_counts_lines_from_every_partition() {
    let broker = Broker::start();
    broker.create_topic("lines", 3);
    let producer = broker.producer();
    for (i, line) in ["to be or not to be", "to see or not", "be"]
        .iter()
        .enumerate()
    {
        produce(&producer, "lines", i as i32, "", line).await;
    }
    let s = TestServer::start(1000).await;
    s.ok(&example("kafka_wordcount.sql").replace("localhost:9092", &broker.addr))
        .await;
    s.eventually("3 lines received", || async {
        let (_, src) = s.get("/sources/lines").await;
        src["counters"]["rows"] == 3
    })
    .await;
    s.advance(1).await;
    let batch = &s.results("kafka_wordcount", None).await[0];
    assert_eq!(
        rows(batch),
        ["be | 3", "to | 3", "not | 2", "or | 2", "see | 1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_sales_example_totals_products_and_writes_them_back() {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Message;
    let broker = Broker::start();
    broker.create_topic("sales", 2);
    broker.create_topic("product_totals", 1);
    let producer = broker.producer();
    let sales = [
        ("store1", r#"{"product": "tea", "qty": 2, "price": 3.5}"#),
        ("store2", r#"{"product": "tea", "qty": 1, "price": 3.5}"#),
        ("store1", r#"{"product": "cake", "qty": 3, "price": 2.0}"#),
    ];
    for (i, (store, sale)) in sales.iter().enumerate() {
        produce(&producer, "sales", (i % 2) as i32, store, sale).await;
    }
    let s = TestServer::start(1000).await;
    s.ok(&example("kafka_sales.sql").replace("localhost:9092", &broker.addr))
        .await;
    s.eventually("3 sales received", || async {
        let (_, src) = s.get("/sources/kafka_sales").await;
        src["counters"]["rows"] == 3
    })
    .await;
    s.advance(1).await;
    let (_, state) = s.get("/queries/product_totals/state").await;
    let totals: Vec<_> = state["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["last_sale"].is_string(), "{r}");
            json!([r["product"], r["sold"], r["revenue"], r["orders"]])
        })
        .collect();
    assert_eq!(
        totals,
        [json!(["cake", 3, 6.0, 1]), json!(["tea", 3, 10.5, 2])]
    );
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "totals-reader")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("product_totals", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut keys = Vec::new();
    while keys.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
            .await
            .expect("a message within 10 s")
            .unwrap();
        keys.push(String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned());
    }
    assert_eq!(keys, ["cake", "tea"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_unreachable_mid_run_is_reported_and_consumption_resumes() {
    let broker = Broker::start();
    broker.create_topic("flaky", 1);
    let producer = broker.producer();
    for i in 0..10i64 {
        produce(&producer, "flaky", 0, "k", &json!({"n": i}).to_string()).await;
    }
    let s = TestServer::start(1000).await;
    s.ok(&format!(
        "CREATE SOURCE ks (n BIGINT) FROM KAFKA '{}' TOPIC 'flaky' FORMAT JSON
             WITH (start = 'earliest', kafka.socket.timeout.ms = '1500');
         CREATE QUERY total AS SELECT count(*) AS c FROM ks WINDOW CUMULATIVE;",
        broker.addr
    ))
    .await;
    s.eventually("10 rows", || async {
        let (_, src) = s.get("/sources/ks").await;
        src["counters"]["rows"] == 10
    })
    .await;
    // The broker stops answering (SIGSTOP: its connections hang, as behind a
    // dead network), then comes back (SIGCONT) with its data.
    let pid = broker.child.id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    let mut reported = false;
    for _ in 0..500 {
        let (_, src) = s.get("/sources/ks").await;
        if src["status"]["state"] == "retrying" {
            reported = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The engine keeps ticking meanwhile.
    let ticked = s.advance(2).await;
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    assert!(reported, "the source did not report the unreachable broker");
    assert_eq!(ticked, vec![1000, 2000]);
    for i in 10..20i64 {
        produce(&producer, "flaky", 0, "k", &json!({"n": i}).to_string()).await;
    }
    for _ in 0..1000 {
        let (_, src) = s.get("/sources/ks").await;
        if src["counters"]["rows"] == 20 && src["status"]["state"] == "connected" {
            s.advance(1).await;
            let (_, state) = s.get("/queries/total/state").await;
            assert_eq!(state["rows"], json!([{"c": 20}]));
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, src) = s.get("/sources/ks").await;
    panic!("consumption did not resume after the broker came back: {src}");
}
