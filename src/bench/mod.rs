//! `sluice bench`: the benchmark of docs/benchmarks.md (not a test).
//!
//! 1. Word count, end to end from TCP bytes to emitted results: a local TCP
//!    listener (the bench plays `nc -lk`) sends N eight-word lines; the TCP source
//!    frames and decodes them; one manual tick seals the batch, runs the derived
//!    stream `words` and the query `wc`, renders and stores the results. Lines/s =
//!    N / (time from the first byte sent to the results stored).
//! 2. The fixed cost of an idle query: K queries over a source with no rows,
//!    ticked B times; cost = (tick time with K queries - with none) / (K × B).
//! 3. A keyed count over windows of 60 s, 600 s and 3600 s sliding every 5 s, at a
//!    fixed input rate: mean time per batch once the window is full.
//! 4. The best seller over 10 days every minute at 10 000 sales/s: time per batch
//!    and the memory the window holds.
//! 5. Cumulative state: per-batch time with 10 thousand vs 10 million keys, and
//!    checkpoint write and restore times.
//! 6. The write-ahead log's cost: HTTP ingest throughput through a real server
//!    (loopback, concurrent clients) with `--wal on` and `--wal off`.
//! 7. Kafka: a word count fed from a local broker (tansu, as the tests use), at
//!    1 s batches of the system clock: messages/s consumed, and the cost of a
//!    checkpoint that holds the offsets.
//! 8. Subscribers: 1000 SSE subscribers on one query, 10 of which never read; the
//!    query's processing time with and without them ([`subscribers`]).
//!
//! Build with `--release`; a debug build measures the debugger's patience.

pub mod subscribers;

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
    /// Which measurements to run, comma-separated: wordcount, idle, windows,
    /// best-seller, cumulative, wal, kafka, subscribers.
    #[arg(
        long,
        default_value = "wordcount,idle,windows,best-seller,cumulative,wal,kafka,subscribers",
        value_delimiter = ','
    )]
    pub sections: Vec<String>,
    /// Cumulative bench: keys in state, comma-separated.
    #[arg(long, default_value = "10000,10000000", value_delimiter = ',')]
    pub state_keys: Vec<usize>,
    /// Window bench: input rows per second (T = 1 s).
    #[arg(long, default_value_t = 10_000)]
    pub window_rate: usize,
    /// Window bench: distinct keys.
    #[arg(long, default_value_t = 1000)]
    pub window_keys: usize,
    /// Window bench: batches measured once the window is full.
    #[arg(long, default_value_t = 300)]
    pub window_batches: u32,
    /// Best-seller bench: batches run (one pane a minute).
    #[arg(long, default_value_t = 1800)]
    pub best_seller_batches: u32,
    /// WAL bench: concurrent HTTP clients, comma-separated.
    #[arg(long, default_value = "1,16", value_delimiter = ',')]
    pub wal_clients: Vec<usize>,
    /// WAL bench: rows per request, comma-separated.
    #[arg(long, default_value = "100,10000", value_delimiter = ',')]
    pub wal_rows: Vec<usize>,
    /// WAL bench: seconds measured per setting.
    #[arg(long, default_value_t = 4)]
    pub wal_seconds: u64,
    /// Kafka bench: messages produced (8-word lines) before consuming.
    #[arg(long, default_value_t = 1_000_000)]
    pub kafka_messages: usize,
    /// Subscribers bench: SSE subscribers that read, and that never read.
    #[arg(long, default_value_t = 990)]
    pub subscribers_reading: usize,
    #[arg(long, default_value_t = 10)]
    pub subscribers_stalled: usize,
    /// Subscribers bench: batches per phase (one every 100 ms).
    #[arg(long, default_value_t = 150)]
    pub subscribers_batches: u32,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; run `cargo run --release -- bench` for real figures"
        );
    }
    let run = |name: &str| args.sections.iter().any(|s| s == name);
    if run("wordcount") {
        wordcount_section(&args).await?;
    }
    if run("idle") {
        idle_section(&args).await?;
    }
    if run("windows") {
        windows_section(&args).await?;
    }
    if run("best-seller") {
        best_seller_section(&args).await?;
    }
    if run("cumulative") {
        cumulative_section(&args).await?;
    }
    if run("wal") {
        wal_section(&args).await?;
    }
    if run("kafka") {
        kafka_section(&args).await?;
    }
    if run("subscribers") {
        subscribers_section(&args).await?;
    }
    Ok(())
}

