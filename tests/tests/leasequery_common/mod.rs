//! Shared by the tests/tests/leasequery_*.rs tests: an in-process leasequery service over a
//! temporary SQLite store on loopback, and queries and answers built and read byte by byte
//! (independently of the codec's encoder).

#![allow(dead_code)]

pub mod tls;

use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dhcp_user::config::parse_prefix;
use dhcp_user::lease_events::{self as events, LeaseEvent, LeaseEventKind};
use dhcp_user::leasequery::{serve_tcp, LeasequeryContext, LeasequerySettings, LeasequeryStats};
use dhcp_user::proto::Duid;
use dhcp_user::store::{Lease, LeaseChange, LeaseStore, LeaseType, SqliteStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};

pub const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
pub const REQUESTOR_DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
pub const LINK_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
pub const LINK_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);

/// A unix time in the recent past, whole seconds (leases are timed relative to it).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lq-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Settings for tests: loopback allowed, links 2001:db8:1::/64 and 2001:db8:2::/64, PD pool
/// 2001:db8:8000::/40, active leasequery on, short timeouts.
pub fn settings() -> LeasequerySettings {
    LeasequerySettings {
        allow: vec![parse_prefix("::1/128").unwrap()],
        links: vec![
            parse_prefix("2001:db8:1::/64").unwrap(),
            parse_prefix("2001:db8:2::/64").unwrap(),
        ],
        delegated: vec![parse_prefix("2001:db8:8000::/40").unwrap()],
        idle_timeout: Duration::from_secs(4),
        io_timeout: Duration::from_secs(2),
        // Off by default (RFC 7653 §9.1); these tests opt in, as a configuration must.
        active_enabled: true,
        ..LeasequerySettings::default()
    }
}

pub fn duid(n: u32) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&[0x02, 0]);
    d.extend_from_slice(&n.to_be_bytes());
    d
}

/// An address lease of client `n` on `link`, last transaction at `cltt`, 3600/7200 s.
pub fn na(address: Ipv6Addr, n: u32, link: Ipv6Addr, cltt: i64) -> Lease {
    Lease {
        preferred_lifetime: 3600,
        valid_lifetime: 7200,
        cltt,
        expire: cltt + 7200,
        interface: "eth1".into(),
        link_address: link,
        ..Lease::bare(LeaseType::Na, address, 128, duid(n), n, 1)
    }
}

/// A delegated-prefix lease of client `n`.
pub fn pd(prefix: Ipv6Addr, len: u8, n: u32, link: Ipv6Addr, cltt: i64) -> Lease {
    Lease {
        prefix_len: len,
        lease_type: LeaseType::Pd,
        ..na(prefix, n, link, cltt)
    }
}

pub fn addr(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}

/// The service on [::1]:0 over a temporary store.
pub struct Fixture {
    pub store: Arc<SqliteStore>,
    pub events: broadcast::Sender<LeaseEvent>,
    pub stats: Arc<LeasequeryStats>,
    pub addr: SocketAddr,
    pub shutdown: watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
    pub dir: PathBuf,
}

impl Fixture {
    pub async fn start(settings: LeasequerySettings) -> Fixture {
        let dir = temp_dir("svc");
        let store = Arc::new(SqliteStore::open(dir.join("leases.db")).unwrap());
        Fixture::with_store(settings, store, dir).await
    }

    pub async fn with_store(
        settings: LeasequerySettings,
        store: Arc<SqliteStore>,
        dir: PathBuf,
    ) -> Fixture {
        Fixture::with_tls(settings, store, dir, None).await
    }

    /// The service with TLS: StartTLS upgrades sessions with `tls`.
    pub async fn start_tls(
        settings: LeasequerySettings,
        tls: Arc<rustls::ServerConfig>,
    ) -> Fixture {
        let dir = temp_dir("svc-tls");
        let store = Arc::new(SqliteStore::open(dir.join("leases.db")).unwrap());
        Fixture::with_tls(settings, store, dir, Some(tls)).await
    }

    pub async fn with_tls(
        settings: LeasequerySettings,
        store: Arc<SqliteStore>,
        dir: PathBuf,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Fixture {
        let events = events::channel();
        let stats = Arc::new(LeasequeryStats::new());
        let sender = events.clone();
        let ctx = Arc::new(LeasequeryContext {
            store: store.clone(),
            subscribe: Arc::new(move || sender.subscribe()),
            server_duid: Duid::new(SERVER_DUID.to_vec()).unwrap(),
            settings,
            live: None,
            stats: stats.clone(),
            tls,
        });
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(serve_tcp(listener, ctx, rx));
        Fixture {
            store,
            events,
            stats,
            addr,
            shutdown,
            task,
            dir,
        }
    }

    /// Commits `leases` (upserts) at `at` and publishes `kind` for each, like the server does.
    pub fn change(&self, kind: LeaseEventKind, leases: &[Lease], at: i64) {
        let changes: Vec<LeaseChange> = leases
            .iter()
            .map(|l| {
                if kind == LeaseEventKind::Cleared {
                    LeaseChange::Delete(l.key())
                } else {
                    LeaseChange::Upsert(l.clone())
                }
            })
            .collect();
        self.store.commit(&changes, at).unwrap();
        for lease in leases {
            let _ = self.events.send(LeaseEvent {
                kind,
                lease: lease.clone(),
            });
        }
    }

    pub async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }
}

// ---- raw wire building ----

/// 2000-01-01 00:00:00 UTC in Unix seconds: 30 years of 365 days plus the 7 leap days of
/// 1972..1996 (RFC 7653 times count from it).
pub const EPOCH_2000_UNIX: i64 = (30 * 365 + 7) * 86_400;

