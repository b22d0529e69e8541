//! The TCP client receiver, as Spark's `socketTextStream`: connects to
//! `host:port` (for example `nc -lk 9999`), reads newline-delimited records, and
//! reconnects with backoff when the peer is absent or closes the connection.
//! The async part only moves bytes; framing and decoding are pure (`framing`, `decode`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::framing::LineFramer;
use super::{Reconnect, Source, SourceHandle};

/// Backoff between connection attempts: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Bytes read per system call.
const READ_BUFFER: usize = 256 * 1024;

pub struct TcpSource {
    addr: String,
}

impl TcpSource {
    pub fn new(addr: String) -> TcpSource {
        TcpSource { addr }
    }
}

impl Source for TcpSource {
    fn start(&mut self, handle: Arc<SourceHandle>) -> Option<JoinHandle<()>> {
        Some(tokio::spawn(receive(self.addr.clone(), handle)))
    }
}

async fn receive(addr: String, handle: Arc<SourceHandle>) {
    let mut reconnect = Reconnect::new(BACKOFF_FIRST, BACKOFF_MAX);
    loop {
        let error = match TcpStream::connect(&addr).await {
            Ok(stream) => {
                tracing::info!(source = %handle.name(), %addr, "connected");
                reconnect.connected(&handle);
                match read_until_closed(stream, &handle).await {
                    Ok(()) => "peer closed the connection".to_string(),
                    Err(e) => format!("connection lost: {e}"),
                }
            }
            Err(e) => format!("cannot connect to {addr}: {e}"),
        };
        reconnect.failed(&handle, error).await;
    }
}

/// Reads records until EOF (Ok) or an I/O error, delivering one decoded chunk per read.
async fn read_until_closed(mut stream: TcpStream, handle: &SourceHandle) -> std::io::Result<()> {
    let mut framer = LineFramer::new(handle.limits.max_record_bytes);
    let mut decoder = handle.decoder();
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let n = stream.read(&mut buf).await?;
        if n > 0 {
            handle.bytes_total.fetch_add(n as u64, Ordering::Relaxed);
        }
        handle.decode_into(&mut framer, &mut decoder, &buf[..n], n == 0);
        if decoder.rows() > 0 {
            handle.deliver(decoder.finish()).await;
        }
        if n == 0 {
            return Ok(());
        }
    }
}
