//! The lease store at scale: N leases committed through the `StoreWriter` the way the server
//! commits them (one lease per request, many requests in flight, group commit), then the size
//! of the database on disk.

use std::{
    net::Ipv6Addr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use dhcp_testwire::dhcpv6::client_duid;
use dhcp_user::store::{
    Lease, LeaseChange, LeaseStore, LeaseType, SqliteStore, StoreWriter, WriterConfig,
};

/// What the store run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreResult {
    pub leases: u64,
    pub concurrent_committers: usize,
    pub seconds: f64,
    pub leases_per_second: f64,
    /// Database plus WAL after the run, history included.
    pub bytes_on_disk: u64,
    pub bytes_per_lease: f64,
}

fn lease(index: u32, now: i64) -> Lease {
    let mut lease = Lease {
        interface: "veth-srv".to_string(),
        ..Lease::bare(
            LeaseType::Na,
            Ipv6Addr::from(
                u128::from("2001:db8:1::".parse::<Ipv6Addr>().unwrap())
                    | 0x1_0000_0000
                    | index as u128,
            ),
            128,
            client_duid(index).to_vec(),
            1,
            1,
        )
    };
    lease.assign(now, 3000, 4000);
    lease
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Commits `count` distinct leases, one per `commit` call, from `committers` concurrent tasks
/// spread over `writers` (one per server, when several share a database); returns how many
/// were written and the seconds it took. Stops at `deadline`.
pub fn commit_leases(
    writers: &[StoreWriter],
    count: u32,
    committers: usize,
    deadline: Duration,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<(u64, f64)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let now = super::xdp::now_unix() as i64;
    let start = Instant::now();
    let written_total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = runtime.block_on(async {
        let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker_total = written_total.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                progress(ticker_total.load(std::sync::atomic::Ordering::Relaxed));
            }
        });
        let mut tasks = Vec::new();
        for task in 0..committers {
            let writer = writers[task % writers.len()].clone();
            let next = next.clone();
            let written_total = written_total.clone();
            tasks.push(tokio::spawn(async move {
                let mut written = 0u64;
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if index >= count || start.elapsed() > deadline {
                        return Ok::<u64, dhcp_user::store::StoreError>(written);
                    }
                    writer
                        .commit(vec![LeaseChange::Upsert(lease(index, now))])
                        .await?;
                    written += 1;
                    written_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }));
        }
        let mut total = 0u64;
        for task in tasks {
            total += task.await.context("store committer task")??;
        }
        for writer in writers {
            writer.flush().await?;
        }
        ticker.abort();
        Ok::<u64, anyhow::Error>(total)
    })?;
    Ok((done, start.elapsed().as_secs_f64()))
}

/// Commits `count` leases, one per `commit` call, from `committers` concurrent tasks, into a
/// fresh database in `dir` (removed afterwards). Bounded by `deadline`: stops early and says so
/// through the count it reports.
pub fn run(
    dir: &Path,
    count: u32,
    committers: usize,
    deadline: Duration,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<StoreResult> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let store: Arc<dyn LeaseStore> = Arc::new(SqliteStore::open(dir.join("leases.db"))?);
    let writer = StoreWriter::spawn(store, WriterConfig::default())?;
    let (done, seconds) = commit_leases(
        std::slice::from_ref(&writer),
        count,
        committers,
        deadline,
        progress,
    )?;
    drop(writer);
    // The writer thread exits once the last clone is gone; let it close the database.
    std::thread::sleep(Duration::from_millis(200));
    let bytes = dir_bytes(dir);
    let _ = std::fs::remove_dir_all(dir);
    Ok(StoreResult {
        leases: done,
        concurrent_committers: committers,
        seconds,
        leases_per_second: done as f64 / seconds.max(1e-9),
        bytes_on_disk: bytes,
        bytes_per_lease: bytes as f64 / done.max(1) as f64,
    })
}
