//! `GET /metrics` (Prometheus text format) and `GET /health`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::engine::QueryStatus;

pub async fn health(State(app): State<AppState>) -> Json<Value> {
    let registry = &app.engine.registry;
    let last = registry.last_batch().map(|t| t.millis());
    Json(json!({
        "status": "ok",
        "last_batch_time": last,
        "batch_interval_ms": registry.clock.interval().millis(),
        "clock": if registry.clock.is_manual() { "manual" } else { "system" },
        "auth": app.auth.as_ref().map(|a| json!({ "writes": true, "reads": a.reads })),
    }))
}

pub async fn prometheus(State(app): State<AppState>) -> impl IntoResponse {
    let registry = &app.engine.registry;
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    };
    let sources = registry.all_sources();
    let by_source = |f: &dyn Fn(&crate::source::SourceHandle) -> f64| -> Vec<(String, f64)> {
        sources
            .iter()
            .map(|s| (format!("source=\"{}\"", escape(s.name())), f(s)))
            .collect()
    };
    family(
        "sluice_source_rows_total",
        "counter",
        "Rows accepted by the source.",
        by_source(&|s| s.rows_total.load(Ordering::Relaxed) as f64),
    );
    family(
        "sluice_source_bytes_total",
        "counter",
        "Bytes received by the source.",
        by_source(&|s| s.bytes_total.load(Ordering::Relaxed) as f64),
    );
    family(
        "sluice_source_bad_records_total",
        "counter",
        "Records that could not be decoded and were skipped.",
        by_source(&|s| s.bad_total.load(Ordering::Relaxed) as f64),
    );
    family(
        "sluice_source_batch_rows",
        "gauge",
        "Rows in the source's last sealed batch.",
        by_source(&|s| s.last_batch().rows as f64),
    );
    family(
        "sluice_source_connected",
        "gauge",
        "1 if the source is connected.",
        by_source(&|s| {
            f64::from(u8::from(
                s.status() == crate::source::SourceStatus::Connected,
            ))
        }),
    );

    let queries = registry.all_queries();
    let by_query = |f: &dyn Fn(&crate::engine::QueryInfo) -> f64| -> Vec<(String, f64)> {
        queries
            .iter()
            .map(|q| (format!("query=\"{}\"", escape(&q.name)), f(q)))
            .collect()
    };
    family(
        "sluice_query_batches_total",
        "counter",
        "Batches the query has run.",
        by_query(&|q| q.metrics().batches as f64),
    );
    family(
        "sluice_query_input_rows_total",
        "counter",
        "Input rows the query has read.",
        by_query(&|q| q.metrics().input_rows_total as f64),
    );
    family(
        "sluice_query_output_rows_total",
        "counter",
        "Rows the query has emitted.",
        by_query(&|q| q.metrics().output_rows_total as f64),
    );
    family(
        "sluice_query_processing_seconds_total",
        "counter",
        "Time spent running the query.",
        by_query(&|q| q.metrics().processing_us_total as f64 / 1e6),
    );
    family(
        "sluice_query_last_processing_seconds",
        "gauge",
        "Processing time of the last batch.",
        by_query(&|q| {
            q.last_metrics()
                .map_or(0.0, |m| m.processing_us as f64 / 1e6)
        }),
    );
    family(
        "sluice_query_last_scheduling_delay_seconds",
        "gauge",
        "Scheduling delay of the last batch.",
        by_query(&|q| {
            q.last_metrics()
                .map_or(0.0, |m| m.scheduling_delay_ms as f64 / 1e3)
        }),
    );
    family(
        "sluice_query_failed",
        "gauge",
        "1 if the query has failed.",
        by_query(&|q| f64::from(u8::from(matches!(q.status(), QueryStatus::Failed { .. })))),
    );
    family(
        "sluice_query_subscribers",
        "gauge",
        "Live subscribers of the query's results.",
        by_query(&|q| q.results.clients() as f64),
    );
    let last = registry.last_batch().map_or(-1.0, |t| t.millis() as f64);
    family(
        "sluice_engine_last_batch_time_ms",
        "gauge",
        "The last batch time run (ms).",
        vec![(String::new(), last)],
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