async fn subscribers_section(args: &BenchArgs) -> anyhow::Result<()> {
    let many = subscribers::LoadSpec {
        bin: std::env::current_exe()?,
        readers: args.subscribers_reading,
        stalled: args.subscribers_stalled,
        batches: args.subscribers_batches,
        every: Duration::from_millis(100),
        lines_per_batch: 20_000,
        rows_out: 100,
    };
    // Few subscribers, large batches: the stalled ones' socket buffers fill and
    // batches they never got leave the store, so they must be told they lagged.
    let stall = subscribers::LoadSpec {
        readers: 10,
        stalled: 2,
        batches: 160,
        every: Duration::from_millis(20),
        lines_per_batch: 4000,
        rows_out: 4000,
        ..many.clone()
    };
    println!("\n## Subscribers: SSE readers and subscribers that never read, on one query\n");
    println!("| readers + never reading | result batch | median processing, no subscribers (before / after) | with them | with / without | readers with every batch | never-reading told they lagged | most bytes one found waiting | server memory before → with |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for spec in [many, stall] {
        let r = subscribers::subscriber_load(&spec).await?;
        let quiet = (r.quiet_before_us + r.quiet_after_us) as f64 / 2.0;
        println!(
            "| {} + {} | {} bytes | {:.2} / {:.2} ms | {:.2} ms | {:.2} | {} of {} | {} of {} | {:.1} MiB | {:.0} → {:.0} MiB |",
            spec.readers,
            spec.stalled,
            r.batch_bytes,
            r.quiet_before_us as f64 / 1e3,
            r.quiet_after_us as f64 / 1e3,
            r.loaded_us as f64 / 1e3,
            r.loaded_us as f64 / quiet,
            r.readers_complete,
            spec.readers,
            r.stalled_lagged,
            spec.stalled,
            r.stalled_bytes_max as f64 / 1048576.0,
            r.rss_before as f64 / 1048576.0,
            r.rss_loaded as f64 / 1048576.0,
        );
    }
    Ok(())
}

async fn wordcount_section(args: &BenchArgs) -> anyhow::Result<()> {
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
    Ok(())
}

