//! Hardening (docs/operations.md): the bearer token on every mutating endpoint and,
//! with --auth-reads, on reads; the limits; the SQL sandbox; the shutdown order.

use std::time::Duration;

use serde_json::{json, Value};
use sluice::api::Auth;
use sluice::config::Config;

use crate::common::TestServer;

const TOKEN: &str = "s3cret-t0ken";

async fn server_with_auth(reads: bool) -> TestServer {
    let mut config = Config::for_test(1000);
    config.api.auth = Some(Auth::new(TOKEN.into(), reads));
    TestServer::with_config(config).await
}

/// (status, body, WWW-Authenticate) of one request, with `token` as a bearer token.
async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, Value, Option<String>) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server
        .http
        .request(method, server.url(path))
        .body(body.to_string());
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        challenge,
    )
}

#[tokio::test]
async fn every_mutating_endpoint_needs_the_token() {
    let server = server_with_auth(false).await;
    // Set up with the token.
    let setup = "CREATE SOURCE h (k TEXT) FROM HTTP FORMAT CSV; CREATE QUERY q AS SELECT k FROM h";
    assert_eq!(
        call(&server, "POST", "/sql", setup, Some(TOKEN)).await.0,
        200
    );
    let mutating = [
        ("POST", "/sql", "SHOW SOURCES", 200),
        ("POST", "/sources/h", "a\nb\n", 202),
        ("POST", "/clock/advance", "", 200),
        ("DELETE", "/queries/q", "", 200),
    ];
    for (method, path, body, ok) in mutating {
        let (status, answer, challenge) = call(&server, method, path, body, None).await;
        assert_eq!(status, 401, "{method} {path} without a token");
        assert_eq!(
            answer["error"]["message"],
            "this request changes the server: send 'Authorization: Bearer <token>' with the token given to --auth-token"
        );
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"sluice\""));
        let (status, answer, _) = call(&server, method, path, body, Some("s3cret-t0kem")).await;
        assert_eq!(
            (status, answer["error"]["message"].as_str()),
            (401, Some("the bearer token is not valid for this server")),
            "{method} {path} with a wrong token"
        );
        // A token in the query string is for reads only.
        let with_query = format!("{path}?access_token={TOKEN}");
        assert_eq!(call(&server, method, &with_query, body, None).await.0, 401);
        let (status, answer, _) = call(&server, method, path, body, Some(TOKEN)).await;
        assert_eq!(status, ok, "{method} {path} with the token: {answer}");
    }
    // Nothing refused was applied: h got the rows of the one accepted POST only.
    let (_, source, _) = call(&server, "GET", "/sources/h", "", None).await;
    assert_eq!(source["counters"]["rows"], 2);
    // Reads stay open without --auth-reads.
    for path in [
        "/sources", "/queries", "/streams", "/sinks", "/metrics", "/health", "/",
    ] {
        assert_eq!(call(&server, "GET", path, "", None).await.0, 200, "{path}");
    }
    let (_, health, _) = call(&server, "GET", "/health", "", None).await;
    assert_eq!(health["auth"], json!({"writes": true, "reads": false}));
    server.server.stop().await;
}

