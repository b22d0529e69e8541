//! Windows beyond their semantics files: how they are computed and what they hold.

use serde_json::json;

use crate::common::TestServer;

/// A 10-day window sliding every minute at T = 1 s keeps partial aggregates per
/// one-minute pane: its memory follows panes × keys, not the rows it has seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_day_window_holds_panes_times_keys_not_rows() {
    let server = TestServer::start(1000).await;
    server
        .ok(
            "CREATE SOURCE sales (product TEXT, qty BIGINT) FROM HTTP FORMAT CSV;
             CREATE QUERY best AS SELECT product, sum(qty) AS sold FROM sales GROUP BY product
                 WINDOW SLIDING 10d EVERY 1m ORDER BY sold DESC, product LIMIT 1;
             CREATE QUERY raw AS SELECT product FROM sales WINDOW SLIDING 10d EVERY 1m",
        )
        .await;
    let keys = 5;
    let minutes = 6;
    for _ in 0..minutes {
        for _ in 0..3 {
            // 3 batches a minute with 500 sales of 5 products each.
            let body: String = (0..500).map(|i| format!("p{},1\n", i % keys)).collect();
            assert_eq!(server.post("/sources/sales", &body).await.0, 202);
            server.advance(1).await;
        }
        server.advance(57).await;
    }
    let (_, q) = server.get("/queries/best").await;
    let window = &q["window"];
    assert_eq!(window["mode"], "panes");
    assert_eq!(
        (
            window["length_ms"].as_i64(),
            window["slide_ms"].as_i64(),
            window["pane_ms"].as_i64()
        ),
        (Some(864_000_000), Some(60_000), Some(60_000))
    );
    let held = &window["held"];
    let rows_seen = minutes * 3 * 500;
    // Panes: one per minute; rows: the panes' and the merged states' keys.
    assert_eq!(held["panes"], minutes);
    let state_rows = held["rows"].as_i64().unwrap();
    assert!(state_rows <= (minutes + 2) * keys, "{held}");
    // The raw window, by contrast, holds every row.
    let (_, raw) = server.get("/queries/raw").await;
    assert_eq!(raw["window"]["mode"], "raw");
    assert_eq!(raw["window"]["held"]["rows"], rows_seen);
    assert!(
        raw["window"]["held"]["bytes"].as_i64().unwrap() > 20 * held["bytes"].as_i64().unwrap(),
        "{held} vs {}",
        raw["window"]["held"]
    );
    // And the answer is the window's, over every minute so far.
    let (_, state) = server.get("/queries/best/state").await;
    assert_eq!(
        state["rows"],
        json!([{"product": "p0", "sold": rows_seen / keys}])
    );
    assert_eq!(state["window_start"], 360_000 - 864_000_000);
    server.server.stop().await;
}

/// Panes leave the window: after the window's length without input, nothing is held.
#[tokio::test]
async fn panes_that_leave_the_window_are_dropped() {
    let server = TestServer::start(1000).await;
    server.ok("CREATE SOURCE s (k TEXT) FROM HTTP; CREATE QUERY w AS SELECT k, count(*) AS n FROM s GROUP BY k WINDOW SLIDING 4s EVERY 2s").await;
    for i in 0..4 {
        server.post("/sources/s", &format!("k{i}\nshared")).await;
        server.advance(1).await;
    }
    let (_, q) = server.get("/queries/w").await;
    assert_eq!(q["window"]["held"]["panes"], 2);
    server.advance(6).await;
    let (_, q) = server.get("/queries/w").await;
    assert_eq!(q["window"]["held"]["rows"], 0, "{}", q["window"]);
    let (_, state) = server.get("/queries/w/state").await;
    assert_eq!(
        state,
        json!({"batch_time": 10000, "window_start": 6000, "window_end": 10000, "rows": []})
    );
}

#[tokio::test]
async fn explain_shows_how_a_window_is_computed() {
    let server = TestServer::start(1000).await;
    server
        .ok("CREATE SOURCE a (k TEXT) FROM HTTP; CREATE SOURCE b (k TEXT) FROM HTTP")
        .await;
    let body = server
        .ok("EXPLAIN SELECT k, count(*) AS n FROM a GROUP BY k WINDOW SLIDING 60s EVERY 5s")
        .await;
    let plan = body["results"][0]["plan"].as_str().unwrap();
    assert!(
        plan.starts_with("window: incremental, partial aggregates per batch merged in panes of 5s"),
        "{plan}"
    );
    assert!(plan.contains("mode=PartialReduce"), "{plan}");
    let body = server
        .ok("EXPLAIN SELECT a.k FROM a JOIN b ON a.k = b.k WINDOW TUMBLING 10s")
        .await;
    assert!(body["results"][0]["plan"]
        .as_str()
        .unwrap()
        .starts_with("window: raw input rows"));
    server.server.stop().await;
}

/// Batches above exec::PARALLEL_MIN_ROWS run the parallel partial plan: its states
/// come from several partitions and still merge exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_use_the_parallel_partial_plan_exactly() {
    let server = TestServer::start(1000).await;
    server
        .ok("CREATE SOURCE a (k BIGINT) FROM HTTP FORMAT CSV;
             CREATE QUERY w WITH (parallelism = 2) AS SELECT k, count(*) AS n FROM a GROUP BY k
                 WINDOW SLIDING 2s EVERY 1s ORDER BY n DESC, k LIMIT 2")
        .await;
    for batch in 0..3i64 {
        let mut body: String = (0..40_000).map(|i| format!("{}\n", i % 100)).collect();
        body.extend((0..50).map(|_| format!("{batch}\n")));
        assert_eq!(server.post("/sources/a", &body).await.0, 202);
        server.advance(1).await;
    }
    let batches = server.results("w", None).await;
    let rows: Vec<Vec<String>> = batches.iter().map(crate::common::rows).collect();
    assert_eq!(rows[0], ["0 | 450", "1 | 400"]);
    assert_eq!(rows[1], ["0 | 850", "1 | 850"]);
    assert_eq!(rows[2], ["1 | 850", "2 | 850"]);
    server.server.stop().await;
}

/// A cumulative query fed large batches (the parallel partial plan, one state row
/// per key and partition) counts every row exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cumulative_state_over_large_batches_is_exact() {
    let server = TestServer::start(1000).await;
    server
        .ok("CREATE SOURCE a (k BIGINT) FROM HTTP FORMAT CSV;
             CREATE QUERY c WITH (parallelism = 2) AS SELECT k, count(*) AS n FROM a GROUP BY k
                 WINDOW CUMULATIVE EMIT UPDATES ORDER BY k LIMIT 3")
        .await;
    for _ in 0..3 {
        let body: String = (0..120_000).map(|i| format!("{}\n", i % 50_000)).collect();
        assert_eq!(server.post("/sources/a", &body).await.0, 202);
        server.advance(1).await;
    }
    let batches = server.results("c", None).await;
    let rows: Vec<Vec<String>> = batches.iter().map(crate::common::rows).collect();
    assert_eq!(rows[0], ["0 | 3", "1 | 3", "2 | 3"]);
    assert_eq!(rows[2], ["0 | 9", "1 | 9", "2 | 9"]);
    let (_, q) = server.get("/queries/c").await;
    assert_eq!(q["cumulative"]["keys"], 50_000);
    let (_, state) = server
        .get("/queries/c/state?order_by=n%20desc&limit=1")
        .await;
    assert_eq!(state["rows"][0]["n"], 9);
    server.server.stop().await;
}