async fn idle_section(args: &BenchArgs) -> anyhow::Result<()> {
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

/// CSV bodies of `rows` rows over `keys` keys, one per batch, rotating the keys.
fn keyed_bodies(rows: usize, keys: usize, count: usize) -> Vec<Arc<Vec<u8>>> {
    let mut rng = StdRng::seed_from_u64(11);
    (0..count)
        .map(|_| {
            let mut body = Vec::with_capacity(rows * 12);
            for _ in 0..rows {
                body.extend_from_slice(
                    format!(
                        "k{},{}\n",
                        rng.random_range(0..keys),
                        rng.random_range(1..10)
                    )
                    .as_bytes(),
                );
            }
            Arc::new(body)
        })
        .collect()
}

struct WindowRun {
    /// Mean tick time over the measured batches, µs.
    mean_us: f64,
    /// Longest tick, µs (a two-stacks flip merges every pane of the window once).
    max_us: u64,
    /// Mean tick time of the emitting batches, µs.
    emit_us: f64,
    held_rows: usize,
    held_bytes: usize,
    panes: usize,
}

/// Runs `query` (reading source `s (k TEXT, v BIGINT)`) for `fill` batches, then
/// measures `measure` batches; `rows` rows a batch over `keys` keys (T = 1 s).
async fn window_run(
    query: &str,
    rows: usize,
    keys: usize,
    fill: u32,
    measure: u32,
    slide_batches: u32,
) -> anyhow::Result<WindowRun> {
    let engine = engine_with(1)?;
    sql(
        &engine,
        "CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV",
    )
    .await?;
    sql(&engine, &format!("CREATE QUERY w AS {query}")).await?;
    let source = engine
        .registry
        .source("s")
        .ok_or_else(|| anyhow::anyhow!("no source"))?;
    let bodies = keyed_bodies(rows, keys, 16);
    let mut total = 0u64;
    let mut max_us = 0u64;
    let mut emitting = (0u64, 0u32);
    for i in 0..fill + measure {
        source
            .ingest(&bodies[i as usize % bodies.len()])
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let watch = Stopwatch::start();
        let t = engine.advance(1).await?;
        let us = watch.elapsed_us();
        if i >= fill {
            total += us;
            max_us = max_us.max(us);
            if t.first()
                .is_some_and(|t| (t / 1000) % slide_batches as i64 == 0)
            {
                emitting.0 += us;
                emitting.1 += 1;
            }
        }
    }
    let q = engine
        .registry
        .query("w")
        .ok_or_else(|| anyhow::anyhow!("no query"))?;
    let held = q.window_memory();
    Ok(WindowRun {
        mean_us: total as f64 / measure as f64,
        max_us,
        emit_us: emitting.0 as f64 / emitting.1.max(1) as f64,
        held_rows: held.rows,
        held_bytes: held.bytes,
        panes: held.panes,
    })
}

async fn windows_section(args: &BenchArgs) -> anyhow::Result<()> {
    let lengths = [60u32, 600, 3600];
    println!(
        "\n## Keyed count over sliding windows, every 5 s ({} rows/s, {} keys, T = 1 s, parallelism 1)\n",
        args.window_rate, args.window_keys
    );
    // The three windows are three queries of one engine on the same input, so they
    // are measured batch by batch under the same machine load.
    let engine = engine_with(1)?;
    sql(
        &engine,
        "CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV",
    )
    .await?;
    for length in lengths {
        sql(&engine, &format!("CREATE QUERY w{length} AS SELECT k, count(*) AS n FROM s GROUP BY k WINDOW SLIDING {length}s EVERY 5s")).await?;
    }
    let source = engine
        .registry
        .source("s")
        .ok_or_else(|| anyhow::anyhow!("no source"))?;
    let queries: Vec<_> = lengths
        .iter()
        .map(|l| {
            engine
                .registry
                .query(&format!("w{l}"))
                .ok_or_else(|| anyhow::anyhow!("no query"))
        })
        .collect::<anyhow::Result<_>>()?;
    let bodies = keyed_bodies(args.window_rate, args.window_keys, 16);
    let fill = lengths[2];
    let measure = args.window_batches.max(lengths[2]);
    let mut start_us = vec![0u64; lengths.len()];
    let mut max_us = vec![0u64; lengths.len()];
    for i in 0..fill + measure {
        source
            .ingest(&bodies[i as usize % bodies.len()])
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        engine.advance(1).await?;
        if i + 1 == fill {
            start_us = queries
                .iter()
                .map(|q| q.metrics().processing_us_total)
                .collect();
        }
        if i >= fill {
            for (j, q) in queries.iter().enumerate() {
                max_us[j] = max_us[j].max(q.last_metrics().map_or(0, |m| m.processing_us));
            }
        }
    }
    println!("All three windows full after {fill} batches, then measured over {measure} batches (at least one window length: a whole cycle of the two-stacks merge).\n");
    println!("| window | mean time per batch | longest batch | panes held | state rows held | state bytes held | vs 60 s |");
    println!("|---|---|---|---|---|---|---|");
    let means: Vec<f64> = queries
        .iter()
        .zip(&start_us)
        .map(|(q, s)| (q.metrics().processing_us_total - s) as f64 / measure as f64)
        .collect();
    for (j, length) in lengths.iter().enumerate() {
        let held = queries[j].window_memory();
        println!(
            "| {length} s | {:.3} ms | {:.1} ms | {} | {} | {:.1} MiB | {:.2}× |",
            means[j] / 1e3,
            max_us[j] as f64 / 1e3,
            held.panes,
            held.rows,
            held.bytes as f64 / (1 << 20) as f64,
            means[j] / means[0]
        );
    }
    Ok(())
}

async fn best_seller_section(args: &BenchArgs) -> anyhow::Result<()> {
    let rate = 10_000;
    let products = 1000;
    println!(
        "\n## Best seller: 10 d window every 1 min, {rate} sales/s over {products} products, T = 1 s, {} batches\n",
        args.best_seller_batches
    );
    let query = "SELECT k AS product, sum(v) AS sold FROM s GROUP BY k WINDOW SLIDING 10d EVERY 1m ORDER BY sold DESC, product LIMIT 1";
    let measure = args.best_seller_batches.saturating_sub(60).max(60);
    let r = window_run(query, rate, products, 60, measure, 60).await?;
    println!("| mean time per batch | mean time of an emitting batch (every 60th) | longest batch | panes held | state rows held | state bytes held | bytes per pane |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {:.2} ms | {:.2} ms | {:.1} ms | {} | {} | {:.2} MiB | {:.1} KiB |",
        r.mean_us / 1e3,
        r.emit_us / 1e3,
        r.max_us as f64 / 1e3,
        r.panes,
        r.held_rows,
        r.held_bytes as f64 / (1 << 20) as f64,
        r.held_bytes as f64 / r.panes.max(1) as f64 / 1024.0
    );
    Ok(())
}

/// A CSV body of `rows` rows `<key>,1` with keys from `keys`.
fn body_of(keys: impl Iterator<Item = usize>) -> Vec<u8> {
    let mut body = Vec::new();
    for k in keys {
        body.extend_from_slice(format!("{k},1\n").as_bytes());
    }
    body
}

/// One engine of the cumulative bench: its state size, handles and bodies.
struct StateRun {
    keys: usize,
    fill: usize,
    engine: EngineHandle,
    source: Arc<crate::source::SourceHandle>,
    query: Arc<crate::engine::QueryInfo>,
    bodies: Vec<Vec<u8>>,
    times_us: Vec<u64>,
}

async fn cumulative_section(args: &BenchArgs) -> anyhow::Result<()> {
    let batch = 100_000usize;
    let measured = 30usize;
    // Fill every state first, then measure the state sizes batch by batch in
    // turn, so that the machine's noise falls on all of them alike.
    let mut runs = Vec::new();
    for &keys in &args.state_keys {
        let engine = engine_with(1)?;
        sql(
            &engine,
            "CREATE SOURCE s (k BIGINT, v BIGINT) FROM HTTP FORMAT CSV",
        )
        .await?;
        sql(&engine, "CREATE QUERY c AS SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k WINDOW CUMULATIVE EMIT UPDATES").await?;
        let source = engine
            .registry
            .source("s")
            .ok_or_else(|| anyhow::anyhow!("no source"))?;
        let query = engine
            .registry
            .query("c")
            .ok_or_else(|| anyhow::anyhow!("no query"))?;
        // Fill: every key once, in batches of `batch` new keys.
        let fill = keys.div_ceil(batch);
        for b in 0..fill {
            let start = b * batch;
            source
                .ingest(&body_of(start..(start + batch).min(keys)))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            engine.advance(1).await?;
        }
        // Each measured batch has `batch` rows over `touched` distinct keys drawn
        // from the whole state, so every state size gets the same batch work.
        let mut rng = StdRng::seed_from_u64(5);
        let touched = 10_000.min(keys);
        let bodies: Vec<Vec<u8>> = (0..4)
            .map(|_| {
                let chosen = rand::seq::index::sample(&mut rng, keys, touched).into_vec();
                body_of((0..batch).map(|i| chosen[i % touched]))
            })
            .collect();
        runs.push(StateRun {
            keys,
            fill,
            engine,
            source,
            query,
            bodies,
            times_us: Vec::with_capacity(measured),
        });
    }
    for b in 0..measured + 2 {
        for run in &mut runs {
            run.source
                .ingest(&run.bodies[b % run.bodies.len()])
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let before = run.query.metrics().processing_us_total;
            run.engine.advance(1).await?;
            // The first two batches warm up.
            if b >= 2 {
                run.times_us
                    .push(run.query.metrics().processing_us_total - before);
            }
        }
    }
    println!("\n## Cumulative count, EMIT UPDATES: {batch}-row batches over 10 000 distinct keys, against the keys in state (parallelism 1)\n");
    println!("| keys in state | batches to fill | median time per batch ({measured} measured) | mean | state bytes | median vs first | checkpoint write | Parquet size | restore |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut base = None;
    for run in &mut runs {
        run.times_us.sort_unstable();
        let median = run.times_us[run.times_us.len() / 2] as f64;
        let mean = run.times_us.iter().sum::<u64>() as f64 / run.times_us.len() as f64;
        let held = run.query.window_memory();
        anyhow::ensure!(
            held.rows == run.keys,
            "state holds {} keys, expected {}",
            held.rows,
            run.keys
        );
        let ratio = median / *base.get_or_insert(median);
        // Checkpoint the state, then restore it into a fresh engine.
        let dir = std::env::temp_dir().join(format!(
            "sluice-bench-ckpt-{}-{}",
            std::process::id(),
            run.keys
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let watch = Stopwatch::start();
        let manifest = checkpoint_engine(&run.engine, &dir).await?;
        let write_ms = watch.elapsed_us() as f64 / 1e3;
        let parquet: u64 = manifest.files.iter().map(|f| f.bytes).sum();
        let watch = Stopwatch::start();
        let found = crate::state::checkpoint::scan(&dir)?;
        let chosen = crate::state::checkpoint::choose(&found)?
            .restore
            .ok_or_else(|| anyhow::anyhow!("no checkpoint"))?;
        let mut fresh = Engine::new(
            Clock::manual(Interval::from_millis(1000).map_err(anyhow::Error::msg)?),
            EngineConfig {
                parallelism: 1,
                ..EngineConfig::default()
            },
        );
        fresh.restore(&chosen).await.map_err(anyhow::Error::msg)?;
        let restore_ms = watch.elapsed_us() as f64 / 1e3;
        drop(fresh);
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "| {} | {} | {:.1} ms | {:.1} ms | {:.0} MiB | {ratio:.2}× | {write_ms:.0} ms | {:.0} MiB | {restore_ms:.0} ms |",
            run.keys,
            run.fill,
            median / 1e3,
            mean / 1e3,
            held.bytes as f64 / (1 << 20) as f64,
            parquet as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}

async fn checkpoint_engine(
    engine: &EngineHandle,
    dir: &std::path::Path,
) -> anyhow::Result<crate::state::checkpoint::Manifest> {
    engine
        .checkpoint_into(dir.to_path_buf())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no checkpoint was written"))
}

async fn wal_section(args: &BenchArgs) -> anyhow::Result<()> {
    println!("\n## Write-ahead log: HTTP ingest throughput with and without it\n");
    println!("| clients | rows/request | --wal off: rows/s | --wal on: rows/s | on/off | --wal on: mean latency |");
    println!("|---|---|---|---|---|---|");
    for &clients in &args.wal_clients {
        for &rows in &args.wal_rows {
            let off = http_ingest(false, clients, rows, args.wal_seconds).await?;
            let on = http_ingest(true, clients, rows, args.wal_seconds).await?;
            println!(
                "| {clients} | {rows} | {:.0} | {:.0} | {:.2} | {:.2} ms |",
                off.rows_per_s,
                on.rows_per_s,
                on.rows_per_s / off.rows_per_s,
                on.latency_ms
            );
        }
    }
    Ok(())
}

struct Ingest {
    rows_per_s: f64,
    latency_ms: f64,
}

/// A real server (data dir in a temp directory, checkpoint every 10 batches),
/// `clients` HTTP clients POSTing `rows`-row CSV bodies for `seconds`, while
/// batches of 200 ms of the manual clock seal what arrived.
async fn http_ingest(
    wal: bool,
    clients: usize,
    rows: usize,
    seconds: u64,
) -> anyhow::Result<Ingest> {
    let dir = std::env::temp_dir().join(format!("sluice-bench-wal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = crate::config::Config::for_test(200);
    config.data_dir = dir.clone();
    config.engine.data_dir = Some(dir.clone());
    config.engine.wal = wal;
    let server = crate::server::start(config).await?;
    let engine = server.engine.clone();
    sql(
        &engine,
        "CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV",
    )
    .await?;
    sql(
        &engine,
        "CREATE QUERY totals AS SELECT k, sum(v) AS total FROM s GROUP BY k WINDOW CUMULATIVE EMIT UPDATES",
    )
    .await?;
    let url = format!("http://{}/sources/s", server.addr);
    let bodies = keyed_bodies(rows, 1000, 8);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let engine = engine.clone();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = engine.advance(1).await;
            }
        })
    };
    let http = reqwest::Client::new();
    let watch = Stopwatch::start();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url, bodies, stop) =
            (http.clone(), url.clone(), bodies.clone(), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let (mut sent, mut requests, mut waited_us) = (0usize, 0u64, 0u64);
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let body = bodies[i % bodies.len()].as_ref().clone();
                i += 1;
                let sw = Stopwatch::start();
                let r = http.post(&url).body(body).send().await?;
                waited_us += sw.elapsed_us();
                if r.status() == reqwest::StatusCode::ACCEPTED {
                    sent += rows;
                    requests += 1;
                } else if r.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
                    anyhow::bail!("ingest answered {}", r.status());
                }
            }
            Ok::<_, anyhow::Error>((sent, requests, waited_us))
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut sent, mut requests, mut waited_us) = (0usize, 0u64, 0u64);
    for t in tasks {
        let (s, r, w) = t.await??;
        sent += s;
        requests += r;
        waited_us += w;
    }
    let elapsed = watch.elapsed_us() as f64 / 1e6;
    let _ = ticker.await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Ingest {
        rows_per_s: sent as f64 / elapsed,
        latency_ms: waited_us as f64 / requests.max(1) as f64 / 1e3,
    })
}