#[tokio::test]
async fn auth_reads_guards_reads_but_not_health_or_the_dashboard() {
    let server = server_with_auth(true).await;
    let setup = "CREATE SOURCE h (k TEXT) FROM HTTP FORMAT CSV; CREATE QUERY q AS SELECT k FROM h";
    assert_eq!(
        call(&server, "POST", "/sql", setup, Some(TOKEN)).await.0,
        200
    );
    for path in [
        "/sources",
        "/queries",
        "/queries/q",
        "/queries/q/results",
        "/metrics",
    ] {
        let (status, answer, _) = call(&server, "GET", path, "", None).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(
            answer["error"]["message"],
            "this server needs a token to read (--auth-reads): send 'Authorization: Bearer <token>' or ?access_token=<token>"
        );
        assert_eq!(
            call(&server, "GET", path, "", Some(TOKEN)).await.0,
            200,
            "{path}"
        );
        let query = format!("{path}?access_token={TOKEN}");
        assert_eq!(
            call(&server, "GET", &query, "", None).await.0,
            200,
            "{path}"
        );
        let wrong = format!("{path}?access_token=nope");
        assert_eq!(
            call(&server, "GET", &wrong, "", None).await.0,
            401,
            "{path}"
        );
    }
    // The stream, as a browser's EventSource opens it.
    let r = server
        .http
        .get(server.url(&format!("/queries/q/stream?access_token={TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    drop(r);
    for path in ["/health", "/", "/ui/app.js"] {
        assert_eq!(call(&server, "GET", path, "", None).await.0, 200, "{path}");
    }
    let (_, health, _) = call(&server, "GET", "/health", "", None).await;
    assert_eq!(health["auth"], json!({"writes": true, "reads": true}));
    server.server.stop().await;
}

#[test]
fn auth_options_are_checked() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: sluice::config::ServeArgs,
    }
    let parse = |args: &[&str]| {
        Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied()))
            .unwrap()
            .serve
            .validate()
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        parse(&["--auth-reads"]).unwrap_err(),
        "--auth-reads needs --auth-token (or SLUICE_AUTH_TOKEN)"
    );
    assert_eq!(
        parse(&["--auth-token", " "]).unwrap_err(),
        "--auth-token is empty: give a token, or leave the option out for an open API"
    );
    let config = parse(&["--auth-token", TOKEN]).unwrap();
    // The token never shows in the configuration's debug output (it is logged).
    assert!(!format!("{config:?}").contains(TOKEN));
}

#[tokio::test]
async fn limits_refuse_with_a_message_and_apply_nothing() {
    let mut config = Config::for_test(1000);
    config.engine.source_limits.max_ingest_rows = 3;
    config.engine.catalog_limits = sluice::engine::CatalogLimits {
        sources: 2,
        queries: 2,
        sinks: 1,
    };
    config.api.max_subscribers = 2;
    let server = TestServer::with_config(config).await;
    server
        .ok("CREATE SOURCE h (k TEXT) FROM HTTP FORMAT CSV;
             CREATE SOURCE g (line TEXT) FROM GENERATOR;
             CREATE STREAM s AS SELECT k FROM h;
             CREATE QUERY q AS SELECT k, count(*) AS n FROM s GROUP BY k;
             CREATE SINK out FROM q INTO LOG")
        .await;
    let refused = [
        (
            "CREATE SOURCE h2 (k TEXT) FROM HTTP",
            "this server already has 2 sources and tables, its limit (--max-sources 2); DROP one first",
        ),
        (
            "CREATE QUERY q2 AS SELECT k FROM h",
            "this server already has 2 queries and streams, its limit (--max-queries 2); DROP one first",
        ),
        (
            "SELECT k FROM h",
            "this server already has 2 queries and streams, its limit (--max-queries 2); DROP one first",
        ),
        (
            "CREATE SINK out2 FROM q INTO LOG",
            "this server already has 1 sinks, its limit (--max-sinks 1); DROP one first",
        ),
    ];
    for (sql, message) in refused {
        let (status, body) = server.sql(sql).await;
        assert_eq!(
            (status, body["error"]["message"].as_str()),
            (400, Some(message)),
            "{sql}"
        );
    }
    let (_, shown) = server
        .sql("SHOW QUERIES; SHOW STREAMS; SHOW SOURCES; SHOW SINKS")
        .await;
    let counts: Vec<usize> = shown["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rows"].as_array().unwrap().len())
        .collect();
    assert_eq!(counts, [1, 1, 2, 1], "nothing refused was created");

    let (status, body) = server.post("/sources/h", "a\nb\nc\nd\n").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (
            413,
            Some("the request has 4 rows, more than one request may carry (3, --max-ingest-rows); split it")
        )
    );
    assert_eq!(server.post("/sources/h", "a\nb\na\n").await.0, 202);
    server.advance(1).await;
    let (_, latest) = server.get("/queries/q/state?order_by=k").await;
    assert_eq!(
        latest["rows"],
        json!([{"k": "a", "n": 2}, {"k": "b", "n": 1}])
    );

    // Two subscribers at most; the third is told to retry.
    let first = server
        .http
        .get(server.url("/queries/q/stream"))
        .send()
        .await
        .unwrap();
    let second = server
        .http
        .get(server.url("/queries/q/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let (status, body) = server.get("/queries/q/stream").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (
            429,
            Some("query 'q' already has 2 subscribers, its limit (--max-subscribers 2); retry later or poll /results")
        )
    );
    drop((first, second));
    server.server.stop().await;
}

