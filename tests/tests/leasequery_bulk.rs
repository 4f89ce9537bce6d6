//! Bulk leasequery over TCP (RFC 5460) on loopback: queries built byte by byte, answers read
//! byte by byte.

mod leasequery_common;

use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::time::Duration;

use dhcp_user::store::{LeaseChange, LeaseStore};
use leasequery_common::*;

const R1: [u8; 8] = [0, 2, 0, 0, 0, 9, 1, 1];
const R2: [u8; 8] = [0, 2, 0, 0, 0, 9, 2, 2];

/// Remote-ID option body: enterprise 9, id "port-7".
fn remote_body() -> Vec<u8> {
    let mut b = 9u32.to_be_bytes().to_vec();
    b.extend_from_slice(b"port-7");
    b
}

async fn fixture() -> (Fixture, i64) {
    let f = Fixture::start(settings()).await;
    let t0 = now() - 10;
    let mut leases = Vec::new();
    for n in 1..=3u32 {
        let mut l = na(addr(&format!("2001:db8:1::{n}")), n, LINK_A, t0);
        l.relay_id = Some(R1.to_vec());
        leases.push(l);
    }
    // Client 1 also has a prefix through R1.
    let mut p = pd(addr("2001:db8:8000:100::"), 56, 1, LINK_A, t0);
    p.relay_id = Some(R1.to_vec());
    leases.push(p);
    let mut l4 = na(addr("2001:db8:2::4"), 4, LINK_B, t0);
    l4.relay_id = Some(R2.to_vec());
    l4.remote_id = Some(remote_body());
    leases.push(l4);
    let changes: Vec<LeaseChange> = leases.into_iter().map(LeaseChange::Upsert).collect();
    f.store.commit(&changes, t0).unwrap();
    (f, t0)
}

/// Checks a CLIENT_DATA holding client `n`'s address (and prefix, for client 1), every field.
fn check_client(data: &[(u16, Vec<u8>)], n: u32, base: u32, t0: i64) {
    let elapsed = (i64::from(base) - t0) as u32;
    assert_eq!(find(data, 1), vec![&duid(n)[..]], "Client ID");
    let address = if n == 4 {
        addr("2001:db8:2::4")
    } else {
        addr(&format!("2001:db8:1::{n}"))
    };
    assert_eq!(
        find(data, 5).into_iter().map(iaaddr).collect::<Vec<_>>(),
        vec![(address, 3600 - elapsed, 7200 - elapsed)]
    );
    let prefixes: Vec<_> = find(data, 26).into_iter().map(iaprefix).collect();
    if n == 1 {
        assert_eq!(
            prefixes,
            vec![(
                addr("2001:db8:8000:100::"),
                56,
                3600 - elapsed,
                7200 - elapsed
            )]
        );
    } else {
        assert!(prefixes.is_empty());
    }
    assert_eq!(find(data, 46), vec![&elapsed.to_be_bytes()[..]], "CLT_TIME");
}

