//! The real binary: `sluice serve --init`, `sluice sql`, `sluice tail`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::TestServer;

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// Kills the child when the test ends, pass or fail.
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_prints_answers_and_errors() {
    let server = TestServer::start(1000).await;
    let out = Command::new(BIN)
        .args([
            "sql",
            "CREATE SOURCE s (line TEXT) FROM HTTP",
            "--server",
            &server.base,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["results"][0]["name"], "s");
    let out = Command::new(BIN)
        .args(["sql", "SELECT * FROM\n nope", "--server", &server.base])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "error: line 2, column 2: unknown source or stream 'nope'; known: s"
    );
    server.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_batches_like_spark() {
    let server = TestServer::start(1000).await;
    server.ok("CREATE SOURCE s (w TEXT) FROM HTTP; CREATE QUERY wc AS SELECT w, count(*) AS n FROM s GROUP BY w ORDER BY n DESC, w").await;
    let child = Command::new(BIN)
        .args(["tail", "wc", "--server", &server.base])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    // Wait until the subscription is live, then run two batches.
    server
        .eventually("tail subscribed", || async {
            server.get("/queries/wc").await.1["results"]["subscribers"] == 1
        })
        .await;
    server.post("/sources/s", "a\nb\na").await;
    server.advance(2).await;
    server.ok("DROP QUERY wc").await;
    let mut out = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(
        out,
        "-------------------------------------------\nTime: 1000 ms\n-------------------------------------------\n(a,2)\n(b,1)\n\n\
         -------------------------------------------\nTime: 2000 ms\n-------------------------------------------\n\n\
         (the query was dropped)\n"
    );
    server.server.stop().await;
}

/// Starts `sluice serve` on a free port; returns the child and its base URL.
fn serve(args: &[&str]) -> (Reap, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("addr=") {
                let addr: String = line[i + 5..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server prints its address");
    (Reap(child), format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_demo_from_init() {
    let dir = std::env::temp_dir().join(format!("sluice-cli-{}", std::process::id()));
    let init = concat!(env!("CARGO_MANIFEST_DIR"), "/queries/demo.sql");
    let (_child, base) = serve(&[
        "--clock",
        "manual",
        "--init",
        init,
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    let http = reqwest::Client::new();
    let r: serde_json::Value = http
        .post(format!("{base}/clock/advance"))
        .body("{\"batches\": 1}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["batch_times"], serde_json::json!([1000]));
    let r: serde_json::Value = http
        .get(format!("{base}/queries/lines_per_batch/results"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["batches"][0]["rows"],
        serde_json::json!([{"batch": "1970-01-01T00:00:01Z", "lines": 1000}])
    );
}

#[test]
fn serve_reports_a_bad_init_file_with_its_place() {
    let dir = std::env::temp_dir().join(format!("sluice-bad-init-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let init = dir.join("bad.sql");
    std::fs::write(
        &init,
        "CREATE SOURCE s (line TEXT) FROM HTTP;\nSELECT * FROM missing;\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--clock",
            "manual",
            "--init",
            init.to_str().unwrap(),
        ])
        .args(["--data-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: {}:2:15: statement 2: unknown source or stream 'missing'; known: s",
            init.display()
        )),
        "{stderr}"
    );
    let out = Command::new(BIN)
        .args(["serve", "--batch-interval", "7 parsecs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--batch-interval: unknown duration unit 'parsecs'"));
}