/// A tansu broker for the bench, stopped (SIGINT) when dropped.
struct BenchBroker {
    child: std::process::Child,
    addr: String,
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl BenchBroker {
    fn start() -> anyhow::Result<BenchBroker> {
        let bin = std::env::var_os("SLUICE_TANSU")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/sluice-tools/bin/tansu")
            });
        anyhow::ensure!(
            bin.exists(),
            "no Kafka broker at {}: run scripts/install-broker.sh",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let dir = std::env::temp_dir().join(format!("sluice-bench-broker-{port}"));
        std::fs::create_dir_all(&dir)?;
        let url = format!("tcp://{addr}");
        let child = std::process::Command::new(&bin)
            .args(["broker", "--silent", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let broker = BenchBroker {
            child,
            addr,
            bin,
            dir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(&broker.addr).is_ok() {
                return Ok(broker);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        anyhow::bail!("the broker did not listen on {}", broker.addr)
    }

    fn create_topic(&self, topic: &str, partitions: u32) -> anyhow::Result<()> {
        let status = std::process::Command::new(&self.bin)
            .args([
                "topic",
                "create",
                topic,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://{}", self.addr)])
            .current_dir(&self.dir)
            .stdout(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "tansu topic create {topic} failed");
        Ok(())
    }
}

impl Drop for BenchBroker {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn kafka_section(args: &BenchArgs) -> anyhow::Result<()> {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    let n = args.kafka_messages;
    let broker = BenchBroker::start()?;
    broker.create_topic("bench", 3)?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let lines = payload(n);
    let mut deliveries = Vec::with_capacity(n);
    for (i, line) in lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let mut record = FutureRecord::<(), [u8]>::to("bench")
            .partition((i % 3) as i32)
            .payload(line);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    for d in deliveries {
        d.await
            .map_err(|_| anyhow::anyhow!("a delivery was cancelled"))?
            .map_err(|(e, _)| anyhow::anyhow!("produce failed: {e}"))?;
    }

    let clock = Clock::system(Interval::from_millis(1000).map_err(anyhow::Error::msg)?);
    let (engine, _task) = engine::spawn(Engine::new(
        clock,
        EngineConfig {
            parallelism: 1,
            ..EngineConfig::default()
        },
    ));
    let watch = Stopwatch::start();
    sql(
        &engine,
        &format!(
            "CREATE SOURCE lines (line TEXT) FROM KAFKA '{}' TOPIC 'bench' FORMAT LINES WITH (start = 'earliest')",
            broker.addr
        ),
    )
    .await?;
    sql(
        &engine,
        "CREATE STREAM words AS SELECT unnest(string_to_array(line, ' ')) AS word FROM lines",
    )
    .await?;
    sql(
        &engine,
        "CREATE QUERY wc AS SELECT word, count(*) AS n FROM words GROUP BY word",
    )
    .await?;
    let source = engine
        .registry
        .source("lines")
        .ok_or_else(|| anyhow::anyhow!("no source"))?;
    let query = engine
        .registry
        .query("wc")
        .ok_or_else(|| anyhow::anyhow!("no query"))?;
    // All consumed, and sealed into batches (the offsets cover every message).
    let deadline = Duration::from_secs(600);
    loop {
        let sealed: i64 = source.kafka_offsets().values().sum();
        if sealed as usize >= n {
            break;
        }
        anyhow::ensure!(
            watch.elapsed_us() < deadline.as_micros() as u64,
            "consumed only {sealed} of {n} messages in {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = watch.elapsed_us() as f64 / 1e6;
    let m = query.metrics();
    let dir = std::env::temp_dir().join(format!("sluice-bench-kafka-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ckpt = Stopwatch::start();
    let manifest = checkpoint_engine(&engine, &dir).await?;
    let ckpt_ms = ckpt.elapsed_us() as f64 / 1e3;
    let _ = std::fs::remove_dir_all(&dir);
    let offsets: usize = manifest.sources.iter().map(|s| s.kafka_offsets.len()).sum();
    println!("\n## Kafka: word count fed from a local broker, 1 s batches\n");
    println!("| messages (8-word lines) | partitions | seconds to consume and seal | messages/s | batches | mean query time per batch | checkpoint with offsets |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {n} | 3 | {seconds:.2} | {:.0} | {} | {:.1} ms | {ckpt_ms:.1} ms ({offsets} partition offsets) |",
        n as f64 / seconds,
        m.batches,
        m.processing_us_total as f64 / m.batches.max(1) as f64 / 1e3
    );
    Ok(())
}
