//! The composition root: build the engine, run `--init`, bind the HTTP server,
//! and shut down in order on Ctrl-C / SIGTERM.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api;
use crate::config::Config;
use crate::engine::{self, Engine, EngineHandle};

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
    /// Ends every subscription (subscribers get a closing event), stops accepting
    /// requests and waits for the HTTP server to finish.
    pub async fn stop(mut self) {
        for query in self.engine.registry.all_queries() {
            query.results.close();
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
    let engine = Engine::new(config.clock.clone(), config.engine.clone());
    let (handle, _task) = engine::spawn(engine);
    if let Some(path) = &config.init {
        run_init(&handle, path).await?;
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
