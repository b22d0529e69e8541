//! Queries and streams: listing, details, DELETE, and results by poll
//! (`/results`), subscription (`/stream`: SSE, or NDJSON with `?format=ndjson`)
//! and the latest table (`/state`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::{raw_json, ApiError, AppState};
use crate::engine::{schema_json, QueryInfo};
use crate::sink::results::ClientSlot;
use crate::sink::{EndReason, ResultBatch};
use crate::time::BatchTime;

pub async fn list(State(app): State<AppState>) -> Json<Value> {
    let queries: Vec<Value> = app
        .engine
        .registry
        .all_queries()
        .iter()
        .map(|q| summary(q))
        .collect();
    Json(json!({ "queries": queries }))
}

pub async fn list_streams(State(app): State<AppState>) -> Json<Value> {
    let streams: Vec<Value> = app
        .engine
        .registry
        .all_streams()
        .iter()
        .map(|q| summary(q))
        .collect();
    Json(json!({ "streams": streams }))
}

pub async fn show(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let q = query(&app, &name)?;
    Ok(Json(details(&q)))
}

pub async fn show_stream(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let q = app
        .engine
        .registry
        .stream(&name)
        .ok_or_else(|| ApiError::not_found("stream", &name))?;
    Ok(Json(details(&q)))
}

/// `DELETE /queries/{name}`: the same as `DROP QUERY name`.
pub async fn delete(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    query(&app, &name)?;
    let sql = format!("DROP QUERY \"{}\"", name.replace('"', "\"\""));
    match app.engine.sql(sql).await.map_err(|_| ApiError::stopped())? {
        Ok(mut results) => Ok(Json(results.pop().unwrap_or(Value::Null))),
        Err(f) => Err(ApiError::new(StatusCode::NOT_FOUND, f.error.message)),
    }
}

fn query(app: &AppState, name: &str) -> Result<Arc<QueryInfo>, ApiError> {
    app.engine
        .registry
        .query(name)
        .ok_or_else(|| ApiError::not_found("query", name))
}

fn summary(q: &QueryInfo) -> Value {
    let (batches, output_rows_total) = q.totals();
    json!({
        "name": q.name,
        "kind": q.kind.name(),
        "sql": q.sql,
        "status": q.status(),
        "last_batch": q.last_metrics(),
        "batches": batches,
        "output_rows_total": output_rows_total,
    })
}

fn details(q: &QueryInfo) -> Value {
    let metrics = q.metrics();
    let (retained_batches, retained_bytes) = q.results.retained();
    json!({
        "name": q.name,
        "kind": q.kind.name(),
        "sql": q.sql,
        "status": q.status(),
        "schema": schema_json(&q.schema),
        "inputs": q.inputs,
        "zero_time": q.zero_time.millis(),
        "cumulative": q.cumulative.as_ref().map(|c| json!({
            "ttl_ms": c.ttl_ms,
            "emit": c.emit,
            "keys": q.window_memory().rows,
            "bytes": q.window_memory().bytes,
        })),
        "window": q.window.map(|w| json!({
            "length_ms": w.length_ms,
            "slide_ms": w.slide_ms,
            "pane_ms": w.pane_ms,
            "mode": w.mode,
            "held": q.window_memory(),
        })),
        "parallelism": q.parallelism,
        "metrics": {
            "batches": metrics.batches,
            "input_rows_total": metrics.input_rows_total,
            "output_rows_total": metrics.output_rows_total,
            "processing_us_total": metrics.processing_us_total,
            "last_batch": metrics.last(),
            "history": metrics.history,
        },
        "results": {
            "retained_batches": retained_batches,
            "retained_bytes": retained_bytes,
            "subscribers": q.results.clients(),
        },
    })
}

#[derive(Debug, Deserialize)]
pub struct ResultsParams {
    after: Option<i64>,
    limit: Option<usize>,
}

/// Most batches one poll returns.
const MAX_POLL: usize = 1000;

