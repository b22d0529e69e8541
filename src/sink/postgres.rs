//! `INTO POSTGRES 'postgres://user@host:port/db' TABLE 't' [KEY (col, ...)]`
//! (foreachRDD to a database). Each result batch is written in one transaction:
//!
//! - per-batch and windowed queries: the rows are appended, with the batch time
//!   in a `batch_time` column (and `window_start`, `window_end` for windows);
//! - cumulative queries: the rows are upserted by key (`INSERT ... ON CONFLICT
//!   (key) DO UPDATE`), so the table holds the current state. The key is the
//!   query's GROUP BY columns, or `KEY (...)` if given.
//!
//! The table is created if missing: the query's columns (BIGINT, DOUBLE
//! PRECISION, BOOLEAN or TEXT), then the bookkeeping columns, and the key as the
//! primary key for an upsert. Values travel as typed parameters, never as SQL
//! text. The connection is opened on the first batch and again after a failure.

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

use super::files::rows_of;
use super::ResultBatch;

/// A validated `INTO POSTGRES ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresTarget {
    pub url: String,
    pub table: String,
    /// Upsert by these columns (cumulative queries); None: append.
    pub key: Option<Vec<String>>,
    /// Windowed query: also `window_start`, `window_end`.
    pub windowed: bool,
}

/// How a column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Bool,
    Text,
}

impl Kind {
    fn of(dt: &DataType) -> Kind {
        match dt {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => Kind::Int,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Kind::Float,
            DataType::Boolean => Kind::Bool,
            _ => Kind::Text,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Kind::Int => "BIGINT",
            Kind::Float => "DOUBLE PRECISION",
            Kind::Bool => "BOOLEAN",
            Kind::Text => "TEXT",
        }
    }
}

/// `"name"`, quotes doubled.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub struct Postgres {
    target: PostgresTarget,
    columns: Vec<(String, Kind)>,
    client: Mutex<Option<Client>>,
}

/// Rows per INSERT statement (PostgreSQL takes at most 65 535 parameters).
const ROWS_PER_STATEMENT: usize = 1000;

impl Postgres {
    pub fn new(target: PostgresTarget, schema: &SchemaRef) -> Postgres {
        let columns = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), Kind::of(f.data_type())))
            .collect();
        Postgres {
            target,
            columns,
            client: Mutex::new(None),
        }
    }

    /// Every column written: the query's, then the bookkeeping ones.
    fn all_columns(&self) -> Vec<(String, Kind)> {
        let mut all = self.columns.clone();
        all.push(("batch_time".into(), Kind::Int));
        if self.target.windowed {
            all.push(("window_start".into(), Kind::Int));
            all.push(("window_end".into(), Kind::Int));
        }
        all
    }

    fn create_sql(&self) -> String {
        let mut cols: Vec<String> = self
            .all_columns()
            .iter()
            .map(|(n, k)| format!("{} {}", ident(n), k.sql()))
            .collect();
        if let Some(key) = &self.target.key {
            let key: Vec<String> = key.iter().map(|k| ident(k)).collect();
            cols.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            ident(&self.target.table),
            cols.join(", ")
        )
    }

    async fn connect(&self) -> Result<Client, String> {
        let (client, connection) = tokio_postgres::connect(&self.target.url, NoTls)
            .await
            .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("PostgreSQL connection ended: {e}");
            }
        });
        client
            .batch_execute(&self.create_sql())
            .await
            .map_err(|e| format!("cannot create table {}: {e}", self.target.table))?;
        Ok(client)
    }

    pub async fn write(&self, batch: &ResultBatch) -> Result<usize, String> {
        let rows = rows_of(&batch.json)?;
        let head: Value = serde_json::from_slice(&batch.json).unwrap_or(Value::Null);
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = Some(self.connect().await?);
        }
        let Some(client) = guard.as_mut() else {
            return Err("no PostgreSQL connection".into());
        };
        let result = self.insert(client, &rows, &head).await;
        if result.is_err() {
            // Start from a fresh connection next time.
            *guard = None;
        }
        result.map(|()| rows.len())
    }

    async fn insert(
        &self,
        client: &mut Client,
        rows: &[Value],
        head: &Value,
    ) -> Result<(), String> {
        let columns = self.all_columns();
        let names: Vec<String> = columns.iter().map(|(n, _)| ident(n)).collect();
        let conflict = match &self.target.key {
            Some(key) => {
                let keys: Vec<String> = key.iter().map(|k| ident(k)).collect();
                let updates: Vec<String> = columns
                    .iter()
                    .filter(|(n, _)| !key.contains(n))
                    .map(|(n, _)| format!("{0} = EXCLUDED.{0}", ident(n)))
                    .collect();
                if updates.is_empty() {
                    format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", "))
                } else {
                    format!(
                        " ON CONFLICT ({}) DO UPDATE SET {}",
                        keys.join(", "),
                        updates.join(", ")
                    )
                }
            }
            None => String::new(),
        };
        let tx = client
            .transaction()
            .await
            .map_err(|e| format!("PostgreSQL: {e}"))?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
            let mut tuples = Vec::with_capacity(chunk.len());
            for row in chunk {
                let mut slots = Vec::with_capacity(columns.len());
                for (name, kind) in &columns {
                    let value = match name.as_str() {
                        "batch_time" | "window_start" | "window_end"
                            if !self.columns.iter().any(|(n, _)| n == name) =>
                        {
                            head.get(name)
                        }
                        _ => row.get(name),
                    };
                    params.push(param(value, *kind));
                    slots.push(format!("${}", params.len()));
                }
                tuples.push(format!("({})", slots.join(", ")));
            }
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {}{}",
                ident(&self.target.table),
                names.join(", "),
                tuples.join(", "),
                conflict
            );
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            tx.execute(sql.as_str(), &refs)
                .await
                .map_err(|e| format!("PostgreSQL: {e}"))?;
        }
        tx.commit().await.map_err(|e| format!("PostgreSQL: {e}"))
    }
}

/// A JSON value as a parameter of the column's kind (NULL when absent).
fn param(value: Option<&Value>, kind: Kind) -> Box<dyn ToSql + Sync + Send> {
    match (kind, value) {
        (_, None | Some(Value::Null)) => match kind {
            Kind::Int => Box::new(None::<i64>),
            Kind::Float => Box::new(None::<f64>),
            Kind::Bool => Box::new(None::<bool>),
            Kind::Text => Box::new(None::<String>),
        },
        (Kind::Int, Some(v)) => Box::new(v.as_i64()),
        (Kind::Float, Some(v)) => Box::new(v.as_f64()),
        (Kind::Bool, Some(v)) => Box::new(v.as_bool()),
        (Kind::Text, Some(Value::String(s))) => Box::new(Some(s.clone())),
        (Kind::Text, Some(v)) => Box::new(Some(v.to_string())),
    }
}
