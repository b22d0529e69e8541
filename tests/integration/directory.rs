//! The directory source (Spark's textFileStream): files moved in across batches,
//! each read once, also across a kill -9 and restart of the real binary.

use serde_json::json;

use crate::common::TestServer;
use crate::recovery::{advance, call, scratch, start};

/// Writes `name` in `dir` as a producer should: a temporary name, then a rename.
fn move_in(dir: &std::path::Path, name: &str, text: &str) {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_moved_in_are_read_once_into_the_next_batch() {
    let dir = crate::common::fresh_dir("dir");
    let incoming = dir.join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let s = TestServer::with_data_dir(1000, &dir).await;
    s.ok("CREATE SOURCE logs (level TEXT, msg TEXT) FROM DIRECTORY 'incoming' FORMAT CSV;
          CREATE QUERY per_batch AS SELECT level, count(*) AS n FROM logs GROUP BY level ORDER BY level;
          CREATE QUERY totals AS SELECT level, count(*) AS n FROM logs GROUP BY level WINDOW CUMULATIVE ORDER BY level;")
        .await;
    move_in(
        &incoming,
        "a.csv",
        "INFO,start\nWARN,slow\nINFO,done\nnot,a,row\n",
    );
    // Being written or hidden: skipped.
    std::fs::write(incoming.join("b.csv.tmp"), "ERROR,half\n").unwrap();
    std::fs::write(incoming.join(".hidden"), "ERROR,hidden\n").unwrap();
    s.advance(1).await;
    move_in(&incoming, "b.csv", "ERROR,boom\n");
    move_in(&incoming, "c.csv", "INFO,again\n");
    s.advance(2).await;
    let batches: Vec<_> = s
        .results("per_batch", None)
        .await
        .iter()
        .map(|b| b["rows"].clone())
        .collect();
    assert_eq!(
        batches,
        [
            json!([{"level": "INFO", "n": 2}, {"level": "WARN", "n": 1}]),
            json!([{"level": "ERROR", "n": 1}, {"level": "INFO", "n": 1}]),
            json!([])
        ]
    );
    let (_, src) = s.get("/sources/logs").await;
    assert_eq!(src["kind"], "directory");
    assert_eq!(src["files_read"], 3);
    assert_eq!(src["counters"]["bad_rows"], 1);
    let (status, body) = s
        .sql("CREATE SOURCE etc (line TEXT) FROM DIRECTORY '/etc' FORMAT LINES")
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("outside the directories sluice may use"),
        "{body}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_neither_skips_nor_rereads_a_file() {
    let (dir, init) = scratch(
        "dir-restart",
        "CREATE SOURCE lines (line TEXT) FROM DIRECTORY 'in' FORMAT LINES;
         CREATE QUERY total AS SELECT count(*) AS n FROM lines WINDOW CUMULATIVE;",
    );
    let incoming = dir.join("in");
    std::fs::create_dir_all(&incoming).unwrap();
    let http = reqwest::Client::new();
    let server = start(&dir, &init);
    move_in(&incoming, "1.txt", "a\nb\n");
    advance(&http, &server.base, 2).await; // checkpoints at 1000 (catalog) and 2000
    move_in(&incoming, "2.txt", "c\nd\ne\n");
    advance(&http, &server.base, 1).await; // 3000: read, not checkpointed
    drop(server); // kill -9
    move_in(&incoming, "3.txt", "f\n");
    let server = start(&dir, &init);
    let b = server.base.clone();
    advance(&http, &b, 1).await;
    let total = call(&http, "GET", format!("{b}/queries/total/state"), "").await;
    // 2.txt again (its batch was lost with the kill), 3.txt once, 1.txt not again.
    assert_eq!(total["rows"], json!([{"n": 6}]));
    advance(&http, &b, 1).await;
    let total = call(&http, "GET", format!("{b}/queries/total/state"), "").await;
    assert_eq!(total["rows"], json!([{"n": 6}]));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_analysis_example_reads_files_moved_into_its_directory() {
    let dir = crate::common::fresh_dir("logs-example");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let s = TestServer::with_data_dir(10_000, &dir).await;
    s.ok(&crate::examples::example("log_analysis.sql")).await;
    move_in(
        &dir.join("logs"),
        "a.csv",
        "ERROR,db,timeout\nINFO,web,ok\nERROR,db,deadlock\nERROR,web,500\n",
    );
    s.advance(1).await;
    let errors = &s.results("errors_per_service", None).await[0];
    assert_eq!(
        errors["rows"],
        json!([{"service": "db", "errors": 2}, {"service": "web", "errors": 1}])
    );
    let levels = &s.results("levels_last_minute", None).await[0];
    assert_eq!(
        levels["rows"],
        json!([{"level": "ERROR", "n": 3}, {"level": "INFO", "n": 1}])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_table_enriches_a_stream_in_the_sales_example() {
    let dir = crate::common::fresh_dir("enrich");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/products.csv"),
        dir.join("products.csv"),
    )
    .unwrap();
    let s = TestServer::with_data_dir(1000, &dir).await;
    s.ok(&crate::examples::example("sales_enrichment.sql"))
        .await;
    s.post(
        "/sources/orders",
        "{\"product_id\": 1, \"qty\": 2, \"price\": 3.5}\n{\"product_id\": 2, \"qty\": 1, \"price\": 4.0}\n{\"product_id\": 3, \"qty\": 1, \"price\": 2.5}\n{\"product_id\": 9, \"qty\": 5, \"price\": 1.0}",
    )
    .await;
    s.advance(1).await;
    let batch = &s.results("revenue_by_category", None).await[0];
    assert_eq!(
        batch["rows"],
        json!([
            {"category": "drinks", "items": 3, "revenue": 9.5},
            {"category": "food", "items": 1, "revenue": 4.0}
        ])
    );
    let shown = s.ok("SHOW TABLES").await;
    assert_eq!(shown["results"][0]["rows"][0]["rows"], 3);
    // The table is read by a query: not dropped before it.
    let (status, _) = s.sql("DROP TABLE products").await;
    assert_eq!(status, 400);
    // A bad row refuses the whole table, naming its line.
    std::fs::write(dir.join("bad.csv"), "1,tea,drinks\nx,cake,food\n").unwrap();
    let (status, body) = s
        .sql(
            "CREATE TABLE bad (id BIGINT, name TEXT, category TEXT) FROM FILE 'bad.csv' FORMAT CSV",
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bad.csv, line 2"),
        "{body}"
    );
    // A window that buffers rows cannot read the table directly.
    let (status, body) = s
        .sql("SELECT o.qty, p.name FROM orders o JOIN products p ON o.product_id = p.id WINDOW TUMBLING 2s")
        .await;
    assert_eq!(status, 400, "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_files_moved_in_are_read_by_column_name() {
    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;
    let dir = crate::common::fresh_dir("dir-pq");
    let incoming = dir.join("pq");
    std::fs::create_dir_all(&incoming).unwrap();
    let s = TestServer::with_data_dir(1000, &dir).await;
    s.ok("CREATE SOURCE sales (product TEXT, qty BIGINT) FROM DIRECTORY 'pq' FORMAT PARQUET;
          CREATE QUERY sold AS SELECT product, sum(qty) AS qty FROM sales GROUP BY product ORDER BY product;")
        .await;
    // Columns in another order and a narrower type: taken by name, cast.
    let schema = Arc::new(Schema::new(vec![
        Field::new("qty", DataType::Int32, false),
        Field::new("product", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int32Array::from(vec![2, 1, 5])),
            Arc::new(StringArray::from(vec!["tea", "cake", "tea"])),
        ],
    )
    .unwrap();
    let tmp = dir.join("a.parquet");
    let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&tmp).unwrap(),
        schema,
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    std::fs::rename(&tmp, incoming.join("a.parquet")).unwrap();
    std::fs::write(incoming.join("broken.parquet"), b"not parquet").unwrap();
    s.advance(1).await;
    let batch = &s.results("sold", None).await[0];
    assert_eq!(
        batch["rows"],
        json!([{"product": "cake", "qty": 1}, {"product": "tea", "qty": 7}])
    );
    let (_, src) = s.get("/sources/sales").await;
    assert_eq!(src["counters"]["bad_rows"], 1);
    assert_eq!(src["files_read"], 2);
    let (status, _) = s
        .sql("CREATE SOURCE t (line TEXT) FROM HTTP FORMAT PARQUET")
        .await;
    assert_eq!(status, 400);
    let _ = std::fs::remove_dir_all(&dir);
}
