//! Subscribers on one query, some of which never read, against the real binary
//! (loopback only, bounded in batches and time). The timings are the bench's
//! business (`sluice bench --sections subscribers`); here: every reader gets every
//! batch once and in order, the server's memory stays bounded, and a subscriber
//! that stalls long enough is told it lagged.

use std::time::Duration;

use sluice::bench::subscribers::{subscriber_load, LoadReport, LoadSpec};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

async fn run(spec: LoadSpec) -> LoadReport {
    let r = tokio::time::timeout(Duration::from_secs(240), subscriber_load(&spec))
        .await
        .expect("the load test ends within 4 minutes")
        .expect("the load runs");
    eprintln!("{r:?}");
    r
}

/// 1000 SSE subscribers, 10 of which never read: the 990 readers get every batch;
/// the server grows by little (its heap shares each batch among all subscribers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subscribers_ten_stalled() {
    let r = run(LoadSpec {
        bin: BIN.into(),
        readers: 990,
        stalled: 10,
        batches: 60,
        every: Duration::from_millis(20),
        lines_per_batch: 2000,
        rows_out: 20,
    })
    .await;
    assert_eq!(r.readers_complete, 990, "every reader got every batch");
    let growth = r.rss_loaded.saturating_sub(r.rss_before);
    assert!(
        growth < 128 << 20,
        "1000 subscribers grew the server by {} MiB",
        growth >> 20
    );
}

/// A subscriber that never reads while far more than the kernel buffers goes by
/// is told, when it reads again, that it lagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_told_it_lagged() {
    let r = run(LoadSpec {
        bin: BIN.into(),
        readers: 1,
        stalled: 2,
        batches: 160,
        every: Duration::from_millis(5),
        lines_per_batch: 4000,
        rows_out: 4000,
    })
    .await;
    assert!(
        r.batch_bytes > 100_000,
        "batches of {} bytes",
        r.batch_bytes
    );
    assert_eq!(r.readers_complete, 1);
    assert_eq!(r.stalled_lagged, 2, "{r:?}");
}
