//! Every file in queries/ runs here, so the examples cannot rot.

use std::path::Path;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::common::{rows, TestServer};

pub fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("queries")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file in queries/ is named here.
#[test]
fn every_example_has_a_test() {
    let tested = [
        "wordcount.sql",
        "demo.sql",
        "sales.sql",
        "windowed_wordcount.sql",
        "best_seller.sql",
        "global_wordcount.sql",
        "sales_totals.sql",
        // In tests/integration/kafka.rs, against a real broker:
        "kafka_wordcount.sql",
        "kafka_sales.sql",
        // In tests/integration/directory.rs and sinks.rs:
        "log_analysis.sql",
        "sales_enrichment.sql",
        "products.csv",
        "wordcount_files.sql",
        // In tests/integration/postgres.rs:
        "totals_postgres.sql",
    ];
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("queries")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            tested.contains(&name.as_str()),
            "queries/{name} has no test in tests/integration/examples.rs"
        );
    }
}

#[tokio::test]
async fn wordcount_over_a_real_tcp_peer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = TestServer::start(1000).await;
    // The example connects to nc on localhost:9999; here the test is the peer.
    server
        .ok(&example("wordcount.sql").replace("localhost:9999", &addr))
        .await;
    let (mut peer, _) = listener.accept().await.unwrap();
    peer.write_all(b"to be or not to be\n").await.unwrap();
    server
        .eventually("the line to be received", || async {
            server.get("/sources/lines").await.1["counters"]["rows"] == 1
        })
        .await;
    server.advance(1).await;
    let batches = server.results("wordcount", None).await;
    let mut got = rows(&batches[0]);
    got.sort();
    assert_eq!(got, ["be | 2", "not | 1", "or | 1", "to | 2"]);
    server.server.stop().await;
}

