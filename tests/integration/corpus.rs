//! The bad-input corpus: wrong SQL and bad records must be refused or skipped with
//! an answer that names the problem, and never crash the server, leave a
//! statement half-applied or stop a source.
//!
//! - `tests/corpus/bad_sql.txt` (its header gives the format): every entry is
//!   posted to `POST /sql` against a fixed catalog; the answer must be a 4xx whose
//!   message holds the entry's fragment, `GET /health` must still answer, and the
//!   catalog must be as it was. Entries marked `known-bad` are sluice bugs that
//!   are reported and not asserted yet (see the header).
//! - Bad records of every format on TCP and directory sources are counted by kind
//!   and sampled, and the good records around them reach the query; HTTP ingest
//!   refuses a request with a bad record whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::common::TestServer;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/bad_sql.txt");

/// A scratch data directory `sluice-corpus-<name>-<pid>`, empty.
fn scratch(name: &str) -> PathBuf {
    crate::common::fresh_dir(&format!("corpus-{name}"))
}

/// A client whose requests give up after 60 s, so a wedged server fails the
/// test instead of hanging it.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// POSTs raw bytes; returns the status and the body as text.
async fn post_raw(http: &reqwest::Client, url: String, body: Vec<u8>) -> (u16, String) {
    let r = http.post(url).body(body).send().await.expect("an answer");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

// ---------------------------------------------------------------------------
// The SQL corpus file
// ---------------------------------------------------------------------------

/// How an entry is wrong today, when it is (see the corpus header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KnownBad {
    /// A 4xx whose message does not name the problem.
    Message,
    /// Accepted (2xx) although it should be refused.
    Accepted,
    /// Crashes the server: not sent.
    Crash,
    /// Keeps the server busy for minutes: not sent.
    Hang,
}

#[derive(Debug)]
struct Entry {
    /// 1-based index in the file.
    number: usize,
    /// 1-based line of the file where the entry's text starts.
    line: usize,
    category: String,
    expect: String,
    reject: Option<String>,
    known_bad: Option<KnownBad>,
    applied: usize,
    statement: Option<u64>,
    positioned: bool,
    /// The request text, `{{N*text}}` expanded.
    text: String,
}

impl Entry {
    fn label(&self) -> String {
        let mut shown: String = self.text.chars().take(100).collect();
        if shown.len() < self.text.len() {
            shown.push_str(&format!("... ({} bytes)", self.text.len()));
        }
        format!(
            "entry {} (bad_sql.txt line {}) {:?}",
            self.number, self.line, shown
        )
    }
}

/// `{{N*text}}` stands for `text` repeated N times.
fn expand(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}").map(|c| open + c) else {
            break;
        };
        let inner = &rest[open + 2..close];
        match inner.split_once('*') {
            Some((n, piece)) if n.parse::<usize>().is_ok() => {
                out.push_str(&rest[..open]);
                out.push_str(&piece.repeat(n.parse().unwrap_or(0)));
            }
            _ => out.push_str(&rest[..close + 2]),
        }
        rest = &rest[close + 2..];
    }
    out.push_str(rest);
    out
}

fn parse_corpus(text: &str) -> Vec<Entry> {
    let lines: Vec<&str> = text.lines().collect();
    let first = lines
        .iter()
        .position(|l| *l == "----")
        .expect("the corpus has a header ended by ----");
    let mut entries = Vec::new();
    let mut category = String::from("uncategorized");
    let mut i = first + 1;
    while i < lines.len() {
        let end = lines[i..]
            .iter()
            .position(|l| *l == "----")
            .map_or(lines.len(), |p| i + p);
        let mut entry = Entry {
            number: entries.len() + 1,
            line: 0,
            category: String::new(),
            expect: String::new(),
            reject: None,
            known_bad: None,
            applied: 0,
            statement: None,
            positioned: true,
            text: String::new(),
        };
        let mut j = i;
        while j < end && lines[j].starts_with("-- ") {
            let directive = &lines[j][3..];
            let file_line = j + 1;
            if let Some(v) = directive.strip_prefix("expect: ") {
                entry.expect = v.to_string();
            } else if let Some(v) = directive.strip_prefix("reject: ") {
                entry.reject = Some(v.to_string());
            } else if directive == "known-bad" {
                entry.known_bad = Some(KnownBad::Message);
            } else if let Some(v) = directive.strip_prefix("known-bad: ") {
                entry.known_bad = Some(match v {
                    "accepted" => KnownBad::Accepted,
                    "crash" => KnownBad::Crash,
                    "hang" => KnownBad::Hang,
                    other => panic!("bad_sql.txt line {file_line}: unknown known-bad '{other}'"),
                });
            } else if let Some(v) = directive.strip_prefix("applied: ") {
                entry.applied = v.parse().expect("applied: a number");
            } else if let Some(v) = directive.strip_prefix("statement: ") {
                entry.statement = Some(v.parse().expect("statement: a number"));
            } else if directive == "position: none" {
                entry.positioned = false;
            } else if let Some(v) = directive.strip_prefix("category: ") {
                category = v.to_string();
            }
            j += 1;
        }
        entry.category = category.clone();
        entry.line = j + 1;
        let mut body = &lines[j..end];
        while body.last().is_some_and(|l| l.trim().is_empty()) {
            body = &body[..body.len() - 1];
        }
        entry.text = expand(&body.join("\n"));
        assert!(
            !entry.expect.is_empty(),
            "bad_sql.txt line {}: an entry without '-- expect:'",
            i + 1
        );
        entries.push(entry);
        i = end + 1;
    }
    entries
}

