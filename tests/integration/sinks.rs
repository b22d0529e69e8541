//! Output sinks without an external service: files (JSON, CSV), the log
//! (Spark's print(), read from the real binary's standard output), and the
//! confinement of sink paths.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::TestServer;

fn data_dir(name: &str) -> std::path::PathBuf {
    crate::common::fresh_dir(&format!("sinks-{name}"))
        .canonicalize()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sinks_write_one_file_per_batch_as_json_and_csv() {
    let dir = data_dir("files");
    let s = TestServer::with_data_dir(1000, &dir).await;
    s.ok("CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV;
          CREATE QUERY totals AS SELECT k, sum(v) AS total FROM s GROUP BY k ORDER BY k;
          CREATE SINK as_json FROM totals INTO FILES 'out/totals';
          CREATE SINK as_csv FROM totals INTO FILES 'out/totals' FORMAT CSV;")
        .await;
    s.post("/sources/s", "a,1\nb,2\na,3").await;
    s.advance(1).await;
    s.post("/sources/s", "\"c, the third\",5").await;
    s.advance(1).await;
    s.eventually("both sinks wrote 2 batches", || async {
        let (_, j) = s.get("/sinks/as_json").await;
        let (_, c) = s.get("/sinks/as_csv").await;
        j["counters"]["batches"] == 2 && c["counters"]["batches"] == 2
    })
    .await;
    let read = |name: &str| std::fs::read_to_string(dir.join("out").join(name)).unwrap();
    assert_eq!(
        read("totals-1000.json"),
        "{\"k\":\"a\",\"total\":4}\n{\"k\":\"b\",\"total\":2}\n"
    );
    assert_eq!(
        read("totals-2000.json"),
        "{\"k\":\"c, the third\",\"total\":5}\n"
    );
    assert_eq!(read("totals-1000.csv"), "k,total\na,4\nb,2\n");
    assert_eq!(read("totals-2000.csv"), "k,total\n\"c, the third\",5\n");
    let mut files: Vec<String> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "totals-1000.csv",
            "totals-1000.json",
            "totals-2000.csv",
            "totals-2000.json"
        ]
    );
    // A second sink on the same files is refused.
    let (status, body) = s
        .sql("CREATE SINK again FROM totals INTO FILES 'out/totals' FORMAT CSV")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("sink 'as_csv' already writes these files"),
        "{body}"
    );
    let (_, sink) = s.get("/sinks/as_csv").await;
    assert_eq!(sink["kind"], "files");
    assert_eq!(sink["format"], "CSV");
    assert_eq!(sink["counters"]["rows"], 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_paths_outside_the_allowed_directories_are_refused() {
    let dir = data_dir("confined");
    let outside = data_dir("outside");
    std::os::unix::fs::symlink(&outside, dir.join("escape")).unwrap();
    let s = TestServer::with_data_dir(1000, &dir).await;
    s.ok("CREATE SOURCE s (k TEXT) FROM HTTP FORMAT CSV; CREATE QUERY q AS SELECT k FROM s;")
        .await;
    for (path, expected) in [
        ("../elsewhere/x", "contains '..', which is not allowed"),
        (
            "/etc/sluice-out",
            "is outside the directories sluice may use",
        ),
        ("escape/x", "is outside the directories sluice may use"),
    ] {
        let (status, body) = s
            .sql(&format!("CREATE SINK f FROM q INTO FILES '{path}'"))
            .await;
        assert_eq!(status, 400, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{path}: {message}");
        assert_eq!(body["error"]["line"], 1);
    }
    let (_, sinks) = s.get("/sinks").await;
    assert_eq!(sinks["sinks"], serde_json::json!([]));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&outside);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_sink_prints_each_batch_as_spark_does() {
    let dir = data_dir("log");
    let init = dir.join("init.sql");
    std::fs::write(
        &init,
        "CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV;
         CREATE QUERY totals AS SELECT k, sum(v) AS total FROM s GROUP BY k ORDER BY k;
         CREATE SINK printed FROM totals INTO LOG;",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--addr", "127.0.0.1:0", "--clock", "manual"])
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "--init",
            init.to_str().unwrap(),
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep reading the log (a closed pipe would fail the server's writes).
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in stderr.lines().map_while(Result::ok) {
            if let Some(i) = l.find("addr=") {
                let addr = l[i + 5..].split_whitespace().next().unwrap_or_default();
                let _ = addr_tx.send(addr.to_string());
            }
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server prints its address");
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    for (path, body) in [
        ("/sources/s", "a,1\nb,2\na,3"),
        ("/clock/advance", "{\"batches\": 1}"),
    ] {
        let r = http.post(format!("{base}{path}")).body(body).send().await;
        assert!(r.is_ok_and(|r| r.status().is_success()), "POST {path}");
    }
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while lines.len() < 6 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        lines,
        [
            "-------------------------------------------",
            "Time: 1000 ms",
            "-------------------------------------------",
            "(a,4)",
            "(b,2)",
            "",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_sink_retries_a_failing_endpoint_and_delivers_every_batch() {
    use std::sync::{Arc, Mutex};
    // The endpoint: fails its first 2 requests with 500, then keeps the bodies.
    let received: Arc<Mutex<(u32, Vec<serde_json::Value>)>> = Arc::default();
    let state = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let state = Arc::clone(&state);
            async move {
                let mut s = state.lock().unwrap();
                s.0 += 1;
                if s.0 <= 2 {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                s.1.push(serde_json::from_slice(&body).unwrap());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let s = TestServer::start(1000).await;
    s.ok(&format!(
        "CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV;
         CREATE QUERY totals AS SELECT k, sum(v) AS total FROM s GROUP BY k ORDER BY k;
         CREATE SINK hook FROM totals INTO WEBHOOK '{hook}';"
    ))
    .await;
    s.post("/sources/s", "a,1\nb,2").await;
    s.advance(1).await;
    s.post("/sources/s", "a,5").await;
    s.advance(1).await;
    s.eventually("both batches delivered", || async {
        let (_, sink) = s.get("/sinks/hook").await;
        sink["counters"]["batches"] == 2
    })
    .await;
    let (_, sink) = s.get("/sinks/hook").await;
    assert_eq!(sink["counters"]["retries"], 2, "{sink}");
    assert_eq!(sink["counters"]["failed_batches"], 0);
    assert_eq!(sink["status"]["state"], "running");
    let got = received.lock().unwrap().1.clone();
    assert_eq!(
        got,
        [
            serde_json::json!({"batch_time": 1000, "rows": [{"k": "a", "total": 1}, {"k": "b", "total": 2}]}),
            serde_json::json!({"batch_time": 2000, "rows": [{"k": "a", "total": 5}]}),
        ]
    );
    let (status, body) = s
        .sql("CREATE SINK bad FROM totals INTO WEBHOOK 'ftp://x'")
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_sink_writes_one_file_per_batch_named_by_batch_time() {
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let dir = data_dir("parquet");
    let s = TestServer::with_data_dir(1000, &dir).await;
    s.ok("CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV;
          CREATE QUERY totals AS SELECT k, sum(v) AS total FROM s GROUP BY k ORDER BY k;
          CREATE SINK pq FROM totals INTO PARQUET 'out/totals';")
        .await;
    s.post("/sources/s", "a,1\nb,2\na,3").await;
    s.advance(2).await;
    s.eventually("2 batches written", || async {
        let (_, sink) = s.get("/sinks/pq").await;
        sink["counters"]["batches"] == 2
    })
    .await;
    let read = |ms: i64| {
        let f = std::fs::File::open(dir.join(format!("out/totals/{ms}.parquet"))).unwrap();
        let batches: Vec<_> = ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut rows = Vec::new();
        for b in batches {
            let k = b.column(0).as_string::<i32>().clone();
            let total = b
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            for i in 0..b.num_rows() {
                rows.push((k.value(i).to_string(), total.value(i)));
            }
        }
        rows
    };
    assert_eq!(read(1000), [("a".to_string(), 4), ("b".to_string(), 2)]);
    assert_eq!(read(2000), Vec::<(String, i64)>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wordcount_files_example_saves_each_batch_as_a_csv_file() {
    use tokio::io::AsyncWriteExt;
    let dir = data_dir("wc-files");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let s = TestServer::with_data_dir(1000, &dir).await;
    s.ok(&crate::examples::example("wordcount_files.sql").replace("localhost:9999", &addr))
        .await;
    let (mut peer, _) = listener.accept().await.unwrap();
    peer.write_all(b"to be or not to be\n").await.unwrap();
    s.eventually("6 words received", || async {
        let (_, src) = s.get("/sources/lines").await;
        src["counters"]["rows"] == 1
    })
    .await;
    s.advance(1).await;
    s.eventually("the file is written", || async {
        let (_, sink) = s.get("/sinks/wordcount_files").await;
        sink["counters"]["batches"] == 1
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(dir.join("out/wordcount-1000.csv")).unwrap(),
        "word,n\nbe,2\nto,2\nnot,1\nor,1\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