#[tokio::test]
async fn the_sandbox_refuses_files_network_and_settings() {
    let server = TestServer::start(1000).await;
    server
        .ok("CREATE SOURCE h (k TEXT) FROM HTTP FORMAT CSV")
        .await;
    let refused = [
        (
            "COPY h TO '/tmp/out.csv'",
            "'COPY' is refused: sluice's SQL does not read or write files or reach the network",
        ),
        ("ATTACH DATABASE '/tmp/x.db' AS x", "'ATTACH' is refused"),
        (
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE is refused: it reads files by path",
        ),
        (
            "SET datafusion.execution.target_partitions = 1",
            "'SET' is refused: engine settings are fixed by the server's command line",
        ),
        (
            "RESET datafusion.execution.batch_size",
            "'RESET' is refused",
        ),
        (
            "SELECT * FROM read_csv('/etc/passwd')",
            "table function 'read_csv' is not available",
        ),
        (
            "CREATE QUERY x AS SELECT * FROM read_parquet('/etc/passwd')",
            "table function 'read_parquet' is not available",
        ),
        (
            "SELECT * FROM generate_series(1, 1000000000000)",
            "table function 'generate_series' is not available",
        ),
        (
            "SELECT k FROM h JOIN (SELECT * FROM range(10)) r ON true",
            "table function 'range' is not available",
        ),
        (
            "SELECT * FROM '/etc/passwd'",
            "'/etc/passwd' is a string, not a source: a query cannot read a file or URL by name",
        ),
        (
            "SELECT * FROM 'https://example.com/data.csv'",
            "is a string, not a source",
        ),
        (
            "SELECT * FROM information_schema.df_settings",
            "qualified name 'information_schema.df_settings' is not supported",
        ),
        (
            "SELECT * FROM datafusion.public.h",
            "qualified name 'datafusion.public.h' is not supported",
        ),
        (
            "CREATE TABLE p (line TEXT) FROM FILE '/etc/passwd' FORMAT CSV",
            "/etc/passwd",
        ),
        ("CREATE SOURCE d (line TEXT) FROM DIRECTORY '../..'", ".."),
        (
            "CREATE SINK f FROM q INTO FILES '/etc/sluice'",
            "unknown query 'q'",
        ),
        (
            "CREATE SOURCE k (v TEXT) FROM KAFKA '127.0.0.1:9' TOPIC 't' WITH (kafka.plugin.library.paths = '/tmp/evil.so')",
            "Kafka property 'plugin.library.paths' is refused: it loads code, runs a command or reads a local file",
        ),
        (
            "CREATE SOURCE k (v TEXT) FROM KAFKA '127.0.0.1:9' TOPIC 't' WITH (kafka.sasl.kerberos.kinit.cmd = 'touch /tmp/x')",
            "Kafka property 'sasl.kerberos.kinit.cmd' is refused",
        ),
        (
            "CREATE SOURCE k (v TEXT) FROM KAFKA '127.0.0.1:9' TOPIC 't' WITH (kafka.ssl.ca.location = '/etc/shadow')",
            "Kafka property 'ssl.ca.location' is refused",
        ),
    ];
    for (sql, fragment) in refused {
        let (status, body) = server.sql(sql).await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{sql} => {body}");
        assert!(message.contains(fragment), "{sql} => {message}");
    }
    // unnest in FROM flattens a row's own arrays: allowed.
    server
        .ok("CREATE QUERY pairs AS SELECT k, u FROM h, unnest(make_array(1, 2)) AS t(u)")
        .await;
    let (_, shown) = server.sql("SHOW QUERIES").await;
    assert_eq!(shown["results"][0]["rows"].as_array().unwrap().len(), 1);
    server.server.stop().await;
}

