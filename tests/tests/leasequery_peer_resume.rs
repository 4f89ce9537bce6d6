//! Peer sync across a cut connection: a follower whose catch-up is cut half-way resumes from
//! the previous connection's time (RFC 7653 §8.4: the base time of a catch-up in progress MUST
//! NOT be saved; §8.4.1) and ends with every binding, whether the cut is a FIN or a reset.

mod leasequery_common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dhcp_user::config::parse_prefix;
use dhcp_user::leasequery::peer::{follow_peer, PeerSettings, PeerSink};
use dhcp_user::leasequery::LeasequeryStats;
use dhcp_user::proto::Duid;
use dhcp_user::store::{
    LeaseChange, LeaseFilter, LeaseStore, SqliteStore, StoreWriter, WriterConfig,
};
use leasequery_common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP relay to `target`. The first connection accepted after [`Relay::arm`] is cut once it
/// has passed `cut_after` LEASEQUERY-DATA messages with a binding (with a reset when `reset`,
/// else a FIN, as `ss -K` or a dying peer would); the others pass untouched.
/// [`Relay::freeze`] makes the connections open at that moment go silent instead: nothing more
/// from the server reaches the client, and nothing is closed (a peer whose box died).
struct Relay {
    addr: SocketAddr,
    armed: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    /// Connections numbered below this are frozen.
    frozen_below: Arc<AtomicUsize>,
}

impl Relay {
    async fn start(target: SocketAddr, cut_after: usize, reset: bool) -> Relay {
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let armed = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let frozen_below = Arc::new(AtomicUsize::new(0));
        let (armed_in, count, frozen) = (armed.clone(), connections.clone(), frozen_below.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let id = count.fetch_add(1, Ordering::SeqCst);
                let cut = armed_in.swap(false, Ordering::SeqCst);
                let Ok(upstream) = TcpStream::connect(target).await else {
                    continue;
                };
                if cut && reset {
                    client.set_zero_linger().unwrap();
                }
                let frozen = frozen.clone();
                tokio::spawn(relay(
                    client,
                    upstream,
                    cut.then_some(cut_after),
                    move || id < frozen.load(Ordering::SeqCst),
                ));
            }
        });
        Relay {
            addr,
            armed,
            connections,
            frozen_below,
        }
    }

    fn freeze(&self) {
        self.frozen_below
            .store(self.connections.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn relay(
    client: TcpStream,
    upstream: TcpStream,
    cut_after: Option<usize>,
    frozen: impl Fn() -> bool,
) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut up_rx, mut up_tx) = upstream.into_split();
    let to_server = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_rx, &mut up_tx).await;
    });
    let mut updates = 0;
    loop {
        let mut len = [0u8; 2];
        if up_rx.read_exact(&mut len).await.is_err() {
            break;
        }
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if up_rx.read_exact(&mut body).await.is_err() {
            break;
        }
        if frozen() {
            continue;
        }
        if client_tx.write_all(&len).await.is_err() || client_tx.write_all(&body).await.is_err() {
            break;
        }
        if body[0] == 17 && parse_msg(&body).get(45).is_some() {
            updates += 1;
            if cut_after == Some(updates) {
                break;
            }
        }
    }
    // Dropping both halves of the client side closes it (reset if its linger is 0).
    to_server.abort();
    let _ = to_server.await;
}

/// The follower: its own store and writer, following `peer` until told to stop.
struct Follower {
    store: Arc<SqliteStore>,
    writer: StoreWriter,
    stats: Arc<LeasequeryStats>,
    _dir: std::path::PathBuf,
}

impl Follower {
    fn new() -> Follower {
        let dir = temp_dir("follower");
        let store = Arc::new(SqliteStore::open(dir.join("leases.db")).unwrap());
        let writer = StoreWriter::spawn(store.clone(), WriterConfig::default()).unwrap();
        Follower {
            store,
            writer,
            stats: Arc::new(LeasequeryStats::new()),
            _dir: dir,
        }
    }

    fn follow(&self, peer: SocketAddr) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        self.follow_with(peer, PeerSettings::silence_for(Duration::from_secs(5)))
    }

    fn follow_with(
        &self,
        peer: SocketAddr,
        silence: Duration,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let mut settings = PeerSettings::new(peer, Duid::new(vec![0, 3, 0, 1, 0xb, 0xb]).unwrap());
        settings.retry = Duration::from_millis(200);
        settings.silence_timeout = silence;
        let sink = PeerSink {
            store: self.store.clone(),
            writer: self.writer.clone(),
            events: None,
            subnets: vec![(parse_prefix("2001:db8:1::/64").unwrap(), 1)],
            stats: self.stats.clone(),
            links: Vec::new(),
            line_identity: None,
            publish: None,
        };
        let (tx, rx) = watch::channel(false);
        (tx, tokio::spawn(follow_peer(settings, sink, rx)))
    }

    fn assigned(&self) -> usize {
        let now = now();
        self.store
            .find(&LeaseFilter::All, None, 100_000)
            .unwrap()
            .iter()
            .filter(|l| l.is_active(now))
            .count()
    }
}

