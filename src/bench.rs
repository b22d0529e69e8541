//! `sluice bench`: the benchmark of docs/benchmarks.md (not a test).
//!
//! 1. Word count, end to end from TCP bytes to emitted results: a local TCP
//!    listener (the bench plays `nc -lk`) sends N eight-word lines; the TCP source
//!    frames and decodes them; one manual tick seals the batch, runs the derived
//!    stream `words` and the query `wc`, renders and stores the results. Lines/s =
//!    N / (time from the first byte sent to the results stored).
//! 2. The fixed cost of an idle query: K queries over a source with no rows,
//!    ticked B times; cost = (tick time with K queries - with none) / (K × B).
//!
//! Build with `--release`; a debug build measures the debugger's patience.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::clock::{Clock, Stopwatch};
use crate::engine::{self, Engine, EngineConfig, EngineHandle};
use crate::source::generator::WORDS;
use crate::time::Interval;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Lines per batch to measure, comma-separated.
    #[arg(long, default_value = "10000,100000,1000000", value_delimiter = ',')]
    pub lines: Vec<usize>,
    /// Batches measured per size (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Parallelism settings to measure, comma-separated.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    pub parallelism: Vec<usize>,
    /// Idle queries for the fixed-cost measurement.
    #[arg(long, default_value_t = 100)]
    pub idle_queries: usize,
    /// Batches ticked for the fixed-cost measurement.
    #[arg(long, default_value_t = 50)]
    pub idle_batches: u32,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; run `cargo run --release -- bench` for real figures"
        );
    }
    println!("## Word count, TCP bytes to results (8 words a line)\n");
    println!("| parallelism | lines/batch | median batch time | lines/s | of which receive+decode | tick (seal+query+emit) |");
    println!("|---|---|---|---|---|---|");
    for &p in &args.parallelism {
        for &n in &args.lines {
            let r = wordcount(n, p, args.repeat).await?;
            println!(
                "| {p} | {n} | {:.1} ms | {:.2} M | {:.1} ms | {:.1} ms |",
                r.total_us as f64 / 1e3,
                n as f64 / (r.total_us as f64 / 1e6) / 1e6,
                r.receive_us as f64 / 1e3,
                r.tick_us as f64 / 1e3
            );
        }
    }
    println!("\n## Fixed cost of an idle query per batch\n");
    println!("| parallelism | queries | batches | tick time, no queries | tick time, with queries | per idle query per batch |");
    println!("|---|---|---|---|---|---|");
    for &p in &args.parallelism {
        let base = idle(0, p, args.idle_batches).await?;
        let with = idle(args.idle_queries, p, args.idle_batches).await?;
        let per = (with - base).max(0.0) / args.idle_queries.max(1) as f64;
        println!(
            "| {p} | {} | {} | {:.1} µs | {:.1} µs | {:.1} µs |",
            args.idle_queries, args.idle_batches, base, with, per
        );
    }
    Ok(())
}

struct Sample {
    total_us: u64,
    receive_us: u64,
    tick_us: u64,
}

fn engine_with(parallelism: usize) -> anyhow::Result<EngineHandle> {
    let clock = Clock::manual(Interval::from_millis(1000).map_err(anyhow::Error::msg)?);
    let config = EngineConfig {
        parallelism,
        ..EngineConfig::default()
    };
    let (handle, _task) = engine::spawn(Engine::new(clock, config));
    Ok(handle)
}

async fn sql(engine: &EngineHandle, text: &str) -> anyhow::Result<()> {
    match engine.sql(text.to_string()).await? {
        Ok(_) => Ok(()),
        Err(f) => anyhow::bail!("{}: {}", text, f.error.message),
    }
}

fn payload(lines: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut out = Vec::with_capacity(lines * 48);
    for _ in 0..lines {
        for w in 0..8 {
            if w > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(WORDS[rng.random_range(0..WORDS.len())].as_bytes());
        }
        out.push(b'\n');
    }
    out
}

async fn wordcount(lines: usize, parallelism: usize, repeat: usize) -> anyhow::Result<Sample> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let engine = engine_with(parallelism)?;
    sql(
        &engine,
        &format!(
            "CREATE SOURCE lines (line TEXT) FROM TCP '{addr}';
             CREATE STREAM words AS SELECT unnest(string_to_array(line, ' ')) AS word FROM lines;
             CREATE QUERY wc AS SELECT word, count(*) AS n FROM words GROUP BY word;"
        ),
    )
    .await?;
    let (mut peer, _) = listener.accept().await?;
    let source = engine
        .registry
        .source("lines")
        .ok_or_else(|| anyhow::anyhow!("source vanished"))?;
    let query = engine
        .registry
        .query("wc")
        .ok_or_else(|| anyhow::anyhow!("query vanished"))?;
    let data = Arc::new(payload(lines));
    let mut samples = Vec::new();
    for _ in 0..repeat + 1 {
        let before = source.rows_total.load(Ordering::Relaxed);
        let watch = Stopwatch::start();
        let data = Arc::clone(&data);
        let writer = tokio::spawn(async move {
            let r = peer.write_all(&data).await;
            (peer, r)
        });
        while source.rows_total.load(Ordering::Relaxed) < before + lines as u64 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let received = watch.elapsed_us();
        engine.advance(1).await?;
        let total = watch.elapsed_us();
        let (p, r) = writer.await?;
        r?;
        peer = p;
        let out = query.last_metrics().map_or(0, |m| m.input_rows);
        anyhow::ensure!(
            out == lines * 8,
            "the query saw {out} words, expected {}",
            lines * 8
        );
        samples.push(Sample {
            total_us: total,
            receive_us: received,
            tick_us: total - received,
        });
    }
    samples.remove(0); // warm-up
    samples.sort_by_key(|s| s.total_us);
    Ok(samples.swap_remove(samples.len() / 2))
}

/// Mean tick time in µs with `queries` idle queries.
async fn idle(queries: usize, parallelism: usize, batches: u32) -> anyhow::Result<f64> {
    let engine = engine_with(parallelism)?;
    sql(&engine, "CREATE SOURCE idle (line TEXT) FROM HTTP").await?;
    for i in 0..queries {
        sql(
            &engine,
            &format!("CREATE QUERY q{i} AS SELECT line, count(*) AS n FROM idle GROUP BY line"),
        )
        .await?;
    }
    engine.advance(5).await?; // warm-up
    let watch = Stopwatch::start();
    engine.advance(batches).await?;
    Ok(watch.elapsed_us() as f64 / batches as f64)
}