/// SIGTERM: sources stop, the final checkpoint is written, subscribers get their
/// closing event, the process exits 0; a restart resumes from that checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_checkpoints_closes_streams_and_a_restart_resumes() {
    use crate::recovery::{advance, scratch, start};
    use futures::StreamExt;
    let (dir, init) = scratch(
        "sigterm",
        "CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV;
         CREATE QUERY totals AS SELECT k, sum(v) AS total FROM s GROUP BY k WINDOW CUMULATIVE;",
    );
    let http = reqwest::Client::new();
    let mut server = start(&dir, &init);
    // Checkpoints fall every 2 batches: the third batch is covered only by the final one.
    for rows in ["a,1\nb,2\n", "a,5\n", "c,7\n"] {
        let r = http
            .post(format!("{}/sources/s", server.base))
            .body(rows)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        advance(&http, &server.base, 1).await;
    }
    let stream = http
        .get(format!("{}/queries/totals/stream", server.base))
        .send()
        .await
        .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut body = String::new();
    let mut chunks = stream.bytes_stream();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(chunk)) = chunks.next().await {
            body.push_str(&String::from_utf8_lossy(&chunk));
        }
    });
    read.await.expect("the stream ends at shutdown");
    assert!(
        body.contains(
            "event: end\ndata: {\"reason\":\"the server is shutting down\",\"code\":\"shutdown\"}"
        ),
        "{body}"
    );
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "a clean shutdown exits 0: {exit}");
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains("engine stopped: sources stopped, final checkpoint done checkpoint=true"),
        "{log}"
    );
    let final_checkpoint = dir
        .join("checkpoints")
        .join(sluice::state::checkpoint::dir_name(3000));
    assert!(final_checkpoint.join("COMMIT").exists(), "{log}");
    drop(server);

    let server = start(&dir, &init);
    let health = crate::recovery::call(&http, "GET", format!("{}/health", server.base), "").await;
    assert_eq!(health["last_batch_time"], 3000);
    advance(&http, &server.base, 1).await;
    let state = crate::recovery::call(
        &http,
        "GET",
        format!("{}/queries/totals/state?order_by=k", server.base),
        "",
    )
    .await;
    assert_eq!(
        state["rows"],
        json!([{"k": "a", "total": 6}, {"k": "b", "total": 2}, {"k": "c", "total": 7}])
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// After the engine's shutdown step the sources are stopped: ingest is refused
/// with 503 and nothing of it is kept; the engine takes no more statements.
#[tokio::test]
async fn after_shutdown_ingest_and_statements_are_refused() {
    let server = TestServer::start(1000).await;
    server
        .ok("CREATE SOURCE h (k TEXT) FROM HTTP FORMAT CSV")
        .await;
    server.server.engine.shutdown().await.unwrap();
    let (status, body) = server.post("/sources/h", "a\n").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (
            503,
            Some("the server is shutting down; nothing of this request was kept")
        )
    );
    let (_, source) = server.get("/sources/h").await;
    assert_eq!(source["status"]["state"], "stopped");
    assert_eq!(source["counters"]["rows"], 0);
    let (status, body) = server.sql("SHOW SOURCES").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (
            503,
            Some("the engine has stopped: the server is shutting down")
        )
    );
}

/// A web page of another site cannot make the browser change a server on this
/// machine: a mutating request whose Origin is not the server's own is refused.
#[tokio::test]
async fn cross_origin_writes_are_refused() {
    let server = TestServer::start(1000).await;
    let host = server.base.trim_start_matches("http://").to_string();
    let post = |origin: Option<String>| {
        let mut r = server
            .http
            .post(server.url("/sql"))
            .body("CREATE SOURCE h (k TEXT) FROM HTTP");
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    let r = post(Some("http://evil.example".into())).await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "a request from the web page of another origin (http://evil.example) may not change this server"
    );
    let (_, shown) = server.sql("SHOW SOURCES").await;
    assert_eq!(
        shown["results"][0]["rows"],
        json!([]),
        "nothing was created"
    );
    // The dashboard (same origin) and programs without an Origin are served.
    assert_eq!(
        post(Some(format!("http://{host}")))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    server.ok("DROP SOURCE h").await;
    assert_eq!(post(None).await.unwrap().status().as_u16(), 200);
    // Reads from anywhere stay as they were (the browser's same-origin policy
    // keeps other sites from reading the answers: no CORS header is sent).
    let r = server
        .http
        .get(server.url("/sources"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