/// One run: the follower syncs, stops; the peer grants `grants` bindings; the follower comes
/// back through a relay that cuts its catch-up after `cut_after` updates; it must end with all.
async fn cut_catch_up_run(grants: u32, cut_after: usize, reset: bool) {
    let peer = Fixture::start(settings()).await;
    let relay = Relay::start(peer.addr, cut_after, reset).await;
    let follower = Follower::new();
    let (stop, task) = follower.follow(relay.addr);
    eventually(Duration::from_secs(10), || {
        follower.stats.get("peer_full_syncs") >= 1 && peer.stats.get("active_queries") >= 1
    })
    .await;
    stop.send(true).unwrap();
    task.await.unwrap();

    // While the follower is away (past the resume overlap), the peer grants.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = now();
    let leases: Vec<LeaseChange> = (0..grants)
        .map(|n| {
            let address =
                std::net::Ipv6Addr::from(u128::from(addr("2001:db8:1::1:0")) + u128::from(n));
            LeaseChange::Upsert(na(address, 1000 + n, LINK_A, t))
        })
        .collect();
    for batch in leases.chunks(500) {
        peer.store.commit(batch, t).unwrap();
    }

    // The follower comes back a few seconds later: base times of its new connection are then
    // past the grants by more than the resume overlap.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = relay.connections();
    relay.arm();
    let (_stop, _task) = follower.follow(relay.addr);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while follower.assigned() < grants as usize {
        assert!(
            tokio::time::Instant::now() < deadline,
            "cut after {cut_after} (reset {reset}): {} of {grants} installed; {} connections; \
             follower stats {:?}",
            follower.assigned(),
            relay.connections() - before,
            follower.stats.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        relay.connections() - before >= 2,
        "the catch-up was cut and the follower reconnected"
    );
    eventually(Duration::from_secs(10), || {
        follower.stats.get("peer_catch_ups") >= 2
    })
    .await;
    assert_eq!(follower.assigned(), grants as usize);
}

/// The case: 3 000 grants, the catch-up cut (a FIN) after 300 installs; every binding
/// ends installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_cut_after_300_of_3000_resumes_and_installs_all() {
    cut_catch_up_run(3000, 300, false).await;
}

/// The same cut as a reset (what `ss -K` does), run three times at different points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_ups_reset_at_any_point_lose_nothing_three_runs() {
    for cut_after in [300, 1500, 2990] {
        cut_catch_up_run(3000, cut_after, true).await;
    }
}

/// A peer that goes silent without closing (its box died) is given up after three missed
/// keepalives plus a second, and what it granted meanwhile arrives on the next session: 4 s
/// with a 1 s keepalive here (16 s with the default 5 s), where it used to take 155 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_session_is_given_up_after_three_keepalives() {
    let keepalive = Duration::from_secs(1);
    let peer = Fixture::start(dhcp_user::leasequery::LeasequerySettings {
        keepalive_interval: keepalive,
        ..settings()
    })
    .await;
    let relay = Relay::start(peer.addr, usize::MAX, false).await;
    let follower = Follower::new();
    let silence = PeerSettings::silence_for(keepalive);
    assert_eq!(silence, Duration::from_secs(4));
    let (_stop, _task) = follower.follow_with(relay.addr, silence);
    eventually(Duration::from_secs(10), || {
        follower.stats.get("peer_full_syncs") >= 1 && peer.stats.get("active_queries") >= 1
    })
    .await;
    // Keepalives keep a quiet but live session up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(follower.stats.get("peer_connection_errors"), 0);

    relay.freeze();
    let frozen_at = tokio::time::Instant::now();
    let t = now();
    peer.change(
        dhcp_user::lease_events::LeaseEventKind::Granted,
        &[na(addr("2001:db8:1::77"), 77, LINK_A, t)],
        t,
    );
    eventually(Duration::from_secs(15), || follower.assigned() == 1).await;
    let waited = frozen_at.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited <= Duration::from_secs(8),
        "given up and caught up after {waited:?}"
    );
    assert_eq!(follower.stats.get("peer_connection_errors"), 1);
}