/// A Unix time as the 4 bytes of LQ_START_TIME / LQ_END_TIME (seconds since 2000).
pub fn lq_time(unix: i64) -> [u8; 4] {
    ((unix - EPOCH_2000_UNIX) as u32).to_be_bytes()
}

pub fn opt(code: u16, body: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// OPTION_IAADDR with zero lifetimes (a query argument).
pub fn iaaddr_opt(address: Ipv6Addr) -> Vec<u8> {
    let mut body = address.octets().to_vec();
    body.extend_from_slice(&[0; 8]);
    opt(5, &body)
}

/// A LEASEQUERY (14) or ACTIVELEASEQUERY (22) with the requestor's Client ID, OPTION_LQ_QUERY
/// (query type, link-address, query options) and `extra` top-level options.
pub fn query(
    msg_type: u8,
    xid: [u8; 3],
    query_type: u8,
    link: Ipv6Addr,
    query_options: &[u8],
    extra: &[u8],
) -> Vec<u8> {
    let mut m = vec![msg_type, xid[0], xid[1], xid[2]];
    m.extend(opt(1, &REQUESTOR_DUID));
    let mut lq = vec![query_type];
    lq.extend_from_slice(&link.octets());
    lq.extend_from_slice(query_options);
    m.extend(opt(44, &lq));
    m.extend_from_slice(extra);
    m
}

pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut v = (message.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(message);
    v
}

// ---- raw wire reading ----

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMsg {
    pub msg_type: u8,
    pub xid: [u8; 3],
    pub options: Vec<(u16, Vec<u8>)>,
}

pub fn parse_options(mut bytes: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 4, "option header truncated: {bytes:?}");
        let code = u16::from_be_bytes([bytes[0], bytes[1]]);
        let len = u16::from_be_bytes([bytes[2], bytes[3]]) as usize;
        assert!(bytes.len() >= 4 + len, "option {code} body truncated");
        out.push((code, bytes[4..4 + len].to_vec()));
        bytes = &bytes[4 + len..];
    }
    out
}

pub fn parse_msg(bytes: &[u8]) -> RawMsg {
    assert!(bytes.len() >= 4, "message shorter than its header");
    RawMsg {
        msg_type: bytes[0],
        xid: [bytes[1], bytes[2], bytes[3]],
        options: parse_options(&bytes[4..]),
    }
}

impl RawMsg {
    pub fn get(&self, code: u16) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, b)| b.as_slice())
    }

    pub fn all(&self, code: u16) -> Vec<&[u8]> {
        self.options
            .iter()
            .filter(|(c, _)| *c == code)
            .map(|(_, b)| b.as_slice())
            .collect()
    }

    pub fn codes(&self) -> Vec<u16> {
        self.options.iter().map(|(c, _)| *c).collect()
    }

    /// The status code (0 when absent) and message.
    pub fn status(&self) -> (u16, String) {
        match self.get(13) {
            Some(b) => (
                u16::from_be_bytes([b[0], b[1]]),
                String::from_utf8_lossy(&b[2..]).into_owned(),
            ),
            None => (0, String::new()),
        }
    }

    /// LQ_BASE_TIME as Unix seconds (the wire counts from 2000-01-01 UTC, RFC 7653 §6.3.1).
    pub fn base_time(&self) -> Option<u32> {
        self.get(100).map(|b| be32(b) + EPOCH_2000_UNIX as u32)
    }

    /// LQ_BASE_TIME exactly as on the wire.
    pub fn wire_base_time(&self) -> Option<u32> {
        self.get(100).map(be32)
    }

    /// The options inside OPTION_CLIENT_DATA.
    pub fn client_data(&self) -> Option<Vec<(u16, Vec<u8>)>> {
        self.get(45).map(parse_options)
    }
}

pub fn be32(b: &[u8]) -> u32 {
    assert_eq!(b.len(), 4, "a 32-bit field");
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// IAADDR body → (address, preferred, valid), asserting no sub-options.
pub fn iaaddr(body: &[u8]) -> (Ipv6Addr, u32, u32) {
    assert_eq!(body.len(), 24, "IAADDR without sub-options");
    let a: [u8; 16] = body[..16].try_into().unwrap();
    (Ipv6Addr::from(a), be32(&body[16..20]), be32(&body[20..24]))
}

/// IAPREFIX body → (prefix, len, preferred, valid).
pub fn iaprefix(body: &[u8]) -> (Ipv6Addr, u8, u32, u32) {
    assert_eq!(body.len(), 25, "IAPREFIX without sub-options");
    let a: [u8; 16] = body[9..25].try_into().unwrap();
    (
        Ipv6Addr::from(a),
        body[8],
        be32(&body[0..4]),
        be32(&body[4..8]),
    )
}

pub fn find(options: &[(u16, Vec<u8>)], code: u16) -> Vec<&[u8]> {
    options
        .iter()
        .filter(|(c, _)| *c == code)
        .map(|(_, b)| b.as_slice())
        .collect()
}

/// Reads one framed message (`None` on close), failing the test after `wait`.
pub async fn read_frame(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    tokio::time::timeout(wait, async {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return None;
        }
        let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).await.ok()?;
        Some(body)
    })
    .await
    .expect("no frame in time")
}

pub async fn read_msg(stream: &mut TcpStream) -> RawMsg {
    let bytes = read_frame(stream, Duration::from_secs(5))
        .await
        .expect("connection closed instead of a message");
    parse_msg(&bytes)
}

pub async fn send(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(&frame(message)).await.unwrap();
}

/// Waits until `cond` holds (polling), failing after `wait`.
pub async fn eventually(wait: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + wait;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
