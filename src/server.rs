//! The composition root: build the engine, run `--init`, bind the HTTP server,
//! and shut down in order on Ctrl-C / SIGTERM.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api;
use crate::config::Config;
use crate::engine::{self, Engine, EngineHandle};
use crate::state::checkpoint;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read the init file {path}: {source}")]
    InitRead {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: statement {index}: {message}")]
    Init {
        path: String,
        index: usize,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("the engine stopped during start-up")]
    EngineStopped,
    #[error("cannot read the checkpoints in {path}: {source}")]
    Scan {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Version(#[from] crate::state::checkpoint::RestoreError),
    #[error("cannot restore the checkpoint {dir}: {message}")]
    Restore { dir: String, message: String },
}

/// A server running in this process.
pub struct RunningServer {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    pub engine: EngineHandle,
    shutdown: Option<oneshot::Sender<()>>,
    http: JoinHandle<Result<(), std::io::Error>>,
}

impl RunningServer {
    /// Shuts down in order: the sources stop, the batch in progress completes, a
    /// final checkpoint is written (so a restart resumes exactly here), every
    /// subscription ends with a closing event, then the HTTP server stops accepting
    /// requests and finishes those in flight.
    pub async fn stop(mut self) {
        let _ = self.engine.shutdown().await;
        for query in self.engine.registry.all_queries() {
            query.results.close(crate::sink::EndReason::Shutdown);
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.http).await;
    }
}

/// Builds everything, runs `--init`, binds and starts serving.
pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let mut engine = Engine::new(config.clock.clone(), config.engine.clone());
    let restored = restore(&mut engine, &config.data_dir).await?;
    let (handle, _task) = engine::spawn(engine);
    match (&config.init, restored) {
        (Some(path), false) => run_init(&handle, path).await?,
        (Some(path), true) => {
            tracing::info!(file = %path.display(), "--init skipped: the server was restored from a checkpoint")
        }
        (None, _) => {}
    }
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.addr,
        source,
    })?;
    if !addr.ip().is_loopback() && config.api.auth.is_none() {
        tracing::warn!(
            %addr,
            "listening beyond this machine without --auth-token: anyone who can reach the port can create, drop and feed; set --auth-token (or SLUICE_AUTH_TOKEN)"
        );
    }
    let app = api::router(handle.clone(), config.api);
    let (tx, rx) = oneshot::channel::<()>();
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    tracing::info!(%addr, interval = %config.clock.interval(), manual = config.clock.is_manual(), "sluice is serving");
    Ok(RunningServer {
        addr,
        engine: handle,
        shutdown: Some(tx),
        http,
    })
}

/// Spark's getOrCreate: restores the newest complete checkpoint under `data_dir`,
/// if there is one. Returns whether one was restored.
async fn restore(engine: &mut Engine, data_dir: &std::path::Path) -> Result<bool, ServerError> {
    let found = checkpoint::scan(data_dir).map_err(|source| ServerError::Scan {
        path: data_dir.display().to_string(),
        source,
    })?;
    let choice = checkpoint::choose(&found)?;
    for skipped in &choice.skipped {
        tracing::warn!("ignoring a torn or partial checkpoint: {skipped}");
    }
    let Some(chosen) = choice.restore else {
        return Ok(false);
    };
    let dir = chosen.dir.display().to_string();
    let t = engine
        .restore(&chosen)
        .await
        .map_err(|message| ServerError::Restore {
            dir: dir.clone(),
            message,
        })?;
    tracing::info!(checkpoint = %dir, batch_time = t, "restored from checkpoint; resuming at the next batch");
    Ok(true)
}

async fn run_init(engine: &EngineHandle, path: &std::path::Path) -> Result<(), ServerError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ServerError::InitRead {
        path: shown.clone(),
        source,
    })?;
    match engine
        .sql(text)
        .await
        .map_err(|_| ServerError::EngineStopped)?
    {
        Ok(results) => {
            tracing::info!(file = %shown, statements = results.len(), "ran the init file");
            Ok(())
        }
        Err(f) => Err(ServerError::Init {
            path: shown,
            index: f.index,
            line: f.error.line.unwrap_or(0),
            column: f.error.column.unwrap_or(0),
            message: f.error.message,
        }),
    }
}

/// `sluice serve`: runs until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> Result<(), ServerError> {
    let mut server = start(config).await?;
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down; a second signal exits at once");
            tokio::spawn(async {
                shutdown_signal().await;
                tracing::warn!("second signal: exiting now");
                std::process::exit(130);
            });
            server.stop().await;
            Ok(())
        }
        r = &mut server.http => match r {
            Ok(r) => r.map_err(ServerError::Serve),
            Err(e) => Err(ServerError::Serve(std::io::Error::other(e))),
        },
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
