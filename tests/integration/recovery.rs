//! Checkpoints and recovery with the real binary: kill -9, restart on the same
//! data dir, and the state is the checkpoint's (Spark's getOrCreate).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh data dir `sluice-<name>-<pid>` holding `init.sql` with `sql`.
pub fn scratch(name: &str, sql: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = crate::common::fresh_dir(name);
    let init = dir.join("init.sql");
    std::fs::write(&init, sql).unwrap();
    (dir, init)
}

pub fn start(dir: &std::path::Path, init: &std::path::Path) -> Server {
    start_with(dir, init, &[])
}

fn start_with(dir: &std::path::Path, init: &std::path::Path, env: &[(&str, &str)]) -> Server {
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
        .envs(env.iter().copied())
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

pub async fn call(http: &reqwest::Client, method: &str, url: String, body: &str) -> Value {
    let r = if method == "GET" {
        http.get(url)
    } else {
        http.post(url).body(body.to_string())
    };
    r.send().await.unwrap().json().await.unwrap()
}

/// Runs `batches` batches of the manual clock of the server at `base`; their times.
pub async fn advance(http: &reqwest::Client, base: &str, batches: u32) -> Value {
    call(
        http,
        "POST",
        format!("{base}/clock/advance"),
        &format!("{{\"batches\": {batches}}}"),
    )
    .await
}

const INIT: &str = "
CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV;
CREATE QUERY totals AS SELECT k, sum(v) AS total, count(*) AS n FROM s GROUP BY k WINDOW CUMULATIVE EMIT UPDATES;
CREATE QUERY recent AS SELECT k, sum(v) AS total FROM s GROUP BY k WINDOW SLIDING 4s EVERY 2s ORDER BY k;
CREATE QUERY raw_recent AS SELECT k, v FROM s WINDOW SLIDING 4s EVERY 2s ORDER BY k, v;
SELECT count(*) AS n FROM s;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_then_restart_resumes_from_the_last_checkpoint() {
    let (dir, init) = scratch("recovery", INIT);
    let http = reqwest::Client::new();

    let server = start(&dir, &init);
    let b = &server.base;
    call(&http, "POST", format!("{b}/sources/s"), "a,1\nb,2").await;
    advance(&http, b, 1).await;
    call(&http, "POST", format!("{b}/sources/s"), "a,10").await;
    // Batch 2 ends with a checkpoint (every 2 batches).
    advance(&http, b, 1).await;
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
    // Batch 3 is not checkpointed; then kill -9. Its acknowledged row is in the
    // write-ahead log.
    call(&http, "POST", format!("{b}/sources/s"), "c,100").await;
    advance(&http, b, 1).await;
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
    // Resume at the next batch: 3000, which gets the replayed row c,100 again;
    // the window's panes were restored too.
    call(&http, "POST", format!("{b}/sources/s"), "a,5").await;
    let times = advance(&http, b, 2).await;
    assert_eq!(times["batch_times"], json!([3000, 4000]));
    let window = call(&http, "GET", format!("{b}/queries/recent/results"), "").await;
    assert_eq!(
        window["batches"],
        json!([{"batch_time": 4000, "window_start": 0, "window_end": 4000, "rows": [{"k": "a", "total": 16}, {"k": "b", "total": 2}, {"k": "c", "total": 100}]}])
    );
    // A raw window (no aggregate: it buffers rows) keeps its rows too.
    let raw = call(&http, "GET", format!("{b}/queries/raw_recent/results"), "").await;
    assert_eq!(
        raw["batches"][0]["rows"],
        json!([{"k": "a", "v": 1}, {"k": "a", "v": 5}, {"k": "a", "v": 10}, {"k": "b", "v": 2}, {"k": "c", "v": 100}])
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
        json!([{"k": "a", "total": 16, "n": 3}, {"k": "b", "total": 2, "n": 1}, {"k": "c", "total": 100, "n": 1}])
    );
    let unnamed = call(&http, "GET", format!("{b}/queries/query_1"), "").await;
    assert_eq!(unnamed["kind"], "per-batch");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_checkpoint_is_ignored_and_a_foreign_version_refused() {
    let (dir, init) = scratch("torn", INIT);
    let http = reqwest::Client::new();
    let server = start(&dir, &init);
    let b = &server.base;
    call(&http, "POST", format!("{b}/sources/s"), "a,1").await;
    advance(&http, b, 2).await;
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

/// Per key: (sum of v, rows).
type Totals = std::collections::BTreeMap<String, (i64, i64)>;

fn add(totals: &mut Totals, body: &str) {
    for line in body.lines() {
        let (k, v) = line.split_once(',').unwrap();
        let e = totals.entry(k.to_string()).or_default();
        e.0 += v.parse::<i64>().unwrap();
        e.1 += 1;
    }
}

async fn state_of(http: &reqwest::Client, base: &str) -> Totals {
    let state = call(http, "GET", format!("{base}/queries/totals/state"), "").await;
    state["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["k"].as_str().unwrap().to_string(),
                (r["total"].as_i64().unwrap(), r["n"].as_i64().unwrap()),
            )
        })
        .collect()
}

/// What a feeding round left behind when the server was killed.
struct Fed {
    /// Bodies whose POST was answered 202.
    acknowledged: Vec<String>,
    /// The body being POSTed when the server died (answered or not).
    in_flight: Option<String>,
    /// The latest batch time the server ran, as far as the client knows.
    last_batch: i64,
}

/// POSTs bodies and advances the manual clock, as fast as the server answers,
/// until the server dies (killed by the caller, or aborted by a crash point).
async fn feed_until_dead(http: &reqwest::Client, base: &str, next: &mut u64) -> Fed {
    let mut fed = Fed {
        acknowledged: Vec::new(),
        in_flight: None,
        last_batch: 0,
    };
    loop {
        let i = *next;
        *next += 1;
        let body: String = (0..3)
            .map(|j| format!("k{},{}", (i * 3 + j) % 7, i * 10 + j))
            .collect::<Vec<_>>()
            .join("\n");
        fed.in_flight = Some(body.clone());
        match http
            .post(format!("{base}/sources/s"))
            .body(body.clone())
            .send()
            .await
        {
            Ok(r) if r.status() == 202 => fed.acknowledged.push(body),
            Ok(r) => panic!("ingest answered {}", r.status()),
            Err(_) => return fed,
        }
        fed.in_flight = None;
        if i % 3 == 2 {
            let advanced = http
                .post(format!("{base}/clock/advance"))
                .body("{\"batches\": 1}")
                .send()
                .await;
            let Ok(r) = advanced else { return fed };
            let Ok(v) = r.json::<Value>().await else {
                return fed;
            };
            if let Some(t) = v["batch_times"][0].as_i64() {
                fed.last_batch = t;
            }
        }
    }
}

/// Restarts on `dir`, runs batches until every logged row is in a batch, and
/// checks the state against the acknowledged rows (plus, or not, the request in
/// flight at the kill, which may or may not have been logged). Returns the
/// server and the expected totals from now on.
async fn restart_and_check(
    http: &reqwest::Client,
    dir: &std::path::Path,
    init: &std::path::Path,
    mut expected: Totals,
    fed: Fed,
    round: &str,
) -> (Server, Totals) {
    for body in &fed.acknowledged {
        add(&mut expected, body);
    }
    let server = start(dir, init);
    let b = server.base.clone();
    // Rows acknowledged after the last batch the client saw go into the next one.
    loop {
        let health = call(http, "GET", format!("{b}/health"), "").await;
        if health["last_batch_time"].as_i64().unwrap_or(0) > fed.last_batch + 1000 {
            break;
        }
        call(
            http,
            "POST",
            format!("{b}/clock/advance"),
            "{\"batches\": 1}",
        )
        .await;
    }
    let state = state_of(http, &b).await;
    let mut with_in_flight = expected.clone();
    if let Some(body) = &fed.in_flight {
        add(&mut with_in_flight, body);
    }
    let log = server.log.lock().unwrap().clone();
    if state == expected {
        (server, expected)
    } else if state == with_in_flight {
        (server, with_in_flight)
    } else {
        panic!(
            "{round}: after kill -9 the state is\n{state:?}\nbut the acknowledged rows make\n{expected:?}\n(in flight: {:?})\nlog:\n{log}",
            fed.in_flight
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_at_random_moments_loses_no_acknowledged_row() {
    use rand::{Rng, SeedableRng};
    let (dir, init) = scratch(
        "kill",
        "CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV;
         CREATE QUERY totals AS SELECT k, sum(v) AS total, count(*) AS n FROM s GROUP BY k WINDOW CUMULATIVE EMIT UPDATES;",
    );
    let seed: u64 = std::env::var("SLUICE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("kill points from seed {seed} (rerun with SLUICE_KILL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let http = reqwest::Client::new();
    let mut expected = Totals::new();
    let mut next = 0u64;
    let mut server = start(&dir, &init);
    for round in 0..5 {
        let pid = server.child.id();
        let after = Duration::from_millis(rng.random_range(50..800));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(after);
            let status = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        });
        let fed = feed_until_dead(&http, &server.base, &mut next).await;
        killer.join().unwrap();
        drop(server);
        let what = format!("round {round} (killed after {after:?})");
        (server, expected) = restart_and_check(&http, &dir, &init, expected, fed, &what).await;
    }
    drop(server);

    // A crash between a checkpoint's data files and its COMMIT marker.
    let server = start_with(
        &dir,
        &init,
        &[("SLUICE_CRASH_AT", "checkpoint-before-commit")],
    );
    let fed = feed_until_dead(&http, &server.base, &mut next).await;
    let status = {
        let mut server = server;
        let status = server.child.wait().unwrap();
        drop(server);
        status
    };
    assert!(!status.success(), "the crash point stops the server");
    let torn = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| !e.path().join("COMMIT").exists())
        .count();
    assert_eq!(torn, 1, "one checkpoint without its marker");
    let (server, _) =
        restart_and_check(&http, &dir, &init, expected, fed, "crash before COMMIT").await;
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains("ignoring a torn or partial checkpoint"),
        "{log}"
    );
    // The log is trimmed: only segments after the last checkpoint remain.
    let segments = std::fs::read_dir(dir.join("wal").join("s"))
        .unwrap()
        .count();
    assert!(segments <= 3, "{segments} log segments kept");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_resumes_without_gaps_or_repeats_after_kill_nine() {
    let (dir, init) = scratch(
        "kill-gen",
        "CREATE SOURCE g (line TEXT) FROM GENERATOR FORMAT LINES WITH (rate = '100');
         CREATE STREAM words AS SELECT unnest(string_to_array(line, ' ')) AS word FROM g;
         CREATE QUERY counts AS SELECT word, count(*) AS n FROM words GROUP BY word WINDOW CUMULATIVE;",
    );
    std::fs::create_dir_all(dir.join("reference")).unwrap();
    let http = reqwest::Client::new();
    let state = |base: String| {
        let http = http.clone();
        async move {
            call(
                &http,
                "GET",
                format!("{base}/queries/counts/state?order_by=word"),
                "",
            )
            .await
        }
    };
    // An uninterrupted run of 5 batches.
    let reference = start(&dir.join("reference"), &init);
    let b = reference.base.clone();
    advance(&http, &b, 5).await;
    let expected = state(b).await;
    drop(reference);

    let server = start(&dir, &init);
    let b = server.base.clone();
    // Checkpoints at 2000 and 4000 (every 2 batches); batch 5000 is only in the log.
    advance(&http, &b, 5).await;
    assert_eq!(state(b).await, expected);
    drop(server); // kill -9
    let server = start(&dir, &init);
    let b = server.base.clone();
    assert_eq!(state(b.clone()).await["batch_time"], 4000);
    // Batch 5000 again: the logged lines, not new ones.
    advance(&http, &b, 1).await;
    assert_eq!(state(b.clone()).await, expected);
    let words: i64 = expected["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["n"].as_i64().unwrap())
        .sum();
    assert!(words >= 500, "{words} words in 500 lines");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_created_between_checkpoints_survives_kill_nine_after_one_batch() {
    let (dir, init) = scratch("catalog", INIT);
    let http = reqwest::Client::new();
    let server = start(&dir, &init);
    let b = server.base.clone();
    // Checkpoints every 2 batches: at 1000 (the init's catalog) and 2000.
    advance(&http, &b, 2).await;
    let created = call(
        &http,
        "POST",
        format!("{b}/sql"),
        "CREATE QUERY later AS SELECT k, count(*) AS n FROM s GROUP BY k WINDOW CUMULATIVE",
    )
    .await;
    assert_eq!(created["results"][0]["name"], "later", "{created}");
    // Batch 3000 is not on the every-2 grid, but the catalog changed: checkpoint.
    advance(&http, &b, 1).await;
    drop(server); // kill -9
    let server = start(&dir, &init);
    let b = server.base.clone();
    let health = call(&http, "GET", format!("{b}/health"), "").await;
    assert_eq!(health["last_batch_time"], 3000);
    let later = call(&http, "GET", format!("{b}/queries/later"), "").await;
    assert_eq!(later["kind"], "cumulative", "{later}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
