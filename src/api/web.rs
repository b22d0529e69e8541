//! The dashboard (`web/`): plain HTML, CSS and JavaScript modules, compiled into the
//! binary so that a release build needs no files beside it. `/` is the page; its
//! modules and style sheet are under `/ui/`.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// (file name, content type, contents) of every file under `web/`.
const FILES: &[(&str, &str, &str)] = &[
    ("index.html", HTML, include_str!("../../web/index.html")),
    ("style.css", CSS, include_str!("../../web/style.css")),
    ("app.js", JS, include_str!("../../web/app.js")),
    ("api.js", JS, include_str!("../../web/api.js")),
    ("dom.js", JS, include_str!("../../web/dom.js")),
    ("table.js", JS, include_str!("../../web/table.js")),
    ("chart.js", JS, include_str!("../../web/chart.js")),
    ("overview.js", JS, include_str!("../../web/overview.js")),
    ("query.js", JS, include_str!("../../web/query.js")),
    ("health.js", JS, include_str!("../../web/health.js")),
    ("editor.js", JS, include_str!("../../web/editor.js")),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

pub async fn index() -> Response {
    serve("index.html").unwrap_or_else(|e| e.into_response())
}

pub async fn asset(Path(name): Path<String>) -> Response {
    serve(&name).unwrap_or_else(|e| e.into_response())
}

fn serve(name: &str) -> Result<Response, ApiError> {
    let (_, content_type, body) =
        FILES
            .iter()
            .find(|(file, _, _)| *file == name)
            .ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, format!("no dashboard file '{name}'"))
            })?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            // Revalidate on every load, so an upgraded server is never mixed with
            // a cached older module.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        *body,
    )
        .into_response())
}