#[tokio::test]
async fn demo_counts_every_generated_word() {
    let server = TestServer::start(1000).await;
    server.ok(&example("demo.sql")).await;
    server
        .ok("CREATE QUERY check_words AS SELECT count(*) AS words FROM (SELECT unnest(string_to_array(line, ' ')) AS w FROM demo)")
        .await;
    server.advance(2).await;
    let lines = server.results("lines_per_batch", None).await;
    assert_eq!(rows(&lines[0]), ["1970-01-01T00:00:01Z | 1000"]);
    assert_eq!(rows(&lines[1]), ["1970-01-01T00:00:02Z | 1000"]);
    let totals = server.results("check_words", None).await;
    let counts = server.results("wordcount", None).await;
    for (total, counted) in totals.iter().zip(&counts) {
        let sum: i64 = counted["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["n"].as_i64().unwrap())
            .sum();
        assert_eq!(Some(sum), total["rows"][0]["words"].as_i64());
        for r in counted["rows"].as_array().unwrap() {
            let word = r["word"].as_str().unwrap();
            assert!(sluice::source::generator::WORDS.contains(&word), "{word}");
        }
    }
    let top = server.results("top_words", None).await;
    let top_rows = top[0]["rows"].as_array().unwrap();
    assert_eq!(top_rows.len(), 5);
    let mut best: Vec<(i64, String)> = counts[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                -r["n"].as_i64().unwrap(),
                r["word"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    best.sort();
    let expected: Vec<String> = best
        .iter()
        .take(5)
        .map(|(n, w)| format!("{w} | {}", -n))
        .collect();
    assert_eq!(rows(&top[0]), expected);
    server.server.stop().await;
}

#[tokio::test]
async fn sales_revenue_and_big_orders() {
    let server = TestServer::start(1000).await;
    server.ok(&example("sales.sql")).await;
    let (status, body) = server
        .post(
            "/sources/sales",
            r#"{"store": "north", "product": "tea", "qty": 2, "price": 3.5}
{"store": "south", "product": "cake", "qty": 10, "price": 2.0}
{"store": "north", "product": "cake", "qty": 1, "price": 2.0}"#,
        )
        .await;
    assert_eq!((status, body["accepted"].as_i64()), (202, Some(3)));
    server.advance(1).await;
    let revenue = server.results("revenue_by_store", None).await;
    assert_eq!(rows(&revenue[0]), ["south | 20.0 | 10", "north | 9.0 | 3"]);
    let big = server.results("big_orders", None).await;
    assert_eq!(rows(&big[0]), ["1970-01-01T00:00:01Z | south | cake | 10"]);
    server.server.stop().await;
}

/// Sends `text` to the peer and waits until the source has counted `rows` rows in all.
async fn send(
    server: &TestServer,
    peer: &mut tokio::net::TcpStream,
    source: &str,
    text: &str,
    rows: u64,
) {
    peer.write_all(text.as_bytes()).await.unwrap();
    server
        .eventually("the rows to be received", || async {
            server.get(&format!("/sources/{source}")).await.1["counters"]["rows"] == rows
        })
        .await;
}

/// The window's bounds and rows, as `start..end: rows`.
fn window(batch: &serde_json::Value) -> String {
    format!(
        "{}..{}: {}",
        batch["window_start"],
        batch["window_end"],
        rows(batch).join(", ")
    )
}

#[tokio::test]
async fn windowed_wordcount_slides_every_five_seconds() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = TestServer::start(1000).await;
    server
        .ok(&example("windowed_wordcount.sql").replace("localhost:9999", &addr))
        .await;
    let (mut peer, _) = listener.accept().await.unwrap();
    send(&server, &mut peer, "lines", "a b\n", 1).await;
    server.advance(2).await; // batches 1, 2
    send(&server, &mut peer, "lines", "a\n", 2).await;
    server.advance(4).await; // batches 3..6
    send(&server, &mut peer, "lines", "b c\n", 3).await;
    server.advance(59).await; // batches 7..65
    let batches = server.results("windowed_wordcount", None).await;
    // One emission every 5 batches: 5000, 10000, ..., 65000.
    let times: Vec<i64> = batches
        .iter()
        .map(|b| b["batch_time"].as_i64().unwrap())
        .collect();
    assert_eq!(times, (1..=13).map(|k| k * 5000).collect::<Vec<_>>());
    assert_eq!(window(&batches[0]), "-55000..5000: a | 2, b | 1");
    assert_eq!(window(&batches[1]), "-50000..10000: a | 2, b | 2, c | 1");
    assert_eq!(window(&batches[11]), "0..60000: a | 2, b | 2, c | 1");
    // At 65 s the batches 1 and 3 have left the window.
    assert_eq!(window(&batches[12]), "5000..65000: b | 1, c | 1");
    server.server.stop().await;
}

#[tokio::test]
async fn best_seller_over_ten_days_every_minute() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = TestServer::start(1000).await;
    server
        .ok(&example("best_seller.sql").replace("localhost:9998", &addr))
        .await;
    let (mut peer, _) = listener.accept().await.unwrap();
    let day1 = "2026-11-26T10:00:00Z,north,tea,5\n2026-11-26T10:00:00Z,south,cake,3\nnot,a,sale\n";
    send(&server, &mut peer, "sales", day1, 2).await;
    server.advance(61).await;
    send(
        &server,
        &mut peer,
        "sales",
        "2026-11-26T10:01:01Z,north,cake,4\n",
        3,
    )
    .await;
    server.advance(59).await;
    let batches = server.results("best_seller", None).await;
    assert_eq!(batches.len(), 2);
    assert_eq!(window(&batches[0]), "-863940000..60000: tea | 5");
    assert_eq!(window(&batches[1]), "-863880000..120000: cake | 7");
    let (_, source) = server.get("/sources/sales").await;
    assert_eq!(source["counters"]["bad_rows"], 1);
    let (_, state) = server.get("/queries/best_seller/state").await;
    assert_eq!(
        state["rows"],
        serde_json::json!([{"product": "cake", "sold": 7}])
    );
    assert_eq!(state["window_end"], 120000);
    server.server.stop().await;
}

#[tokio::test]
async fn global_wordcount_keeps_running_totals() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = TestServer::start(1000).await;
    server
        .ok(&example("global_wordcount.sql").replace("localhost:9999", &addr))
        .await;
    let (mut peer, _) = listener.accept().await.unwrap();
    send(&server, &mut peer, "lines", "to be or\nnot to be\n", 2).await;
    server.advance(1).await;
    send(&server, &mut peer, "lines", "be quick\n", 3).await;
    server.advance(2).await;
    let batches = server.results("global_wordcount", None).await;
    assert_eq!(rows(&batches[0]), ["be | 2", "to | 2", "not | 1", "or | 1"]);
    assert_eq!(
        rows(&batches[1]),
        ["be | 3", "to | 2", "not | 1", "or | 1", "quick | 1"]
    );
    assert_eq!(rows(&batches[2]), rows(&batches[1]));
    server.server.stop().await;
}

#[tokio::test]
async fn sales_totals_emit_updates_and_answer_the_whole_table() {
    let server = TestServer::start(1000).await;
    server.ok(&example("sales_totals.sql")).await;
    server
        .post(
            "/sources/sales",
            "{\"product\": \"tea\", \"qty\": 2, \"price\": 3.5}\n{\"product\": \"cake\", \"qty\": 1, \"price\": 2.0}",
        )
        .await;
    server.advance(1).await;
    server
        .post(
            "/sources/sales",
            "{\"product\": \"tea\", \"qty\": 1, \"price\": 4.0}",
        )
        .await;
    server.advance(2).await;
    let batches = server.results("sales_totals", None).await;
    assert_eq!(
        rows(&batches[0]),
        ["cake | 1 | 2.0 | 1", "tea | 2 | 7.0 | 1"]
    );
    assert_eq!(rows(&batches[1]), ["tea | 3 | 11.0 | 2"]);
    assert!(rows(&batches[2]).is_empty());
    // The pull query gives the whole current table, not the last updates.
    let (_, state) = server
        .get("/queries/sales_totals/state?order_by=revenue%20desc")
        .await;
    assert_eq!(
        state,
        serde_json::json!({"batch_time": 3000, "rows": [
            {"product": "tea", "sold": 3, "revenue": 11.0, "orders": 2},
            {"product": "cake", "sold": 1, "revenue": 2.0, "orders": 1}
        ]})
    );
    let (_, q) = server.get("/queries/sales_totals").await;
    assert_eq!(q["kind"], "cumulative");
    assert_eq!(q["cumulative"]["emit"], "updates");
    assert_eq!(q["cumulative"]["keys"], 2);
    server.server.stop().await;
}
