//! The `sluice` command line: parse, set up logging, run, print errors.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice::config::ServeArgs;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A streaming SQL server: Spark Streaming's micro-batches over DataFusion"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Send SQL statements to a server and print the answer ("-" reads stdin).
    Sql {
        sql: String,
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "SLUICE_SERVER")]
        server: String,
        /// The server's --auth-token.
        #[arg(long, env = "SLUICE_AUTH_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Subscribe to a query and print each batch as Spark's print() does.
    Tail {
        query: String,
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "SLUICE_SERVER")]
        server: String,
        /// The server's --auth-token (needed with --auth-reads).
        #[arg(long, env = "SLUICE_AUTH_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Measure throughput and per-query overhead on this machine (see docs/benchmarks.md).
    Bench(sluice::bench::BenchArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // DataFusion plans and prints expressions recursively: room for the deepest
        // statement the dialect accepts (sql::dialect::MAX_EXPRESSION_DEPTH).
        .thread_stack_size(16 << 20)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse();
    let result: anyhow::Result<()> = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => {
                let config = args.validate()?;
                sluice::server::serve(config).await?;
            }
            Command::Sql { sql, server, token } => {
                let server = sluice::client::Server { url: server, token };
                let text = if sql == "-" {
                    std::io::read_to_string(std::io::stdin())?
                } else {
                    sql
                };
                println!("{}", sluice::client::sql(&server, &text).await?);
            }
            Command::Tail {
                query,
                server,
                token,
            } => {
                let server = sluice::client::Server { url: server, token };
                sluice::client::tail(&server, &query, std::io::stdout()).await?;
            }
            Command::Bench(args) => sluice::bench::run(args).await?,
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
