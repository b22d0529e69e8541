//! Checkpoints and recovery with the real binary: kill -9, restart on the same
//! data dir, and the state is the checkpoint's (Spark's getOrCreate).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

struct Server {
    child: Child,
    base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path, init: &std::path::Path) -> Server {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--clock",
            "manual",
            "--checkpoint-interval",
            "2",
        ])
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "--init",
            init.to_str().unwrap(),
        ])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("addr=") {
                let _ = tx.send(
                    line[i + 5..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server prints its address");
    Server {
        child,
        base: format!("http://{addr}"),
        log,
    }
}

async fn call(http: &reqwest::Client, method: &str, url: String, body: &str) -> Value {
    let r = if method == "GET" {
        http.get(url)
    } else {
        http.post(url).body(body.to_string())
    };
    r.send().await.unwrap().json().await.unwrap()
}

const INIT: &str = "
CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV;
CREATE QUERY totals AS SELECT k, sum(v) AS total, count(*) AS n FROM s GROUP BY k WINDOW CUMULATIVE EMIT UPDATES;
CREATE QUERY recent AS SELECT k, sum(v) AS total FROM s GROUP BY k WINDOW SLIDING 4s EVERY 2s ORDER BY k;
SELECT count(*) AS n FROM s;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_then_restart_resumes_from_the_last_checkpoint() {
    let dir = std::env::temp_dir().join(format!("sluice-recovery-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let init = dir.join("init.sql");
    std::fs::write(&init, INIT).unwrap();
    let http = reqwest::Client::new();

    let server = start(&dir, &init);
    let b = &server.base;
    call(&http, "POST", format!("{b}/sources/s"), "a,1\nb,2").await;
    call(
        &http,
        "POST",
        format!("{b}/clock/advance"),
        "{\"batches\": 1}",
    )
    .await;
    call(&http, "POST", format!("{b}/sources/s"), "a,10").await;
    // Batch 2 ends with a checkpoint (every 2 batches).
    call(
        &http,
        "POST",
        format!("{b}/clock/advance"),
        "{\"batches\": 1}",
    )
    .await;
    let at_checkpoint = call(
        &http,
        "GET",
        format!("{b}/queries/totals/state?order_by=k"),
        "",
    )
    .await;
    assert_eq!(
        at_checkpoint,
        json!({"batch_time": 2000, "rows": [{"k": "a", "total": 11, "n": 2}, {"k": "b", "total": 2, "n": 1}]})
    );
    // Batch 3 is not checkpointed; then kill -9.
    call(&http, "POST", format!("{b}/sources/s"), "c,100").await;
    call(
        &http,
        "POST",
        format!("{b}/clock/advance"),
        "{\"batches\": 1}",
    )
    .await;
    drop(server);

    let server = start(&dir, &init);
    let b = &server.base;
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("restored from checkpoint"), "{log}");
    assert!(log.contains("--init skipped"), "{log}");
    let restored = call(
        &http,
        "GET",
        format!("{b}/queries/totals/state?order_by=k"),
        "",
    )
    .await;
    assert_eq!(restored["rows"], at_checkpoint["rows"]);
    let (_, health) = (0, call(&http, "GET", format!("{b}/health"), "").await);
    assert_eq!(health["last_batch_time"], 2000);
    // Resume at the next batch: 3000; the window's panes were restored too.
    call(&http, "POST", format!("{b}/sources/s"), "a,5").await;
    let times = call(
        &http,
        "POST",
        format!("{b}/clock/advance"),
        "{\"batches\": 2}",
    )
    .await;
    assert_eq!(times["batch_times"], json!([3000, 4000]));
    let window = call(&http, "GET", format!("{b}/queries/recent/results"), "").await;
    assert_eq!(
        window["batches"],
        json!([{"batch_time": 4000, "window_start": 0, "window_end": 4000, "rows": [{"k": "a", "total": 16}, {"k": "b", "total": 2}]}])
    );
    let totals = call(
        &http,
        "GET",
        format!("{b}/queries/totals/state?order_by=k"),
        "",
    )
    .await;
    assert_eq!(
        totals["rows"],
        json!([{"k": "a", "total": 16, "n": 3}, {"k": "b", "total": 2, "n": 1}])
    );
    let unnamed = call(&http, "GET", format!("{b}/queries/query_1"), "").await;
    assert_eq!(unnamed["kind"], "per-batch");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_checkpoint_is_ignored_and_a_foreign_version_refused() {
    let dir = std::env::temp_dir().join(format!("sluice-torn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let init = dir.join("init.sql");
    std::fs::write(&init, INIT).unwrap();
    let http = reqwest::Client::new();
    let server = start(&dir, &init);
    let b = &server.base;
    call(&http, "POST", format!("{b}/sources/s"), "a,1").await;
    call(
        &http,
        "POST",
        format!("{b}/clock/advance"),
        "{\"batches\": 2}",
    )
    .await;
    drop(server);
    // A later checkpoint killed before its COMMIT marker.
    let torn = dir
        .join("checkpoints")
        .join(sluice::state::checkpoint::dir_name(9000));
    std::fs::create_dir_all(&torn).unwrap();
    std::fs::write(torn.join("000-totals.parquet"), b"partial").unwrap();
    let server = start(&dir, &init);
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains("ignoring a torn or partial checkpoint"),
        "{log}"
    );
    let health = call(&http, "GET", format!("{}/health", server.base), "").await;
    assert_eq!(health["last_batch_time"], 2000);
    drop(server);
    // A complete checkpoint of another format version: refused, not half-loaded.
    let future = dir
        .join("checkpoints")
        .join(sluice::state::checkpoint::dir_name(99_000));
    std::fs::create_dir_all(&future).unwrap();
    std::fs::write(
        future.join("manifest.json"),
        r#"{"format_version": 99, "batch_time": 99000, "catalog": [], "files": []}"#,
    )
    .unwrap();
    std::fs::write(future.join("COMMIT"), b"").unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--clock",
            "manual",
            "--data-dir",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has format version 99, but this sluice reads version 1"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
