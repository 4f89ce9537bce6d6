//! Bulk leasequery throughput (RFC 5460): a SQLite store filled directly with N address
//! bindings, the TCP service in this process on `[::1]`, and one query-by-link for every link
//! (link-address `::`) streamed by a reader that counts the bindings without keeping them.

use std::{
    net::{Ipv6Addr, SocketAddr},
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use dhcp_common::dhcpv6::{MSG_LEASEQUERY, MSG_LEASEQUERY_DATA, MSG_LEASEQUERY_DONE};
use tokio::sync::watch;

use dhcp_user::{
    config::parse_prefix,
    lease_events as events,
    leasequery::{
        client::{build_query, LeasequeryConnection, Query, QueryOptions},
        serve_tcp, LeasequeryContext, LeasequerySettings, LeasequeryStats,
    },
    proto::{DhcpOption, Duid, OptionList},
    store::{Lease, LeaseChange, LeaseState, LeaseStore, LeaseType, SqliteStore},
};

/// Leases per store commit while filling.
const FILL_CHUNK: u32 = 10_000;
/// The whole query (REPLY to DONE) must finish within this, whatever happens.
const QUERY_LIMIT: Duration = Duration::from_secs(300);

/// What the run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeasequeryResult {
    pub bindings_stored: u32,
    pub fill_seconds: f64,
    pub bindings_received: u64,
    pub messages_received: u64,
    pub seconds_to_first_reply: f64,
    pub seconds: f64,
    pub bindings_per_second: f64,
    pub done_status: Option<u16>,
}

/// The address stored client `i` holds: 2001:db8:1::1:0 + i.
pub fn stored_address(i: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 1, 0)) + u128::from(i))
}

fn lease(i: u32, cltt: i64) -> Lease {
    Lease {
        address: stored_address(i),
        prefix_len: 128,
        lease_type: LeaseType::Na,
        // The load generator's client DUID for number i.
        duid: dhcp_testwire::dhcpv6::client_duid(i).to_vec(),
        iaid: 1,
        subnet_id: 1,
        preferred_lifetime: 1800,
        valid_lifetime: 3600,
        cltt,
        expire: cltt + 3600,
        state: LeaseState::Assigned,
        interface: "bench0".into(),
        link_address: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
        relay_id: None,
        remote_id: None,
        relay_info: Vec::new(),
        hostname: String::new(),
        line: None,
        next_hop: None,
        reconfigure: None,
        link_layer: None,
    }
}

/// Commits `count` address bindings (client `i` holds 2001:db8:1::1:0 + i on link
/// 2001:db8:1::/64, valid from `cltt` for an hour) in chunks; `progress` gets the count so far.
pub fn fill_store(
    store: &SqliteStore,
    count: u32,
    cltt: i64,
    progress: impl Fn(u64),
) -> Result<()> {
    let mut next = 0;
    while next < count {
        let end = (next + FILL_CHUNK).min(count);
        let changes: Vec<LeaseChange> = (next..end)
            .map(|i| LeaseChange::Upsert(lease(i, cltt)))
            .collect();
        store.commit(&changes, cltt)?;
        next = end;
        progress(next as u64);
    }
    Ok(())
}

/// Fills a fresh store in `dir` with `count` bindings, serves leasequery on `[::1]` and runs one
/// bulk query-by-link over every link; `progress` gets the bindings stored so far.
pub fn run(dir: &Path, count: u32, progress: impl Fn(u64)) -> Result<LeasequeryResult> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let store = Arc::new(SqliteStore::open(dir.join("leases.db"))?);
    let cltt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64
        - 10;
    let fill_start = Instant::now();
    fill_store(&store, count, cltt, progress)?;
    let fill_seconds = fill_start.elapsed().as_secs_f64();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let events = events::channel();
        let sender = events.clone();
        let settings = LeasequerySettings {
            allow: vec![parse_prefix("::1/128").map_err(anyhow::Error::msg)?],
            links: vec![parse_prefix("2001:db8:1::/64").map_err(anyhow::Error::msg)?],
            ..LeasequerySettings::default()
        };
        let ctx = Arc::new(LeasequeryContext {
            store: store.clone(),
            subscribe: Arc::new(move || sender.subscribe()),
            server_duid: Duid::new(vec![0, 3, 0, 1, 0x02, 0x53, 0, 0, 0, 1])?,
            settings,
            live: None,
            stats: Arc::new(LeasequeryStats::new()),
            tls: None,
        });
        let listener = tokio::net::TcpListener::bind("[::1]:0").await?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let service = tokio::spawn(serve_tcp(listener, ctx, shutdown_rx));
        let measured = tokio::time::timeout(QUERY_LIMIT, stream_all(addr)).await;
        let _ = shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), service).await;
        match measured {
            Ok(result) => result,
            Err(_) => bail!("the bulk query did not finish within {QUERY_LIMIT:?}"),
        }
    })?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(LeasequeryResult {
        bindings_stored: count,
        fill_seconds,
        ..result
    })
}

/// One bulk query by link `::` (every link), counting CLIENT_DATA options as they stream in.
async fn stream_all(addr: SocketAddr) -> Result<LeasequeryResult> {
    let mut connection = LeasequeryConnection::connect(addr, Duration::from_secs(10)).await?;
    let requestor = Duid::new(vec![0, 3, 0, 1, 0x02, 0x11, 0, 0, 0, 1])?;
    let xid = [0x42, 0x42, 0x42];
    let query = build_query(
        MSG_LEASEQUERY,
        xid,
        &requestor,
        &Query::LinkAddress(Ipv6Addr::UNSPECIFIED),
        &QueryOptions::default(),
    );
    let start = Instant::now();
    connection.send(&query).await?;
    let mut bindings = 0u64;
    let mut messages = 0u64;
    let mut first_reply = None;
    let done_status = loop {
        let message = connection
            .receive(Duration::from_secs(30))
            .await?
            .context("the server closed the connection before LEASEQUERY-DONE")?;
        messages += 1;
        if message.transaction_id != xid {
            bail!("a message with another transaction id inside the bulk answer");
        }
        first_reply.get_or_insert_with(|| start.elapsed());
        bindings += message
            .options
            .iter()
            .filter(|o| matches!(o, DhcpOption::ClientData(_)))
            .count() as u64;
        match message.msg_type {
            MSG_LEASEQUERY_DONE => break message.status_code().map(|s| s.code),
            MSG_LEASEQUERY_DATA => {}
            _ if messages == 1 => {
                if let Some(status) = message.status_code().filter(|s| s.code != 0) {
                    bail!(
                        "the bulk query was refused: status {} {}",
                        status.code,
                        status.message
                    );
                }
            }
            other => bail!("message type {other} inside a bulk answer"),
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    Ok(LeasequeryResult {
        bindings_stored: 0,
        fill_seconds: 0.0,
        bindings_received: bindings,
        messages_received: messages,
        seconds_to_first_reply: first_reply.unwrap_or_default().as_secs_f64(),
        seconds,
        bindings_per_second: bindings as f64 / seconds.max(1e-9),
        done_status,
    })
}
