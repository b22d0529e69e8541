//! `POST /sql`: the body is SQL text, or `{"sql": "..."}`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, AppState};

pub async fn post_sql(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body?;
    let text = sql_text(&body)?;
    match app
        .engine
        .sql(text)
        .await
        .map_err(|_| ApiError::stopped())?
    {
        Ok(results) => Ok(Json(json!({ "results": results }))),
        Err(failure) => Err(ApiError::sql(&failure.error)
            .with("statement", json!(failure.index))
            .with("applied", Value::Array(failure.applied))),
    }
}

fn sql_text(body: &[u8]) -> Result<String, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid UTF-8 (byte {})",
            e.valid_up_to()
        ))
    })?;
    if text.trim_start().starts_with('{') {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body looks like JSON but is not valid: {e}"
            ))
        })?;
        return match value.get("sql") {
            Some(Value::String(sql)) => Ok(sql.clone()),
            _ => Err(ApiError::bad_request(
                "a JSON body needs a string field \"sql\", as in {\"sql\": \"SHOW QUERIES\"}",
            )),
        };
    }
    Ok(text.to_string())
}
