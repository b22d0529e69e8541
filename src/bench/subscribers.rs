//! Many subscribers on one query, some of which never read: does the engine notice?
//!
//! The real binary, in a process of its own on loopback, runs a grouped query
//! over a generator. The manual clock is advanced every `every`. Three phases of `batches` batches each: with no
//! subscribers, then with `readers` SSE subscribers that read everything and
//! `stalled` ones that connect and never read, then with none again. The figure is
//! the query's median processing time in each phase (the engine's own metric).
//! Readers must receive every batch of their phase, in order, once. The stalled
//! ones' sockets have a 4 KiB receive buffer, so the server soon cannot write to
//! them (after what the kernel buffers, a few MiB each on loopback); once they read
//! again, each must have been told it lagged if batches it never got are gone. Also
//! reported: the server's resident memory before the subscribers connect and at the
//! end of their phase.
//!
//! `sluice bench --sections subscribers` prints it; the integration test
//! `subscribers::a_thousand_subscribers_ten_stalled` runs it smaller and checks
//! the delivery, lag and memory outcomes (not the timings: the machine is shared).

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::time::Duration;

use futures::StreamExt;

/// The load.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The sluice binary to serve with (the bench: itself).
    pub bin: std::path::PathBuf,
    pub readers: usize,
    pub stalled: usize,
    /// Batches per phase.
    pub batches: u32,
    /// Wall time between two batches.
    pub every: Duration,
    /// Generator lines per batch (the query's input).
    pub lines_per_batch: usize,
    /// Rows the query emits per batch (its LIMIT).
    pub rows_out: usize,
}

/// What happened.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Median processing time of the query per phase, in µs: before, with, after.
    pub quiet_before_us: u64,
    pub loaded_us: u64,
    pub quiet_after_us: u64,
    /// Readers that received exactly the loaded phase's batches, in order.
    pub readers_complete: usize,
    /// Stalled subscribers that were told `lagged` when they read again.
    pub stalled_lagged: usize,
    /// The most bytes a stalled subscriber found waiting when it read again.
    pub stalled_bytes_max: usize,
    /// Resident memory before the subscribers connected, and at the end of their phase.
    pub rss_before: u64,
    pub rss_loaded: u64,
    /// Bytes of one result batch's JSON.
    pub batch_bytes: usize,
}

