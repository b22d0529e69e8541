//! The TCP source against real TCP peers: a listener in the test writes lines,
//! closes, comes back; the source reconnects. Results by poll and SSE.

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::common::{rows, TestServer};

async fn source(server: &TestServer, name: &str) -> serde_json::Value {
    server.get(&format!("/sources/{name}")).await.1
}

/// Reads one SSE event (up to the blank line) from a byte stream.
async fn next_event(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buffer: &mut String,
) -> String {
    loop {
        if let Some(i) = buffer.find("\n\n") {
            let event = buffer[..i].to_string();
            buffer.drain(..i + 2);
            if event.starts_with(':') {
                continue; // keep-alive comment
            }
            return event;
        }
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .expect("an SSE event within 10 s")
            .expect("stream open")
            .expect("chunk");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn reconnects_after_the_peer_closes_and_streams_results() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = TestServer::start(1000).await;
    server
        .ok(&format!(
            "CREATE SOURCE lines (line TEXT) FROM TCP '{addr}';
             CREATE STREAM words AS SELECT unnest(string_to_array(line, ' ')) AS word FROM lines;
             CREATE QUERY wc AS SELECT word, count(*) AS n FROM words GROUP BY word ORDER BY word"
        ))
        .await;

    // Subscribe before any batch runs: SSE delivers each batch live.
    let response = server
        .http
        .get(server.url("/queries/wc/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut sse = response.bytes_stream();
    let mut buffer = String::new();

    let (mut peer, _) = listener.accept().await.unwrap();
    server
        .eventually("connected", || async {
            source(&server, "lines").await["status"]["state"] == "connected"
        })
        .await;
    peer.write_all(b"a b\r\na\n").await.unwrap();
    server
        .eventually("2 rows", || async {
            source(&server, "lines").await["counters"]["rows"] == 2
        })
        .await;
    server.advance(1).await;
    let event = next_event(&mut sse, &mut buffer).await;
    assert_eq!(
        event,
        "event: batch\nid: 1000\ndata: {\"batch_time\":1000,\"rows\":[{\"word\":\"a\",\"n\":2},{\"word\":\"b\",\"n\":1}]}"
    );

    // The peer goes away: the source says so and retries.
    drop(peer);
    server
        .eventually("retrying", || async {
            let s = source(&server, "lines").await;
            s["status"]["state"] == "retrying"
                && s["status"]["error"] == "peer closed the connection"
        })
        .await;

    // It comes back: the source reconnects by itself; a bad record is counted and skipped.
    let (mut peer, _) = listener.accept().await.unwrap();
    peer.write_all(b"c\n\xff\xfe bad\nc a\n").await.unwrap();
    server
        .eventually("4 rows", || async {
            source(&server, "lines").await["counters"]["rows"] == 4
        })
        .await;
    let s = source(&server, "lines").await;
    assert_eq!(s["status"]["state"], "connected");
    assert_eq!(s["counters"]["bad_rows"], 1);
    assert_eq!(s["bad_rows_by_kind"]["invalid UTF-8"], 1);
    assert_eq!(s["bad_samples"][0]["kind"], "invalid UTF-8");
    server.advance(1).await;
    let event = next_event(&mut sse, &mut buffer).await;
    assert!(event.starts_with("event: batch\nid: 2000\n"), "{event}");
    let batches = server.results("wc", Some(1000)).await;
    assert_eq!(rows(&batches[0]), ["a | 1", "c | 2"]);
    server.server.stop().await;
}

#[tokio::test]
async fn retries_while_the_peer_is_absent_then_catches_up() {
    // Take a free port, then close it: nothing listens there yet.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let server = TestServer::start(1000).await;
    server.ok(&format!("CREATE SOURCE lines (line TEXT) FROM TCP '{addr}'; CREATE QUERY c AS SELECT count(*) AS n FROM lines")).await;
    server
        .eventually("retrying with the connect error", || async {
            let s = source(&server, "lines").await;
            s["status"]["state"] == "retrying"
                && s["status"]["error"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(&format!("cannot connect to {addr}"))
        })
        .await;
    // The engine keeps ticking meanwhile: empty batches, count 0.
    server.advance(1).await;
    let listener = TcpListener::bind(addr).await.unwrap();
    let (mut peer, _) = listener.accept().await.unwrap();
    peer.write_all(b"x\ny\nz").await.unwrap();
    drop(peer); // the unterminated last line counts when the peer closes
    server
        .eventually("3 rows", || async {
            source(&server, "lines").await["counters"]["rows"] == 3
        })
        .await;
    server.advance(1).await;
    let batches = server.results("c", None).await;
    assert_eq!(rows(&batches[0]), ["0"]);
    assert_eq!(rows(&batches[1]), ["3"]);
    server.server.stop().await;
}

#[tokio::test]
async fn csv_over_tcp_skips_bad_rows_and_keeps_going() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = TestServer::start(1000).await;
    server
        .ok(&format!(
            "CREATE SOURCE sales (store TEXT, qty BIGINT) FROM TCP '{addr}' FORMAT CSV;
             CREATE QUERY total AS SELECT store, sum(qty) AS qty FROM sales GROUP BY store ORDER BY store"
        ))
        .await;
    let (mut peer, _) = listener.accept().await.unwrap();
    let long = format!("n,{}\n", "9".repeat(2 << 20));
    peer.write_all(b"n,1\ns,two\nn,2,3\n").await.unwrap();
    peer.write_all(long.as_bytes()).await.unwrap();
    peer.write_all(b"\"s, inc\",4\nn,\n").await.unwrap();
    server
        .eventually("3 good rows", || async {
            source(&server, "sales").await["counters"]["rows"] == 3
        })
        .await;
    let s = source(&server, "sales").await;
    assert_eq!(s["counters"]["bad_rows"], 3, "{s}");
    assert_eq!(s["bad_rows_by_kind"]["bad value"], 1);
    assert_eq!(s["bad_rows_by_kind"]["wrong field count"], 1);
    assert_eq!(s["bad_rows_by_kind"]["record too long"], 1);
    server.advance(1).await;
    let batches = server.results("total", None).await;
    assert_eq!(rows(&batches[0]), ["n | 1", "s, inc | 4"]);
    server.server.stop().await;
}
