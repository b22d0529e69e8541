//! A real sluice server in this process (manual clock, port 0) and a client for it.

use std::time::Duration;

use serde_json::Value;
use sluice::config::Config;
use sluice::server::{start, RunningServer};

pub struct TestServer {
    pub server: RunningServer,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestServer {
    /// A server on the manual clock with batch interval `interval_ms`.
    pub async fn start(interval_ms: i64) -> TestServer {
        Self::with_config(Config::for_test(interval_ms)).await
    }

    /// A manual-clock server (T = `interval_ms`) whose data directory is `dir`:
    /// checkpoints, write-ahead logs and relative paths live there.
    pub async fn with_data_dir(interval_ms: i64, dir: &std::path::Path) -> TestServer {
        let mut config = Config::for_test(interval_ms);
        config.data_dir = dir.to_path_buf();
        config.engine.data_dir = Some(dir.to_path_buf());
        Self::with_config(config).await
    }

    pub async fn with_config(config: Config) -> TestServer {
        let server = start(config).await.expect("server starts");
        let base = format!("http://{}", server.addr);
        TestServer {
            server,
            base,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POST /sql; returns (status, body).
    pub async fn sql(&self, text: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/sql"))
            .body(text.to_string())
            .send()
            .await
            .expect("POST /sql");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    /// POST /sql that must succeed.
    pub async fn ok(&self, text: &str) -> Value {
        let (status, body) = self.sql(text).await;
        assert_eq!(status, 200, "{text}\n=> {body}");
        body
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .body(body.to_string())
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    /// Runs n batches on the manual clock; returns their times.
    pub async fn advance(&self, n: u32) -> Vec<i64> {
        let (status, body) = self
            .post("/clock/advance", &format!("{{\"batches\": {n}}}"))
            .await;
        assert_eq!(status, 200, "{body}");
        body["batch_times"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    }

    /// All retained result batches of a query after `after`.
    pub async fn results(&self, query: &str, after: Option<i64>) -> Vec<Value> {
        let path = match after {
            Some(a) => format!("/queries/{query}/results?after={a}&limit=1000"),
            None => format!("/queries/{query}/results?limit=1000"),
        };
        let (status, body) = self.get(&path).await;
        assert_eq!(status, 200, "{body}");
        body["batches"].as_array().unwrap().clone()
    }

    /// Waits (bounded) until `check` holds, polling every 20 ms.
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..500 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out after 10 s waiting for: {what}");
    }
}

/// A cell as the semantics files write it: strings bare, NULL for null.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(cell).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// The rows of one result batch as `a | b | c` lines.
pub fn rows(batch: &Value) -> Vec<String> {
    batch["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_object()
                .unwrap()
                .values()
                .map(cell)
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

/// An empty scratch directory `sluice-<name>-<pid>` under the system's temp dir
/// (what an earlier run left there is removed).
pub fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
