//! Every file in queries/ runs here, so the examples cannot rot.

use std::path::Path;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::common::{rows, TestServer};

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("queries")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file in queries/ is named here.
#[test]
fn every_example_has_a_test() {
    let tested = ["wordcount.sql", "demo.sql", "sales.sql"];
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
