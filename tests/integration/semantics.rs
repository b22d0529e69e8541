//! The runner of tests/semantics/*.slt: streaming semantics driven by the manual
//! clock, in a small sqllogictest-like format of our own.
//!
//! ```text
//! # a comment
//! interval 1000                 -- batch interval in ms (before anything else; default 1000)
//!
//! statement ok                  -- SQL up to the next blank line must succeed
//! CREATE SOURCE ...
//!
//! statement error <text>        -- ... must fail with a message containing <text>
//!
//! ingest <source>               -- POST the following lines to an HTTP source
//! ingest error <source> <text>  -- ... which must be refused with <text>
//!
//! advance <n>                   -- run n batches
//!
//! results <query> [rowsort]     -- the batches emitted since the last check:
//! ----
//! 1000: hello | 2               -- one line per row: `batch_time: a | b`
//! 2000: (empty)                 -- a batch with no rows
//! 4000 (0, 4000]: 3             -- a window's batch: its time, then (start, end]
//! ```

use std::path::Path;

use crate::common::{rows, TestServer};

struct Block {
    line: usize,
    head: String,
    body: Vec<String>,
    expected: Vec<String>,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    let mut in_expected = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.trim().is_empty() {
            if let Some(b) = current.take() {
                out.push(b);
            }
            in_expected = false;
            continue;
        }
        if current.is_none() && line.starts_with('#') {
            continue;
        }
        match current.as_mut() {
            None => {
                current = Some(Block {
                    line: i + 1,
                    head: line.to_string(),
                    body: Vec::new(),
                    expected: Vec::new(),
                })
            }
            Some(b) if line == "----" => {
                let _ = b;
                in_expected = true;
            }
            Some(b) if in_expected => b.expected.push(line.to_string()),
            Some(b) => b.body.push(line.to_string()),
        }
    }
    if let Some(b) = current.take() {
        out.push(b);
    }
    out
}

pub async fn run_file(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let all = blocks(&text);
    let mut interval = 1000;
    if let Some(first) = all.first() {
        if let Some(ms) = first.head.strip_prefix("interval ") {
            interval = ms.trim().parse().expect("interval in ms");
        }
    }
    let server = TestServer::start(interval).await;
    let mut seen: std::collections::HashMap<String, i64> = Default::default();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    for b in all {
        let place = format!("{name}:{}", b.line);
        let words: Vec<&str> = b.head.split_whitespace().collect();
        match words.as_slice() {
            ["interval", _] => {}
            ["statement", "ok"] => {
                let sql = b.body.join("\n");
                let (status, body) = server.sql(&sql).await;
                assert_eq!(status, 200, "{place}: statement failed: {body}");
            }
            ["statement", "error", ..] => {
                let expected = b.head.splitn(3, ' ').nth(2).unwrap_or_default();
                let (status, body) = server.sql(&b.body.join("\n")).await;
                assert_eq!(status, 400, "{place}: expected an error, got {body}");
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains(expected),
                    "{place}: error {message:?} does not contain {expected:?}"
                );
            }
            ["ingest", source] => {
                let (status, body) = server
                    .post(&format!("/sources/{source}"), &b.body.join("\n"))
                    .await;
                assert_eq!(status, 202, "{place}: ingest refused: {body}");
            }
            ["ingest", "error", source, ..] => {
                let expected = b.head.splitn(4, ' ').nth(3).unwrap_or_default();
                let (status, body) = server
                    .post(&format!("/sources/{source}"), &b.body.join("\n"))
                    .await;
                assert_eq!(
                    status, 400,
                    "{place}: expected the ingest to be refused, got {body}"
                );
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains(expected),
                    "{place}: error {message:?} does not contain {expected:?}"
                );
            }
            ["advance", n] => {
                server.advance(n.parse().expect("advance <n>")).await;
            }
            ["results", query, rest @ ..] => {
                let rowsort = rest.contains(&"rowsort");
                let after = seen.get(*query).copied();
                let batches = server.results(query, after).await;
                let mut actual = Vec::new();
                for batch in &batches {
                    let t = batch["batch_time"].as_i64().unwrap();
                    seen.insert(query.to_string(), t);
                    // A window's batch shows its bounds: `4000 (0, 4000]: ...`.
                    let t = match (batch["window_start"].as_i64(), batch["window_end"].as_i64()) {
                        (Some(start), Some(end)) => format!("{t} ({start}, {end}]"),
                        _ => t.to_string(),
                    };
                    let mut r = rows(batch);
                    if rowsort {
                        r.sort();
                    }
                    if r.is_empty() {
                        actual.push(format!("{t}: (empty)"));
                    }
                    actual.extend(r.into_iter().map(|row| format!("{t}: {row}")));
                }
                assert!(
                    actual == b.expected,
                    "{place}: results of {query} differ\n--- expected\n{}\n--- actual\n{}\n",
                    b.expected.join("\n"),
                    actual.join("\n")
                );
            }
            _ => panic!("{place}: unknown directive {:?}", b.head),
        }
    }
    server.server.stop().await;
}

macro_rules! semantics {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/semantics").join(concat!(stringify!($name), ".slt"));
                run_file(&path).await;
            }
        )*

        /// Every file in tests/semantics has a test above.
        #[test]
        fn every_semantics_file_is_run() {
            let listed: Vec<&str> = vec![$(stringify!($name)),*];
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/semantics");
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let stem = path.file_stem().unwrap().to_string_lossy().to_string();
                assert!(listed.contains(&stem.as_str()), "tests/semantics/{stem}.slt is not listed in semantics!()");
            }
        }
    };
}

semantics!(
    map_filter,
    flatmap_wordcount,
    count_and_reduce,
    by_key,
    union_join,
    derived_chains,
    batch_time,
    errors,
    window_emission,
    window_operations,
    window_inputs,
    window_errors,
    cumulative,
);