#[test]
fn corpus_expansion_and_format() {
    assert_eq!(expand("a{{3*(}}b{{2*)}}"), "a(((b))");
    assert_eq!(expand("{{x*y}} {{2*}}"), "{{x*y}} ");
    let parsed = parse_corpus(
        "header\n----\n-- category: c\n-- what\n-- expect: f\n-- known-bad: accepted\n-- applied: 2\nSELECT\n  1\n\n----\n-- expect: g\n-- position: none\n",
    );
    assert_eq!(parsed.len(), 2);
    assert_eq!(
        (
            parsed[0].text.as_str(),
            parsed[0].line,
            parsed[0].known_bad,
            parsed[0].applied
        ),
        ("SELECT\n  1", 8, Some(KnownBad::Accepted), 2)
    );
    assert_eq!(
        (
            parsed[1].text.as_str(),
            parsed[1].category.as_str(),
            parsed[1].positioned
        ),
        ("", "c", false)
    );
}

// ---------------------------------------------------------------------------
// The SQL corpus against a real server
// ---------------------------------------------------------------------------

/// The catalog the corpus entries are written against (see the corpus header).
async fn corpus_server() -> (TestServer, PathBuf) {
    let dir = scratch("sql");
    std::fs::create_dir_all(dir.join("in")).unwrap();
    std::fs::write(dir.join("products.csv"), "1,tea\n2,cake\n").unwrap();
    std::fs::write(dir.join("bad.csv"), "1,tea\nx,cake\n").unwrap();
    std::fs::write(dir.join("bad.json"), "{\"id\": 1}\n[1]\n").unwrap();
    std::fs::write(dir.join("bad.parquet"), "not parquet").unwrap();
    // A port nothing listens on: the TCP source keeps retrying.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = TestServer::with_data_dir(1000, &dir).await;
    server
        .ok(&format!(
            "CREATE SOURCE ev (k TEXT, v BIGINT) FROM HTTP FORMAT CSV;
             CREATE SOURCE lines (line TEXT) FROM GENERATOR WITH (rate = 3, seed = 7);
             CREATE SOURCE tin (line TEXT) FROM TCP '{closed}';
             CREATE SOURCE files (a TEXT, n BIGINT) FROM DIRECTORY 'in' FORMAT CSV;
             CREATE TABLE products (id BIGINT, name TEXT) FROM FILE 'products.csv' FORMAT CSV;
             CREATE STREAM words AS SELECT unnest(string_to_array(line, ' ')) AS word FROM lines;
             CREATE STREAM named AS SELECT e.k, p.name FROM ev e JOIN products p ON e.v = p.id;
             CREATE QUERY totals AS SELECT k, sum(v) AS total FROM ev GROUP BY k ORDER BY k;
             CREATE QUERY wc AS SELECT word, count(*) AS n FROM words GROUP BY word WINDOW CUMULATIVE;
             CREATE SINK out FROM totals INTO FILES 'out/totals'"
        ))
        .await;
    (server, dir)
}

/// What the catalog holds, without what changes by itself (statuses, counters).
async fn catalog(server: &TestServer) -> Value {
    let shown = server
        .ok("SHOW SOURCES; SHOW STREAMS; SHOW QUERIES; SHOW TABLES; SHOW SINKS")
        .await;
    let pick = |i: usize, fields: &[&str]| -> Value {
        shown["results"][i]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                let picked: serde_json::Map<String, Value> = fields
                    .iter()
                    .map(|f| (f.to_string(), row[*f].clone()))
                    .collect();
                Value::Object(picked)
            })
            .collect()
    };
    json!({
        "sources": pick(0, &["name", "kind", "format", "schema"]),
        "streams": pick(1, &["name", "kind", "sql", "inputs"]),
        "queries": pick(2, &["name", "kind", "sql", "inputs"]),
        "tables": pick(3, &["name", "rows", "schema", "sql"]),
        "sinks": pick(4, &["name", "query", "kind", "sql"]),
    })
}

/// Drops what the results of applied statements created, newest first.
async fn undo(server: &TestServer, results: &[Value]) -> Result<(), String> {
    for result in results.iter().rev() {
        let statement = result["statement"].as_str().unwrap_or_default();
        let Some(kind) = statement.strip_prefix("CREATE ") else {
            continue;
        };
        let name = result["name"].as_str().unwrap_or_default();
        let drop = format!("DROP {kind} \"{name}\"");
        let (status, body) = server.sql(&drop).await;
        if status != 200 {
            return Err(format!("cannot undo with {drop}: {body}"));
        }
    }
    Ok(())
}