/// `GET /queries/{name}/results?after=&limit=`: retained batches after `after`,
/// oldest first; `next` is the batch time to pass as `after` next time.
pub async fn results(
    State(app): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<ResultsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let q = query(&app, &name)?;
    let limit = params.limit.unwrap_or(100).min(MAX_POLL);
    let batches = q.results.after(params.after.map(BatchTime), limit);
    let next = batches
        .last()
        .map(|b| b.batch_time.millis())
        .or(params.after);
    let mut body = Vec::with_capacity(batches.iter().map(|b| b.json.len() + 1).sum::<usize>() + 32);
    body.extend_from_slice(b"{\"batches\":[");
    for (i, b) in batches.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&b.json);
    }
    body.extend_from_slice(
        format!(
            "],\"next\":{}}}",
            next.map_or("null".to_string(), |n| n.to_string())
        )
        .as_bytes(),
    );
    Ok(raw_json(StatusCode::OK, body))
}

#[derive(Debug, Deserialize)]
pub struct StateParams {
    limit: Option<usize>,
    order_by: Option<String>,
}

/// `GET /queries/{name}/state`: the latest emitted table, `?order_by=col [asc|desc]`, `?limit=`.
pub async fn state(
    State(app): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<StateParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params?;
    let q = query(&app, &name)?;
    // A cumulative query's table is computed on request (its results may hold
    // only updates); other queries answer with their latest result batch.
    let table = if q.cumulative.is_some() {
        match app
            .engine
            .state(name.clone())
            .await
            .map_err(|_| ApiError::stopped())?
        {
            Some(Ok(json)) => Some(bytes::Bytes::from(json)),
            Some(Err(e)) => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e)),
            None => None,
        }
    } else {
        q.results.latest().map(|b| b.json.clone())
    };
    let Some(latest) = table else {
        return Ok(Json(json!({ "batch_time": null, "rows": [] })));
    };
    let mut batch: Value = serde_json::from_slice(&latest).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stored result is not JSON: {e}"),
        )
    })?;
    let Some(Value::Array(rows)) = batch.get_mut("rows") else {
        return Ok(Json(batch));
    };
    if let Some(order) = &params.order_by {
        let mut parts = order.split_whitespace();
        let column = parts.next().unwrap_or_default().to_string();
        let descending = match parts.next().map(|d| d.to_ascii_lowercase()) {
            None => false,
            Some(d) if d == "asc" => false,
            Some(d) if d == "desc" => true,
            Some(d) => {
                return Err(ApiError::bad_request(format!(
                    "order_by direction '{d}' must be asc or desc"
                )))
            }
        };
        if !q.schema.fields().iter().any(|f| f.name() == &column) {
            let known: Vec<&str> = q
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            return Err(ApiError::bad_request(format!(
                "unknown column '{column}' in order_by; columns: {}",
                known.join(", ")
            )));
        }
        rows.sort_by(|a, b| {
            let o = compare(a.get(&column), b.get(&column));
            if descending {
                o.reverse()
            } else {
                o
            }
        });
    }
    if let Some(limit) = params.limit {
        rows.truncate(limit);
    }
    Ok(Json(batch))
}

/// JSON values of one column: nulls first, then numbers, strings, others as text.
fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.unwrap_or(&Value::Null), b.unwrap_or(&Value::Null)) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (x, y) => x.to_string().cmp(&y.to_string()),
    }
}

#[derive(Debug, Deserialize)]
pub struct StreamParams {
    after: Option<i64>,
    format: Option<String>,
}

/// What a subscriber receives.
enum Update {
    Batch(Arc<ResultBatch>),
    /// The subscriber fell behind the live feed and batches it had not received
    /// were no longer retained: `missed` batches between `last` and `resume`
    /// are lost to it; it goes on from the oldest retained batch.
    Lagged {
        missed: i64,
        last: Option<i64>,
        resume: i64,
    },
    /// The stream ended: the query was dropped or the server is shutting down.
    End(EndReason),
}

struct Subscription {
    query: Arc<QueryInfo>,
    /// Time between two result batches of the query: its slide, or the batch interval.
    cadence_ms: i64,
    live: Option<broadcast::Receiver<Arc<ResultBatch>>>,
    pending: VecDeque<Arc<ResultBatch>>,
    last: Option<BatchTime>,
    ended: bool,
    /// The subscriber's place under `--max-subscribers`, held while it is connected.
    slot: Option<ClientSlot>,
}