/// Runs one bulk query: REPLY, DATA..., DONE; returns the clients' DUID numbers in order.
async fn run(
    stream: &mut tokio::net::TcpStream,
    xid: [u8; 3],
    query_bytes: &[u8],
    t0: i64,
) -> Vec<u32> {
    send(stream, query_bytes).await;
    let reply = read_msg(stream).await;
    assert_eq!(reply.msg_type, 15, "LEASEQUERY-REPLY first");
    assert_eq!(reply.xid, xid);
    assert_eq!(reply.get(1), Some(&REQUESTOR_DUID[..]));
    assert_eq!(reply.get(2), Some(&SERVER_DUID[..]));
    assert_eq!(reply.get(13), None, "success");
    let base = reply.base_time().expect("LQ_BASE_TIME in the reply");
    assert!((i64::from(base) - now()).abs() <= 2);
    let mut clients = Vec::new();
    let mut record = |data: Vec<(u16, Vec<u8>)>| {
        let id = find(&data, 1)[0].to_vec();
        let n = u32::from_be_bytes(id[6..10].try_into().unwrap());
        check_client(&data, n, base, t0);
        clients.push(n);
    };
    if let Some(data) = reply.client_data() {
        record(data);
    }
    loop {
        let m = read_msg(stream).await;
        assert_eq!(m.xid, xid);
        match m.msg_type {
            17 => {
                assert_eq!(m.codes(), vec![100, 45], "DATA: LQ_BASE_TIME, CLIENT_DATA");
                assert_eq!(m.base_time(), Some(base));
                record(m.client_data().unwrap());
            }
            16 => {
                assert!(m.options.is_empty(), "DONE without status: {m:?}");
                break;
            }
            other => panic!("message type {other} in a bulk answer"),
        }
    }
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_type_in_sequence_on_one_connection() {
    let (f, t0) = fixture().await;
    let mut s = f.connect().await;
    let any = Ipv6Addr::UNSPECIFIED;

    let q = query(14, [0, 0, 1], 3, any, &opt(53, &R1), &[]);
    assert_eq!(
        run(&mut s, [0, 0, 1], &q, t0).await,
        vec![1, 2, 3],
        "by Relay-ID"
    );

    let q = query(14, [0, 0, 2], 5, any, &opt(37, &remote_body()), &[]);
    assert_eq!(
        run(&mut s, [0, 0, 2], &q, t0).await,
        vec![4],
        "by Remote-ID"
    );

    let q = query(14, [0, 0, 3], 4, LINK_B, &[], &[]);
    assert_eq!(run(&mut s, [0, 0, 3], &q, t0).await, vec![4], "by link");

    let q = query(14, [0, 0, 4], 4, any, &[], &[]);
    assert_eq!(
        run(&mut s, [0, 0, 4], &q, t0).await,
        vec![1, 2, 3, 4],
        "every link"
    );

    let q = query(14, [0, 0, 5], 2, any, &opt(1, &duid(1)), &[]);
    assert_eq!(
        run(&mut s, [0, 0, 5], &q, t0).await,
        vec![1],
        "by client ID"
    );

    let q = query(
        14,
        [0, 0, 6],
        1,
        any,
        &iaaddr_opt(addr("2001:db8:8000:1ff:2::")),
        &[],
    );
    assert_eq!(
        run(&mut s, [0, 0, 6], &q, t0).await,
        vec![1],
        "by address in a prefix"
    );

    // A refused query: a lone REPLY with the status, no DONE; the connection stays usable.
    send(&mut s, &query(14, [0, 0, 7], 3, any, &[], &[])).await;
    let reply = read_msg(&mut s).await;
    assert_eq!((reply.msg_type, reply.xid), (15, [0, 0, 7]));
    assert_eq!(
        reply.status().0,
        8,
        "MalformedQuery: Relay-ID query without Relay-ID"
    );
    send(&mut s, &query(14, [0, 0, 8], 6, any, &[], &[])).await;
    assert_eq!(read_msg(&mut s).await.status().0, 7, "UnknownQueryType");

    let q = query(14, [0, 0, 9], 3, any, &opt(53, &R2), &[]);
    assert_eq!(run(&mut s, [0, 0, 9], &q, t0).await, vec![4]);
    assert_eq!(f.stats.get("bulk_queries"), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_time_selects_changed_bindings_and_data_missing_after_pruning() {
    let (f, t0) = fixture().await;
    // Client 2 renews 5 s later.
    let mut renewed = na(addr("2001:db8:1::2"), 2, LINK_A, t0);
    renewed.relay_id = Some(R1.to_vec());
    f.store
        .commit(&[LeaseChange::Upsert(renewed)], t0 + 5)
        .unwrap();
    let mut s = f.connect().await;
    let start = opt(101, &lq_time(t0 + 5));
    let q = query(14, [1, 0, 1], 4, Ipv6Addr::UNSPECIFIED, &[], &start);
    assert_eq!(run(&mut s, [1, 0, 1], &q, t0).await, vec![2]);
    // An end time before the renewal selects the first commit's bindings.
    let mut window = opt(101, &lq_time(t0));
    window.extend(opt(102, &lq_time(t0)));
    let q = query(14, [1, 0, 2], 4, Ipv6Addr::UNSPECIFIED, &[], &window);
    assert_eq!(run(&mut s, [1, 0, 2], &q, t0).await, vec![1, 2, 3, 4]);
    // History pruned up to t0+5: a start before that gets DataMissing (12).
    f.store.prune_changes(t0 + 5).unwrap();
    let q = query(
        14,
        [1, 0, 3],
        4,
        Ipv6Addr::UNSPECIFIED,
        &[],
        &opt(101, &lq_time(t0)),
    );
    send(&mut s, &q).await;
    let reply = read_msg(&mut s).await;
    assert_eq!((reply.msg_type, reply.status().0), (15, 12));
}

const BINDINGS: u32 = 100_000;

fn nth_address(i: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(addr("2001:db8:1::")) + 0x1_0000 + u128::from(i))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_bindings_complete_in_order_then_query_terminated() {
    let f = Fixture::start(settings()).await;
    let t0 = now() - 10;
    for chunk in (0..BINDINGS).collect::<Vec<_>>().chunks(10_000) {
        let changes: Vec<LeaseChange> = chunk
            .iter()
            .map(|&i| LeaseChange::Upsert(na(nth_address(i), i, LINK_A, t0)))
            .collect();
        f.store.commit(&changes, t0).unwrap();
    }
    let mut s = f.connect().await;
    send(&mut s, &query(14, [7, 7, 7], 4, LINK_A, &[], &[])).await;
    let reply = read_msg(&mut s).await;
    assert_eq!((reply.msg_type, reply.xid), (15, [7, 7, 7]));
    let mut addresses = Vec::with_capacity(BINDINGS as usize);
    let mut take = |data: Vec<(u16, Vec<u8>)>| {
        let (a, _, valid) = iaaddr(find(&data, 5)[0]);
        assert!(valid > 0);
        addresses.push(a);
    };
    take(reply.client_data().expect("first client in the REPLY"));
    loop {
        let m = read_msg(&mut s).await;
        match m.msg_type {
            17 => take(m.client_data().unwrap()),
            16 => {
                assert_eq!(m.status().0, 0);
                break;
            }
            other => panic!("message type {other}"),
        }
    }
    assert_eq!(addresses.len(), BINDINGS as usize, "every binding");
    for (i, a) in addresses.iter().enumerate() {
        assert_eq!(
            *a,
            nth_address(i as u32),
            "in key order, none missing or repeated"
        );
    }
    assert_eq!(
        addresses.iter().collect::<HashSet<_>>().len(),
        BINDINGS as usize
    );

    // Again, and the server shuts down mid-stream: DONE with QueryTerminated (11).
    send(&mut s, &query(14, [8, 8, 8], 4, LINK_A, &[], &[])).await;
    assert_eq!(read_msg(&mut s).await.msg_type, 15);
    f.shutdown.send(true).unwrap();
    let mut received = 1;
    let done = loop {
        let m = read_msg(&mut s).await;
        assert_eq!(m.xid, [8, 8, 8]);
        if m.msg_type == 16 {
            break m;
        }
        assert_eq!(m.msg_type, 17);
        received += 1;
    };
    assert_eq!(done.status().0, 11, "QueryTerminated");
    assert!(received < BINDINGS, "terminated before the end");
    assert!(
        read_frame(&mut s, Duration::from_secs(5)).await.is_none(),
        "then closed"
    );
    assert_eq!(f.stats.get("terminated_by_shutdown"), 1);
}
