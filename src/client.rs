//! The command-line client: `sluice sql` and `sluice tail`.

use futures::StreamExt;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the sluice server at {server}: {source}")]
    Connect {
        server: String,
        source: reqwest::Error,
    },
    #[error("{0}")]
    Server(String),
    #[error("the server sent something that is not JSON: {0}")]
    Json(String),
}

/// Where the server is, and the token to present (`--token` or `SLUICE_AUTH_TOKEN`).
pub struct Server {
    pub url: String,
    pub token: Option<String>,
}

impl Server {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let request = reqwest::Client::new().request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// Posts statements; returns the pretty-printed answer, or the server's error
/// (with line and column) as the error.
pub async fn sql(server: &Server, text: &str) -> Result<String, ClientError> {
    let response = server
        .request(reqwest::Method::POST, "/sql")
        .header("content-type", "text/plain")
        .body(text.to_string())
        .send()
        .await
        .map_err(|source| ClientError::Connect {
            server: server.to_string(),
            source,
        })?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|source| ClientError::Connect {
            server: server.to_string(),
            source,
        })?;
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| ClientError::Json(e.to_string()))?;
    if !status.is_success() {
        let e = &value["error"];
        let place = match (e["line"].as_u64(), e["column"].as_u64()) {
            (Some(l), Some(c)) => format!("line {l}, column {c}: "),
            _ => String::new(),
        };
        let message = e["message"].as_str().unwrap_or("unknown error");
        return Err(ClientError::Server(format!("{place}{message}")));
    }
    Ok(serde_json::to_string_pretty(&value).unwrap_or_default())
}

/// Subscribes to a query and prints each batch as Spark's `print()` does.
pub async fn tail(
    server: &Server,
    query: &str,
    mut out: impl std::io::Write,
) -> Result<(), ClientError> {
    let response = server
        .request(
            reqwest::Method::GET,
            &format!("/queries/{query}/stream?format=ndjson"),
        )
        .send()
        .await
        .map_err(|source| ClientError::Connect {
            server: server.to_string(),
            source,
        })?;
    if !response.status().is_success() {
        let bytes = response.bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("request failed")
            .to_string();
        return Err(ClientError::Server(message));
    }
    let mut bytes = response.bytes_stream();
    let mut pending = Vec::new();
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.map_err(|source| ClientError::Connect {
            server: server.to_string(),
            source,
        })?;
        pending.extend_from_slice(&chunk);
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            let value: Value =
                serde_json::from_slice(&line).map_err(|e| ClientError::Json(e.to_string()))?;
            let _ = out.write_all(print_batch(&value).as_bytes());
            let _ = out.flush();
            if value.get("end").is_some() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Spark's `DStream.print()`: a dashed line, `Time: <ms> ms`, a dashed line, the
/// first 10 rows as tuples, `...` if there are more, and an empty line.
pub fn print_batch(batch: &Value) -> String {
    const DASHES: &str = "-------------------------------------------";
    if let Some(lag) = batch.get("lagged") {
        return format!(
            "(fell behind: {} batches after {} ms were dropped; resuming at {} ms)\n",
            lag["missed"], lag["last"], lag["resume"]
        );
    }
    if let Some(end) = batch.get("end") {
        return match batch.get("code").and_then(Value::as_str) {
            Some("shutdown") => "(the server is shutting down)\n".to_string(),
            Some("dropped") | None => "(the query was dropped)\n".to_string(),
            Some(_) => format!("(the stream ended: {})\n", end.as_str().unwrap_or_default()),
        };
    }
    let mut s = format!("{DASHES}\nTime: {} ms\n{DASHES}\n", batch["batch_time"]);
    let rows = batch["rows"].as_array().cloned().unwrap_or_default();
    for row in rows.iter().take(10) {
        let fields: Vec<String> = match row {
            Value::Object(map) => map.values().map(show).collect(),
            other => vec![show(other)],
        };
        if fields.len() == 1 {
            s.push_str(&fields[0]);
        } else {
            s.push('(');
            s.push_str(&fields.join(","));
            s.push(')');
        }
        s.push('\n');
    }
    if rows.len() > 10 {
        s.push_str("...\n");
    }
    s.push('\n');
    s
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_like_spark() {
        let batch =
            json!({"batch_time": 2000, "rows": [{"word": "a", "n": 2}, {"word": "b", "n": 1}]});
        assert_eq!(
            print_batch(&batch),
            "-------------------------------------------\nTime: 2000 ms\n-------------------------------------------\n(a,2)\n(b,1)\n\n"
        );
        let many: Vec<Value> = (0..12).map(|i| json!({"n": i})).collect();
        let printed = print_batch(&json!({"batch_time": 1000, "rows": many}));
        assert!(printed.ends_with("8\n9\n...\n\n"), "{printed}");
    }
}