impl Subscription {
    /// Subscribes first, then takes the replay, so no batch falls in between.
    /// Without `after`, only batches emitted from now on are delivered.
    fn new(query: Arc<QueryInfo>, after: Option<BatchTime>, cadence_ms: i64) -> Subscription {
        let live = query.results.subscribe();
        let (pending, last) = match after {
            Some(a) => (query.results.after(Some(a), usize::MAX).into(), Some(a)),
            // Live only: from the latest batch, or from the query's zero time if it
            // has emitted nothing yet (so a lag before its first batch is measured too).
            None => {
                let latest = query.results.latest().map(|b| b.batch_time);
                (VecDeque::new(), Some(latest.unwrap_or(query.zero_time)))
            }
        };
        Subscription {
            query,
            cadence_ms: cadence_ms.max(1),
            live,
            pending,
            last,
            ended: false,
            slot: None,
        }
    }

    async fn next(&mut self) -> Option<Update> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(b) = self.pending.pop_front() {
                if self.last.is_none_or(|l| b.batch_time > l) {
                    self.last = Some(b.batch_time);
                    return Some(Update::Batch(b));
                }
                continue;
            }
            let Some(live) = self.live.as_mut() else {
                self.ended = true;
                return Some(Update::End(self.query.results.end_reason()));
            };
            match live.recv().await {
                Ok(b) => self.pending.push_back(b),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Catch up from the store; report only what it no longer has.
                    self.pending = self.query.results.after(self.last, usize::MAX).into();
                    if let (Some(last), Some(first)) = (self.last, self.pending.front()) {
                        // Emission times lie on the grid zero + k·cadence: count the
                        // grid points strictly between `last` and `first`.
                        let zero = self.query.zero_time.millis();
                        let slot = |t: i64| (t - zero).div_euclid(self.cadence_ms);
                        let missed = slot(first.batch_time.millis()) - 1 - slot(last.millis());
                        if missed > 0 {
                            let resume = first.batch_time.millis();
                            return Some(Update::Lagged {
                                missed,
                                last: Some(last.millis()),
                                resume,
                            });
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.ended = true;
                    return Some(Update::End(self.query.results.end_reason()));
                }
            }
        }
    }

    fn into_stream(self) -> impl Stream<Item = Update> + Send {
        stream::unfold(self, |mut s| async move { s.next().await.map(|u| (u, s)) })
    }
}

/// `GET /queries/{name}/stream`: SSE (`event: batch`, id = batch time), or NDJSON
/// with `?format=ndjson`. `?after=` or `Last-Event-ID` replays retained batches first.
pub async fn stream(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    params: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let q = query(&app, &name)?;
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("Last-Event-ID must be a batch time in milliseconds")
                })?,
        ),
    };
    let after = params.after.or(last_event_id).map(BatchTime);
    let Some(slot) = q.results.admit_client(app.max_subscribers) else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "query '{name}' already has {} subscribers, its limit (--max-subscribers {}); retry later or poll /results",
                q.results.clients(),
                app.max_subscribers
            ),
        ));
    };
    let cadence = q.cadence_ms(app.engine.registry.clock.interval().millis());
    let mut subscription = Subscription::new(q, after, cadence);
    subscription.slot = Some(slot);
    let updates = subscription.into_stream();
    match params.format.as_deref() {
        None | Some("sse") => Ok((
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Body::from_stream(with_keep_alive(updates.map(sse_frame))),
        )
            .into_response()),
        Some("ndjson") => {
            // A batch is its shared JSON bytes and a line break: nothing is copied.
            let chunks =
                updates.flat_map(|u| stream::iter([ndjson_line(u), Bytes::from_static(b"\n")]));
            Ok((
                [(header::CONTENT_TYPE, "application/x-ndjson")],
                Body::from_stream(chunks.map(Ok::<_, Infallible>)),
            )
                .into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown format '{other}'; use sse or ndjson"
        ))),
    }
}

/// An idle SSE connection gets a comment line this often, so proxies keep it open.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

