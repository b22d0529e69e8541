//! The result store of one query: the last emitted batches (bounded by count and
//! by bytes) for polling, and a broadcast for live subscribers.
//!
//! Each batch is rendered to JSON once, by the engine; polls and subscribers share
//! the bytes. A subscriber that falls behind the broadcast is told it lagged and
//! resumes from the oldest retained batch; it never blocks the engine.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};

use crate::lock;
use crate::time::BatchTime;

/// One emitted result batch.
#[derive(Debug, Clone)]
pub struct ResultBatch {
    pub batch_time: BatchTime,
    pub rows: usize,
    /// `{"batch_time": ms, ["window_start": ms, "window_end": ms,] "rows": [...]}`
    pub json: Bytes,
    /// The rows as Arrow, kept only for queries a Parquet sink reads.
    pub arrow: Option<Arc<Vec<datafusion::arrow::record_batch::RecordBatch>>>,
    /// The batch as one Server-Sent Event, rendered for the first subscriber and
    /// shared by all the others (1000 subscribers cost one rendering, not 1000).
    pub sse: std::sync::OnceLock<Bytes>,
}

impl ResultBatch {
    pub fn new(batch_time: BatchTime, rows: usize, json: Bytes) -> ResultBatch {
        ResultBatch {
            batch_time,
            rows,
            json,
            arrow: None,
            sse: std::sync::OnceLock::new(),
        }
    }

    /// `event: batch`, `id: <batch time>`, `data: <json>` and the blank line.
    pub fn sse_frame(&self) -> Bytes {
        self.sse
            .get_or_init(|| {
                let mut frame = Vec::with_capacity(self.json.len() + 48);
                frame.extend_from_slice(b"event: batch\nid: ");
                frame.extend_from_slice(self.batch_time.millis().to_string().as_bytes());
                // The JSON is rendered compact: it has no line breaks, so it is one
                // data line; were there any, each line would need its own prefix.
                for line in self.json.split(|&b| b == b'\n') {
                    frame.extend_from_slice(b"\ndata: ");
                    frame.extend_from_slice(line);
                }
                frame.extend_from_slice(b"\n\n");
                Bytes::from(frame)
            })
            .clone()
    }
}

/// How much a store keeps.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Batches kept for polling and replay (default 100).
    pub max_batches: usize,
    /// Bytes of JSON kept (default 16 MiB); the newest batch is always kept.
    pub max_bytes: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_batches: 100,
            max_bytes: 16 << 20,
        }
    }
}

/// Messages a live subscriber can lag behind before it is told so.
const BROADCAST_CAPACITY: usize = 64;

pub struct ResultStore {
    retention: Retention,
    inner: Mutex<Retained>,
    /// None once closed: subscribers then see the end of the stream, and why.
    live: Mutex<Option<broadcast::Sender<Arc<ResultBatch>>>>,
    ended: Mutex<EndReason>,
    /// API subscribers (SSE, NDJSON) now; sinks, which follow the broadcast too,
    /// are not counted.
    clients: Arc<std::sync::atomic::AtomicUsize>,
    /// Once there is a subscriber, batches go to the broadcast through a task of
    /// the store's own: waking 1000 subscribers is that task's work, so the
    /// engine's push costs the same with none or 1000.
    fanout: Mutex<Option<mpsc::UnboundedSender<Arc<ResultBatch>>>>,
}

/// One API subscriber's place, given back when the subscription is dropped.
pub struct ClientSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Why a store's subscriptions ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The query was dropped: it will not come back.
    Dropped,
    /// The server is shutting down: subscribers may reconnect to the restarted
    /// server, which restores the query from its checkpoint.
    Shutdown,
}

impl EndReason {
    /// The machine-readable code in the closing event.
    pub fn code(self) -> &'static str {
        match self {
            EndReason::Dropped => "dropped",
            EndReason::Shutdown => "shutdown",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            EndReason::Dropped => "query dropped",
            EndReason::Shutdown => "the server is shutting down",
        }
    }
}

#[derive(Default)]
struct Retained {
    batches: VecDeque<Arc<ResultBatch>>,
    bytes: usize,
}

impl ResultStore {
    pub fn new(retention: Retention) -> ResultStore {
        let (live, _) = broadcast::channel(BROADCAST_CAPACITY);
        ResultStore {
            retention,
            inner: Mutex::new(Retained::default()),
            live: Mutex::new(Some(live)),
            ended: Mutex::new(EndReason::Dropped),
            clients: Arc::default(),
            fanout: Mutex::new(None),
        }
    }

