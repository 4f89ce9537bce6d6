//! Hostile and broken TCP peers: each is dropped with a counted reason while a well-behaved
//! session on the same server keeps being served; connection limit and idle timeout.

mod leasequery_common;

use std::net::Ipv6Addr;
use std::time::Duration;

use dhcp_user::leasequery::LeasequerySettings;
use dhcp_user::store::{LeaseChange, LeaseStore};
use leasequery_common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A bulk query for every link, answered completely (REPLY .. DONE); returns the bindings.
async fn good_query(f: &Fixture, xid: [u8; 3]) -> usize {
    let mut s = f.connect().await;
    send(&mut s, &query(14, xid, 4, Ipv6Addr::UNSPECIFIED, &[], &[])).await;
    let mut count = 0;
    loop {
        let m = read_msg(&mut s).await;
        assert_eq!(m.xid, xid);
        count += m.get(45).is_some() as usize;
        if m.msg_type == 16 {
            return count;
        }
    }
}

/// Waits for the peer to close the connection (EOF or reset), within `wait`.
async fn closed_by_server(s: &mut tokio::net::TcpStream, wait: Duration) {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(wait, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("server did not close the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_dropped_counted_and_others_keep_going() {
    let f = Fixture::start(LeasequerySettings {
        io_timeout: Duration::from_secs(1),
        ..settings()
    })
    .await;
    let t = now();
    let changes: Vec<LeaseChange> = (0..20_000u32)
        .map(|i| {
            let a = Ipv6Addr::from(u128::from(addr("2001:db8:1::1:0")) + u128::from(i));
            LeaseChange::Upsert(na(a, i, LINK_A, t))
        })
        .collect();
    f.store.commit(&changes, t).unwrap();

    // A peer that asks for everything, several times over (more than any socket buffers
    // hold), and never reads: a write times out.
    let mut stuck = f.connect().await;
    for _ in 0..10 {
        send(
            &mut stuck,
            &query(14, [9, 9, 9], 4, Ipv6Addr::UNSPECIFIED, &[], &[]),
        )
        .await;
    }

    // A length above the query limit.
    let mut big = f.connect().await;
    big.write_all(&[0xff, 0xff, 1, 2, 3]).await.unwrap();
    // Half a message, then close.
    let mut half = f.connect().await;
    half.write_all(&[0, 40, 14, 0, 0]).await.unwrap();
    half.shutdown().await.unwrap();
    // Half a message, then silence.
    let mut slow = f.connect().await;
    slow.write_all(&[0, 40, 14]).await.unwrap();
    // A complete frame that is no DHCPv6 message (an option running past the end).
    let mut junk = f.connect().await;
    junk.write_all(&frame(&[14, 0, 0, 1, 0, 1, 0, 50, 1]))
        .await
        .unwrap();
    // A well-formed message of a type that has no business here (Solicit).
    let mut wrong = f.connect().await;
    let mut solicit = vec![1, 0, 0, 1];
    solicit.extend(opt(1, &REQUESTOR_DUID));
    wrong.write_all(&frame(&solicit)).await.unwrap();

    // Meanwhile well-behaved sessions are served in full, repeatedly.
    for round in 0..3u8 {
        assert_eq!(good_query(&f, [1, 0, round]).await, 20_000);
    }

    for s in [&mut big, &mut half, &mut slow, &mut junk, &mut wrong] {
        closed_by_server(s, Duration::from_secs(3)).await;
    }
    eventually(Duration::from_secs(10), || {
        f.stats.get("dropped_write_timeout") == 1
    })
    .await;
    closed_by_server(&mut stuck, Duration::from_secs(3)).await;
    assert_eq!(f.stats.get("dropped_frame_too_large"), 1);
    assert_eq!(f.stats.get("dropped_truncated_frame"), 1);
    assert_eq!(f.stats.get("dropped_read_timeout"), 1);
    assert_eq!(f.stats.get("dropped_undecodable_message"), 1);
    assert_eq!(f.stats.get("dropped_unexpected_message_type"), 1);
    assert_eq!(good_query(&f, [2, 0, 0]).await, 20_000, "still serving");
}

/// One source at `max-connections-per-source` gets its next connection closed at once and
/// counted, while the global limit still has room; closing one of its sessions frees a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_source_connection_limit() {
    let f = Fixture::start(LeasequerySettings {
        max_connections: 10,
        max_connections_per_source: 2,
        ..settings()
    })
    .await;
    let a = f.connect().await;
    let _b = f.connect().await;
    eventually(Duration::from_secs(2), || f.stats.get("tcp_accepted") == 2).await;
    let mut c = f.connect().await;
    closed_by_server(&mut c, Duration::from_secs(2)).await;
    assert_eq!(f.stats.get("tcp_refused_max_per_source"), 1);
    assert_eq!(f.stats.get("tcp_refused_max_connections"), 0);
    drop(a);
    eventually(Duration::from_secs(2), || f.stats.get("tcp_closed") >= 1).await;
    // (The slot is given back as the session's task ends, just after it counts the close.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut d = f.connect().await;
    send(&mut d, &query(14, [3, 3, 4], 4, LINK_A, &[], &[])).await;
    let reply = read_msg(&mut d).await;
    assert_eq!((reply.msg_type, reply.status().0), (15, 0));
    assert_eq!(f.stats.get("tcp_accepted"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_and_idle_timeout() {
    let f = Fixture::start(LeasequerySettings {
        max_connections: 2,
        idle_timeout: Duration::from_secs(1),
        ..settings()
    })
    .await;
    let _a = f.connect().await;
    let _b = f.connect().await;
    eventually(Duration::from_secs(2), || f.stats.get("tcp_accepted") == 2).await;
    let mut c = f.connect().await;
    closed_by_server(&mut c, Duration::from_secs(2)).await;
    assert_eq!(f.stats.get("tcp_refused_max_connections"), 1);
    // The idle ones are closed after the idle timeout, freeing their slots.
    eventually(Duration::from_secs(3), || {
        f.stats.get("dropped_idle_timeout") == 2
    })
    .await;
    let mut d = f.connect().await;
    send(&mut d, &query(14, [3, 3, 3], 4, LINK_A, &[], &[])).await;
    let reply = read_msg(&mut d).await;
    assert_eq!((reply.msg_type, reply.status().0), (15, 0));
    assert_eq!(read_msg(&mut d).await.msg_type, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requestor_outside_the_allow_list_gets_not_allowed() {
    let f = Fixture::start(LeasequerySettings {
        allow: vec![dhcp_user::config::parse_prefix("2001:db8:1::/64").unwrap()],
        ..settings()
    })
    .await;
    let mut s = f.connect().await;
    send(&mut s, &query(14, [4, 4, 4], 4, LINK_A, &[], &[])).await;
    let reply = read_msg(&mut s).await;
    assert_eq!(
        (reply.msg_type, reply.xid, reply.status().0),
        (15, [4, 4, 4], 10)
    );
    assert_eq!(reply.get(45), None);
    assert_eq!(f.stats.get("status_not_allowed"), 1);
    assert!(
        read_frame(&mut s, Duration::from_secs(5)).await.is_none(),
        "and disconnected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_requestor_bulk_sees_only_its_relay() {
    let f = Fixture::start(LeasequerySettings {
        restricted_requestors: true,
        ..settings()
    })
    .await;
    let t = now();
    let mut mine = na(addr("2001:db8:1::a"), 1, LINK_A, t);
    mine.relay_id = Some(vec![0, 2, 0, 0, 0, 1, 0xa]);
    let mut theirs = na(addr("2001:db8:1::b"), 2, LINK_A, t);
    theirs.relay_id = Some(vec![0, 2, 0, 0, 0, 1, 0xb]);
    f.store
        .commit(&[LeaseChange::Upsert(mine), LeaseChange::Upsert(theirs)], t)
        .unwrap();
    let mut s = f.connect().await;
    let own = opt(53, &[0, 2, 0, 0, 0, 1, 0xa]);
    send(&mut s, &query(14, [5, 5, 5], 4, LINK_A, &[], &own)).await;
    let reply = read_msg(&mut s).await;
    let data = reply.client_data().expect("own binding");
    assert_eq!(iaaddr(find(&data, 5)[0]).0, addr("2001:db8:1::a"));
    assert_eq!(read_msg(&mut s).await.msg_type, 16, "and nothing else");
    // Without its Relay-ID: NotAllowed.
    send(&mut s, &query(14, [5, 5, 6], 4, LINK_A, &[], &[])).await;
    assert_eq!(read_msg(&mut s).await.status().0, 10);
}