fn with_keep_alive(
    frames: impl Stream<Item = Bytes> + Send + 'static,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    stream::unfold(Box::pin(frames), |mut frames| async move {
        // Cancelling `next` is safe: the subscription keeps its place (a broadcast
        // receive loses nothing when dropped).
        match tokio::time::timeout(KEEP_ALIVE, frames.next()).await {
            Ok(Some(frame)) => Some((Ok(frame), frames)),
            Ok(None) => None,
            Err(_) => Some((Ok(Bytes::from_static(b":\n\n")), frames)),
        }
    })
}

fn sse_frame(u: Update) -> Bytes {
    let (event, data) = match u {
        Update::Batch(b) => return b.sse_frame(),
        Update::Lagged {
            missed,
            last,
            resume,
        } => (
            "lagged",
            json!({ "missed": missed, "last": last, "resume": resume }),
        ),
        Update::End(why) => (
            "end",
            json!({ "reason": why.message(), "code": why.code() }),
        ),
    };
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// An NDJSON line without its line break: the batch's JSON, a lag or the end.
fn ndjson_line(u: Update) -> Bytes {
    match u {
        Update::Batch(b) => b.json.clone(),
        Update::Lagged {
            missed,
            last,
            resume,
        } => Bytes::from(
            json!({ "lagged": { "missed": missed, "last": last, "resume": resume } }).to_string(),
        ),
        Update::End(why) => {
            Bytes::from(json!({ "end": why.message(), "code": why.code() }).to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::QueryKind;
    use crate::sink::{ResultStore, Retention};
    use datafusion::arrow::datatypes::Schema;

    fn query(retain: usize) -> Arc<QueryInfo> {
        Arc::new(QueryInfo::new(
            "q".into(),
            "SELECT 1".into(),
            QueryKind::PerBatch,
            Arc::new(Schema::empty()),
            BatchTime(0),
            1,
            Vec::new(),
            ResultStore::new(Retention {
                max_batches: retain,
                max_bytes: 1 << 20,
            }),
        ))
    }

    fn push(q: &QueryInfo, t: i64) {
        q.results
            .push(ResultBatch::new(BatchTime(t), 0, Bytes::from_static(b"{}")));
    }

    fn time(u: Option<Update>) -> i64 {
        match u {
            Some(Update::Batch(b)) => b.batch_time.millis(),
            _ => panic!("expected a batch"),
        }
    }

    #[tokio::test]
    async fn a_stalled_subscriber_is_told_what_it_missed_and_resumes() {
        let q = query(100);
        push(&q, 1000);
        let mut sub = Subscription::new(Arc::clone(&q), None, 1000);
        // 200 batches while the subscriber does not read: the live feed holds 64,
        // the store 100, so batches 2000..=101000 are gone for it.
        for t in 2..=201 {
            push(&q, t * 1000);
        }
        match sub.next().await {
            Some(Update::Lagged {
                missed,
                last,
                resume,
            }) => {
                assert_eq!((missed, last, resume), (100, Some(1000), 102_000));
            }
            _ => panic!("expected a lag notice"),
        }
        for t in 102..=201 {
            assert_eq!(time(sub.next().await), t * 1000);
        }
        q.results.close(EndReason::Shutdown);
        assert!(matches!(
            sub.next().await,
            Some(Update::End(EndReason::Shutdown))
        ));
        assert!(sub.next().await.is_none());
    }

    #[tokio::test]
    async fn a_lag_before_the_first_batch_is_reported_too() {
        let q = query(10);
        let mut sub = Subscription::new(Arc::clone(&q), None, 1000);
        for t in 1..=100 {
            push(&q, t * 1000);
        }
        match sub.next().await {
            Some(Update::Lagged {
                missed,
                last,
                resume,
            }) => assert_eq!((missed, last, resume), (90, Some(0), 91_000)),
            _ => panic!("expected a lag notice"),
        }
        assert_eq!(time(sub.next().await), 91_000);
    }

    #[tokio::test]
    async fn a_lag_covered_by_retention_loses_nothing_and_says_nothing() {
        let q = query(1000);
        let mut sub = Subscription::new(Arc::clone(&q), None, 1000);
        for t in 1..=100 {
            push(&q, t * 1000);
        }
        for t in 1..=100 {
            assert_eq!(time(sub.next().await), t * 1000);
        }
    }
}
