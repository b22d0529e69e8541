//! `GET /sources`, `GET /sources/{name}`, and HTTP ingest `POST /sources/{name}`.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::source::{IngestError, SourceHandle};

pub async fn list(State(app): State<AppState>) -> Json<Value> {
    let sources: Vec<Value> = app
        .engine
        .registry
        .all_sources()
        .iter()
        .map(|s| describe(s))
        .collect();
    Json(json!({ "sources": sources }))
}

pub async fn show(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let source = app
        .engine
        .registry
        .source(&name)
        .ok_or_else(|| ApiError::not_found("source", &name))?;
    Ok(Json(describe(&source)))
}

pub async fn ingest(
    State(app): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body?;
    let source = app
        .engine
        .registry
        .source(&name)
        .ok_or_else(|| ApiError::not_found("source", &name))?;
    match source.ingest(&body).await {
        Ok(accepted) => Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": accepted })))),
        Err(e @ IngestError::BadRow { line, .. }) => Err(ApiError::bad_request(format!(
            "{e}; nothing of this request was kept"
        ))
        .with("line", json!(line))),
        Err(e @ IngestError::NotHttp(_)) => Err(ApiError::bad_request(e.to_string())),
        Err(e @ IngestError::Busy(..)) => {
            Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()))
        }
        Err(e @ (IngestError::TooBig { .. } | IngestError::TooManyRows { .. })) => {
            Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))
        }
        Err(e @ IngestError::Stopped) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )),
        Err(e @ IngestError::Log(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )),
    }
}

pub fn describe(s: &SourceHandle) -> Value {
    let (bad_by_kind, bad_samples) = s.bad_records();
    let mut address = Value::Null;
    let mut topic = Value::Null;
    match &s.spec.kind {
        crate::source::SourceKind::Tcp { addr } => address = json!(addr),
        crate::source::SourceKind::Kafka { brokers, topic: t } => {
            address = json!(brokers);
            topic = json!(t);
        }
        crate::source::SourceKind::Directory { path } => {
            address = json!(path.display().to_string());
        }
        _ => {}
    }
    json!({
        "name": s.name(),
        "kind": s.spec.kind.name(),
        "address": address,
        "topic": topic,
        "offsets": s.kafka_offsets(),
        "files_read": s.files_read().len(),
        "format": s.spec.format.name(),
        "schema": crate::engine::schema_json(s.schema()),
        "sql": s.spec.sql,
        "status": s.status(),
        "counters": {
            "rows": s.rows_total.load(Ordering::Relaxed),
            "bytes": s.bytes_total.load(Ordering::Relaxed),
            "bad_rows": s.bad_total.load(Ordering::Relaxed),
        },
        "buffered_rows": s.buffered_rows(),
        "last_batch": s.last_batch(),
        "bad_rows_by_kind": bad_by_kind,
        "bad_samples": bad_samples,
    })
}
