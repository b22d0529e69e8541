//! What the user wrote on the command line -> a validated [`Config`].
//!
//! `ServeArgs` is clap's view (strings as typed); [`ServeArgs::validate`] turns it
//! into a `Config` whose fields are typed and checked, each with its default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::api::Auth;
use crate::clock::Clock;
use crate::engine::{CatalogLimits, EngineConfig};
use crate::sink::Retention;
use crate::source::SourceLimits;
use crate::time::{parse_duration, Interval};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClockKind {
    /// Ticks on the grid of multiples of the batch interval in wall-clock time.
    System,
    /// Moves only on POST /clock/advance (tests, demos, replays).
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// `sluice serve` options, as typed.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Batch interval T: 500ms, 1s, 2s, ...
    #[arg(long, default_value = "1s")]
    pub batch_interval: String,
    /// Directory for sluice's data (checkpoints, logs).
    #[arg(long, default_value = "./sluice-data")]
    pub data_dir: PathBuf,
    /// SQL file to run at start (sources, streams, queries).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Which clock drives the batches.
    #[arg(long, value_enum, default_value = "system")]
    pub clock: ClockKind,
    /// Default parallelism of a query (DataFusion target partitions); default: the cores available.
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Result batches kept per query for polling and replay.
    #[arg(long, default_value_t = 100)]
    pub retain_batches: usize,
    /// Bytes of result JSON kept per query (the newest batch is always kept).
    #[arg(long, default_value_t = 16 << 20)]
    pub retain_bytes: usize,
    /// Write a checkpoint every this many batches (0: only at shutdown).
    #[arg(long, default_value_t = 10)]
    pub checkpoint_interval: u64,
    /// Write-ahead log of received rows (TCP, HTTP, generator): with it, no
    /// acknowledged row is lost or counted twice after a crash; off trades that for speed.
    #[arg(long, value_enum, default_value = "on")]
    pub wal: OnOff,
    /// A directory (besides --data-dir) that file sinks and directory sources may
    /// use; repeatable.
    #[arg(long = "allow-path")]
    pub allow_path: Vec<PathBuf>,
    /// Largest HTTP request body, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    pub max_body_bytes: usize,
    /// Longest record (line) a TCP, HTTP or directory source accepts, in bytes; a
    /// longer one is counted as a bad record and skipped, never held whole.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_record_bytes: usize,
    /// Most rows one HTTP ingest request may carry (more: 413).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_ingest_rows: usize,
    /// Most sources and static tables, together.
    #[arg(long, default_value_t = 100)]
    pub max_sources: usize,
    /// Most queries and derived streams, together.
    #[arg(long, default_value_t = 1000)]
    pub max_queries: usize,
    /// Most sinks.
    #[arg(long, default_value_t = 100)]
    pub max_sinks: usize,
    /// Most SSE / NDJSON subscribers of one query at a time (more: 429).
    #[arg(long, default_value_t = 2000)]
    pub max_subscribers: usize,
    /// A token that every request changing the server must present as
    /// `Authorization: Bearer <token>` (see docs/operations.md).
    #[arg(long, env = "SLUICE_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// With --auth-token: reads need the token too (except /health and the
    /// dashboard's own files).
    #[arg(long)]
    pub auth_reads: bool,
}

/// HTTP API settings.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Largest request body in bytes (default 16 MiB); larger gets 413.
    pub max_body_bytes: usize,
    /// Subscribers of one query at a time (default 2000); more get 429.
    pub max_subscribers: usize,
    /// The bearer token and what it guards; None: the API is open.
    pub auth: Option<Auth>,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_body_bytes: 16 << 20,
            max_subscribers: 2000,
            auth: None,
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub clock: Clock,
    pub data_dir: PathBuf,
    pub init: Option<PathBuf>,
    pub engine: EngineConfig,
    pub api: ApiLimits,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--addr '{0}' is not an address like 127.0.0.1:8080")]
    Addr(String),
    #[error("--batch-interval: {0}")]
    Interval(String),
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    #[error("--allow-path {0} is not a directory")]
    AllowPath(String),
    #[error("--auth-token is empty: give a token, or leave the option out for an open API")]
    EmptyToken,
    #[error("--auth-reads needs --auth-token (or SLUICE_AUTH_TOKEN)")]
    ReadsWithoutToken,
}

impl ServeArgs {
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let addr: SocketAddr = self
            .addr
            .parse()
            .map_err(|_| ConfigError::Addr(self.addr.clone()))?;
        let interval = parse_duration(&self.batch_interval)
            .map_err(|e| ConfigError::Interval(e.to_string()))?;
        let clock = match self.clock {
            ClockKind::System => Clock::system(interval),
            ClockKind::Manual => Clock::manual(interval),
        };
        let nonzero = |v: usize, name| {
            if v == 0 {
                Err(ConfigError::Zero(name))
            } else {
                Ok(v)
            }
        };
        let mut engine = EngineConfig::default();
        if let Some(p) = self.parallelism {
            engine.parallelism = nonzero(p, "parallelism")?;
        }
        engine.data_dir = Some(self.data_dir.clone());
        engine.checkpoint_interval = self.checkpoint_interval;
        engine.wal = self.wal == OnOff::On;
        if let Some(missing) = self.allow_path.iter().find(|p| !p.is_dir()) {
            return Err(ConfigError::AllowPath(missing.display().to_string()));
        }
        engine.allowed_paths = self.allow_path.clone();
        engine.retention = Retention {
            max_batches: nonzero(self.retain_batches, "retain-batches")?,
            max_bytes: self.retain_bytes,
        };
        engine.source_limits = SourceLimits {
            max_record_bytes: nonzero(self.max_record_bytes, "max-record-bytes")?,
            max_ingest_rows: nonzero(self.max_ingest_rows, "max-ingest-rows")?,
            ..SourceLimits::default()
        };
        engine.catalog_limits = CatalogLimits {
            sources: nonzero(self.max_sources, "max-sources")?,
            queries: nonzero(self.max_queries, "max-queries")?,
            sinks: nonzero(self.max_sinks, "max-sinks")?,
        };
        let auth = match (&self.auth_token, self.auth_reads) {
            (Some(t), _) if t.trim().is_empty() => return Err(ConfigError::EmptyToken),
            (Some(t), reads) => Some(Auth::new(t.trim().to_string(), reads)),
            (None, true) => return Err(ConfigError::ReadsWithoutToken),
            (None, false) => None,
        };
        Ok(Config {
            addr,
            clock,
            data_dir: self.data_dir.clone(),
            init: self.init.clone(),
            engine,
            api: ApiLimits {
                max_body_bytes: nonzero(self.max_body_bytes, "max-body-bytes")?,
                max_subscribers: nonzero(self.max_subscribers, "max-subscribers")?,
                auth,
            },
        })
    }
}

impl Config {
    /// A manual-clock configuration on a free local port, for tests.
    pub fn for_test(interval_ms: i64) -> Config {
        let interval =
            Interval::from_millis(interval_ms).unwrap_or_else(|e| panic!("test interval: {e}"));
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: Clock::manual(interval),
            data_dir: std::env::temp_dir().join("sluice-test"),
            init: None,
            engine: EngineConfig::default(),
            api: ApiLimits::default(),
        }
    }
}
