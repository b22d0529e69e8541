//! `POST /clock/advance {"batches": n}`: manual clock only; runs n batches now,
//! through the same tick path as the system clock, and returns their times.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, AppState};

/// Most batches one request may run.
const MAX_ADVANCE: u64 = 100_000;

pub async fn advance(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body?;
    if !app.engine.registry.clock.is_manual() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the server runs on the system clock; start it with --clock manual to advance time by hand",
        ));
    }
    let batches = if body.iter().all(u8::is_ascii_whitespace) {
        1
    } else {
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("body must be JSON like {{\"batches\": 3}}: {e}"))
        })?;
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "body must be a JSON object like {\"batches\": 3}",
            ));
        }
        match value.get("batches") {
            None => 1,
            Some(n) => n
                .as_u64()
                .filter(|n| (1..=MAX_ADVANCE).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "\"batches\" must be a whole number from 1 to {MAX_ADVANCE}"
                    ))
                })?,
        }
    };
    let times = app
        .engine
        .advance(batches as u32)
        .await
        .map_err(|_| ApiError::stopped())?;
    Ok(Json(json!({ "batch_times": times })))
}
