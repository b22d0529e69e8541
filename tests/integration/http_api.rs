//! The HTTP API: ingest, errors, query details, results by poll, SSE and NDJSON,
//! DELETE, the clock, metrics.

use futures::StreamExt;
use serde_json::json;
use sluice::clock::Clock;
use sluice::config::Config;
use sluice::time::Interval;

use crate::common::{rows, TestServer};

#[tokio::test]
async fn http_ingest_is_all_or_nothing() {
    let server = TestServer::start(1000).await;
    server.ok("CREATE SOURCE ev (k TEXT, v BIGINT) FROM HTTP FORMAT JSON; CREATE QUERY n AS SELECT count(*) AS n, sum(v) AS v FROM ev").await;
    let (status, body) = server
        .post(
            "/sources/ev",
            "{\"k\": \"a\", \"v\": 1}\n\n{\"k\": \"b\", \"v\": 2}\n",
        )
        .await;
    assert_eq!((status, body), (202, json!({"accepted": 2})));
    let (status, body) = server
        .post(
            "/sources/ev",
            "{\"k\": \"c\", \"v\": 3}\n{\"k\": \"d\", \"v\": \"four\"}\n",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": {"message": "line 2: column 'v': a string is not BIGINT; nothing of this request was kept", "line": 2}})
    );
    let (status, body) = server.post("/sources/ev", "{\"k\": ").await;
    assert_eq!((status, body["error"]["line"].as_i64()), (400, Some(1)));
    server.advance(1).await;
    assert_eq!(rows(&server.results("n", None).await[0]), ["2 | 3"]);

    let (status, body) = server.post("/sources/nope", "x").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (404, Some("unknown source 'nope'"))
    );
    server.server.stop().await;
}

#[tokio::test]
async fn ingest_into_a_tcp_source_is_refused() {
    let server = TestServer::start(1000).await;
    server
        .ok("CREATE SOURCE t (line TEXT) FROM TCP '127.0.0.1:1'")
        .await;
    let (status, body) = server.post("/sources/t", "x").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "source 't' is not an HTTP source; only FROM HTTP sources accept POSTed rows"
    );
    server.server.stop().await;
}

