//! The PostgreSQL sink against a real PostgreSQL server: a cluster of its own
//! (initdb in a temporary directory, 127.0.0.1 on a free port, trust auth),
//! started by the test and stopped at the end. scripts/test.sh installs Debian's
//! postgresql package when it is missing and exports SLUICE_PG_BIN.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use tokio_postgres::NoTls;

use crate::common::TestServer;
use crate::kafka::free_port;

pub struct Pg {
    child: Child,
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    pub url: String,
}

/// Runs a PostgreSQL program as the `postgres` user when we are root (the
/// server refuses to run as root).
fn as_postgres(program: &std::path::Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Pg {
    pub fn start() -> Pg {
        let bin = std::path::PathBuf::from(std::env::var("SLUICE_PG_BIN").unwrap_or_else(|_| {
            let found = std::fs::read_dir("/usr/lib/postgresql")
                .ok()
                .and_then(|d| d.filter_map(Result::ok).map(|e| e.path()).max());
            found
                .map(|p| p.join("bin").display().to_string())
                .unwrap_or_default()
        }));
        assert!(
            bin.join("initdb").exists(),
            "PostgreSQL is not installed (no initdb in '{}'): run scripts/test.sh",
            bin.display()
        );
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sluice-pg-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // The postgres user owns the cluster directory.
        let _ = Command::new("chown")
            .args(["postgres:postgres", dir.to_str().unwrap()])
            .status();
        let data = dir.join("data");
        let status = as_postgres(&bin.join("initdb"))
            .args([
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let child = as_postgres(&bin.join("postgres"))
            .args(["-D", data.to_str().unwrap(), "-p", &port.to_string()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
                dir.to_str().unwrap(),
            ])
            .args(["-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pg = Pg {
            child,
            dir,
            bin,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        };
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return pg;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("PostgreSQL did not listen on port {port}");
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        for _ in 0..100 {
            if let Ok((client, conn)) = tokio_postgres::connect(&self.url, NoTls).await {
                tokio::spawn(conn);
                return client;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cannot connect to {}", self.url);
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        // pg_ctl's fast shutdown (the child may be runuser, which does not
        // pass signals on).
        let data = self.dir.join("data");
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args([
                "stop",
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "fast",
                "-w",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sinks_append_per_batch_rows_and_upsert_cumulative_state() {
    let pg = Pg::start();
    let db = pg.client().await;
    let s = TestServer::start(1000).await;
    s.ok(&format!(
        "CREATE SOURCE s (k TEXT, v BIGINT) FROM HTTP FORMAT CSV;
         CREATE QUERY per_batch AS SELECT k, sum(v) AS total FROM s GROUP BY k;
         CREATE QUERY totals AS SELECT k, sum(v) AS total, count(*) AS n FROM s GROUP BY k WINDOW CUMULATIVE EMIT UPDATES;
         CREATE SINK appended FROM per_batch INTO POSTGRES '{url}' TABLE 'batches';
         CREATE SINK upserted FROM totals INTO POSTGRES '{url}' TABLE 'totals';",
        url = pg.url
    ))
    .await;
    s.post("/sources/s", "a,1\nb,2\na,3").await;
    s.advance(1).await;
    s.post("/sources/s", "a,10\nc,5").await;
    s.advance(1).await;
    s.eventually("both sinks wrote 2 batches", || async {
        let (_, a) = s.get("/sinks/appended").await;
        let (_, u) = s.get("/sinks/upserted").await;
        a["counters"]["batches"] == 2 && u["counters"]["batches"] == 2
    })
    .await;
    let rows = db
        .query(
            "SELECT k, total, batch_time FROM batches ORDER BY batch_time, k",
            &[],
        )
        .await
        .unwrap();
    let appended: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        appended,
        [
            ("a".into(), 4, 1000),
            ("b".into(), 2, 1000),
            ("a".into(), 10, 2000),
            ("c".into(), 5, 2000)
        ]
    );
    let rows = db
        .query("SELECT k, total, n, batch_time FROM totals ORDER BY k", &[])
        .await
        .unwrap();
    let upserted: Vec<(String, i64, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        upserted,
        [
            ("a".into(), 14, 3, 2000),
            ("b".into(), 2, 1, 1000),
            ("c".into(), 5, 1, 2000)
        ]
    );
    let (_, sink) = s.get("/sinks/upserted").await;
    assert_eq!(sink["mode"], "upsert");
    assert_eq!(sink["key"], json!(["k"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_totals_postgres_example_upserts_current_totals() {
    let pg = Pg::start();
    let db = pg.client().await;
    let s = TestServer::start(1000).await;
    s.ok(&crate::examples::example("totals_postgres.sql")
        .replace("postgres://postgres@localhost:5432/postgres", &pg.url))
        .await;
    s.post(
        "/sources/pg_sales",
        "{\"product\": \"tea\", \"qty\": 2, \"price\": 3.5}\n{\"product\": \"cake\", \"qty\": 1, \"price\": 4.0}",
    )
    .await;
    s.advance(1).await;
    s.post(
        "/sources/pg_sales",
        "{\"product\": \"tea\", \"qty\": 1, \"price\": 3.5}",
    )
    .await;
    s.advance(1).await;
    s.eventually("2 batches upserted", || async {
        let (_, sink) = s.get("/sinks/pg_totals_out").await;
        sink["counters"]["batches"] == 2
    })
    .await;
    let rows = db
        .query(
            "SELECT product, sold, revenue FROM product_totals ORDER BY product",
            &[],
        )
        .await
        .unwrap();
    let totals: Vec<(String, i64, f64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(totals, [("cake".into(), 1, 4.0), ("tea".into(), 3, 10.5)]);
}