pub async fn subscriber_load(spec: &LoadSpec) -> anyhow::Result<LoadReport> {
    let server = Server::start(&spec.bin)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let base = format!("http://{}", server.addr);
    let setup = format!(
        "CREATE SOURCE g (line TEXT) FROM GENERATOR WITH (rate = '{}');
         CREATE QUERY q AS SELECT line, count(*) AS n FROM g GROUP BY line ORDER BY n DESC, line LIMIT {}",
        spec.lines_per_batch, spec.rows_out
    );
    http.post(format!("{base}/sql"))
        .body(setup)
        .send()
        .await?
        .error_for_status()?;
    let phase = |batches: u32| {
        let (http, base, every) = (http.clone(), base.clone(), spec.every);
        async move {
            let mut times = Vec::new();
            let mut processing = Vec::new();
            for _ in 0..batches {
                tokio::time::sleep(every).await;
                let ran: serde_json::Value = http
                    .post(format!("{base}/clock/advance"))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                times.extend(
                    ran["batch_times"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t.as_i64()),
                );
                let q = get_json(&http, &format!("{base}/queries/q")).await?;
                if let Some(us) = q["metrics"]["last_batch"]["processing_us"].as_u64() {
                    processing.push(us);
                }
            }
            processing.sort_unstable();
            let median = processing.get(processing.len() / 2).copied().unwrap_or(0);
            anyhow::Ok((times, median))
        }
    };
    let clients = || {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let q = get_json(&http, &format!("{base}/queries/q")).await?;
            anyhow::Ok(q["results"]["subscribers"].as_u64().unwrap_or(0) as usize)
        }
    };

    let (_, quiet_before_us) = phase(spec.batches).await?;
    let rss_before = resident_bytes(server.child.id());
    let url = format!("{base}/queries/q/stream");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut readers = Vec::with_capacity(spec.readers);
    for _ in 0..spec.readers {
        let response = http.get(&url).send().await?.error_for_status()?;
        let ids = Ids::default();
        readers.push((
            std::sync::Arc::clone(&ids),
            tokio::spawn(read_ids(response, ids, stopped.clone())),
        ));
    }
    let mut stalled = Vec::with_capacity(spec.stalled);
    for _ in 0..spec.stalled {
        stalled.push(stalled_subscriber(server.addr, "/queries/q/stream")?);
    }
    // Wait until the server counts every one of them.
    let wanted = spec.readers + spec.stalled;
    let mut connected = 0;
    for _ in 0..500 {
        connected = clients().await?;
        if connected == wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::ensure!(
        connected == wanted,
        "only {connected} of {wanted} subscribers connected"
    );
    let (loaded_times, loaded_us) = phase(spec.batches).await?;
    let rss_loaded = resident_bytes(server.child.id());
    let latest = get_json(&http, &format!("{base}/queries/q/state")).await?;
    let batch_bytes = latest.to_string().len();

    // Readers: every batch of the loaded phase, once, in order (given up to 60 s
    // to receive the last one).
    let last = loaded_times.last().copied();
    for _ in 0..6000 {
        let behind = readers
            .iter()
            .filter(|(ids, _)| crate::lock(ids).last().copied() != last)
            .count();
        if behind == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(true);
    let mut readers_complete = 0;
    for (ids, task) in readers {
        let _ = task.await;
        if *crate::lock(&ids) == loaded_times {
            readers_complete += 1;
        }
    }
    // Stalled ones read now: each must have been told it lagged.
    let mut stalled_lagged = 0;
    let mut stalled_bytes_max = 0;
    for socket in stalled {
        let text = tokio::task::spawn_blocking(move || drain(socket)).await??;
        stalled_bytes_max = stalled_bytes_max.max(text.len());
        if text.contains("event: lagged") {
            stalled_lagged += 1;
        }
    }
    let (_, quiet_after_us) = phase(spec.batches).await?;
    drop(server);
    Ok(LoadReport {
        quiet_before_us,
        loaded_us,
        quiet_after_us,
        readers_complete,
        stalled_lagged,
        stalled_bytes_max,
        rss_before,
        rss_loaded,
        batch_bytes,
    })
}

async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    Ok(http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// The batch ids (times) an SSE reader has received.
type Ids = std::sync::Arc<std::sync::Mutex<Vec<i64>>>;

/// Reads an SSE stream, recording each batch id, until `stop` turns true.
async fn read_ids(
    response: reqwest::Response,
    ids: Ids,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut pending = String::new();
    let mut body = response.bytes_stream();
    loop {
        let chunk = tokio::select! {
            chunk = body.next() => chunk,
            _ = stop.changed() => return Ok(()),
        };
        let Some(chunk) = chunk else {
            return Ok(());
        };
        pending.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if let Some(id) = line.strip_prefix("id: ") {
                crate::lock(&ids).push(id.trim().parse()?);
            }
        }
    }
}

/// A subscriber that sends its request and never reads: a raw socket with a
/// 4 KiB receive buffer, so the server's writes to it soon block.
fn stalled_subscriber(
    addr: std::net::SocketAddr,
    path: &str,
) -> anyhow::Result<std::net::TcpStream> {
    // SAFETY: plain socket calls on a descriptor this function owns; the
    // descriptor is handed to TcpStream, which closes it.
    let stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        anyhow::ensure!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let size: libc::c_int = 4096;
        let set = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        anyhow::ensure!(set == 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
        stream
    };
    let std::net::SocketAddr::V4(v4) = addr else {
        anyhow::bail!("the load test runs on IPv4 loopback");
    };
    let sockaddr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: connects the socket above to a valid sockaddr_in of the right size.
    let connected = unsafe {
        use std::os::fd::AsRawFd;
        libc::connect(
            stream.as_raw_fd(),
            (&sockaddr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    anyhow::ensure!(
        connected == 0,
        "connect: {}",
        std::io::Error::last_os_error()
    );
    let mut stream = stream;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    Ok(stream)
}

/// Reads what a stalled subscriber was sent, until nothing more comes for 1 s.
fn drain(mut socket: std::net::TcpStream) -> anyhow::Result<String> {
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut text = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// The real binary, serving on a free loopback port with the manual clock and
/// few retained batches (so a stalled subscriber really loses some); killed on drop.
struct Server {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Server {
    fn start(bin: &std::path::Path) -> anyhow::Result<Server> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let dir = std::env::temp_dir().join(format!("sluice-subscribers-{}", addr.port()));
        let child = std::process::Command::new(bin)
            .args([
                "serve",
                "--clock",
                "manual",
                "--retain-batches",
                "20",
                "--wal",
                "off",
            ])
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&dir)
            .args(["--max-subscribers", "100000", "--checkpoint-interval", "0"])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let server = Server { child, addr };
        for _ in 0..300 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("the server did not listen on {addr} within 15 s")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's resident memory (Linux `/proc/<pid>/status`), 0 elsewhere.
fn resident_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}