/// Checks one answer against its entry; returns what is wrong, and notes on
/// known-bad entries.
async fn check(
    server: &TestServer,
    entry: &Entry,
    status: u16,
    text: &str,
    notes: &mut Vec<String>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let body: Option<Value> = serde_json::from_str(text).ok();
    if (200..300).contains(&status) {
        let results = body
            .as_ref()
            .and_then(|b| b["results"].as_array().cloned())
            .unwrap_or_default();
        if entry.known_bad == Some(KnownBad::Accepted) {
            notes.push(format!("still accepted: {}", entry.label()));
        } else {
            wrong.push(format!("accepted with {status}: {text:.300}"));
        }
        if let Err(e) = undo(server, &results).await {
            wrong.push(e);
        }
        return wrong;
    }
    if !(400..500).contains(&status) {
        wrong.push(format!("status {status}, not 4xx: {text:.300}"));
        return wrong;
    }
    let Some(error) = body.as_ref().map(|b| &b["error"]) else {
        wrong.push(format!(
            "status {status} with a body that is not JSON: {text:.300}"
        ));
        return wrong;
    };
    let message = error["message"].as_str().unwrap_or_default();
    if message.trim().is_empty() {
        wrong.push(format!("no message: {text:.300}"));
    }
    let lower = message.to_lowercase();
    let names_it = lower.contains(&entry.expect.to_lowercase())
        && !entry
            .reject
            .as_ref()
            .is_some_and(|r| lower.contains(&r.to_lowercase()));
    match (entry.known_bad, names_it) {
        (None, false) => wrong.push(format!(
            "the message does not contain {:?}{}: {message:?}",
            entry.expect,
            entry
                .reject
                .as_ref()
                .map(|r| format!(" (or contains {r:?})"))
                .unwrap_or_default()
        )),
        (Some(_), true) => notes.push(format!(
            "now names the problem, drop its known-bad: {}",
            entry.label()
        )),
        (Some(KnownBad::Accepted), false) => notes.push(format!(
            "now refused, but the message lacks {:?}: {}: {message:?}",
            entry.expect,
            entry.label()
        )),
        _ => {}
    }
    let position = (error["line"].as_u64(), error["column"].as_u64());
    match (entry.positioned, position) {
        (true, (Some(l), Some(c))) if l >= 1 && c >= 1 => {}
        (true, _) => wrong.push(format!("no line and column: {error}")),
        (false, (None, None)) => {}
        (false, _) => wrong.push(format!("a position where none was expected: {error}")),
    }
    if let Some(n) = entry.statement {
        if error["statement"].as_u64() != Some(n) {
            wrong.push(format!("statement {} instead of {n}", error["statement"]));
        }
    }
    match error["applied"].as_array() {
        Some(applied) => {
            if applied.len() != entry.applied {
                wrong.push(format!(
                    "{} statements applied instead of {}: {error}",
                    applied.len(),
                    entry.applied
                ));
            }
            if let Err(e) = undo(server, applied).await {
                wrong.push(e);
            }
        }
        None if entry.positioned => wrong.push(format!("no 'applied' list: {error}")),
        None => {}
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_of_bad_sql_is_refused_naming_the_problem() {
    let entries = parse_corpus(&std::fs::read_to_string(CORPUS).unwrap());
    assert!(entries.len() >= 220, "{} entries", entries.len());
    let (server, dir) = corpus_server().await;
    let http = client();
    let before = catalog(&server).await;
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    let mut by_category: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut skipped = 0;
    for entry in &entries {
        let counts = by_category.entry(&entry.category).or_default();
        counts.0 += 1;
        if entry.known_bad.is_some() {
            counts.1 += 1;
        }
        if matches!(entry.known_bad, Some(KnownBad::Crash | KnownBad::Hang)) {
            skipped += 1;
            continue;
        }
        let (status, text) =
            post_raw(&http, server.url("/sql"), entry.text.clone().into_bytes()).await;
        let mut wrong = check(&server, entry, status, &text, &mut notes).await;
        let health = http.get(server.url("/health")).send().await;
        if !health.is_ok_and(|h| h.status() == 200) {
            wrong.push("GET /health does not answer 200 after it".to_string());
        }
        if catalog(&server).await != before {
            wrong.push("the catalog changed: something was half-applied".to_string());
        }
        failures.extend(
            wrong
                .into_iter()
                .map(|w| format!("{}:\n    {w}", entry.label())),
        );
    }

    // What a text file cannot hold: a body that is not UTF-8, and one too big.
    let (status, text) = post_raw(&http, server.url("/sql"), b"SELECT \xff FROM ev".to_vec()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not valid UTF-8"), "{text}");
    let (status, _) = post_raw(&http, server.url("/sql"), vec![b' '; (16 << 20) + 1]).await;
    assert_eq!(status, 413);

    let known_bad = entries.iter().filter(|e| e.known_bad.is_some()).count();
    println!(
        "bad SQL corpus: {} entries, {known_bad} known-bad ({skipped} not sent: they crash or wedge the server)",
        entries.len()
    );
    for (category, (n, bad)) in &by_category {
        println!("  {category:<18} {n:>4} entries, {bad:>3} known-bad");
    }
    for note in &notes {
        println!("  note: {note}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} entries failed:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );

    // Nothing was half-applied, and the engine still runs batches.
    assert_eq!(catalog(&server).await, before);
    let (status, body) = server.post("/sources/ev", "a,1\nb,2\na,3\n").await;
    assert_eq!((status, body), (202, json!({"accepted": 3})));
    assert_eq!(server.advance(1).await, [1000]);
    let totals = server.results("totals", None).await;
    assert_eq!(
        totals,
        [json!({"batch_time": 1000, "rows": [{"k": "a", "total": 4}, {"k": "b", "total": 2}]})]
    );
    let written = dir.join("out/totals-1000.json");
    server
        .eventually("the sink writes batch 1000", || async { written.exists() })
        .await;
    assert_eq!(
        std::fs::read_to_string(&written).unwrap(),
        "{\"k\":\"a\",\"total\":4}\n{\"k\":\"b\",\"total\":2}\n"
    );
    let (_, health) = server.get("/health").await;
    assert_eq!(health["last_batch_time"], 1000);
    server.server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Bad records
// ---------------------------------------------------------------------------

/// What becomes of one record.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// A row of the batch.
    Row,
    /// A blank CSV or JSON line: neither a row nor an error.
    Blank,
    /// A bad record of this kind.
    Bad(&'static str),
    /// docs/sql.md says `docs`; sluice does `now` (a kind, or "row"). Reported.
    DiffersFromDocs {
        docs: &'static str,
        now: &'static str,
    },
}

impl Outcome {
    /// What sluice does today: a row, nothing, or a bad record of a kind.
    fn now(self) -> Option<Option<&'static str>> {
        match self {
            Outcome::Row | Outcome::DiffersFromDocs { now: "row", .. } => Some(None),
            Outcome::Blank => None,
            Outcome::Bad(kind) | Outcome::DiffersFromDocs { now: kind, .. } => Some(Some(kind)),
        }
    }
}

struct Record {
    bytes: Vec<u8>,
    outcome: Outcome,
}

fn rec(bytes: &[u8], outcome: Outcome) -> Record {
    Record {
        bytes: bytes.to_vec(),
        outcome,
    }
}

/// A 10 MB record, ten times `--max-record-bytes` (1 MiB by default).
fn huge() -> Record {
    Record {
        bytes: vec![b'x'; 10 << 20],
        outcome: Outcome::Bad("record too long"),
    }
}

/// The records, one a line.
fn payload(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&r.bytes);
        out.push(b'\n');
    }
    out
}

/// The good rows, the bad records per kind and the kinds in order.
fn expected(records: &[Record]) -> (u64, BTreeMap<String, u64>, Vec<&'static str>) {
    let mut rows = 0;
    let mut by_kind = BTreeMap::new();
    let mut order = Vec::new();
    for r in records {
        match r.outcome.now() {
            Some(None) => rows += 1,
            Some(Some(kind)) => {
                *by_kind.entry(kind.to_string()).or_insert(0) += 1;
                order.push(kind);
            }
            None => {}
        }
    }
    (rows, by_kind, order)
}

/// A source's bad-record view must be exactly what `records` give: the counts
/// by kind, and the last 10 samples with their kinds and record text.
fn assert_bad_records(source: &Value, records: &[Record], rows: u64) {
    let (good, by_kind, order) = expected(records);
    let name = &source["name"];
    assert_eq!(source["counters"]["rows"], rows, "{name}: {source:#}");
    assert_eq!(
        source["counters"]["bad_rows"],
        order.len() as u64,
        "{name}: {source:#}"
    );
    assert!(good <= rows);
    assert_eq!(
        source["bad_rows_by_kind"],
        serde_json::to_value(&by_kind).unwrap(),
        "{name}"
    );
    let bad: Vec<&Record> = records
        .iter()
        .filter(|r| matches!(r.outcome.now(), Some(Some(_))))
        .collect();
    let last: Vec<_> = bad[bad.len().saturating_sub(10)..]
        .iter()
        .map(|r| {
            let kind = r.outcome.now().flatten().unwrap_or_default();
            let shown = if kind == "record too long" {
                String::new()
            } else {
                String::from_utf8_lossy(&r.bytes[..r.bytes.len().min(200)]).into_owned()
            };
            (kind.to_string(), shown)
        })
        .collect();
    let samples: Vec<_> = source["bad_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert!(!s["error"].as_str().unwrap_or_default().is_empty(), "{s}");
            (
                s["kind"].as_str().unwrap_or_default().to_string(),
                s["record"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(samples, last, "{name}: samples");
}

/// LINES: the whole line, empty ones included; NUL bytes are kept.
fn lines_records() -> (Vec<Record>, Value) {
    let records = vec![
        rec(b"hello", Outcome::Row),
        rec(b"", Outcome::Row),
        rec(b"a\0b", Outcome::Row),
        rec(b"\xff\xfe bad", Outcome::Bad("invalid UTF-8")),
        huge(),
        rec(b"caf\xc3", Outcome::Bad("invalid UTF-8")),
        rec(b"   ", Outcome::Row),
        rec(b"with cr\r", Outcome::Row),
        rec(b"last", Outcome::Row),
    ];
    let rows = json!([
        {"line": ""}, {"line": "   "}, {"line": "a\u{0}b"}, {"line": "hello"},
        {"line": "last"}, {"line": "with cr"}
    ]);
    (records, rows)
}

/// CSV of `(k TEXT, n BIGINT NOT NULL, x DOUBLE, t TIMESTAMP)`.
fn csv_records() -> (Vec<Record>, Value) {
    let records = vec![
        rec(b"a,1,1.5,2024-01-02T03:04:05Z", Outcome::Row),
        rec(b"b,abc,1.0,2024-01-01", Outcome::Bad("bad value")),
        // Overflows to +infinity, rendered as null; docs/sql.md is silent. Reported.
        rec(b"c,2,1e999,2024-01-01", Outcome::Row),
        rec(b"d,3,2.5,2024-13-45", Outcome::Bad("bad value")),
        rec(
            b"\"e,4,1.0,2024-01-01",
            Outcome::DiffersFromDocs {
                docs: "malformed CSV",
                now: "wrong field count",
            },
        ),
        rec(
            b"f,5,1.0,\"2024-01-01",
            Outcome::DiffersFromDocs {
                docs: "malformed CSV",
                now: "row",
            },
        ),
        rec(b"g,6", Outcome::Bad("wrong field count")),
        rec(
            b"h,7,1.0,2024-01-01,extra",
            Outcome::Bad("wrong field count"),
        ),
        rec(b"i,,1.0,2024-01-01", Outcome::Bad("missing value")),
        rec(b"j,9,,", Outcome::Row),
        rec(b"k\xff,10,1.0,2024-01-01", Outcome::Bad("invalid UTF-8")),
        rec(b"l,1\x001,1.0,2024-01-01", Outcome::Bad("bad value")),
        rec(b"m\x00n,11,1.0,2024-01-01", Outcome::Row),
        huge(),
        rec(b"", Outcome::Blank),
        rec(b"   ", Outcome::Blank),
        rec(b"\"o, p\",12,1.0,2024-01-01", Outcome::Row),
        rec(b"q,13,NaN,2024-01-02 03:04:05", Outcome::Row),
        rec(b"r,99999999999999999999,1.0,", Outcome::Bad("bad value")),
        rec(b"s,14,abc,", Outcome::Bad("bad value")),
    ];
    let rows = json!([
        {"k": "a", "n": 1, "x": 1.5, "t": "2024-01-02T03:04:05Z"},
        {"k": "c", "n": 2, "x": null, "t": "2024-01-01T00:00:00Z"},
        {"k": "f", "n": 5, "x": 1.0, "t": "2024-01-01T00:00:00Z"},
        {"k": "j", "n": 9, "x": null, "t": null},
        {"k": "m\u{0}n", "n": 11, "x": 1.0, "t": "2024-01-01T00:00:00Z"},
        {"k": "o, p", "n": 12, "x": 1.0, "t": "2024-01-01T00:00:00Z"},
        {"k": "q", "n": 13, "x": null, "t": "2024-01-02T03:04:05Z"}
    ]);
    (records, rows)
}

/// JSON of `(k TEXT, n BIGINT NOT NULL, x DOUBLE, t TIMESTAMP)`.
fn json_records() -> (Vec<Record>, Value) {
    let records = vec![
        rec(
            br#"{"k": "a", "n": 1, "x": 1.5, "t": "2024-01-02T03:04:05Z"}"#,
            Outcome::Row,
        ),
        rec(br#"{"k":"#, Outcome::Bad("malformed JSON")),
        rec(b"[1,2]", Outcome::Bad("malformed JSON")),
        rec(b"nul", Outcome::Bad("malformed JSON")),
        rec(br#"{"k": "b", "n": "abc"}"#, Outcome::Bad("bad value")),
        // Valid JSON whose number is out of a double's range.
        rec(
            br#"{"k": "c", "n": 2, "x": 1e999}"#,
            Outcome::DiffersFromDocs {
                docs: "bad value",
                now: "malformed JSON",
            },
        ),
        rec(
            br#"{"k": "d", "n": 3, "t": "2024-13-45"}"#,
            Outcome::Bad("bad value"),
        ),
        rec(br#"{"k": "e"}"#, Outcome::Bad("missing value")),
        rec(br#"{"n": 4}"#, Outcome::Row),
        rec(br#"{"k": "f", "n": null}"#, Outcome::Bad("missing value")),
        rec(br#"{"k": "g\u0000h", "n": 5}"#, Outcome::Row),
        rec(
            b"{\"k\": \"g\x00h\", \"n\": 6}",
            Outcome::Bad("malformed JSON"),
        ),
        rec(
            b"{\"k\": \"\xff\", \"n\": 7}",
            Outcome::Bad("invalid UTF-8"),
        ),
        huge(),
        rec(b"", Outcome::Blank),
        rec(br#"{"k": "i", "n": 8, "extra": [1, 2]}"#, Outcome::Row),
        rec(br#"{"k": "j", "n": 1.5}"#, Outcome::Bad("bad value")),
        rec(br#"{"k": "l", "n": 9, "t": 1000}"#, Outcome::Row),
        rec(br#""str""#, Outcome::Bad("malformed JSON")),
        rec(
            br#"{"k": "m", "n": 10, "x": "1.5"}"#,
            Outcome::Bad("bad value"),
        ),
        rec(br#"{"k": "o", "n": 12} x"#, Outcome::Bad("malformed JSON")),
    ];
    let rows = json!([
        {"k": "a", "n": 1, "x": 1.5, "t": "2024-01-02T03:04:05Z"},
        {"k": null, "n": 4, "x": null, "t": null},
        {"k": "g\u{0}h", "n": 5, "x": null, "t": null},
        {"k": "i", "n": 8, "x": null, "t": null},
        {"k": "l", "n": 9, "x": null, "t": "1970-01-01T00:00:01Z"}
    ]);
    (records, rows)
}

/// The records of one format, the good ones they must give, and what is sent
/// after them (one good record) with the row it gives.
struct FormatCase {
    format: &'static str,
    columns: &'static str,
    order: &'static str,
    records: Vec<Record>,
    rows: Value,
    after: &'static [u8],
    after_row: Value,
}

fn format_cases() -> Vec<FormatCase> {
    let (lines, lines_rows) = lines_records();
    let (csv, csv_rows) = csv_records();
    let (jsonl, json_rows) = json_records();
    vec![
        FormatCase {
            format: "LINES",
            columns: "(line TEXT)",
            order: "line",
            records: lines,
            rows: lines_rows,
            after: b"after",
            after_row: json!({"line": "after"}),
        },
        FormatCase {
            format: "CSV",
            columns: "(k TEXT, n BIGINT NOT NULL, x DOUBLE, t TIMESTAMP)",
            order: "n",
            records: csv,
            rows: csv_rows,
            after: b"z,100,0.5,2024-01-01",
            after_row: json!({"k": "z", "n": 100, "x": 0.5, "t": "2024-01-01T00:00:00Z"}),
        },
        FormatCase {
            format: "JSON",
            columns: "(k TEXT, n BIGINT NOT NULL, x DOUBLE, t TIMESTAMP)",
            order: "n",
            records: jsonl,
            rows: json_rows,
            after: br#"{"k": "z", "n": 100}"#,
            after_row: json!({"k": "z", "n": 100, "x": null, "t": null}),
        },
    ]
}

/// Lists the records that behave otherwise than docs/sql.md says.
fn print_differences(source: &str, records: &[Record]) {
    for r in records {
        if let Outcome::DiffersFromDocs { docs, now } = r.outcome {
            println!(
                "  {source}: {:?} is {now}; docs/sql.md says {docs}",
                String::from_utf8_lossy(&r.bytes)
            );
        }
    }
}

async fn source(server: &TestServer, name: &str) -> Value {
    let (status, body) = server.get(&format!("/sources/{name}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The rows of a query's batch at `t`.
async fn rows_at(server: &TestServer, query: &str, t: i64) -> Value {
    let batches = server.results(query, Some(t - 1)).await;
    let batch = batches
        .iter()
        .find(|b| b["batch_time"] == t)
        .unwrap_or_else(|| panic!("{query} has no batch {t}: {batches:?}"));
    batch["rows"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_bad_records_over_tcp_are_counted_by_kind_and_the_source_reads_on() {
    let dir = scratch("tcp");
    let server = TestServer::with_data_dir(1000, &dir).await;
    let cases = format_cases();
    let mut peers = Vec::new();
    for case in &cases {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let name = format!("tcp_{}", case.format.to_lowercase());
        server
            .ok(&format!(
                "CREATE SOURCE {name} {} FROM TCP '{addr}' FORMAT {};
                 CREATE QUERY q_{name} AS SELECT * FROM {name} ORDER BY {}",
                case.columns, case.format, case.order
            ))
            .await;
        let (peer, _) = listener.accept().await.unwrap();
        peers.push((name, peer, listener));
    }
    for ((name, peer, _), case) in peers.iter_mut().zip(&cases) {
        print_differences(name, &case.records);
        let s = source(&server, name).await;
        assert_eq!(s["status"]["state"], "connected", "{s}");
        peer.write_all(&payload(&case.records)).await.unwrap();
        peer.flush().await.unwrap();
    }
    for ((name, _, _), case) in peers.iter().zip(&cases) {
        let (rows, _, bad) = expected(&case.records);
        server
            .eventually(&format!("{name} has read every record"), || async {
                let s = source(&server, name).await;
                s["counters"]["rows"] == rows && s["counters"]["bad_rows"] == bad.len() as u64
            })
            .await;
        let s = source(&server, name).await;
        assert_bad_records(&s, &case.records, rows);
        assert_eq!(s["status"]["state"], "connected", "{s}");
    }
    assert_eq!(server.advance(1).await, [1000]);
    for ((name, _, _), case) in peers.iter().zip(&cases) {
        assert_eq!(
            rows_at(&server, &format!("q_{name}"), 1000).await,
            case.rows,
            "{name}"
        );
    }
    // Good records after the bad ones still arrive, on the same connection.
    for ((_, peer, _), case) in peers.iter_mut().zip(&cases) {
        peer.write_all(case.after).await.unwrap();
        peer.write_all(b"\n").await.unwrap();
    }
    for ((name, _, _), case) in peers.iter().zip(&cases) {
        let (rows, _, _) = expected(&case.records);
        server
            .eventually(&format!("{name} reads on"), || async {
                source(&server, name).await["counters"]["rows"] == rows + 1
            })
            .await;
    }
    assert_eq!(server.advance(1).await, [2000]);
    for ((name, _, _), case) in peers.iter().zip(&cases) {
        assert_eq!(
            rows_at(&server, &format!("q_{name}"), 2000).await,
            json!([case.after_row]),
            "{name}"
        );
        let s = source(&server, name).await;
        assert_eq!(s["status"]["state"], "connected", "{s}");
        assert_bad_records(&s, &case.records, expected(&case.records).0 + 1);
    }
    server.server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes `name` in `dir` as a producer should: a temporary name, then a rename.
fn move_in(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// A Parquet file of `columns` (name, array), as bytes.
fn parquet(columns: Vec<(&str, datafusion::arrow::array::ArrayRef)>) -> Vec<u8> {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    let schema = std::sync::Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let mut out = Vec::new();
    let mut writer =
        datafusion::parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_bad_records_in_files_are_counted_by_kind_and_the_source_reads_on() {
    use datafusion::arrow::array::{Int32Array, StringArray};
    use std::sync::Arc;
    let dir = scratch("dir");
    let server = TestServer::with_data_dir(1000, &dir).await;
    let cases = format_cases();
    for case in &cases {
        let name = format!("dir_{}", case.format.to_lowercase());
        std::fs::create_dir_all(dir.join(&name)).unwrap();
        server
            .ok(&format!(
                "CREATE SOURCE {name} {} FROM DIRECTORY '{name}' FORMAT {};
                 CREATE QUERY q_{name} AS SELECT * FROM {name} ORDER BY {}",
                case.columns, case.format, case.order
            ))
            .await;
        print_differences(&name, &case.records);
        move_in(&dir.join(&name), "a.txt", &payload(&case.records));
    }
    std::fs::create_dir_all(dir.join("pq")).unwrap();
    server
        .ok("CREATE SOURCE pq (product TEXT, qty BIGINT) FROM DIRECTORY 'pq' FORMAT PARQUET;
             CREATE QUERY q_pq AS SELECT product, sum(qty) AS qty, count(*) AS n FROM pq GROUP BY product ORDER BY product")
        .await;
    let good = parquet(vec![
        ("qty", Arc::new(Int32Array::from(vec![2, 1, 5]))),
        (
            "product",
            Arc::new(StringArray::from(vec!["tea", "cake", "tea"])),
        ),
    ]);
    let pq = dir.join("pq");
    move_in(&pq, "1-good.parquet", &good);
    move_in(&pq, "2-garbage.parquet", b"not parquet");
    move_in(&pq, "3-truncated.parquet", &good[..good.len() / 2]);
    move_in(&pq, "4-empty.parquet", b"");
    move_in(
        &pq,
        "5-no-qty.parquet",
        &parquet(vec![("product", Arc::new(StringArray::from(vec!["tea"])))]),
    );
    // docs/sql.md: "a cast that fails" makes the file unreadable. Today the cast
    // is Arrow's safe one: 'many' becomes a NULL qty and the row is kept. Reported.
    println!(
        "  pq: a qty 'many' cast to BIGINT is a NULL; docs/sql.md says unreadable Parquet file"
    );
    move_in(
        &pq,
        "6-text-qty.parquet",
        &parquet(vec![
            ("product", Arc::new(StringArray::from(vec!["tea"]))),
            ("qty", Arc::new(StringArray::from(vec!["many"]))),
        ]),
    );
    assert_eq!(server.advance(1).await, [1000]);
    for case in &cases {
        let name = format!("dir_{}", case.format.to_lowercase());
        let s = source(&server, &name).await;
        assert_bad_records(&s, &case.records, expected(&case.records).0);
        assert_eq!(
            (s["status"]["state"].as_str(), s["files_read"].as_u64()),
            (Some("connected"), Some(1))
        );
        assert_eq!(
            rows_at(&server, &format!("q_{name}"), 1000).await,
            case.rows,
            "{name}"
        );
        let mut after = case.after.to_vec();
        after.push(b'\n');
        move_in(&dir.join(&name), "b.txt", &after);
    }
    assert_eq!(
        rows_at(&server, "q_pq", 1000).await,
        json!([{"product": "cake", "qty": 1, "n": 1}, {"product": "tea", "qty": 7, "n": 3}])
    );
    let s = source(&server, "pq").await;
    let mut unreadable: Vec<_> = s["bad_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["kind"].as_str().unwrap().to_string(),
                b["record"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    unreadable.sort();
    let kind = "unreadable Parquet file".to_string();
    assert_eq!(
        unreadable,
        [
            "2-garbage.parquet",
            "3-truncated.parquet",
            "4-empty.parquet",
            "5-no-qty.parquet"
        ]
        .map(|f| (kind.clone(), f.to_string()))
    );
    assert_eq!(s["bad_rows_by_kind"], json!({"unreadable Parquet file": 4}));
    assert_eq!(
        (
            s["counters"]["rows"].as_u64(),
            s["counters"]["bad_rows"].as_u64()
        ),
        (Some(4), Some(4))
    );
    assert_eq!(
        (s["status"]["state"].as_str(), s["files_read"].as_u64()),
        (Some("connected"), Some(6))
    );
    move_in(
        &pq,
        "7-good.parquet",
        &parquet(vec![
            ("product", Arc::new(StringArray::from(vec!["cake"]))),
            ("qty", Arc::new(Int32Array::from(vec![4]))),
        ]),
    );

    // The next files, after the bad ones, are read.
    assert_eq!(server.advance(1).await, [2000]);
    for case in &cases {
        let name = format!("dir_{}", case.format.to_lowercase());
        assert_eq!(
            rows_at(&server, &format!("q_{name}"), 2000).await,
            json!([case.after_row]),
            "{name}"
        );
        let s = source(&server, &name).await;
        assert_eq!(
            (s["status"]["state"].as_str(), s["files_read"].as_u64()),
            (Some("connected"), Some(2))
        );
        assert_bad_records(&s, &case.records, expected(&case.records).0 + 1);
    }
    assert_eq!(
        rows_at(&server, "q_pq", 2000).await,
        json!([{"product": "cake", "qty": 4, "n": 1}])
    );
    server.server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_http_ingest_refuses_a_request_with_any_bad_record_whole() {
    let dir = scratch("http");
    let server = TestServer::with_data_dir(1000, &dir).await;
    let http = client();
    let cases = format_cases();
    let mut refused = 0;
    for case in &cases {
        let name = format!("http_{}", case.format.to_lowercase());
        server
            .ok(&format!(
                "CREATE SOURCE {name} {} FROM HTTP FORMAT {};
                 CREATE QUERY q_{name} AS SELECT * FROM {name} ORDER BY {}",
                case.columns, case.format, case.order
            ))
            .await;
        // A good record, a blank line (counted as a line), the bad one, a good one.
        let good = &case.records[0].bytes;
        for bad in case
            .records
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Bad(_)))
        {
            let mut body = good.clone();
            body.extend_from_slice(b"\n\n");
            body.extend_from_slice(&bad.bytes);
            body.push(b'\n');
            body.extend_from_slice(good);
            let (status, text) =
                post_raw(&http, server.url(&format!("/sources/{name}")), body).await;
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let shown = String::from_utf8_lossy(&bad.bytes[..bad.bytes.len().min(60)]).into_owned();
            assert_eq!(
                (status, &answer["error"]["line"]),
                (400, &json!(3)),
                "{name} {shown:?}: {text}"
            );
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("line 3: ")
                    && message.ends_with("; nothing of this request was kept"),
                "{name} {shown:?}: {message}"
            );
            refused += 1;
        }
        let s = source(&server, &name).await;
        assert_eq!(
            (
                s["counters"]["rows"].as_u64(),
                s["counters"]["bad_rows"].as_u64(),
                s["buffered_rows"].as_u64()
            ),
            (Some(0), Some(0), Some(0)),
            "{name}: nothing of a refused request is kept or counted"
        );
        let mut body = case.after.to_vec();
        body.push(b'\n');
        let (status, text) = post_raw(&http, server.url(&format!("/sources/{name}")), body).await;
        assert_eq!((status, text.as_str()), (202, "{\"accepted\":1}"), "{name}");
    }
    assert_eq!(refused, 3 + 10 + 14);
    assert_eq!(server.advance(1).await, [1000]);
    for case in &cases {
        let name = format!("http_{}", case.format.to_lowercase());
        assert_eq!(
            rows_at(&server, &format!("q_{name}"), 1000).await,
            json!([case.after_row]),
            "{name}"
        );
        let s = source(&server, &name).await;
        assert_eq!(
            (
                s["counters"]["rows"].as_u64(),
                s["counters"]["bad_rows"].as_u64()
            ),
            (Some(1), Some(0))
        );
        assert_eq!(s["bad_rows_by_kind"], json!({}));
    }
    server.server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
