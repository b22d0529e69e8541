//! `GET /sinks` and `GET /sinks/{name}`: each sink's target, status and counters.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, AppState};

pub async fn list(State(app): State<AppState>) -> Json<Value> {
    let sinks: Vec<Value> = app
        .engine
        .registry
        .all_sinks()
        .iter()
        .map(|s| s.describe())
        .collect();
    Json(json!({ "sinks": sinks }))
}

pub async fn show(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let sink = app
        .engine
        .registry
        .sink(&name)
        .ok_or_else(|| ApiError::not_found("sink", &name))?;
    Ok(Json(sink.describe()))
}