    /// Keeps `batch` and sends it to subscribers.
    pub fn push(&self, batch: ResultBatch) {
        let batch = Arc::new(batch);
        {
            let mut r = lock(&self.inner);
            r.bytes += batch.json.len();
            r.batches.push_back(Arc::clone(&batch));
            while r.batches.len() > self.retention.max_batches
                || (r.bytes > self.retention.max_bytes && r.batches.len() > 1)
            {
                if let Some(old) = r.batches.pop_front() {
                    r.bytes -= old.json.len();
                }
            }
        }
        let batch = match lock(&self.fanout).as_ref() {
            Some(fanout) => match fanout.send(batch) {
                Ok(()) => return,
                Err(mpsc::error::SendError(batch)) => batch,
            },
            None => batch,
        };
        if let Some(live) = lock(&self.live).as_ref() {
            // No subscribers is not an error.
            let _ = live.send(batch);
        }
    }

    /// Retained batches with time > `after` (all if None), oldest first, at most `limit`.
    pub fn after(&self, after: Option<BatchTime>, limit: usize) -> Vec<Arc<ResultBatch>> {
        let r = lock(&self.inner);
        r.batches
            .iter()
            .filter(|b| after.is_none_or(|a| b.batch_time > a))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn latest(&self) -> Option<Arc<ResultBatch>> {
        lock(&self.inner).batches.back().cloned()
    }

    /// A live feed of new batches; None if the query was dropped.
    pub fn subscribe(&self) -> Option<broadcast::Receiver<Arc<ResultBatch>>> {
        let live = lock(&self.live);
        let sender = live.as_ref()?;
        let receiver = sender.subscribe();
        let mut fanout = lock(&self.fanout);
        if fanout.is_none() {
            // Outside a runtime (some unit tests) the engine's push sends directly.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let (tx, mut batches) = mpsc::unbounded_channel::<Arc<ResultBatch>>();
                let out = sender.clone();
                // Ends when the store closes (the sender below is dropped), after
                // sending what was pushed before; then the broadcast closes.
                runtime.spawn(async move {
                    while let Some(batch) = batches.recv().await {
                        let _ = out.send(batch);
                    }
                });
                *fanout = Some(tx);
            }
        }
        Some(receiver)
    }

    /// A place for one more API subscriber, if fewer than `max` hold one.
    pub fn admit_client(&self, max: usize) -> Option<ClientSlot> {
        use std::sync::atomic::Ordering;
        self.clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ClientSlot(Arc::clone(&self.clients)))
    }

    /// API subscribers (SSE, NDJSON) now.
    pub fn clients(&self) -> usize {
        self.clients.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Ends every subscription, telling subscribers `why`.
    pub fn close(&self, why: EndReason) {
        *lock(&self.ended) = why;
        lock(&self.live).take();
        lock(&self.fanout).take();
    }

    /// Why subscriptions ended (meaningful once `subscribe` returns None).
    pub fn end_reason(&self) -> EndReason {
        *lock(&self.ended)
    }

    /// (batches, bytes) retained.
    pub fn retained(&self) -> (usize, usize) {
        let r = lock(&self.inner);
        (r.batches.len(), r.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(t: i64, bytes: usize) -> ResultBatch {
        ResultBatch {
            sse: Default::default(),
            arrow: None,
            batch_time: BatchTime(t),
            rows: 0,
            json: Bytes::from(vec![b' '; bytes]),
        }
    }

    fn times(v: &[Arc<ResultBatch>]) -> Vec<i64> {
        v.iter().map(|b| b.batch_time.0).collect()
    }

    #[test]
    fn keeps_the_last_n_batches() {
        let store = ResultStore::new(Retention {
            max_batches: 2,
            max_bytes: 1000,
        });
        for t in 1..=3 {
            store.push(batch(t * 1000, 10));
        }
        assert_eq!(times(&store.after(None, 10)), [2000, 3000]);
        assert_eq!(times(&store.after(Some(BatchTime(2000)), 10)), [3000]);
        assert_eq!(times(&store.after(None, 1)), [2000]);
        assert_eq!(store.retained(), (2, 20));
    }

    #[test]
    fn byte_cap_keeps_at_least_the_newest() {
        let store = ResultStore::new(Retention {
            max_batches: 10,
            max_bytes: 25,
        });
        store.push(batch(1000, 10));
        store.push(batch(2000, 10));
        store.push(batch(3000, 10));
        assert_eq!(times(&store.after(None, 10)), [2000, 3000]);
        store.push(batch(4000, 100));
        assert_eq!(times(&store.after(None, 10)), [4000]);
    }

    #[tokio::test]
    async fn subscribers_get_pushed_batches() {
        let store = ResultStore::new(Retention::default());
        let mut rx = store.subscribe().unwrap();
        store.push(batch(1000, 1));
        assert_eq!(rx.recv().await.unwrap().batch_time, BatchTime(1000));
        store.close(EndReason::Dropped);
        assert!(rx.recv().await.is_err());
        assert!(store.subscribe().is_none());
    }
}