#[tokio::test]
async fn sql_errors_have_line_and_column() {
    let server = TestServer::start(1000).await;
    let (status, body) = server
        .sql("CREATE SOURCE s (line TEXT) FROM HTTP;\nSELECT line\n  FROM nope")
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": {
            "message": "unknown source or stream 'nope'; known: s",
            "line": 3, "column": 8, "statement": 2,
            "applied": [{"statement": "CREATE SOURCE", "name": "s", "kind": "http", "format": "LINES"}]
        }})
    );
    let (status, body) = server.sql("SELECT line FROM s WHERE").await;
    assert_eq!(
        (
            status,
            body["error"]["line"].as_i64(),
            body["error"]["column"].as_i64()
        ),
        (400, Some(1), Some(25))
    );
    let (status, body) = server.sql("SELECT lnie FROM s").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("No field named lnie"),
        "{body}"
    );
    assert_eq!(
        (
            body["error"]["line"].as_i64(),
            body["error"]["column"].as_i64()
        ),
        (Some(1), Some(8))
    );
    let (status, body) = server.sql("CREATE SOURCE s (line TEXT) FROM HTTP").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (
            400,
            Some("a source named 's' already exists; DROP it first or choose another name")
        )
    );
    let (status, body) = server
        .sql("CREATE SOURCE g (line TEXT) FROM GENERATOR WITH (rate = 'fast')")
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("generator option rate = 'fast'"),
        "{body}"
    );
    let (status, body) = server.sql("").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (400, Some("no SQL statement found in the request"))
    );
    // A JSON body works too; a broken one is explained.
    let (status, body) = server.sql(r#"{"sql": "SHOW SOURCES"}"#).await;
    assert_eq!(
        (status, body["results"][0]["rows"][0]["name"].as_str()),
        (200, Some("s"))
    );
    let (status, body) = server.sql(r#"{"sql": 1}"#).await;
    assert_eq!(status, 400, "{body}");
    server.server.stop().await;
}

#[tokio::test]
async fn query_details_metrics_and_delete() {
    let server = TestServer::start(500).await;
    server.ok("CREATE SOURCE s (k TEXT) FROM HTTP; CREATE QUERY q WITH (parallelism = 2) AS SELECT k, count(*) AS n FROM s GROUP BY k").await;
    server.post("/sources/s", "a\nb\na").await;
    assert_eq!(server.advance(2).await, [500, 1000]);
    let (status, q) = server.get("/queries/q").await;
    assert_eq!(status, 200);
    assert_eq!(q["kind"], "per-batch");
    assert_eq!(q["status"], json!({"state": "running"}));
    assert_eq!(q["parallelism"], 2);
    assert_eq!(q["inputs"], json!(["s"]));
    assert_eq!(
        q["schema"][1],
        json!({"name": "n", "type": "Int64", "nullable": false})
    );
    assert_eq!(q["metrics"]["batches"], 2);
    assert_eq!(q["metrics"]["input_rows_total"], 3);
    assert_eq!(q["metrics"]["output_rows_total"], 2);
    assert_eq!(q["metrics"]["history"][0]["input_rows"], 3);
    assert_eq!(q["metrics"]["last_batch"]["batch_time"], 1000);
    let (_, s) = server.get("/sources/s").await;
    assert_eq!(
        s["last_batch"],
        json!({"batch_time": 1000, "rows": 0, "scheduling_delay_ms": 0})
    );

    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sluice_query_batches_total{query=\"q\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_source_rows_total{source=\"s\"} 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_engine_last_batch_time_ms 1000\n"),
        "{metrics}"
    );

    let (_, listed) = server.get("/queries").await;
    assert_eq!(listed["queries"][0]["name"], "q");
    let r = server
        .http
        .delete(server.url("/queries/q"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (status, body) = server.get("/queries/q").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (404, Some("unknown query 'q'"))
    );
    let (status, _) = server.get("/queries/q/results").await;
    assert_eq!(status, 404);
    server.server.stop().await;
}

#[tokio::test]
async fn poll_replay_and_ndjson() {
    let server = TestServer::start(1000).await;
    server
        .ok("CREATE SOURCE s (k TEXT) FROM HTTP; CREATE QUERY c AS SELECT count(*) AS n FROM s")
        .await;
    server.advance(3).await;
    let (_, page) = server.get("/queries/c/results?limit=2").await;
    assert_eq!(
        page,
        json!({"batches": [{"batch_time": 1000, "rows": [{"n": 0}]}, {"batch_time": 2000, "rows": [{"n": 0}]}], "next": 2000})
    );
    let (_, page) = server.get("/queries/c/results?after=2000").await;
    assert_eq!(
        page,
        json!({"batches": [{"batch_time": 3000, "rows": [{"n": 0}]}], "next": 3000})
    );
    let (_, page) = server.get("/queries/c/results?after=3000").await;
    assert_eq!(page, json!({"batches": [], "next": 3000}));
    let (status, _) = server.get("/queries/c/results?after=soon").await;
    assert_eq!(status, 400);

    // SSE with Last-Event-ID replays what came after it, then goes live.
    let r = server
        .http
        .get(server.url("/queries/c/stream"))
        .header("Last-Event-ID", "1000")
        .send()
        .await
        .unwrap();
    let mut sse = r.bytes_stream();
    let mut text = String::new();
    while text.matches("event: batch").count() < 2 {
        text.push_str(std::str::from_utf8(&sse.next().await.unwrap().unwrap()).unwrap());
    }
    assert!(text.starts_with("event: batch\nid: 2000\n"), "{text}");
    assert!(text.contains("event: batch\nid: 3000\n"), "{text}");

    // NDJSON from ?after=, then live, then the end when the query is dropped.
    let r = server
        .http
        .get(server.url("/queries/c/stream?format=ndjson&after=2000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let mut lines = r.bytes_stream();
    server.advance(1).await;
    server.ok("DROP QUERY c").await;
    let mut body = String::new();
    while let Some(chunk) = lines.next().await {
        body.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert_eq!(
        body,
        "{\"batch_time\":3000,\"rows\":[{\"n\":0}]}\n{\"batch_time\":4000,\"rows\":[{\"n\":0}]}\n{\"end\":\"query dropped\",\"code\":\"dropped\"}\n"
    );
    server.server.stop().await;
}

#[tokio::test]
async fn state_returns_the_latest_table_sorted() {
    let server = TestServer::start(1000).await;
    server.ok("CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV; CREATE QUERY t AS SELECT k, sum(v) AS v FROM s GROUP BY k").await;
    let (_, empty) = server.get("/queries/t/state").await;
    assert_eq!(empty, json!({"batch_time": null, "rows": []}));
    server.post("/sources/s", "a,1\nb,5\nc,3").await;
    server.advance(1).await;
    let (_, state) = server
        .get("/queries/t/state?order_by=v%20desc&limit=2")
        .await;
    assert_eq!(
        state,
        json!({"batch_time": 1000, "rows": [{"k": "b", "v": 5}, {"k": "c", "v": 3}]})
    );
    let (status, body) = server.get("/queries/t/state?order_by=nope").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (
            400,
            Some("unknown column 'nope' in order_by; columns: k, v")
        )
    );
    server.server.stop().await;
}

#[tokio::test]
async fn advancing_the_system_clock_is_refused() {
    let mut config = Config::for_test(1000);
    config.clock = Clock::system(Interval::from_millis(60_000).unwrap());
    let server = TestServer::with_config(config).await;
    let (status, body) = server.post("/clock/advance", "{\"batches\": 1}").await;
    assert_eq!(status, 409);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--clock manual"));
    server.server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let mut config = Config::for_test(1000);
    config.api.max_body_bytes = 1000;
    let server = TestServer::with_config(config).await;
    let (status, body) = server.post("/clock/advance", "{\"batches\": 0}").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (
            400,
            Some("\"batches\" must be a whole number from 1 to 100000")
        )
    );
    let (status, _) = server.post("/sql", &"x".repeat(2000)).await;
    assert_eq!(status, 413);
    let (status, body) = server.get("/nowhere").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (404, Some("no such endpoint; see docs/http-api.md"))
    );
    let r = server
        .http
        .post(server.url("/sql"))
        .body(vec![0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (status, body) = server.get("/health").await;
    assert_eq!(
        (status, body),
        (
            200,
            serde_json::json!({"status": "ok", "last_batch_time": null, "batch_interval_ms": 1000, "clock": "manual", "auth": null})
        )
    );
    server.server.stop().await;
}

/// The dashboard's files are in the binary: `/` and every module it imports.
#[tokio::test]
async fn the_dashboard_is_served_from_the_binary() {
    let server = TestServer::start(1000).await;
    let get = |path: &str| {
        let url = server.url(path);
        let http = server.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            let kind = r.headers()["content-type"].to_str().unwrap().to_string();
            (r.status().as_u16(), kind, r.text().await.unwrap())
        }
    };
    let (status, kind, page) = get("/").await;
    assert_eq!((status, kind.as_str()), (200, "text/html; charset=utf-8"));
    assert!(page.contains("<script type=\"module\" src=\"/ui/app.js\">"));
    // Every relative import of every module resolves to a served module.
    let mut pending = vec!["app.js".to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(file) = pending.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let (status, kind, text) = get(&format!("/ui/{file}")).await;
        assert_eq!(
            (status, kind.as_str()),
            (200, "text/javascript; charset=utf-8"),
            "{file}"
        );
        for line in text.lines().filter(|l| l.starts_with("import ")) {
            if let Some(module) = line.split("\"./").nth(1).and_then(|r| r.split('"').next()) {
                pending.push(module.to_string());
            }
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [
            "api.js",
            "app.js",
            "chart.js",
            "dom.js",
            "editor.js",
            "health.js",
            "overview.js",
            "query.js",
            "table.js"
        ]
    );
    let (status, kind, _) = get("/ui/style.css").await;
    assert_eq!((status, kind.as_str()), (200, "text/css; charset=utf-8"));
    let (status, body) = server.get("/ui/missing.js").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (404, Some("no dashboard file 'missing.js'"))
    );
    server.server.stop().await;
}

#[tokio::test]
async fn a_failing_query_is_marked_failed_and_others_go_on() {
    let server = TestServer::start(1000).await;
    server
        .ok("CREATE SOURCE s (a BIGINT, b BIGINT) FROM HTTP FORMAT CSV;
             CREATE QUERY ratio AS SELECT a / b AS r FROM s;
             CREATE QUERY total AS SELECT sum(a) AS a FROM s")
        .await;
    server.post("/sources/s", "4,0").await;
    server.advance(2).await;
    let (_, q) = server.get("/queries/ratio").await;
    assert_eq!(q["status"]["state"], "failed");
    assert_eq!(q["status"]["batch_time"], 1000);
    assert!(
        q["status"]["error"]
            .as_str()
            .unwrap()
            .contains("Divide by zero"),
        "{q}"
    );
    let totals = server.results("total", None).await;
    assert_eq!(totals.len(), 2);
    assert_eq!(rows(&totals[0]), ["4"]);
    server.server.stop().await;
}

#[tokio::test]
async fn readers_of_a_failed_stream_fail_too() {
    let server = TestServer::start(1000).await;
    server
        .ok("CREATE SOURCE s (a BIGINT, b BIGINT) FROM HTTP FORMAT CSV;
             CREATE STREAM ratios AS SELECT a / b AS r FROM s;
             CREATE QUERY n AS SELECT count(*) AS n FROM ratios;
             CREATE QUERY direct AS SELECT count(*) AS n FROM s")
        .await;
    server.advance(1).await;
    server.post("/sources/s", "4,0").await;
    server.advance(1).await;
    let (_, stream) = server.get("/streams/ratios").await;
    assert_eq!(stream["status"]["state"], "failed");
    let (_, q) = server.get("/queries/n").await;
    assert_eq!(
        q["status"],
        json!({"state": "failed", "error": "its input stream 'ratios' has failed", "batch_time": 2000})
    );
    assert_eq!(rows(&server.results("n", None).await[0]), ["0"]);
    assert_eq!(server.results("n", None).await.len(), 1);
    assert_eq!(server.results("direct", None).await.len(), 2);
    server.server.stop().await;
}

/// Batches above exec::PARALLEL_MIN_ROWS run the multi-partition plan (hash
/// repartitioning, a hash join, a TopK): it must give exact results batch after
/// batch, i.e. the plan's state is reset between runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_rerun_the_parallel_plan_exactly() {
    let server = TestServer::start(1000).await;
    server
        .ok("CREATE SOURCE a (k BIGINT) FROM HTTP FORMAT CSV;
             CREATE SOURCE b (k BIGINT, name TEXT) FROM HTTP FORMAT CSV;
             CREATE QUERY joined WITH (parallelism = 2) AS
                 SELECT name, count(*) AS n FROM a JOIN b ON a.k = b.k GROUP BY name ORDER BY n DESC, name LIMIT 3;
             CREATE QUERY per_key WITH (parallelism = 2) AS SELECT k, count(*) AS n FROM a GROUP BY k")
        .await;
    for batch in 0..3i64 {
        // 40 000 rows: k = i % 100, but key `batch` gets 100 extra rows this batch.
        let mut body: String = (0..40_000).map(|i| format!("{}\n", i % 100)).collect();
        body.extend((0..100).map(|_| format!("{batch}\n")));
        let (status, _) = server.post("/sources/a", &body).await;
        assert_eq!(status, 202);
        let names: String = (0..100).map(|k| format!("{k},name{k:03}\n")).collect();
        server.post("/sources/b", &names).await;
        server.advance(1).await;
    }
    let joined = server.results("joined", None).await;
    assert_eq!(
        rows(&joined[0]),
        ["name000 | 500", "name001 | 400", "name002 | 400"]
    );
    assert_eq!(
        rows(&joined[1]),
        ["name001 | 500", "name000 | 400", "name002 | 400"]
    );
    assert_eq!(
        rows(&joined[2]),
        ["name002 | 500", "name000 | 400", "name001 | 400"]
    );
    for (i, batch) in server.results("per_key", None).await.iter().enumerate() {
        let counts = batch["rows"].as_array().unwrap();
        assert_eq!(counts.len(), 100);
        let total: i64 = counts.iter().map(|r| r["n"].as_i64().unwrap()).sum();
        assert_eq!(total, 40_100);
        let extra = counts.iter().find(|r| r["k"] == i as i64).unwrap();
        assert_eq!(extra["n"], 500);
    }
    let (_, q) = server.get("/queries/joined").await;
    assert_eq!(q["metrics"]["last_batch"]["input_rows"], 40_200);
    server.server.stop().await;
}
