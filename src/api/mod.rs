//! The HTTP API (DESIGN.md, "HTTP API"): [`router`] builds the axum router over an
//! engine handle and never binds a socket (the server does), so tests drive it
//! with `tower::ServiceExt::oneshot`. One file per resource; one error type,
//! [`ApiError`], maps every failure to a status and a JSON body.

mod auth;
mod clock;
mod metrics;
mod queries;
mod sinks;
mod sources;
mod sql;
mod web;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub use auth::Auth;

use crate::config::ApiLimits;
use crate::engine::EngineHandle;
use crate::sql::dialect::SqlError;

/// Everything handlers need.
#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    /// Subscribers of one query at a time.
    pub max_subscribers: usize,
    /// What the token guards (`GET /health` tells clients); None: the API is open.
    pub auth: Option<Auth>,
}

pub fn router(engine: EngineHandle, limits: ApiLimits) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/ui/{file}", get(web::asset))
        .route("/health", get(metrics::health))
        .route("/metrics", get(metrics::prometheus))
        .route("/sql", post(sql::post_sql))
        .route("/sources", get(sources::list))
        .route("/sources/{name}", get(sources::show).post(sources::ingest))
        .route("/sinks", get(sinks::list))
        .route("/sinks/{name}", get(sinks::show))
        .route("/streams", get(queries::list_streams))
        .route("/streams/{name}", get(queries::show_stream))
        .route("/queries", get(queries::list))
        .route(
            "/queries/{name}",
            get(queries::show).delete(queries::delete),
        )
        .route("/queries/{name}/results", get(queries::results))
        .route("/queries/{name}/stream", get(queries::stream))
        .route("/queries/{name}/state", get(queries::state))
        .route("/clock/advance", post(clock::advance))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            limits.auth.clone(),
            auth::require,
        ))
        .with_state(AppState {
            engine,
            max_subscribers: limits.max_subscribers,
            auth: limits.auth,
        })
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; see docs/http-api.md",
    )
}

/// An error answer: `{"error": {"message": ..., ["line", "column", ...]}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({ "message": message.into() }),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(what: &str, name: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("unknown {what} '{name}'"))
    }

    pub fn sql(e: &SqlError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "message": e.message, "line": e.line, "column": e.column }),
        }
    }

    /// Adds a field to the error object.
    pub fn with(mut self, key: &str, value: Value) -> ApiError {
        if let Value::Object(map) = &mut self.body {
            map.insert(key.to_string(), value);
        }
        self
    }

    pub fn stopped() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine has stopped: the server is shutting down",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.body }))).into_response()
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> ApiError {
        ApiError::new(r.status(), r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, r.body_text())
    }
}

/// A JSON body already rendered to bytes.
pub(crate) fn raw_json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
