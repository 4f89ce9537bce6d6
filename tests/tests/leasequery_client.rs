//! The requestor functions (`leasequery::client`) against the in-process service: individual
//! over UDP (a loopback responder calling `answer_udp`), bulk and active over TCP; and peer
//! redundancy between two in-process servers.

mod leasequery_common;

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dhcp_user::config::parse_prefix;
use dhcp_user::lease_events::LeaseEventKind;
use dhcp_user::leasequery::client::{
    query_bulk, query_udp, ActiveEvent, ActiveLeasequery, Query, QueryOptions,
};
use dhcp_user::leasequery::peer::{follow_peer, PeerSettings, PeerSink};
use dhcp_user::leasequery::{answer_udp, LeasequeryStats};
use dhcp_user::proto::{Duid, Message};
use dhcp_user::store::{Lease, LeaseChange, LeaseFilter, LeaseStore, StoreWriter, WriterConfig};
use leasequery_common::*;
use tokio::net::UdpSocket;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(5);

fn me() -> Duid {
    Duid::new(REQUESTOR_DUID.to_vec()).unwrap()
}

/// A UDP responder on [::1]:0 answering with `answer_udp` over the fixture's store.
async fn udp_responder(f: &Fixture) -> SocketAddr {
    let socket = UdpSocket::bind("[::1]:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let store = f.store.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        let duid = Duid::new(SERVER_DUID.to_vec()).unwrap();
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(message) = Message::decode(&buf[..n]) else {
                continue;
            };
            let std::net::IpAddr::V6(source) = from.ip() else {
                continue;
            };
            if let Some(reply) =
                answer_udp(&message, source, store.as_ref(), &settings(), &duid, now())
            {
                let _ = socket.send_to(&reply.encode().unwrap(), from).await;
            }
        }
    });
    local
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requestor_queries_of_every_kind() {
    let f = Fixture::start(settings()).await;
    let t = now() - 5;
    let mut a = na(addr("2001:db8:1::a"), 1, LINK_A, t);
    a.relay_id = Some(vec![0, 2, 0, 0, 0, 1, 0xa]);
    a.remote_id = Some(vec![0, 0, 0, 9, b'x']);
    let b = na(addr("2001:db8:2::b"), 1, LINK_B, t);
    let p = pd(addr("2001:db8:8000:100::"), 56, 2, LINK_A, t);
    f.store
        .commit(
            &[
                LeaseChange::Upsert(a),
                LeaseChange::Upsert(b),
                LeaseChange::Upsert(p),
            ],
            t,
        )
        .unwrap();
    let udp = udp_responder(&f).await;
    let none = QueryOptions::default();

    let answer = query_udp(
        udp,
        &me(),
        &Query::Address(addr("2001:db8:1::a")),
        &none,
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 0);
    assert_eq!(answer.bindings.len(), 1);
    let binding = &answer.bindings[0];
    assert_eq!(binding.client_id, Duid::new(duid(1)).unwrap().to_string());
    assert_eq!(binding.addresses.len(), 1);
    assert_eq!(binding.addresses[0].address, addr("2001:db8:1::a"));
    assert!(binding.clt_time.unwrap() >= 5);

    let answer = query_udp(
        udp,
        &me(),
        &Query::ClientId(Duid::new(duid(1)).unwrap()),
        &none,
        WAIT,
    )
    .await
    .unwrap();
    assert!(answer.bindings.is_empty());
    assert_eq!(
        answer.client_links,
        vec![LINK_A, LINK_B],
        "client on two links"
    );

    let answer = query_udp(
        udp,
        &me(),
        &Query::Address(addr("2001:db8:8000:1ab::77")),
        &none,
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(
        answer.bindings[0].prefixes[0].prefix,
        addr("2001:db8:8000:100::")
    );
    assert_eq!(answer.bindings[0].prefixes[0].prefix_len, 56);

    let tcp = f.addr;
    let answer = query_bulk(
        tcp,
        &me(),
        &Query::RelayId(Duid::new(vec![0, 2, 0, 0, 0, 1, 0xa]).unwrap()),
        &none,
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(answer.bindings.len(), 1);
    assert_eq!(
        answer.bindings[0].addresses[0].address,
        addr("2001:db8:1::a")
    );
    assert!(answer.base_time.is_some());
    assert_eq!(answer.done_status, None);

    let remote = Query::RemoteId {
        enterprise: 9,
        remote_id: b"x".to_vec(),
    };
    let answer = query_bulk(tcp, &me(), &remote, &none, WAIT).await.unwrap();
    assert_eq!(answer.bindings.len(), 1);

    let answer = query_bulk(
        tcp,
        &me(),
        &Query::LinkAddress(Ipv6Addr::UNSPECIFIED),
        &none,
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(answer.bindings.len(), 2, "two clients");
    let answer = query_bulk(tcp, &me(), &Query::LinkAddress(LINK_B), &none, WAIT)
        .await
        .unwrap();
    assert_eq!(answer.bindings.len(), 1);
    assert_eq!(
        answer.bindings[0].addresses[0].address,
        addr("2001:db8:2::b")
    );

    let answer = query_bulk(
        tcp,
        &me(),
        &Query::ClientId(Duid::new(duid(1)).unwrap()),
        &none,
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(answer.bindings.len(), 1);
    assert_eq!(
        answer.bindings[0].addresses.len(),
        2,
        "bulk: all of the client's bindings"
    );

    let (active, reply) = ActiveLeasequery::start(
        tcp,
        &me(),
        &Query::LinkAddress(Ipv6Addr::UNSPECIFIED),
        &none,
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 0);
    let mut active = active.unwrap();
    let now = now();
    f.change(
        LeaseEventKind::Granted,
        &[na(addr("2001:db8:1::c"), 3, LINK_A, now)],
        now,
    );
    match active.next(WAIT).await.unwrap() {
        ActiveEvent::Update(binding) => {
            assert_eq!(binding.addresses[0].address, addr("2001:db8:1::c"))
        }
        other => panic!("{other:?}"),
    }
}

/// One in-process server for the peer test: store, writer, events, TCP service.
struct PeerNode {
    fixture: Fixture,
    writer: StoreWriter,
    stats: Arc<LeasequeryStats>,
}

impl PeerNode {
    async fn start() -> PeerNode {
        let fixture = Fixture::start(settings()).await;
        let writer = StoreWriter::spawn(fixture.store.clone(), WriterConfig::default()).unwrap();
        PeerNode {
            fixture,
            writer,
            stats: Arc::new(LeasequeryStats::new()),
        }
    }

    /// Follows `other` until the returned sender is dropped or set.
    fn follow(
        &self,
        other: &PeerNode,
        name: u8,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let mut settings = PeerSettings::new(
            other.fixture.addr,
            Duid::new(vec![0, 3, 0, 1, name, name]).unwrap(),
        );
        settings.retry = Duration::from_millis(200);
        let sink = PeerSink {
            store: self.fixture.store.clone(),
            writer: self.writer.clone(),
            events: Some(self.fixture.events.clone()),
            subnets: vec![
                (parse_prefix("2001:db8:1::/64").unwrap(), 1),
                (parse_prefix("2001:db8:8000::/40").unwrap(), 1),
            ],
            stats: self.stats.clone(),
            links: Vec::new(),
            line_identity: None,
            publish: None,
        };
        let (tx, rx) = watch::channel(false);
        (tx, tokio::spawn(follow_peer(settings, sink, rx)))
    }

    /// (address, duid, cltt, expire, assigned) of every lease, in key order.
    fn table(&self) -> Vec<(Ipv6Addr, Vec<u8>, i64, i64, bool)> {
        self.fixture
            .store
            .find(&LeaseFilter::All, None, 10_000)
            .unwrap()
            .into_iter()
            .map(|l: Lease| {
                (
                    l.address,
                    l.duid.clone(),
                    l.cltt,
                    l.expire,
                    l.is_active(now()),
                )
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_install_each_others_bindings_and_catch_up_after_a_restart() {
    let a = PeerNode::start().await;
    let b = PeerNode::start().await;
    // Pools split: A grants from ::1:0/112, B from ::2:0/112 (same subnet 1).
    let (_a_follows_b, _ta) = a.follow(&b, 0xa);
    let (b_stop, b_task) = b.follow(&a, 0xb);

    let t = now();
    let from_a = na(addr("2001:db8:1::1:1"), 1, LINK_A, t);
    a.fixture
        .change(LeaseEventKind::Granted, std::slice::from_ref(&from_a), t);
    let from_b = na(addr("2001:db8:1::2:1"), 2, LINK_A, t);
    b.fixture
        .change(LeaseEventKind::Granted, std::slice::from_ref(&from_b), t);
    eventually(WAIT, || a.table().len() == 2 && b.table().len() == 2).await;
    assert_eq!(a.table(), b.table());
    let installed = b
        .fixture
        .store
        .get_by_address(from_a.address)
        .unwrap()
        .unwrap();
    assert_eq!(
        (installed.duid, installed.cltt, installed.expire),
        (from_a.duid.clone(), from_a.cltt, from_a.expire)
    );
    assert_eq!(
        installed.iaid, from_a.iaid,
        "the IAID travels (the survivor's fast path matches it on the Rebind)"
    );
    assert_eq!(installed.subnet_id, 1);

    // B goes away (its follower stops, as if killed); A keeps granting and releasing.
    b_stop.send(true).unwrap();
    b_task.await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = now();
    let later = na(addr("2001:db8:1::1:2"), 3, LINK_A, t);
    a.fixture.change(LeaseEventKind::Granted, &[later], t);
    let mut released = from_a.clone();
    released.state = dhcp_user::store::LeaseState::Released;
    a.fixture.change(LeaseEventKind::Released, &[released], t);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(a.table(), b.table(), "B missed these");

    // B comes back: catches up from its recorded resume time.
    let (_b_stop2, _tb2) = b.follow(&a, 0xb);
    // The installs come before CatchUpComplete: the tables can be equal a moment before the
    // count moves.
    eventually(WAIT, || {
        a.table() == b.table() && b.stats.get("peer_catch_ups") >= 2
    })
    .await;
    assert!(
        !b.table()
            .iter()
            .find(|row| row.0 == from_a.address)
            .unwrap()
            .4,
        "release installed"
    );

    // Settled: no ping-pong of installs between the two.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ia, ib) = (a.stats.get("peer_installed"), b.stats.get("peer_installed"));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        (a.stats.get("peer_installed"), b.stats.get("peer_installed")),
        (ia, ib)
    );
}
